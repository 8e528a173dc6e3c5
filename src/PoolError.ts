/**
 * The typed errors of the pool. Every failure a caller can see from `connection`, `withConnection`, `wait`,
 * `resize` or the layer constructors is one of these, so callers match on `_tag`, never on message text.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { PoolStats } from "./PoolStats.ts"

/**
 * An acquisition did not get a connection before its deadline.
 *
 * **Details**
 *
 * The deadline covers the whole acquisition: the queue wait, checkout checks and their retries. The error carries
 * the pool's stats at that moment and, like HikariCP, the last error a connect attempt failed with, so an outage
 * is visible in the error itself (`lastConnectError`).
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { Pool, PoolError } from "effect-pg-pool"
 *
 * declare const pool: Pool.Pool<unknown>
 * const program = pool.withConnection(() => Effect.void, { timeout: "100 millis" }).pipe(
 *   Effect.catchTag("PoolTimeout", (e) => Effect.logWarning(`pool ${e.pool} busy: ${e.stats.requestsWaiting} waiting`))
 * )
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export class PoolTimeout extends Schema.TaggedError<PoolTimeout>()("PoolTimeout", {
  pool: Schema.String,
  timeoutMs: Schema.Number,
  stats: PoolStats,
  lastConnectError: Schema.optional(Schema.Unknown)
}) {
  override get message(): string {
    const reason = this.lastConnectError === undefined ? "" : `; last connect error: ${describe(this.lastConnectError)}`
    return `PoolTimeout: pool "${this.pool}" gave no connection within ${this.timeoutMs} ms ` +
      `(size ${this.stats.poolSize}/${this.stats.poolMax}, ${this.stats.requestsWaiting} waiting)${reason}`
  }
}

/**
 * The pool is closing or closed: new acquisitions and every waiter fail with this.
 *
 * **Example**
 *
 * ```ts
 * import { PoolError } from "effect-pg-pool"
 *
 * const error = new PoolError.PoolClosed({ pool: "orders" })
 * error.message // "PoolClosed: pool \"orders\" is closed"
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export class PoolClosed extends Schema.TaggedError<PoolClosed>()("PoolClosed", {
  pool: Schema.String
}) {
  override get message(): string {
    return `PoolClosed: pool "${this.pool}" is closed`
  }
}

/**
 * `maxWaiting` acquisitions were already queued, so this one failed at once instead of queueing.
 *
 * **Example**
 *
 * ```ts
 * import { PoolError } from "effect-pg-pool"
 *
 * const error = new PoolError.TooManyRequests({ pool: "orders", maxWaiting: 100 })
 * error.maxWaiting // 100
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()("TooManyRequests", {
  pool: Schema.String,
  maxWaiting: Schema.Number
}) {
  override get message(): string {
    return `TooManyRequests: pool "${this.pool}" already has ${this.maxWaiting} requests waiting`
  }
}

/**
 * A configuration value is invalid. `field` names the option, `reason` says what is wrong with it.
 *
 * **Example**
 *
 * ```ts
 * import { PoolError } from "effect-pg-pool"
 *
 * const error = new PoolError.PoolConfigError({ field: "maxSize", reason: "must be >= minSize (4), got 2" })
 * error.message // "PoolConfigError: maxSize must be >= minSize (4), got 2"
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export class PoolConfigError extends Schema.TaggedError<PoolConfigError>()("PoolConfigError", {
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `PoolConfigError: ${this.field} ${this.reason}`
  }
}

/**
 * Any error an acquisition can fail with.
 *
 * **Example**
 *
 * ```ts
 * import type { PoolError } from "effect-pg-pool"
 *
 * const describe = (e: PoolError.PoolError): string => e._tag
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export type PoolError = PoolTimeout | PoolClosed | TooManyRequests

/**
 * The messages of an error and of its causes, with their codes: a driver's wrapper says "Failed to connect", its
 * cause says why (the server's "password authentication failed ...", SQLSTATE 28P01).
 */
const describe = (error: unknown): string => {
  const parts: Array<string> = []
  const seen = new Set<string>()
  let current: unknown = error
  for (let depth = 0; depth < 4 && typeof current === "object" && current !== null; depth++) {
    const { code, message } = current as { readonly message?: unknown; readonly code?: unknown }
    if (typeof message === "string" && message !== "" && !seen.has(message)) {
      seen.add(message)
      parts.push(typeof code === "string" && !message.includes(code) ? `${message} [${code}]` : message)
    }
    current = (current as { readonly cause?: unknown }).cause
  }
  return parts.length === 0 ? String(error) : parts.join(": ")
}

/**
 * True for the errors an acquisition fails with.
 *
 * **Example**
 *
 * ```ts
 * import { PoolError } from "effect-pg-pool"
 *
 * PoolError.isPoolError(new PoolError.PoolClosed({ pool: "app" })) // true
 * PoolError.isPoolError(new Error("x")) // false
 * ```
 *
 * @category guards
 * @since 0.1.0
 */
export const isPoolError = (u: unknown): u is PoolError =>
  u instanceof PoolTimeout || u instanceof PoolClosed || u instanceof TooManyRequests
