import { assert, describe, it } from "@effect/vitest"
import { Effect, Random } from "effect"
import * as Pool from "../../src/Pool.ts"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { at, errorOf, exactBackoff, fork, holder, tagOf, makePool } from "./helpers2.ts"

const intervals = (times: ReadonlyArray<number>): Array<number> => times.slice(1).map((t, i) => t - times[i])

describe("reconnect", () => {
  it.effect("failed connects back off per reconnectSchedule, one probe at a time", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      mock.failConnects(Infinity)
      const pool = yield* makePool(mock.connector, {
        minSize: 3,
        numWorkers: 3,
        reconnectSchedule: exactBackoff
      })
      yield* at(60_000)
      // The initial fill starts three connects at once; they fail together at 100 ms, which is one failure of the
      // server, not three: the first retry comes after the schedule's first delay. After that a single loop
      // probes (each connect takes 100 ms), starting 1, 2, 4, 8 s after each failure, then at the 10 s cap.
      assert.deepStrictEqual(mock.attemptTimes, [0, 0, 0, 1100, 3200, 7300, 15_400, 25_500, 35_600, 45_700, 55_800])
      const s = yield* pool.stats
      assert.strictEqual(s.connectionsPending, 1)
      assert.strictEqual(s.connectionsErrors, 11)
      assert.strictEqual(s.poolSize, 1)
      assert.strictEqual(mock.open.size, 0)
    }).pipe(Effect.scoped))

  it.effect("the default reconnectSchedule is exponential from 1 s, doubling, capped at 10 s, jittered ±10%", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      mock.failConnects(Infinity)
      yield* makePool(mock.connector, { minSize: 4 }).pipe(Random.withSeed("reconnect"))
      yield* at(120_000)
      // Three connects of the initial fill (numWorkers 3) fail at 100 ms; then one loop probes. The delay is
      // from one failure (attempt + 100 ms) to the next attempt.
      assert.deepStrictEqual(mock.attemptTimes.slice(0, 3), [0, 0, 0])
      const delays = intervals(mock.attemptTimes.slice(2)).map((d) => d - 100)
      const nominal = [1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000]
      assert.isAtLeast(delays.length, nominal.length)
      nominal.forEach((n, i) => {
        assert.isAtLeast(delays[i], n * 0.9, `delay ${i}: ${delays[i]} vs ${n}`)
        assert.isAtMost(delays[i], n * 1.1, `delay ${i}: ${delays[i]} vs ${n}`)
      })
      // The jitter is real: the delays are not all exactly nominal.
      assert.isFalse(nominal.every((n, i) => delays[i] === n), `delays ${delays.join(", ")}`)
      // Same seed, same delays.
      const mock2 = yield* MockConnector.make({ connectLatency: "100 millis" })
      mock2.failConnects(Infinity)
      yield* makePool(mock2.connector, { minSize: 4 }).pipe(Random.withSeed("reconnect"))
      yield* at(240_000)
      assert.deepStrictEqual(intervals(mock2.attemptTimes.slice(2)).map((d) => d - 100).slice(0, 8), delays.slice(0, 8))
    }).pipe(Effect.scoped))

  it.effect(
    "after reconnectTimeout onReconnectFailed runs once with the pool name, retries go on and the pool heals",
    () =>
      Effect.gen(function*() {
        const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
        mock.failConnects(Infinity)
        const reports: Array<{ readonly at: number; readonly info: Pool.ReconnectFailed }> = []
        const pool = yield* makePool(mock.connector, {
          name: "reconnect-heal",
          minSize: 2,
          numWorkers: 2,
          reconnectSchedule: exactBackoff,
          reconnectTimeout: "10 seconds",
          onReconnectFailed: (info) =>
            Effect.flatMap(Effect.clockWith((c) => c.currentTimeMillis), (t) =>
              Effect.sync(() => {
                reports.push({ at: t, info })
              }))
        })
        // During the outage an acquisition waits out its deadline and fails with PoolTimeout carrying the last
        // connect error; waiting does not start more connect loops.
        yield* at(2000)
        const client = yield* fork(holder(pool, 10, { timeout: "500 millis" }))
        yield* at(2400)
        assert.strictEqual((yield* pool.stats).connectionsPending, 1)
        yield* at(2500)
        const outcome = client.pollUnsafe()
        assert.isDefined(outcome)
        const result = outcome!._tag === "Success" ? outcome!.value : undefined
        assert.strictEqual(result?.endAt, 2500)
        assert.strictEqual(tagOf(result!.exit), "PoolTimeout")
        const error = errorOf(result!.exit) as { readonly lastConnectError?: unknown; readonly timeoutMs: number }
        assert.strictEqual(error.timeoutMs, 500)
        assert.instanceOf(error.lastConnectError, MockConnector.MockError)
        assert.strictEqual((error.lastConnectError as MockConnector.MockError).operation, "connect")

        // Failures end at 100 (both initial connects), 1200, 3300, 7400, 15500 ms: each connect takes 100 ms, and
        // the next one starts 1, 2, 4, 8, then 10 s after a failure.
        // The outage started at the first failure (100 ms); the first failure at least 10 s later is at 15500.
        yield* at(15_499)
        assert.strictEqual(reports.length, 0)
        yield* at(15_500)
        assert.strictEqual(reports.length, 1)
        assert.strictEqual(reports[0].at, 15_500)
        assert.strictEqual(reports[0].info.pool, "reconnect-heal")
        assert.strictEqual(reports[0].info.elapsedMs, 15_400)
        assert.strictEqual(reports[0].info.attempts, 6)
        assert.instanceOf(reports[0].info.lastError, MockConnector.MockError)

        // Retries go on at the capped interval; onReconnectFailed does not run again.
        yield* at(40_000)
        assert.deepStrictEqual(mock.attemptTimes, [0, 0, 1100, 3200, 7300, 15_400, 25_500, 35_600])
        assert.strictEqual(reports.length, 1)

        // Connects recover: the next probe succeeds and the pool refills to minSize by itself.
        mock.recover()
        yield* at(45_799)
        assert.strictEqual(mock.open.size, 0)
        yield* at(45_800)
        assert.strictEqual(mock.open.size, 1)
        yield* at(45_900)
        assert.deepStrictEqual(mock.attemptTimes.slice(-2), [45_700, 45_800])
        assert.strictEqual(mock.open.size, 2)
        const s = yield* pool.stats
        assert.strictEqual(s.poolSize, 2)
        assert.strictEqual(s.poolAvailable, 2)
        assert.strictEqual(s.connectionsPending, 0)
        assert.strictEqual(s.connectionsErrors, 8)
        assert.strictEqual(s.connectionsNum, 2)
        assert.strictEqual(reports.length, 1)
        // And it serves.
        const served = yield* fork(holder(pool, 10))
        yield* at(45_910)
        assert.strictEqual(served.pollUnsafe()?._tag, "Success")
      }).pipe(Effect.scoped)
  )
})
