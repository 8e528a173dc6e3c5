import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import type * as Pool from "../../src/Pool.ts"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { sharedAs } from "../../src/internal/pool.ts"
import { at, errorOf, fork, makePool, now, readyAt, tagOf } from "./helpers2.ts"

type Conn = MockConnector.MockConnection

/** A shared statement of `ms` that records which connection ran it and when it ended. */
const statement = (pool: Pool.Pool<Conn>, ms: number, options?: Pool.AcquireOptions) =>
  pool.withShared((conn) => Effect.as(Effect.sleep(ms), conn.id), options).pipe(
    Effect.flatMap((id) => Effect.map(Effect.clockWith((c) => c.currentTimeMillis), (t) => ({ id, t }))),
    Effect.exit
  )

const outcomes = <A, E>(fibers: ReadonlyArray<Fiber.Fiber<Exit.Exit<A, E>>>) =>
  fibers.map((f) => {
    const exit = f.pollUnsafe()
    return exit !== undefined && Exit.isSuccess(exit) ? exit.value : undefined
  })

describe("multiplex", () => {
  it.effect("shared statements run side by side on idle connections, packed onto the first ones, without queueing", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 2, maxSize: 2, multiplex: 4 })
      yield* readyAt(pool, 100)
      const fibers = yield* Effect.forEach(Array.from({ length: 8 }), () => fork(statement(pool, 100)))
      yield* at(200)
      const done = outcomes(fibers).map((o) => o !== undefined && Exit.isSuccess(o) ? o.value : undefined)
      // Eight statements on two connections, four each, all finished at 200: exclusive use would end at 500.
      assert.deepStrictEqual(done.map((d) => d?.t), [200, 200, 200, 200, 200, 200, 200, 200])
      // Packed: the first connection carries multiplex (4) statements before the second takes any.
      assert.deepStrictEqual(done.map((d) => d?.id), [1, 1, 1, 1, 2, 2, 2, 2])
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.requestsNum, stats.requestsQueued, stats.poolSize, mock.open.size], [8, 0, 2, 2])
    }))

  it.effect("past multiplex statements per connection, shared acquisitions queue FIFO under the one deadline", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1, multiplex: 2, timeout: "150 millis" })
      yield* readyAt(pool, 100)
      const first = yield* Effect.forEach([1, 2], () => fork(statement(pool, 100)))
      // The connection is full: these wait for it, like any acquisition.
      const late = yield* fork(statement(pool, 10))
      const tooLate = yield* fork(statement(pool, 10, { timeout: "50 millis" }))
      yield* at(150)
      const timedOut = tooLate.pollUnsafe()
      assert.strictEqual(timedOut !== undefined && Exit.isSuccess(timedOut) ? tagOf(timedOut.value) : "pending", "PoolTimeout")
      yield* at(220)
      const done = outcomes([...first, late]).map((o) => o !== undefined && Exit.isSuccess(o) ? o.value.t : undefined)
      assert.deepStrictEqual(done, [200, 200, 210])
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.requestsQueued, stats.requestsErrors, stats.poolAvailable], [2, 1, 1])
    }))

  it.effect("a connection retired while shared statements run on it closes only when the last one ends", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1, multiplex: 8 })
      yield* readyAt(pool, 100)
      const [short, long] = [yield* fork(statement(pool, 50)), yield* fork(statement(pool, 300))]
      yield* pool.drain
      // Out of circulation at once, still open for the statements on it.
      const drained = yield* pool.stats
      assert.deepStrictEqual([drained.poolAvailable, mock.open.size, mock.counts.closes], [0, 1, 0])
      yield* at(150)
      assert.strictEqual(mock.counts.closes, 0)
      yield* at(400)
      // Closed at 400 after the last statement; its replacement (connect 400 -> 500) serves what comes next.
      assert.strictEqual(mock.counts.closes, 1)
      const next = yield* fork(statement(pool, 0))
      yield* at(500)
      const ids = outcomes([short, long, next]).map((o) => o !== undefined && Exit.isSuccess(o) ? o.value.id : undefined)
      assert.deepStrictEqual(ids, [1, 1, 2])
      assert.strictEqual((yield* pool.stats).closed.drained, 1)
    }))

  it.effect("an exclusive acquisition takes a connection whole: no shared statement joins it until it returns", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1, multiplex: 8 })
      yield* readyAt(pool, 100)
      const holder = yield* fork(pool.withConnection(() => Effect.sleep(200)))
      const shared = yield* fork(statement(pool, 10))
      yield* at(299)
      assert.isUndefined(shared.pollUnsafe())
      yield* at(310)
      const [done] = outcomes([shared]).map((o) => o !== undefined && Exit.isSuccess(o) ? o.value.t : undefined)
      assert.strictEqual(done, 310)
      assert.isTrue(Exit.isSuccess(holder.pollUnsafe()!))
    }))

  it.effect("a connection returned by an exclusive user under multiplex shared statements takes no more until one ends", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1, multiplex: 2 })
      yield* readyAt(pool, 100)
      let sharers = 0
      let most = 0
      const counted = (ms: number) =>
        pool.withShared(() =>
          Effect.acquireUseRelease(
            Effect.sync(() => {
              most = Math.max(most, ++sharers)
            }),
            () => Effect.sleep(ms),
            () => Effect.sync(() => sharers--)
          )
        ).pipe(Effect.andThen(Effect.clockWith((c) => c.currentTimeMillis)), Effect.exit)
      // Two shared statements fill the connection (100 -> 200); an exclusive user takes it under them at 110 and
      // returns it at 130; a third shared statement queued at 120.
      const full = yield* Effect.forEach([1, 2], () => fork(counted(100)))
      yield* at(110)
      const exclusive = yield* fork(pool.withConnection(() => Effect.sleep(20)))
      yield* at(120)
      const third = yield* fork(counted(10))
      yield* at(300)
      // It got a slot when the first two ended (200), not at 130 as a third sharer.
      const ended = outcomes([...full, third]).map((o) => o !== undefined && Exit.isSuccess(o) ? o.value : undefined)
      assert.deepStrictEqual(ended, [200, 200, 210])
      assert.isTrue(Exit.isSuccess(exclusive.pollUnsafe()!))
      assert.strictEqual(most, 2)
    }))

  it.effect("a broken connection seen by a shared statement is closed once its other statements end", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1, multiplex: 4 })
      yield* readyAt(pool, 100)
      const breaker = yield* fork(pool.withShared((conn) => Effect.andThen(Effect.sleep(10), Effect.sync(() => mock.breakConnection(conn)))))
      const other = yield* fork(statement(pool, 100))
      yield* at(110)
      // Broken at 110: no new statement may use it, but it stays open for the one still running.
      assert.deepStrictEqual([(yield* pool.stats).poolAvailable, mock.counts.closes], [0, 0])
      yield* at(200)
      assert.strictEqual(mock.counts.closes, 1)
      assert.isTrue(Exit.isSuccess(breaker.pollUnsafe()!))
      assert.isDefined(outcomes([other])[0])
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.returnsBad, stats.closed.broken], [1, 1])
      yield* at(300)
      assert.deepStrictEqual([(yield* pool.stats).poolAvailable, mock.open.size], [1, 1])
    }))

  it.effect("close waits for shared statements like borrowed connections, then closes under them at closeTimeout", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 2, maxSize: 2, multiplex: 4, closeTimeout: "1 second" })
      yield* readyAt(pool, 100)
      yield* fork(statement(pool, 200))
      yield* fork(statement(pool, 5000))
      const closing = yield* fork(pool.close())
      yield* at(300)
      // #1's statement ended at 300 and it closed then; #2 still runs one.
      assert.deepStrictEqual([mock.counts.closes, mock.open.size], [1, 1])
      yield* at(1100)
      assert.deepStrictEqual([mock.counts.closes, mock.open.size], [2, 0])
      assert.isTrue(Exit.isSuccess(closing.pollUnsafe()!))
    }))

  it.effect("sharedAs: the acquisition's own errors arrive mapped (shared and exclusive pools); a spread copy has none", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      for (const multiplex of [1, 2]) {
        const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1, multiplex })
        yield* readyAt(pool, (yield* now) + 100)
        const shared = sharedAs(pool)
        assert.isDefined(shared)
        const start = yield* now
        // The only connection is busy (exclusively) for 100 ms: the shared run waits, and times out at exactly 50 ms.
        yield* fork(pool.withConnection(() => Effect.sleep("100 millis")))
        const mapper = (e: { readonly _tag: string }) => `mapped ${e._tag}`
        const waiting = yield* fork(Effect.exit(shared!((conn) => Effect.succeed(conn.id), { timeout: "50 millis" }, mapper)))
        yield* at(start + 49)
        assert.isUndefined(waiting.pollUnsafe())
        yield* at(start + 50)
        const exit = waiting.pollUnsafe()
        assert.isTrue(exit !== undefined && Exit.isSuccess(exit))
        assert.strictEqual(errorOf((exit as Exit.Success<Exit.Exit<number, string>>).value), "mapped PoolTimeout")
        // The run's own errors pass through unmapped.
        yield* at(start + 100)
        const own = yield* Effect.exit(shared!(() => Effect.fail("own" as const), undefined, mapper))
        assert.deepStrictEqual(own, Exit.fail("own"))
        yield* at(start + 200)
      }
      const pool = yield* makePool(mock.connector, { minSize: 0, maxSize: 1 })
      assert.isUndefined(sharedAs({ ...pool }))
    }))
})
