/**
 * The pool's Effect metrics, tagged `pool=<name>`. The wait and connect histograms are recorded as events happen
 * (slow paths only); usage samples are buffered, and they, the counters and the gauges are exported by a sampler
 * every `metricsInterval` (and at close), so the acquire/release path pays for one array push.
 *
 * @internal
 */
import type * as Context from "effect/Context"
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

export const makeMetrics = (pool: string, context: Context.Context<never>): Metrics => {
  const attributes = { pool }
  const histogram = (name: string, description: string) =>
    Metric.histogram(name, { description, boundaries, attributes })
  const wait = histogram("pgpool_wait_duration_ms", "time acquisitions spent queued, in ms")
  const usage = histogram("pgpool_usage_duration_ms", "time connections were lent out, in ms")
  const connect = histogram("pgpool_connect_duration_ms", "time a successful connect took, in ms")
  const counters = counterKeys.map((key) => [key, Metric.counter(metricName(key), { attributes })] as const)
  const closed = Metric.counter("pgpool_connections_closed", { attributes })
  const gauges = gaugeKeys.map((key) => [key, Metric.gauge(metricName(key), { attributes })] as const)
  const last = new Map<string, number>()
  const delta = (key: string, value: number): number => {
    const previous = last.get(key) ?? 0
    last.set(key, value)
    return value - previous
  }
  // Usage is recorded on every release: buffer it and feed the histogram with the counters, off the hot path.
  const usageSamples: Array<number> = []
  const flushUsage = () => {
    for (const ms of usageSamples) usage.updateUnsafe(ms, context)
    usageSamples.length = 0
  }
  return {
    wait: (ms) => wait.updateUnsafe(ms, context),
    usage: (ms) => {
      if (usageSamples.push(ms) >= 4096) flushUsage()
    },
    connect: (ms) => connect.updateUnsafe(ms, context),
    export: (stats) => {
      flushUsage()
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
