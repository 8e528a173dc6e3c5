/**
 * How the pool talks to a driver. The engine in `Pool` pools any `C`; a `Connector<C>` opens, checks, resets and
 * closes one. `PgConnector` binds it to PostgreSQL, `MockConnector` to in-memory connections for tests.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"

/**
 * The operations the pool needs from a driver.
 *
 * **Details**
 *
 * - `connect` opens one physical connection. The pool calls it from background fibers, at most `numWorkers` at
 *   once, and backs off when it fails. It must not need a `Scope`: a connector that owns scoped resources keeps a
 *   scope per connection and closes it in `close`.
 * - `close` never fails; the pool runs it uninterruptibly, so it must finish on its own (bound it with a timeout).
 * - `ping` is the checkout check and `pool.check`: it fails when the connection is unusable.
 * - `isBroken` is a cheap synchronous test run on every return and checkout: true means the connection must not be
 *   reused.
 * - `onReturn` runs synchronously at the start of every return, before anything else looks at the connection.
 * - `needsReset` and `reset` clean a session between borrowers. `reset` runs in the background after a return and
 *   only when `needsReset` says so (default: always, when `reset` exists). A failing reset discards the connection.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import type { Connector } from "effect-pg-pool"
 *
 * interface Socket { open: boolean }
 * const connector: Connector.Connector<Socket> = {
 *   connect: Effect.sync(() => ({ open: true })),
 *   close: (s) => Effect.sync(() => { s.open = false }),
 *   ping: (s) => s.open ? Effect.void : Effect.fail(new Error("closed")),
 *   isBroken: (s) => !s.open
 * }
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface Connector<C, E = unknown> {
  readonly connect: Effect.Effect<C, E>
  readonly close: (connection: C) => Effect.Effect<void>
  readonly ping: (connection: C) => Effect.Effect<void, E>
  readonly isBroken: (connection: C) => boolean
  readonly onReturn?: ((connection: C) => void) | undefined
  readonly needsReset?: ((connection: C) => boolean) | undefined
  readonly reset?: ((connection: C) => Effect.Effect<void, E>) | undefined
}
