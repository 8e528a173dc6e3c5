/**
 * The pool's Effect metrics, tagged `pool=<name>`. The histograms (wait, usage, connect) are recorded in place and
 * read by the metric registry when it is snapshotted, so a sample costs a few array operations and no registry
 * lookup (an `updateUnsafe` per release cost more than the rest of a release). The counters and gauges are copied
 * by a sampler every `metricsInterval` (and at close).
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Metric from "effect/Metric"
import type { PoolStats } from "../PoolStats.ts"

const boundaries = Metric.exponentialBoundaries({ start: 0.5, factor: 2, count: 20 })

type CounterKey =
  | "requestsNum"
  | "requestsQueued"
  | "requestsWaitMs"
  | "requestsErrors"
  | "requestsCancelled"
  | "usageMs"
  | "returnsBad"
  | "connectionsNum"
  | "connectionsMs"
  | "connectionsErrors"
  | "connectionsLost"

const counterKeys: ReadonlyArray<CounterKey> = [
  "requestsNum",
  "requestsQueued",
  "requestsWaitMs",
  "requestsErrors",
  "requestsCancelled",
  "usageMs",
  "returnsBad",
  "connectionsNum",
  "connectionsMs",
  "connectionsErrors",
  "connectionsLost"
]

type GaugeKey = "poolMin" | "poolMax" | "poolSize" | "poolAvailable" | "requestsWaiting" | "connectionsPending"

const gaugeKeys: ReadonlyArray<GaugeKey> = [
  "poolMin",
  "poolMax",
  "poolSize",
  "poolAvailable",
  "requestsWaiting",
  "connectionsPending"
]

/** `requestsWaitMs` → `pgpool_requests_wait_ms` */
export const metricName = (key: string): string => `pgpool_${key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`

export interface Metrics {
  readonly wait: (ms: number) => void
  readonly usage: (ms: number) => void
  readonly connect: (ms: number) => void
  /** Copies counters (as deltas since the last export) and gauges. Stats passed in are cumulative. */
  readonly export: (stats: PoolStats) => void
}

/** A histogram kept in place: Effect's bucket semantics (a sample lands in the first boundary ≥ it). */
class InPlaceHistogram {
  private readonly bounds: ReadonlyArray<number>
  private readonly counts: Uint32Array
  private count = 0
  private sum = 0
  private min = Number.MAX_VALUE
  private max = -Number.MAX_VALUE
  constructor(bounds: ReadonlyArray<number>) {
    this.bounds = bounds
    this.counts = new Uint32Array(bounds.length + 1)
  }
  record(value: number): void {
    const bounds = this.bounds
    let lo = 0
    let hi = bounds.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (value <= bounds[mid]!) hi = mid
      else lo = mid + 1
    }
    this.counts[lo]!++
    this.count++
    this.sum += value
    if (value < this.min) this.min = value
    if (value > this.max) this.max = value
  }
  state(): Metric.HistogramState {
    let cumulated = 0
    const buckets = this.bounds.map((boundary, i): [number, number] => [boundary, cumulated += this.counts[i]!])
    return { buckets, count: this.count, min: this.min, max: this.max, sum: this.sum }
  }
}

// Pools with the same name share their series, as metrics updated through the registry would: one in-place histogram
// per registry and series.
const inPlace = new WeakMap<object, Map<string, InPlaceHistogram>>()

const inPlaceHistogram = (
  id: string,
  description: string,
  attributes: Readonly<Record<string, string>>,
  context: Context.Context<never>
): InPlaceHistogram => {
  const registry = Context.get(context, Metric.MetricRegistry)
  let series = inPlace.get(registry)
  if (series === undefined) inPlace.set(registry, series = new Map())
  const key = `${id}\u0000${JSON.stringify(attributes)}`
  let histogram = series.get(key)
  if (histogram === undefined) {
    const created = new InPlaceHistogram(boundaries)
    histogram = created
    series.set(key, created)
    Metric.registerUnsafe(Metric.histogram(id, { description, boundaries, attributes }), context, {
      get: () => created.state(),
      update: () => {},
      modify: () => {}
    })
  }
  return histogram
}

export const makeMetrics = (pool: string, context: Context.Context<never>): Metrics => {
  const attributes = { pool }
  const wait = inPlaceHistogram("pgpool_wait_duration_ms", "time acquisitions spent queued, in ms", attributes, context)
  const usage = inPlaceHistogram("pgpool_usage_duration_ms", "time connections were lent out, in ms", attributes, context)
  const connect = inPlaceHistogram("pgpool_connect_duration_ms", "time a successful connect took, in ms", attributes, context)
  const counters = counterKeys.map((key) => [key, Metric.counter(metricName(key), { attributes })] as const)
  const closed = Metric.counter("pgpool_connections_closed", { attributes })
  const gauges = gaugeKeys.map((key) => [key, Metric.gauge(metricName(key), { attributes })] as const)
  const last = new Map<string, number>()
  const delta = (key: string, value: number): number => {
    const previous = last.get(key) ?? 0
    last.set(key, value)
    return value - previous
  }
  return {
    wait: (ms) => wait.record(ms),
    usage: (ms) => usage.record(ms),
    connect: (ms) => connect.record(ms),
    export: (stats) => {
      for (const [key, counter] of counters) {
        const d = delta(key, stats[key])
        if (d > 0) counter.updateUnsafe(d, context)
      }
      for (const [reason, count] of Object.entries(stats.closed)) {
        const d = delta(`closed.${reason}`, count)
        if (d > 0) Metric.withAttributes(closed, { reason }).updateUnsafe(d, context)
      }
      for (const [key, gauge] of gauges) gauge.updateUnsafe(stats[key], context)
    }
  }
}
