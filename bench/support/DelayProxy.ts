/**
 * A loopback TCP proxy that makes connects slow: every new client connection is accepted at once, but bytes flow
 * only after `delayMs` (the server's greeting arrives late, as across a slow network or a busy server). It counts
 * the connections it accepted and those still open, which is how W5 tells how many connections a client opened.
 * Listens on 127.0.0.1 only and forwards to 127.0.0.1.
 */
import * as Net from "node:net"

export interface DelayProxy {
  readonly port: number
  /** Connections accepted since the proxy started. */
  readonly accepted: () => number
  /** Connections open now. */
  readonly open: () => number
  readonly setDelay: (ms: number) => void
  /** Closes the listener and every proxied connection. */
  readonly close: () => Promise<void>
}

export const start = (targetPort: number, delayMs: number, targetHost = "127.0.0.1"): Promise<DelayProxy> =>
  new Promise((resolve, reject) => {
    let accepted = 0
    let delay = delayMs
    const sockets = new Set<Net.Socket>()
    const pairs = new Set<Net.Socket>()
    const server = Net.createServer((client) => {
      accepted++
      pairs.add(client)
      sockets.add(client)
      client.pause()
      client.setNoDelay(true)
      let upstream: Net.Socket | undefined
      const teardown = () => {
        pairs.delete(client)
        sockets.delete(client)
        client.destroy()
        if (upstream !== undefined) {
          sockets.delete(upstream)
          upstream.destroy()
        }
      }
      client.on("error", teardown)
      client.on("close", teardown)
      const timer = setTimeout(() => {
        if (client.destroyed) return
        upstream = Net.connect({ host: targetHost, port: targetPort })
        sockets.add(upstream)
        upstream.setNoDelay(true)
        upstream.on("error", teardown)
        upstream.on("close", teardown)
        upstream.on("connect", () => {
          client.pipe(upstream!)
          upstream!.pipe(client)
          client.resume()
        })
      }, delay)
      client.on("close", () => clearTimeout(timer))
    })
    server.on("error", reject)
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      const address = server.address()
      if (address === null || typeof address === "string") return reject(new Error("proxy: no port"))
      resolve({
        port: address.port,
        accepted: () => accepted,
        open: () => pairs.size,
        setDelay: (ms) => {
          delay = ms
        },
        close: () =>
          new Promise((done) => {
            for (const socket of sockets) socket.destroy()
            sockets.clear()
            pairs.clear()
            server.close(() => done())
          })
      })
    })
  })
