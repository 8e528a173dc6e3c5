import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as Pool from "../../src/Pool.ts"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { clients, failed, now, ok, outcomes, start, timed } from "./helpers.ts"

describe("growth", () => {
  it.effect("growth serves demand without overshoot, and is never slower than psycopg's", () =>
    Effect.gen(function*() {
      // A burst of 50 clients × 2 ms on 5 ready connections: the returning connections serve it in 20 ms; the
      // connects it started (numWorkers of them, 150 ms each) land after it and only go idle.
      yield* Effect.gen(function*() {
        const mock = yield* MockConnector.make({ connectLatency: "150 millis" })
        const pool = yield* Pool.make(mock.connector, { minSize: 5, maxSize: 50 })
        yield* start(pool.wait())
        yield* TestClock.adjust("300 millis")
        assert.strictEqual(mock.open.size, 5)
        const t0 = yield* now

        const fibers = yield* clients(pool, Array(50).fill(2), { origin: t0 })
        const burst = yield* pool.stats
        assert.deepStrictEqual([burst.requestsWaiting, burst.connectionsPending], [45, 3])
        yield* TestClock.adjust("20 millis")
        // Five at a time, in arrival order, every 2 ms.
        assert.deepStrictEqual(outcomes(fibers), Array.from({ length: 50 }, (_, i) => ok(2 * (Math.floor(i / 5) + 1))))
        yield* TestClock.adjust("130 millis")
        const stats = yield* pool.stats
        assert.deepStrictEqual([stats.poolSize, stats.poolAvailable, stats.connectionsPending], [8, 8, 0])
        assert.deepStrictEqual(mock.attemptTimes, [0, 0, 0, 150, 150, t0, t0, t0])
        assert.strictEqual(mock.open.size, 5 + 3)
        yield* pool.close()
        assert.strictEqual(mock.open.size, 0)
      }).pipe(Effect.scoped)

      // psycopg's comparison: min 2, max 4, 3 workers, 100 ms connects, 8 clients × 250 ms once 2 are ready.
      yield* Effect.gen(function*() {
        const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
        const pool = yield* Pool.make(mock.connector, { minSize: 2, maxSize: 4, numWorkers: 3 })
        yield* start(pool.wait())
        yield* TestClock.adjust("100 millis")
        assert.strictEqual(mock.open.size, 2)
        const t0 = yield* now

        const fibers = yield* clients(pool, Array(8).fill(250), { origin: t0 })
        yield* TestClock.adjust("700 millis")
        const ours = outcomes(fibers)
        // Both missing connections start at once, so clients 3 and 4 start at 100 ms.
        assert.deepStrictEqual(ours, [250, 250, 350, 350, 500, 500, 600, 600].map(ok))
        const psycopg = [250, 250, 350, 450, 500, 500, 600, 700]
        ours.forEach((outcome, i) => assert.isAtMost(typeof outcome === "string" ? Infinity : outcome.at, psycopg[i]))
        assert.deepStrictEqual(mock.attemptTimes, [t0 - 100, t0 - 100, t0, t0])
        const stats = yield* pool.stats
        assert.deepStrictEqual([stats.poolSize, stats.poolAvailable, mock.open.size], [4, 4, 4])
      }).pipe(Effect.scoped)
    }))

  it.effect("a cancelled or timed-out acquire does not cancel the connect it caused", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* Pool.make(mock.connector, { minSize: 1, maxSize: 3 })
      yield* start(pool.wait())
      yield* TestClock.adjust("100 millis")
      const t0 = yield* now
      const holder = yield* start(pool.withConnection(() => Effect.never))

      // A waiter that times out at 50 ms leaves its connect running; the connection goes idle at 100 ms.
      const [timedOut] = yield* clients(pool, [0], { timeouts: ["50 millis"], origin: t0 })
      yield* TestClock.adjust("50 millis")
      assert.deepStrictEqual(outcomes([timedOut]), [failed("PoolTimeout", 50)])
      const during = yield* pool.stats
      assert.deepStrictEqual([during.connectionsPending, during.poolSize, mock.counts.connectAttempts], [1, 2, 2])
      yield* TestClock.adjust("50 millis")
      const landed = yield* pool.stats
      assert.deepStrictEqual([landed.poolAvailable, landed.poolSize, landed.connectionsPending], [1, 2, 0])

      // A waiter interrupted at 120 ms leaves its connect running; the connection serves the next waiter (150 ms),
      // who opens nothing new.
      const second = yield* start(pool.withConnection(() => Effect.never))
      const interrupted = yield* start(timed(pool.withConnection((c) => Effect.succeed(c.id))))
      assert.deepStrictEqual(mock.attemptTimes, [0, t0, t0 + 100])
      yield* TestClock.adjust("20 millis")
      yield* Fiber.interrupt(interrupted)
      yield* TestClock.adjust("30 millis")
      const got: Array<number> = []
      const next = yield* start(
        Effect.flatMap(timed(pool.withConnection((c) => Effect.sync(() => got.push(c.id))), t0), (o) =>
          Effect.sync(() => got.push(o.at)))
      )
      const queued = yield* pool.stats
      assert.deepStrictEqual([queued.requestsWaiting, queued.connectionsPending, queued.requestsCancelled], [1, 1, 1])
      yield* TestClock.adjust("49 millis")
      assert.deepStrictEqual(got, [])
      yield* TestClock.adjust("1 millis")
      // Connection #3, opened for the interrupted waiter, at 200 ms.
      assert.deepStrictEqual(got, [3, 200])
      yield* Fiber.join(next)
      assert.deepStrictEqual(mock.attemptTimes, [0, t0, t0 + 100])

      yield* Fiber.interrupt(holder)
      yield* Fiber.interrupt(second)
      const stats = yield* pool.stats
      // The two interrupted holders' connections are closed (a statement may be in flight) and replaced up to min.
      assert.deepStrictEqual([stats.closed.interrupted, stats.poolSize], [2, 1])
      yield* TestClock.adjust("1 second")
      assert.strictEqual(mock.open.size, (yield* pool.stats).poolSize)
      yield* pool.close()
      assert.strictEqual(mock.open.size, 0)
    }).pipe(Effect.scoped))
})
