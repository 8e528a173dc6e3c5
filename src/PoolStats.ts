/**
 * What the pool reports about itself: `pool.stats` / `pool.popStats` return a `PoolStats`, and the same figures
 * are exported as Effect `Metric`s tagged with the pool name.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * Why the pool closed connections, counted per reason.
 *
 * **Example**
 *
 * ```ts
 * import type { PoolStats } from "effect-pg-pool"
 *
 * const lost = (s: PoolStats.ClosedByReason) => s.broken + s.checkFailed
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export const ClosedByReason = Schema.Struct({
  /** returned broken (driver error, FATAL, invalidated) */
  broken: Schema.Number,
  /** failed the checkout check or `pool.check` */
  checkFailed: Schema.Number,
  /** the lease ended by interruption or a defect, a cancel may still be in flight */
  interrupted: Schema.Number,
  /** reached `maxLifetime` */
  lifetime: Schema.Number,
  /** reached `maxUses` */
  maxUses: Schema.Number,
  /** surplus above `minSize` idle for `maxIdle` */
  idle: Schema.Number,
  /** older than the last `drain` */
  drained: Schema.Number,
  /** above `maxSize` after a `resize`, or returned to a null pool with nobody waiting */
  surplus: Schema.Number,
  /** `reset` failed */
  resetFailed: Schema.Number,
  /** closed with the pool */
  poolClosed: Schema.Number
})

/**
 * @category models
 * @since 0.1.0
 */
export type ClosedByReason = typeof ClosedByReason.Type

/**
 * A snapshot of the pool: psycopg_pool's keys in camelCase, plus what pgxpool adds.
 *
 * **Details**
 *
 * Gauges (`poolMin`, `poolMax`, `poolSize`, `poolAvailable`, `requestsWaiting`, `connectionsPending`) describe
 * now. Every other field is a counter since the pool started or since the last `popStats`.
 * Times are whole milliseconds of the pool's `Clock`.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import type { Pool } from "effect-pg-pool"
 *
 * declare const pool: Pool.Pool<unknown>
 * const report = Effect.map(pool.stats, (s) => `${s.poolAvailable}/${s.poolSize} idle, ${s.requestsWaiting} waiting`)
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export const PoolStats = Schema.Struct({
  /** the current `minSize` */
  poolMin: Schema.Number,
  /** the current `maxSize` */
  poolMax: Schema.Number,
  /** connections the pool manages: idle, borrowed, being reset and being opened */
  poolSize: Schema.Number,
  /** idle connections ready to hand out */
  poolAvailable: Schema.Number,
  /** acquisitions waiting in the queue now */
  requestsWaiting: Schema.Number,
  /** acquisitions started */
  requestsNum: Schema.Number,
  /** acquisitions that had to queue */
  requestsQueued: Schema.Number,
  /** total time acquisitions spent queued, failed ones included */
  requestsWaitMs: Schema.Number,
  /** acquisitions that failed: timeout, too many requests, pool closed */
  requestsErrors: Schema.Number,
  /** acquisitions interrupted before they got a connection (pgxpool's canceled acquires) */
  requestsCancelled: Schema.Number,
  /** total time from the start of an acquisition to its connection, successful ones only */
  acquireMs: Schema.Number,
  /** total time connections were lent out */
  usageMs: Schema.Number,
  /** connections returned broken */
  returnsBad: Schema.Number,
  /** connects that succeeded */
  connectionsNum: Schema.Number,
  /** total time spent in successful connects, `configure` included */
  connectionsMs: Schema.Number,
  /** connects that failed, a failing `configure` included */
  connectionsErrors: Schema.Number,
  /** connections found dead while in the pool: by a check, or reported dead by the driver while idle */
  connectionsLost: Schema.Number,
  /** connects in flight now (pgxpool's constructing) */
  connectionsPending: Schema.Number,
  /** connections closed, per reason */
  closed: ClosedByReason
})

/**
 * @category models
 * @since 0.1.0
 */
export type PoolStats = typeof PoolStats.Type
