import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import type * as Pool from "../../src/Pool.ts"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { at, fork, holder, joinAll, makePool, readyAt, tagOf } from "./helpers2.ts"

// The metric registry is process-global: every pool here gets a name no other test uses.
const unique = (label: string) => `${label}-${Math.random().toString(36).slice(2, 10)}`

/** Three connections, seven clients using 200 ms with timeout 300 ms, all started at 100 ms. */
const sevenClients = (pool: Pool.Pool<MockConnector.MockConnection>) =>
  Effect.forEach([1, 2, 3, 4, 5, 6, 7], () => fork(holder(pool, 200, { timeout: "300 millis" })))

describe("stats", () => {
  it.effect("stats count requests, queueing, errors, wait and usage exactly; popStats resets the counters only", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 3, maxSize: 3 })
      yield* readyAt(pool, 100)
      const fibers = yield* sevenClients(pool)
      yield* at(200)
      const busy = yield* pool.stats
      assert.strictEqual(busy.poolAvailable, 0)
      assert.strictEqual(busy.requestsWaiting, 4)
      yield* at(500)
      const outcomes = yield* joinAll(fibers)
      // Three served at once (100-300), three after waiting 200 ms (300-500), one timed out after 300 ms (400).
      assert.deepStrictEqual(outcomes.map((o) => o.gotAt), [100, 100, 100, 300, 300, 300, undefined])
      assert.deepStrictEqual(outcomes.map((o) => o.endAt), [300, 300, 300, 500, 500, 500, 400])
      assert.strictEqual(tagOf(outcomes[6].exit), "PoolTimeout")
      const s = yield* pool.popStats
      assert.deepStrictEqual(s, {
        poolMin: 3,
        poolMax: 3,
        poolSize: 3,
        poolAvailable: 3,
        requestsWaiting: 0,
        connectionsPending: 0,
        requestsNum: 7,
        requestsQueued: 4,
        requestsWaitMs: 200 * 3 + 300,
        requestsErrors: 1,
        requestsCancelled: 0,
        acquireMs: 200 * 3,
        usageMs: 200 * 6,
        returnsBad: 0,
        connectionsNum: 3,
        connectionsMs: 300,
        connectionsErrors: 0,
        connectionsLost: 0,
        closed: {
          broken: 0,
          checkFailed: 0,
          interrupted: 0,
          lifetime: 0,
          maxUses: 0,
          idle: 0,
          drained: 0,
          surplus: 0,
          resetFailed: 0,
          poolClosed: 0
        }
      })
      // popStats reset the counters, not the gauges.
      const after = yield* pool.stats
      assert.deepStrictEqual(
        [after.poolMin, after.poolMax, after.poolSize, after.poolAvailable, after.requestsWaiting],
        [3, 3, 3, 3, 0]
      )
      assert.deepStrictEqual(
        [after.requestsNum, after.requestsQueued, after.requestsWaitMs, after.requestsErrors, after.usageMs],
        [0, 0, 0, 0, 0]
      )
      assert.strictEqual(after.connectionsNum, 0)
      // Counting goes on from zero.
      yield* pool.invalidate(Array.from(mock.open)[0])
      yield* fork(holder(pool, 50))
      yield* at(550)
      const next = yield* pool.stats
      assert.strictEqual(next.requestsNum, 1)
      assert.strictEqual(next.usageMs, 50)
      assert.strictEqual(next.closed.broken, 1)
    }).pipe(Effect.scoped))

  it.effect("stats are exported as Effect metrics tagged with the pool name", () =>
    Effect.gen(function*() {
      const name = unique("stats-metrics")
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { name, minSize: 3, maxSize: 3, metricsInterval: "5 seconds" })
      const ours = Effect.map(Metric.snapshot, (all) => all.filter((m) => m.attributes?.pool === name))
      const find = (
        snapshots: ReadonlyArray<Metric.Metric.Snapshot>,
        type: Metric.Metric.Type,
        id: string,
        reason?: string
      ) => {
        const found = snapshots.find((m) =>
          m.type === type && m.id === id && (reason === undefined || m.attributes?.reason === reason)
        )
        assert.isDefined(found, `${type} ${id} for pool ${name}`)
        return found!
      }
      const count = (s: ReadonlyArray<Metric.Metric.Snapshot>, id: string, reason?: string) =>
        (find(s, "Counter", id, reason).state as Metric.CounterState<number>).count
      const gauge = (s: ReadonlyArray<Metric.Metric.Snapshot>, id: string) =>
        (find(s, "Gauge", id).state as Metric.GaugeState<number>).value
      const histogram = (s: ReadonlyArray<Metric.Metric.Snapshot>, id: string) => {
        const state = find(s, "Histogram", id).state as Metric.HistogramState
        return { count: state.count, sum: state.sum }
      }

      yield* readyAt(pool, 100)
      yield* sevenClients(pool)
      yield* at(500)
      // Histograms are recorded as events happen; counters and gauges wait for the sampler.
      const early = yield* ours
      assert.deepStrictEqual(histogram(early, "pgpool_wait_duration_ms"), { count: 4, sum: 900 })
      assert.deepStrictEqual(histogram(early, "pgpool_connect_duration_ms"), { count: 3, sum: 300 })
      // Counters and gauges are copied every metricsInterval.
      yield* at(5000)
      const first = yield* ours
      assert.deepStrictEqual(histogram(first, "pgpool_usage_duration_ms"), { count: 6, sum: 1200 })
      assert.strictEqual(count(first, "pgpool_requests_num"), 7)
      assert.strictEqual(count(first, "pgpool_requests_queued"), 4)
      assert.strictEqual(count(first, "pgpool_requests_errors"), 1)
      assert.strictEqual(count(first, "pgpool_requests_wait_ms"), 900)
      assert.strictEqual(count(first, "pgpool_usage_ms"), 1200)
      assert.strictEqual(count(first, "pgpool_connections_num"), 3)
      assert.strictEqual(gauge(first, "pgpool_pool_size"), 3)
      assert.strictEqual(gauge(first, "pgpool_pool_available"), 3)
      assert.strictEqual(gauge(first, "pgpool_pool_min"), 3)
      assert.strictEqual(gauge(first, "pgpool_pool_max"), 3)
      assert.strictEqual(gauge(first, "pgpool_requests_waiting"), 0)
      // popStats resets the pool's counters, never the exported ones: metric counters only grow.
      yield* pool.popStats
      yield* pool.invalidate(Array.from(mock.open)[0])
      yield* Effect.forEach([1, 2], () => pool.withConnection(() => Effect.void))
      yield* at(10_000)
      const second = yield* ours
      assert.strictEqual(count(second, "pgpool_requests_num"), 9)
      assert.strictEqual(count(second, "pgpool_requests_errors"), 1)
      assert.strictEqual(count(second, "pgpool_connections_num"), 4)
      assert.strictEqual(count(second, "pgpool_connections_closed", "broken"), 1)
      assert.strictEqual(gauge(second, "pgpool_pool_size"), 3)
      // Another pool's metrics are apart from ours.
      const other = unique("stats-metrics-other")
      const pool2 = yield* makePool(mock.connector, { name: other, minSize: 1, maxSize: 1 })
      yield* readyAt(pool2, 10_100)
      yield* pool2.withConnection(() => Effect.void)
      yield* pool2.close()
      const third = yield* ours
      assert.strictEqual(count(third, "pgpool_requests_num"), 9)
      const theirs = (yield* Metric.snapshot).filter((m) => m.attributes?.pool === other)
      assert.strictEqual(count(theirs, "pgpool_requests_num"), 1)
      // Close exports a last time.
      yield* pool.withConnection(() => Effect.void)
      yield* pool.close()
      assert.strictEqual(count(yield* ours, "pgpool_requests_num"), 10)
    }).pipe(Effect.scoped))
})
