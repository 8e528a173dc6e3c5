import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Random } from "effect"
import { TestClock } from "effect/testing"
import * as Pool from "../../src/Pool.ts"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { now, ok, outcomes, start, timed } from "./helpers.ts"

type Conn = MockConnector.MockConnection

/** A `Random` that returns `values` in turn, then 0: pins each connection's lifetime jitter. */
const scripted = (values: ReadonlyArray<number>): Random.Random => {
  let i = 0
  return { nextDoubleUnsafe: () => values[i++] ?? 0, nextIntUnsafe: () => 0 }
}

const ids = (conns: Iterable<Conn>) => Array.from(conns, (c) => c.id).sort((a, b) => a - b)

describe("lifetime", () => {
  it.effect("surplus above minSize closes after maxIdle without use; minSize connections are never reaped", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make()
      // The shrinker runs every maxIdle (1 s) from creation: at 1000, 2000, 3000, ... ms.
      const pool = yield* Pool.make(mock.connector, { minSize: 2, maxSize: 6, maxIdle: "1 second" })
      yield* pool.wait()
      const sizes: Array<[number, number]> = []
      const at = (t: number) =>
        Effect.gen(function*() {
          yield* TestClock.adjust(t - (yield* now))
          sizes.push([t, mock.open.size])
        })

      // 1500 ms: a burst grows the pool to 6 until 1700 ms.
      yield* at(1500)
      const burst = yield* Effect.forEach(
        [1, 2, 3, 4, 5, 6],
        () => start(timed(pool.withConnection(() => Effect.sleep("200 millis"))))
      )
      yield* at(1700)
      assert.deepStrictEqual(outcomes(burst), Array(6).fill(ok(1700)))
      // 2500 ms: three of the six are used again, 100 ms.
      yield* at(2500)
      const used: Array<number> = []
      const use = (c: Conn) => Effect.andThen(Effect.sleep("100 millis"), Effect.sync(() => used.push(c.id)))
      yield* Effect.forEach([1, 2, 3], () => start(pool.withConnection(use)))
      for (const t of [2999, 3000]) yield* at(t)
      // At 3000 the three that stayed idle through [2000, 3000) are closed; the three used at 2500 stay.
      assert.deepStrictEqual(ids(mock.open), used.sort((a, b) => a - b))
      for (const t of [3999, 4000, 20_000]) yield* at(t)

      assert.deepStrictEqual(sizes, [
        [1500, 2],
        [1700, 6],
        [2500, 6],
        // [1000, 2000) was busy (none stayed idle): nothing closed at 2000.
        [2999, 6],
        [3000, 3],
        // [3000, 4000) unused: the one surplus connection left closes at 4000, the minSize two never.
        [3999, 3],
        [4000, 2],
        [20_000, 2]
      ])
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.closed.idle, stats.poolSize, stats.poolAvailable, stats.poolMin], [4, 2, 2, 2])
      assert.strictEqual(mock.counts.connectAttempts, 6)
      yield* pool.close()
      assert.strictEqual(mock.open.size, 0)
    }).pipe(Effect.scoped))

  it.effect(
    "maxLifetime, jittered within [0.95, 1.0]: replaced on return, never handed out at checkout, replaced by check",
    () =>
      Effect.gen(function*() {
        // Jitter: eight connections opened at once under a seeded Random expire at distinct times, each within
        // [9500, 10000] ms of a 10 s maxLifetime, by the idle timer; each is replaced at once.
        yield* Effect.gen(function*() {
          const mock = yield* MockConnector.make()
          const pool = yield* Pool.make(mock.connector, { minSize: 8, maxLifetime: "10 seconds" }).pipe(
            Random.withSeed("pool-lifetime")
          )
          yield* pool.wait()
          const originals = Array.from(mock.open)
          const closedAt = new Map<Conn, number>()
          yield* TestClock.adjust("9499 millis")
          for (let t = 9500; t <= 10_000; t++) {
            yield* TestClock.adjust("1 millis")
            for (const c of originals) if (!c.open && !closedAt.has(c)) closedAt.set(c, t)
          }
          assert.strictEqual(closedAt.size, 8)
          for (const t of closedAt.values()) assert.isTrue(t >= 9500 && t <= 10_000, `expired at ${t} ms`)
          assert.isAtLeast(new Set(closedAt.values()).size, 4, "expiry times are jittered")
          const stats = yield* pool.stats
          assert.deepStrictEqual([stats.closed.lifetime, stats.poolSize, mock.open.size], [8, 8, 8])
          assert.isTrue(originals.every((c) => !mock.open.has(c)))
          yield* pool.close()
        }).pipe(Effect.scoped)

        // Exact times with a pinned jitter: 0 → the full maxLifetime, 0.99 → 0.9505 of it.
        yield* Effect.gen(function*() {
          const mock = yield* MockConnector.make()
          const t0 = yield* now
          const pool = yield* Pool.make(mock.connector, { minSize: 5, maxLifetime: "10 seconds" }).pipe(
            Effect.provideService(Random.Random, scripted([0, 0.2, 0.5, 0.8, 0.99]))
          )
          yield* pool.wait()
          const originals = Array.from(mock.open)
          assert.deepStrictEqual(ids(originals), [1, 2, 3, 4, 5])
          const closedAt: Array<[number, number]> = []
          for (let t = 9400; t <= 10_100; t += 1) {
            yield* TestClock.adjust(t0 + t - (yield* now))
            for (const c of originals) if (!c.open && !closedAt.some(([id]) => id === c.id)) closedAt.push([c.id, t])
          }
          assert.deepStrictEqual(closedAt, [[5, 9505], [4, 9600], [3, 9750], [2, 9900], [1, 10_000]])
          assert.deepStrictEqual([(yield* pool.stats).poolSize, mock.open.size], [5, 5])
          yield* pool.close()
        }).pipe(Effect.scoped)

        // Replaced on return: a connection borrowed across its expiry (9850 ms) is closed when it comes back at
        // 11000 ms, not under its user; its replacement opens 100 ms later.
        yield* Effect.gen(function*() {
          const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
          const t0 = yield* now
          const pool = yield* Pool.make(mock.connector, { minSize: 1, maxSize: 1, maxLifetime: "10 seconds" }).pipe(
            Effect.provideService(Random.Random, scripted([0.5]))
          )
          yield* TestClock.adjust("9000 millis")
          const user = yield* start(timed(pool.withConnection((c) => Effect.as(Effect.sleep("2 seconds"), c.id)), t0))
          const openAt: Array<[number, Array<number>]> = []
          for (const t of [9849, 9850, 10_999, 11_000, 11_099, 11_100]) {
            yield* TestClock.adjust(t0 + t - (yield* now))
            openAt.push([t, ids(mock.open)])
          }
          assert.deepStrictEqual(openAt, [
            [9849, [1]],
            [9850, [1]],
            [10_999, [1]],
            [11_000, []],
            [11_099, []],
            [11_100, [2]]
          ])
          assert.deepStrictEqual(outcomes([user]), [ok(11_000)])
          const stats = yield* pool.stats
          assert.deepStrictEqual([stats.closed.lifetime, stats.poolAvailable], [1, 1])
          yield* pool.close()
          assert.strictEqual(mock.open.size, 0)
        }).pipe(Effect.scoped)

        // Never handed out at checkout: a checkout at the very instant of expiry (9850 ms, before the idle timer
        // runs) does not get the expired connection #1; it waits for its replacement #2 (100 ms connect).
        yield* Effect.gen(function*() {
          const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
          const t0 = yield* now
          const ready = yield* Deferred.make<Pool.Pool<Conn>>()
          // Its sleep is registered before the pool's timer, so it wakes first at 9850.
          const checkout = yield* start(Effect.gen(function*() {
            yield* Effect.sleep("9850 millis")
            const pool = yield* Deferred.await(ready)
            const idleBefore = (yield* pool.stats).poolAvailable
            const got = yield* pool.withConnection((c) => Effect.succeed(c.id))
            return [idleBefore, got, (yield* now) - t0]
          }))
          const pool = yield* Pool.make(mock.connector, { minSize: 1, maxSize: 1, maxLifetime: "10 seconds" }).pipe(
            Effect.provideService(Random.Random, scripted([0.5]))
          )
          yield* Deferred.succeed(ready, pool)
          yield* TestClock.adjust("9950 millis")
          // #1 was still idle when the checkout ran (so the idle timer had not run), and the checkout refused it.
          const result = checkout.pollUnsafe()
          assert.deepStrictEqual(result?._tag === "Success" ? result.value : undefined, [1, 2, 9950])
          const stats = yield* pool.stats
          assert.deepStrictEqual([stats.closed.lifetime, stats.poolSize, ids(mock.open)], [1, 1, [2]])
          yield* pool.close()
        }).pipe(Effect.scoped)

        // Replaced by check: `pool.check` at the instant of expiry closes #1 and starts its replacement.
        yield* Effect.gen(function*() {
          const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
          const t0 = yield* now
          const ready = yield* Deferred.make<Pool.Pool<Conn>>()
          const checker = yield* start(Effect.gen(function*() {
            yield* Effect.sleep("9850 millis")
            const pool = yield* Deferred.await(ready)
            const idleBefore = (yield* pool.stats).poolAvailable
            yield* pool.check
            const after = yield* pool.stats
            return [idleBefore, after.poolAvailable, after.connectionsPending, after.closed.lifetime, (yield* now) - t0]
          }))
          const pool = yield* Pool.make(mock.connector, { minSize: 1, maxSize: 1, maxLifetime: "10 seconds" }).pipe(
            Effect.provideService(Random.Random, scripted([0.5]))
          )
          yield* Deferred.succeed(ready, pool)
          yield* TestClock.adjust("9850 millis")
          const result = checker.pollUnsafe()
          assert.deepStrictEqual(result?._tag === "Success" ? result.value : undefined, [1, 0, 1, 1, 9850])
          yield* TestClock.adjust("99 millis")
          assert.deepStrictEqual(ids(mock.open), [])
          yield* TestClock.adjust("1 millis")
          assert.deepStrictEqual([ids(mock.open), (yield* pool.stats).poolSize], [[2], 1])
          yield* pool.close()
        }).pipe(Effect.scoped)
      }).pipe(Effect.scoped)
  )
})
