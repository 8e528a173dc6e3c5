/**
 * The fault proxy itself (`test/support/Proxy.ts`), in front of a loopback echo server: pass, delay, blackhole (held
 * traffic delivered in order once it flows again), reset, and cleanup when its scope closes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as Net from "node:net"
import * as Proxy from "../support/Proxy.ts"

/** An echo server on 127.0.0.1, closed with the scope. */
const echoServer = Effect.acquireRelease(
  Effect.callback<Net.Server>((resume) => {
    const server = Net.createServer((socket) => socket.pipe(socket))
    server.listen({ host: "127.0.0.1", port: 0 }, () => resume(Effect.succeed(server)))
  }),
  (server) =>
    Effect.callback<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map((server) => (server.address() as Net.AddressInfo).port))

/** A client socket with a buffer of what it received and how it ended. */
const client = (port: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const socket = Net.connect({ host: "127.0.0.1", port })
      const state = { received: "", error: undefined as string | undefined, closed: false }
      socket.on("data", (chunk: Buffer) => (state.received += chunk.toString()))
      socket.on("error", (error: NodeJS.ErrnoException) => (state.error = error.code ?? error.message))
      socket.on("close", () => (state.closed = true))
      return { socket, state }
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  )

/** Polls `f` every 10 ms, at most `times` times. */
const until = (what: string, f: () => boolean, times = 200) =>
  Effect.gen(function*() {
    for (let i = 0; i < times; i++) {
      if (f()) return
      yield* Effect.sleep("10 millis")
    }
    assert.fail(`not reached: ${what}`)
  })

describe("the fault proxy", () => {
  it.live("passes, delays, blackholes (then delivers in order), resets, and closes with its scope", () =>
    Effect.gen(function*() {
      const target = yield* echoServer
      const scope = yield* Scope.make()
      const proxy = yield* Proxy.make(target).pipe(Scope.provide(scope))

      // pass
      const a = yield* client(proxy.port)
      a.socket.write("hello")
      yield* until("echo through the proxy", () => a.state.received === "hello")

      // delay: data arrives no sooner than the delay, each way
      yield* proxy.setMode(Proxy.delay(150, { connect: false }))
      const sentAt = performance.now()
      a.socket.write("-slow")
      yield* until("delayed echo", () => a.state.received === "hello-slow")
      assert.isAtLeast(performance.now() - sentAt, 290, "delayed both ways")

      // blackhole: an open connection stops flowing, a new one is accepted and never answered
      yield* proxy.setMode(Proxy.blackhole)
      a.socket.write("-held")
      const b = yield* client(proxy.port)
      b.socket.write("new")
      yield* Effect.sleep("200 millis")
      assert.strictEqual(a.state.received, "hello-slow", "nothing flows during the blackhole")
      assert.strictEqual(b.state.received, "")
      const during = yield* proxy.stats
      assert.strictEqual(during.accepted, 2)
      assert.strictEqual(during.upstreamConnects, 1, "the new connection was not opened upstream")

      // heal: what was held is delivered, in order
      yield* proxy.setMode(Proxy.pass)
      yield* until("held data delivered", () => a.state.received === "hello-slow-held" && b.state.received === "new")
      assert.strictEqual((yield* proxy.stats).upstreamConnects, 2)

      // reset: open connections get an RST, new ones too
      yield* proxy.setMode(Proxy.reset)
      yield* until("open connections reset", () => a.state.closed && b.state.closed)
      assert.strictEqual(a.state.error, "ECONNRESET")
      const c = yield* client(proxy.port)
      yield* until("a new connection reset", () => c.state.closed)
      assert.strictEqual(c.state.error, "ECONNRESET")
      assert.strictEqual((yield* proxy.stats).open, 0)

      // closing the scope stops the listener
      yield* proxy.setMode(Proxy.pass)
      yield* Scope.close(scope, Exit.void)
      const d = yield* client(proxy.port)
      yield* until("refused after close", () => d.state.closed)
      assert.strictEqual(d.state.error, "ECONNREFUSED")
    }))
})
