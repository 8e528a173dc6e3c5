/**
 * A loopback TCP proxy for fault tests: it sits in front of a server port on 127.0.0.1 and can pass, delay,
 * blackhole or reset the traffic, to simulate a slow link, a network partition or a dead load balancer.
 *
 * Modes (switch at any time with `setMode`; a switch applies to open connections too):
 * - `pass`: forward both ways.
 * - `delay(ms, { connect, data })`: hold new connections `ms` before opening the upstream side (`connect`), and/or
 *   forward every chunk `ms` late (`data`). Both default to true.
 * - `blackhole`: accept new connections but never open the upstream side nor answer; stop forwarding on open
 *   connections. Nothing is dropped: like TCP during a partition, bytes (and FINs) sent meanwhile are held and
 *   delivered, in order, when the mode goes back to `pass` or `delay`; held new connections are opened upstream
 *   then, if the client is still there.
 * - `reset`: destroy every open connection with a TCP RST, and reset new ones as soon as they are accepted.
 *
 * An upstream connect that fails (server down) resets the client side, as a refused connection would.
 *
 * `make` is scoped: closing the scope stops the listener and destroys every socket and timer.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"

export type Mode =
  | { readonly _tag: "pass" }
  | { readonly _tag: "delay"; readonly ms: number; readonly connect: boolean; readonly data: boolean }
  | { readonly _tag: "blackhole" }
  | { readonly _tag: "reset" }

export const pass: Mode = { _tag: "pass" }
export const blackhole: Mode = { _tag: "blackhole" }
export const reset: Mode = { _tag: "reset" }
export const delay = (
  ms: number,
  options: { readonly connect?: boolean | undefined; readonly data?: boolean | undefined } = {}
): Mode => ({ _tag: "delay", ms, connect: options.connect ?? true, data: options.data ?? true })

export interface ProxyStats {
  /** Client connections accepted (every connect attempt that reached the proxy). */
  readonly accepted: number
  /** Upstream connects started: the attempts the server saw (or would have seen, when it is down). */
  readonly upstreamConnects: number
  /** Upstream connects that failed (server down or refusing). */
  readonly upstreamFailures: number
  /** Client connections open now. */
  readonly open: number
  /** Client connections reset by the proxy (`reset` mode or a failed upstream connect). */
  readonly resets: number
  readonly bytesUp: number
  readonly bytesDown: number
}

/** One accepted connection, for tests that look at timings (ms since the proxy started, `performance.now`). */
export interface ConnectionRecord {
  readonly id: number
  readonly acceptedAt: number
  /** The mode when it was accepted. */
  readonly acceptedIn: Mode["_tag"]
  closedAt: number | undefined
  /** The first bytes the client sent (up to 8), to tell a protocol's message kinds apart. */
  firstBytes: Buffer | undefined
}

export interface Proxy {
  readonly host: string
  readonly port: number
  readonly targetPort: number
  readonly mode: Effect.Effect<Mode>
  readonly setMode: (mode: Mode) => Effect.Effect<void>
  readonly stats: Effect.Effect<ProxyStats>
  /** Every connection accepted so far, oldest first (bounded to the last 10,000). */
  readonly connections: Effect.Effect<ReadonlyArray<ConnectionRecord>>
  /** `url` with its port replaced by the proxy's. */
  readonly urlFor: (url: string) => string
}

interface Pair {
  readonly record: ConnectionRecord
  readonly client: Net.Socket
  upstream: Net.Socket | undefined
  /** The upstream socket is connected and writable. */
  ready: boolean
  /** Client → server bytes not yet written upstream; `null` stands for the client's FIN. */
  readonly heldUp: Array<Buffer | null>
  /** Server → client bytes not yet written to the client; `null` stands for the server's FIN. */
  readonly heldDown: Array<Buffer | null>
  closed: boolean
}

const HOST = "127.0.0.1"

export const make = (
  targetPort: number,
  options: { readonly mode?: Mode | undefined } = {}
): Effect.Effect<Proxy, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ proxy: Proxy; shutdown: () => Promise<void> }, Error>((resume) => {
      let mode: Mode = options.mode ?? pass
      const pairs = new Set<Pair>()
      const timers = new Set<NodeJS.Timeout>()
      const records: Array<ConnectionRecord> = []
      const started = performance.now()
      let nextId = 0
      const counts = { accepted: 0, upstreamConnects: 0, upstreamFailures: 0, resets: 0, bytesUp: 0, bytesDown: 0 }

      const later = (ms: number, f: () => void) => {
        const timer = setTimeout(() => {
          timers.delete(timer)
          f()
        }, ms)
        timers.add(timer)
      }

      const flowing = () => mode._tag === "pass" || mode._tag === "delay"
      const dataDelay = () => mode._tag === "delay" && mode.data ? mode.ms : 0

      const closePair = (pair: Pair, how: "reset" | "destroy") => {
        if (pair.closed) return
        pair.closed = true
        pair.record.closedAt = performance.now() - started
        pairs.delete(pair)
        if (how === "reset") {
          counts.resets++
          if (!pair.client.destroyed) pair.client.resetAndDestroy()
        } else {
          pair.client.destroy()
        }
        pair.upstream?.destroy()
      }

      /** Writes what is held in one direction, if traffic flows and the target is writable. */
      const flush = (pair: Pair) => {
        if (pair.closed || !flowing()) return
        if (pair.ready && pair.upstream !== undefined) {
          for (const chunk of pair.heldUp.splice(0)) {
            if (chunk === null) pair.upstream.end()
            else pair.upstream.write(chunk)
          }
        }
        const down = pair.heldDown.splice(0)
        if (pair.client.destroyed) return
        for (const chunk of down) {
          if (chunk === null) pair.client.end()
          else pair.client.write(chunk)
        }
      }

      const send = (pair: Pair, direction: "up" | "down", chunk: Buffer | null) => {
        const held = direction === "up" ? pair.heldUp : pair.heldDown
        held.push(chunk)
        const ms = dataDelay()
        if (ms > 0) later(ms, () => flush(pair))
        else flush(pair)
      }

      const connectUpstream = (pair: Pair) => {
        if (pair.closed || pair.upstream !== undefined) return
        counts.upstreamConnects++
        const upstream = Net.connect({ host: HOST, port: targetPort })
        pair.upstream = upstream
        upstream.setNoDelay(true)
        upstream.on("connect", () => {
          pair.ready = true
          flush(pair)
        })
        upstream.on("data", (chunk: Buffer) => {
          counts.bytesDown += chunk.length
          send(pair, "down", chunk)
        })
        upstream.on("end", () => send(pair, "down", null))
        upstream.on("error", () => {
          if (!pair.ready) counts.upstreamFailures++
          // Refused: reset the client, as the server's port would. Later errors: drop the client too.
          closePair(pair, pair.ready ? "destroy" : "reset")
        })
        upstream.on("close", () => {
          // Deliver what the server sent before closing, unless traffic is held (then `flush` does it later).
          if (pair.heldDown.length === 0 && flowing()) closePair(pair, "destroy")
        })
      }

      const admit = (pair: Pair) => {
        if (mode._tag === "blackhole") return // opened when traffic flows again
        if (mode._tag === "delay" && mode.connect) later(mode.ms, () => connectUpstream(pair))
        else connectUpstream(pair)
      }

      const server = Net.createServer({ noDelay: true }, (client) => {
        counts.accepted++
        const record: ConnectionRecord = {
          id: nextId++,
          acceptedAt: performance.now() - started,
          acceptedIn: mode._tag,
          closedAt: undefined,
          firstBytes: undefined
        }
        records.push(record)
        if (records.length > 10_000) records.shift()
        const pair: Pair = {
          record,
          client,
          upstream: undefined,
          ready: false,
          heldUp: [],
          heldDown: [],
          closed: false
        }
        client.on("error", () => closePair(pair, "destroy"))
        if (mode._tag === "reset") {
          pair.closed = true
          record.closedAt = record.acceptedAt
          counts.resets++
          client.resetAndDestroy()
          return
        }
        pairs.add(pair)
        client.on("data", (chunk: Buffer) => {
          record.firstBytes ??= Buffer.from(chunk.subarray(0, 8))
          counts.bytesUp += chunk.length
          send(pair, "up", chunk)
        })
        client.on("end", () => send(pair, "up", null))
        client.on("close", () => {
          record.closedAt ??= performance.now() - started
          // A client gone before anything reached the server: nothing to deliver.
          if (pair.upstream === undefined) return closePair(pair, "destroy")
          // Otherwise the server gets what the client sent, then a FIN (when traffic flows); its close ends the pair.
          send(pair, "up", null)
        })
        admit(pair)
      })

      const setMode = (next: Mode) =>
        Effect.sync(() => {
          mode = next
          if (next._tag === "reset") {
            for (const pair of Array.from(pairs)) closePair(pair, "reset")
            return
          }
          if (!flowing()) return
          for (const pair of Array.from(pairs)) {
            if (pair.upstream === undefined) admit(pair)
            flush(pair)
            // A server side that closed while traffic was held can go now that the client got everything.
            if (pair.upstream?.destroyed === true && pair.heldDown.length === 0) closePair(pair, "destroy")
          }
        })

      const shutdown = () =>
        new Promise<void>((resolve) => {
          for (const timer of timers) clearTimeout(timer)
          timers.clear()
          for (const pair of Array.from(pairs)) closePair(pair, "destroy")
          server.close(() => resolve())
        })

      server.on("error", (error) => resume(Effect.fail(error)))
      server.listen({ host: HOST, port: 0 }, () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        const proxy: Proxy = {
          host: HOST,
          port,
          targetPort,
          mode: Effect.sync(() => mode),
          setMode,
          stats: Effect.sync(() => ({ ...counts, open: pairs.size })),
          connections: Effect.sync(() => records.slice()),
          urlFor: (url) => {
            const parsed = new URL(url)
            parsed.port = String(port)
            return parsed.toString()
          }
        }
        resume(Effect.succeed({ proxy, shutdown }))
      })
    }),
    ({ shutdown }) => Effect.promise(shutdown)
  ).pipe(Effect.map(({ proxy }) => proxy))
