/**
 * The generic, driver-agnostic pool engine. It pools any `C` through a `Connector<C>`; `PgPool` binds it to
 * PostgreSQL and `MockConnector` to in-memory connections for `TestClock` tests.
 *
 * The rules, each pinned by a test in `test/engine` named after it:
 * - Waiters are served strictly FIFO; a returned connection goes straight to the oldest live waiter. A waiter that
 *   timed out or was interrupted never receives one, and nothing is lost. Waiters handed a connection wake together,
 *   after the step that released it.
 * - Connections are opened by background fibers, at most `numWorkers` at once (one while connects are failing),
 *   driven by demand: a connect starts only for a waiter that no connect in flight or reset in progress will serve,
 *   so a burst that returning connections can serve opens at most the `numWorkers` connects it started before the
 *   returns came, and none after.
 * - One deadline (`timeout`) covers the whole acquisition: queue wait, checks and retries. `timeout <= 0` fails at once.
 * - Failed connects back off per `reconnectSchedule`; after `reconnectTimeout` of failures `onReconnectFailed` runs
 *   and the pool keeps retrying at the capped interval, so it heals by itself.
 * - Return path, in order: pool closing → close; broken → close and replace; lease ended by interruption or defect →
 *   close; drained, past `maxLifetime` or `maxUses` → close and replace; reset if needed (background); hand off or idle.
 * - Idle connections are taken oldest-returned first. Surplus above `minSize` is closed by the shrinker: every
 *   `maxIdle` it closes as many connections as stayed idle throughout the last window.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { Connector } from "./Connector.ts"
import * as internal from "./internal/pool.ts"
import type { PoolClosed, PoolConfigError, PoolError, PoolTimeout } from "./PoolError.ts"
import type { PoolStats } from "./PoolStats.ts"

/**
 * Sizing, timing and hooks of a pool. Every field is optional.
 *
 * **Details** (defaults follow psycopg_pool unless stated)
 *
 * - `name` ("pool-N"): used in logs, errors and metric attributes.
 * - `minSize` (4) / `maxSize` (= minSize): validated `0 <= minSize <= maxSize`, `maxSize > 0`.
 * - `timeout` (30 seconds): one deadline for a whole acquisition.
 * - `maxWaiting` (0 = unbounded): more waiters than this fail at once with `TooManyRequests`.
 * - `maxLifetime` (1 hour): per connection, jittered by -5%..0 so connections do not expire together; enforced on
 *   return, at checkout, by `check` and by a timer while idle. `Infinity` disables it.
 * - `maxIdle` (10 minutes): the shrinker runs every `maxIdle` and closes as many surplus connections (above
 *   `minSize`) as stayed idle through the whole window, so unused surplus goes after one to two `maxIdle`.
 * - `maxUses` (Infinity): replace a connection after this many checkouts (asyncpg `max_queries`, pg-pool `maxUses`).
 * - `numWorkers` (3): background connects in flight at once.
 * - `reconnectSchedule` (exponential from 1 s ×2, capped at 10 s, jittered ±10%): delay between failed connects.
 * - `reconnectTimeout` (5 minutes): after failing this long, `onReconnectFailed` runs once; retries go on.
 * - `onReconnectFailed` (none): `(info) => Effect<void>`, for alerts.
 * - `configure` (none): runs once on every new connection; a failure counts as a failed connect.
 * - `check` (`{ idle: "1 second" }`): ping a connection at checkout when it has been idle at least `idle`; a failing
 *   check replaces it and retries within the deadline. `false` disables; `run` replaces the connector's ping.
 * - `leakThreshold` (off): log a warning when a connection is held longer than this.
 * - `closeTimeout` (5 seconds): how long `close` waits for borrowed connections before closing them under their users.
 * - `nullPool` (false): psycopg's NullConnectionPool: no idle connections are kept, every checkout with nobody to hand
 *   a connection back opens a new one, `maxSize` still bounds concurrency.
 * - `metricsInterval` (5 seconds): how often counters and gauges are copied to the Effect metrics.
 * - `multiplex` (1 = off): how many `withShared` statements may run on one connection at once. Shared use leaves the
 *   connection idle (`poolAvailable` counts it); closing, resetting or retiring it waits until its last shared
 *   statement ends. Exclusive acquisitions still take connections whole.
 * - `waitOnOpen` (false): `make` returns once `minSize` connections are open (psycopg's `open(wait=True)`), or fails
 *   with `PoolTimeout` (carrying the last connect error) after this long, closing what did open; `true` waits up to
 *   `timeout`. Off, `make` returns at once and the pool fills in the background.
 *
 * **Example**
 *
 * ```ts
 * import type { Pool } from "effect-pg-pool"
 *
 * const options: Pool.Options<unknown> = { name: "orders", minSize: 2, maxSize: 10, timeout: "5 seconds" }
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<C, E = unknown> {
  readonly name?: string | undefined
  readonly minSize?: number | undefined
  readonly maxSize?: number | undefined
  readonly timeout?: Duration.Input | undefined
  readonly maxWaiting?: number | undefined
  readonly maxLifetime?: Duration.Input | undefined
  readonly maxIdle?: Duration.Input | undefined
  readonly maxUses?: number | undefined
  readonly numWorkers?: number | undefined
  readonly reconnectSchedule?: Schedule.Schedule<unknown, unknown> | undefined
  readonly reconnectTimeout?: Duration.Input | undefined
  readonly onReconnectFailed?: ((info: ReconnectFailed) => Effect.Effect<void>) | undefined
  readonly configure?: ((connection: C) => Effect.Effect<void, E>) | undefined
  readonly check?: false | CheckOptions<C, E> | undefined
  readonly leakThreshold?: Duration.Input | undefined
  readonly closeTimeout?: Duration.Input | undefined
  readonly nullPool?: boolean | undefined
  readonly metricsInterval?: Duration.Input | undefined
  readonly multiplex?: number | undefined
  readonly waitOnOpen?: boolean | Duration.Input | undefined
}

/**
 * The checkout check.
 *
 * **Details**
 *
 * `idle` (1 second): check only connections idle at least this long; `0` checks every checkout.
 * `run` (the connector's `ping`): the check itself.
 *
 * **Example**
 *
 * ```ts
 * import type { Pool } from "effect-pg-pool"
 *
 * const always: Pool.CheckOptions<unknown> = { idle: 0 }
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface CheckOptions<C, E = unknown> {
  readonly idle?: Duration.Input | undefined
  readonly run?: ((connection: C) => Effect.Effect<void, E>) | undefined
}

/**
 * What `onReconnectFailed` is told.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import type { Pool } from "effect-pg-pool"
 *
 * const alert = (info: Pool.ReconnectFailed) =>
 *   Effect.logError(`pool ${info.pool}: ${info.attempts} connects failed over ${info.elapsedMs} ms`)
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface ReconnectFailed {
  readonly pool: string
  readonly attempts: number
  readonly elapsedMs: number
  readonly lastError: unknown
}

/**
 * Per-acquisition options.
 *
 * **Example**
 *
 * ```ts
 * import type { Pool } from "effect-pg-pool"
 *
 * const quick: Pool.AcquireOptions = { timeout: "250 millis" }
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface AcquireOptions {
  /** Overrides the pool's `timeout` for this acquisition. */
  readonly timeout?: Duration.Input | undefined
}

/**
 * A pool of `C`.
 *
 * **Details**
 *
 * - `connection` lends a connection until the surrounding `Scope` closes; the release is a finalizer, so a
 *   connection never leaks whatever the fiber does. A lease ended by interruption or a defect closes the
 *   connection, since a statement may still be in flight on it.
 * - `withConnection` lends one for the duration of `f`.
 * - `withShared` runs `f` on a connection other `withShared` calls may use at the same time (see `multiplex`); the
 *   same acquisition rules (FIFO, deadline, checks) apply when no connection can be shared. Without `multiplex` it is
 *   `withConnection`.
 * - `invalidate` marks a borrowed connection broken: it is closed and replaced on return.
 * - `stats` / `popStats` (the latter resets the counters, not the gauges).
 * - `resize(min, max?)`: growing starts connects at once; shrinking closes idle surplus now and borrowed surplus
 *   on return, never under a user.
 * - `check`: ping every idle connection now, replace the dead and the expired.
 * - `wait(timeout?)`: until `minSize` connections are open.
 * - `drain`: replace idle connections now, borrowed ones on return (asyncpg `expire_connections`).
 * - `close(timeout?)`: fail waiters and new acquisitions with `PoolClosed`, close idle connections, wait for
 *   borrowed ones up to `timeout` (default `closeTimeout`), then close them under their users. A second close is a
 *   no-op. Closing the pool's scope closes it.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { Pool } from "effect-pg-pool"
 * import { MockConnector } from "effect-pg-pool/testing"
 *
 * const program = Effect.gen(function*() {
 *   const mock = yield* MockConnector.make()
 *   const pool = yield* Pool.make(mock.connector, { minSize: 2 })
 *   return yield* pool.withConnection((conn) => Effect.succeed(conn.id))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface Pool<C> {
  readonly name: string
  readonly connection: (options?: AcquireOptions) => Effect.Effect<C, PoolError, Scope.Scope>
  readonly withConnection: <A, E, R>(
    f: (connection: C) => Effect.Effect<A, E, R>,
    options?: AcquireOptions
  ) => Effect.Effect<A, E | PoolError, R>
  readonly withShared: <A, E, R>(
    f: (connection: C) => Effect.Effect<A, E, R>,
    options?: AcquireOptions
  ) => Effect.Effect<A, E | PoolError, R>
  readonly invalidate: (connection: C) => Effect.Effect<void>
  readonly stats: Effect.Effect<PoolStats>
  readonly popStats: Effect.Effect<PoolStats>
  readonly resize: (minSize: number, maxSize?: number) => Effect.Effect<void, PoolConfigError>
  readonly check: Effect.Effect<void>
  readonly wait: (timeout?: Duration.Input) => Effect.Effect<void, PoolTimeout | PoolClosed>
  readonly drain: Effect.Effect<void>
  readonly close: (timeout?: Duration.Input) => Effect.Effect<void>
  readonly isClosing: Effect.Effect<boolean>
}

/**
 * Creates a pool in the current `Scope`; closing the scope closes the pool.
 *
 * **Details**
 *
 * Validates the options first (a `PoolConfigError` names the field), then starts filling to `minSize` in the
 * background and returns at once; use `wait` to block until the pool is ready, or `waitOnOpen` to make `make`
 * itself wait (and fail with `PoolTimeout` when the connections do not open in time).
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { Pool } from "effect-pg-pool"
 * import { MockConnector } from "effect-pg-pool/testing"
 *
 * const program = Effect.gen(function*() {
 *   const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
 *   const pool = yield* Pool.make(mock.connector, { minSize: 5, numWorkers: 2 })
 *   yield* pool.wait("1 second")
 * }).pipe(Effect.scoped)
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: <C, E = unknown>(
  connector: Connector<C, E>,
  options?: Options<C, E>
) => Effect.Effect<Pool<C>, PoolConfigError | PoolTimeout, Scope.Scope> = internal.make
