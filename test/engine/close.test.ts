import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import * as Pool from "../../src/Pool.ts"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { at, client, fork, holder, makePool, now, readyAt, tagOf } from "./helpers2.ts"

const ids = (mock: MockConnector.MockConnector) => Array.from(mock.open, (c) => c.id).sort((a, b) => a - b)

const done = <A>(fiber: Fiber.Fiber<A, never>): A => {
  const exit = fiber.pollUnsafe()
  if (exit === undefined || Exit.isFailure(exit)) throw new Error("fiber not done")
  return exit.value
}

describe("close", () => {
  it.effect("close fails waiters and new acquisitions with PoolClosed", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1 })
      yield* readyAt(pool, 100)
      const holding = yield* fork(holder(pool, 300))
      const waiter = yield* fork(holder(pool, 10, { timeout: "10 seconds" }))
      yield* at(200)
      assert.strictEqual((yield* pool.stats).requestsWaiting, 1)
      const closer = yield* fork(pool.close())
      assert.isTrue(yield* pool.isClosing)
      // The waiter fails at once (200), not at its deadline.
      assert.strictEqual(done(waiter).endAt, 200)
      assert.strictEqual(tagOf(done(waiter).exit), "PoolClosed")
      // New acquisitions and `wait` fail at once too.
      assert.strictEqual(tagOf(yield* Effect.exit(pool.withConnection(() => Effect.void))), "PoolClosed")
      assert.strictEqual(tagOf(yield* Effect.exit(Effect.scoped(pool.connection()))), "PoolClosed")
      assert.strictEqual(tagOf(yield* Effect.exit(pool.wait())), "PoolClosed")
      // The holder finishes normally at 400; its connection is closed on return and the close completes.
      yield* at(400)
      assert.isTrue(Exit.isSuccess(done(holding).exit))
      assert.isDefined(closer.pollUnsafe())
      assert.strictEqual(mock.open.size, 0)
      const s = yield* pool.stats
      assert.strictEqual(s.requestsErrors, 3)
      assert.strictEqual(s.requestsWaiting, 0)
      assert.strictEqual(s.closed.poolClosed, 1)
      assert.deepStrictEqual(mock.attemptTimes, [0])
    }).pipe(Effect.scoped))

  it.effect("close closes idle connections at once, borrowed ones on return, the rest after closeTimeout", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 3, maxSize: 3, closeTimeout: "5 seconds" })
      yield* readyAt(pool, 100)
      // #1 is borrowed until 1200, #2 until 11000 (past the grace period), #3 is idle.
      const seen: Array<{ readonly id: number; readonly open: boolean; readonly at: number }> = []
      const use = (ms: number) => (conn: MockConnector.MockConnection) =>
        Effect.andThen(
          Effect.sleep(ms),
          Effect.flatMap(now, (t) =>
            Effect.sync(() => {
              seen.push({ id: conn.id, open: conn.open, at: t })
            }))
        )
      const a = yield* fork(client(pool, use(1100)))
      const b = yield* fork(client(pool, use(10_900)))
      yield* at(200)
      let closedAt: number | undefined
      yield* fork(Effect.andThen(pool.close(), Effect.flatMap(now, (t) => Effect.sync(() => (closedAt = t)))))
      // The idle connection closes at once.
      assert.deepStrictEqual(ids(mock), [1, 2])
      yield* at(1199)
      assert.deepStrictEqual(ids(mock), [1, 2])
      // #1 closes when it is returned, not handed out or kept.
      yield* at(1200)
      assert.deepStrictEqual(seen, [{ id: 1, open: true, at: 1200 }])
      assert.deepStrictEqual(ids(mock), [2])
      assert.isUndefined(closedAt)
      // After closeTimeout (5 s from 200) #2 is closed under its user, and close completes.
      yield* at(5199)
      assert.deepStrictEqual(ids(mock), [2])
      assert.isUndefined(closedAt)
      yield* at(5200)
      assert.deepStrictEqual(ids(mock), [])
      assert.strictEqual(closedAt, 5200)
      // B's statements now run on a closed connection; its return later is harmless.
      yield* at(11_000)
      assert.deepStrictEqual(seen.slice(1), [{ id: 2, open: false, at: 11_000 }])
      assert.isTrue(Exit.isSuccess(done(a).exit))
      assert.isTrue(Exit.isSuccess(done(b).exit))
      const s = yield* pool.stats
      assert.strictEqual(s.closed.poolClosed, 3)
      assert.strictEqual(s.poolSize, 0)
      assert.strictEqual(mock.counts.closes, 3)
      // Nothing reconnects after close.
      assert.deepStrictEqual(mock.attemptTimes, [0, 0, 0])
    }).pipe(Effect.scoped))

  it.effect("a second close is a no-op", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const scope = yield* Scope.make()
      const pool = yield* Pool.make(mock.connector, { minSize: 2, maxSize: 2 }).pipe(Scope.provide(scope))
      yield* readyAt(pool, 100)
      const holding = yield* fork(holder(pool, 1000))
      yield* at(200)
      // Two concurrent closes: both complete when the borrowed connection comes back (1100).
      const first = yield* fork(Effect.andThen(pool.close(), now))
      const second = yield* fork(Effect.andThen(pool.close("1 millis"), now))
      assert.deepStrictEqual(ids(mock), [1])
      yield* at(1100)
      assert.isTrue(Exit.isSuccess(done(holding).exit))
      assert.strictEqual((first.pollUnsafe() as Exit.Success<number>).value, 1100)
      assert.strictEqual((second.pollUnsafe() as Exit.Success<number>).value, 1100)
      const closes = mock.counts.closes
      const before = yield* pool.stats
      // A close after the pool closed returns at once and changes nothing; so does closing its scope.
      yield* pool.close()
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(mock.counts.closes, closes)
      assert.deepStrictEqual(yield* pool.stats, before)
      assert.strictEqual(before.closed.poolClosed, 2)
      assert.strictEqual(mock.open.size, 0)
    }).pipe(Effect.scoped))

  it.effect("closing the pool's scope closes the pool", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const scope = yield* Scope.make()
      const pool = yield* Pool.make(mock.connector, { minSize: 2, maxSize: 2 }).pipe(Scope.provide(scope))
      yield* readyAt(pool, 100)
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(yield* pool.isClosing)
      assert.strictEqual(mock.open.size, 0)
      assert.strictEqual(tagOf(yield* Effect.exit(pool.withConnection(() => Effect.void))), "PoolClosed")
    }).pipe(Effect.scoped))
})
