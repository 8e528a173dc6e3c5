/**
 * `SqlClient` and `PgClient` on top of the pool, so `sql` templates, `sql.withTransaction` (nested ones as
 * savepoints), `sql.reserve`, streams, `SqlSchema`, `SqlResolver`, `Migrator`, `PgClient.json` and `listen`/`notify`
 * run on it unchanged.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Effect from "effect/Effect"
import type * as Reactivity from "effect/reactivity/Reactivity"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type { Borrower, Connection } from "effect/sql/SqlConnection"
import { ConnectionError, SqlError, UnknownError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import { Lease } from "./internal/lease.ts"
import { sharedAs } from "./internal/pool.ts"
import type { PgSession } from "./PgConnector.ts"
import type { AcquireOptions, Pool } from "./Pool.ts"
import { isPoolError, type PoolError } from "./PoolError.ts"

/**
 * The client settings that shape statements and results (the connection settings live in `PgPool.Config`).
 *
 * **Example**
 *
 * ```ts
 * import { String } from "effect"
 * import type { PgSqlClient } from "effect-pg-pool"
 *
 * const options: PgSqlClient.ClientOptions = { transformResultNames: String.snakeToCamel }
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface ClientOptions {
  readonly transformResultNames?: ((name: string) => string) | undefined
  readonly transformQueryNames?: ((name: string) => string) | undefined
  readonly transformJson?: boolean | undefined
  readonly spanAttributes?: Record<string, unknown> | undefined
  readonly database?: string | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  /** The pool multiplexes: single statements share connections, scoped leases pin theirs. */
  readonly multiplex?: boolean | undefined
}

/**
 * Wraps a pool error as the `SqlError` that `SqlClient` users expect; the typed pool error is the reason's `cause`.
 *
 * **Example**
 *
 * ```ts
 * import { PgSqlClient, PoolError } from "effect-pg-pool"
 *
 * const error = PgSqlClient.toSqlError(new PoolError.PoolClosed({ pool: "app" }))
 * error.reason.cause // the PoolClosed
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export const toSqlError = (error: PoolError): SqlError =>
  new SqlError({ reason: new ConnectionError({ cause: error, message: error.message, operation: "acquire" }) })

/**
 * The typed pool error inside a `SqlError` made by `toSqlError`, if it is one.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { PgSqlClient } from "effect-pg-pool"
 * import type { SqlError } from "effect/sql/SqlError"
 *
 * const why = (e: SqlError) => PgSqlClient.poolErrorOf(e)?._tag ?? "not a pool error"
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export const poolErrorOf = (error: SqlError): PoolError | undefined => {
  const cause: unknown = error.reason.cause
  return isPoolError(cause) ? cause : undefined
}

/**
 * Turns the pool errors of an effect into `SqlError`s (see `toSqlError`), leaving its other errors alone.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { PgSqlClient, type Pool } from "effect-pg-pool"
 *
 * declare const pool: Pool.Pool<unknown>
 * const asSql = PgSqlClient.liftPoolError(pool.withConnection(() => Effect.succeed(1)))
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export const liftPoolError = <A, E, R>(
  effect: Effect.Effect<A, E | PoolError, R>
): Effect.Effect<A, Exclude<E, PoolError> | SqlError, R> =>
  Effect.mapError(effect, (error) => isPoolError(error) ? toSqlError(error) : error as Exclude<E, PoolError>)

/**
 * A lease held until the scope closes. On a multiplexed pool it pins the connection: statements already pipelined on
 * it finish first, none can join, and an interrupted statement is cancelled on the server.
 *
 * @internal
 */
export const exclusiveLease = (
  pool: Pool<PgSession>,
  options: { readonly multiplex?: boolean | undefined },
  acquire?: AcquireOptions
): Effect.Effect<Lease, PoolError, Scope.Scope> =>
  options.multiplex === true
    ? Effect.flatMap(pool.connection(acquire), (session) => Effect.map(session.connection.pin, (pinned) => new Lease(session, pinned)))
    : Effect.map(pool.connection(acquire), (session) => new Lease(session))

/** sql-pg's own check: PostgreSQL answers COMMIT with ROLLBACK when the transaction had already failed. */
const commit = (connection: Connection): Effect.Effect<void, SqlError> =>
  Effect.flatMap(connection.executeRaw("COMMIT", []) as Effect.Effect<PgConnection.Result, SqlError>, (result) =>
    result.command === "ROLLBACK"
      ? Effect.fail(
        new SqlError({
          reason: new UnknownError({
            cause: new Error("COMMIT rolled back an aborted transaction"),
            message: "PgPool: COMMIT rolled back an aborted transaction",
            operation: "commit"
          })
        })
      )
      : Effect.void)

interface PgJson extends Statement.Custom<"PgJson", unknown> {}
// `PgClient.makeCompiler` encodes customs of kind "PgJson" as jsonb parameters.
const PgJson = Statement.custom<PgJson>("PgJson")

/**
 * Builds a `PgClient` (which is also a `SqlClient`) whose every statement borrows from `pool`.
 *
 * **Details**
 *
 * A single statement borrows a connection for exactly that statement; a transaction, a stream, `reserve` and
 * `listen` hold one for their scope. Pool errors surface as `SqlError` (reason `ConnectionError`, operation
 * `"acquire"`) with the typed pool error as `cause`.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { PgSqlClient, type Pool, type PgConnector } from "effect-pg-pool"
 *
 * declare const pool: Pool.Pool<PgConnector.PgSession>
 * const client = PgSqlClient.make(pool, {})
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function*(
  pool: Pool<PgSession>,
  options: ClientOptions
): Effect.fn.Return<PgClient.PgClient, never, Scope.Scope | Reactivity.Reactivity> {
  const acquirer: Effect.Effect<Connection, SqlError, Scope.Scope> = liftPoolError(exclusiveLease(pool, options))
  // Every `sql` statement borrows: with this project's engine its pool errors are mapped where they arise, so a
  // statement carries no `mapError` frame (~170 ns of a ~3 µs statement on an instant driver).
  const shared = sharedAs(pool)
  const borrower: Borrower = shared === undefined
    ? (f) => liftPoolError(pool.withShared((session) => f(new Lease(session))))
    : (f) => shared((session) => f(new Lease(session)), undefined, toSqlError)
  const client = yield* SqlClient.make({
    driver: "pg",
    acquirer,
    borrower,
    transactionAcquirer: acquirer,
    compiler: PgClient.makeCompiler(options.transformQueryNames, options.transformJson),
    prepareTransactionControls: true,
    commit,
    releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
    // effect/sql turns a failed ROLLBACK into a defect: on a session that died under the transaction, skip it, so
    // the caller gets the typed ConnectionError (the pool closes the session on return).
    isTransaction: (connection) => !(connection instanceof Lease && connection.session.broken),
    spanAttributes: [
      ...(options.spanAttributes === undefined ? [] : Object.entries(options.spanAttributes)),
      ["db.system.name", "postgresql"],
      ["db.namespace", options.database ?? "postgres"],
      ["server.address", options.host ?? "localhost"],
      ["server.port", options.port ?? 5432]
    ],
    transformRows: options.transformResultNames === undefined
      ? undefined
      : Statement.defaultTransforms(options.transformResultNames, options.transformJson).array
  })
  const pgClient: PgClient.PgClient = Object.assign(client, {
    [PgClient.TypeId]: PgClient.TypeId,
    config: options,
    json: (value: unknown) => Statement.fragment([PgJson(value)]),
    listen: (channel: string) => Effect.flatMap(acquirer, (lease) => (lease as Lease).listen(channel)),
    notify: (channel: string, payload: string) =>
      liftPoolError(
        pool.withShared((session) =>
          Effect.asVoid(new Lease(session).query("SELECT pg_notify($1, $2)", [channel, payload]))
        )
      )
  })
  return pgClient
})
