/**
 * Binds the pool engine to PostgreSQL: opens `@effect/sql-pg` `PgConnection`s, pings them, tells broken ones apart,
 * tracks what each lease did to its session and resets only what needs it.
 *
 * @since 0.1.0
 */
import * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import type { SqlError } from "effect/sql/SqlError"
import type { Connector } from "./Connector.ts"
import { BEGIN, classify, DIRTY, END, PREPARE } from "./internal/classify.ts"

/**
 * One pooled PostgreSQL session and what the pool knows about it.
 *
 * **Details**
 *
 * `epoch` changes every time the session returns to the pool, which is how a lease object knows it was released.
 * `txOpen`, `dirty` and `preparedSql` are set from the statements a lease ran; `broken` from the errors it saw.
 *
 * **Example**
 *
 * ```ts
 * import type { PgConnector } from "effect-pg-pool"
 *
 * const describe = (s: PgConnector.PgSession) => `backend ${s.processId}${s.txOpen ? " (in transaction)" : ""}`
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface PgSession {
  readonly connection: PgConnection.PgConnection
  readonly processId: number
  readonly scope: Scope.Closeable
  /** The driver's own record of a fatal error, when this version of sql-pg exposes it. */
  readonly deadError: (() => unknown) | undefined
  epoch: number
  txOpen: boolean
  dirty: boolean
  preparedSql: boolean
  broken: boolean
}

/**
 * How sessions are cleaned between borrowers.
 *
 * **Details**
 *
 * - `"auto"` (default): reset only sessions whose lease ran a statement that can leave state behind (SET, RESET,
 *   set_config, temporary objects, session advisory locks, LISTEN, PREPARE, DECLARE, DO, CALL, DISCARD, LOAD).
 * - `"always"`: reset every session on return.
 * - `"none"`: no session reset (PgBouncer transaction mode). Open transactions are still rolled back.
 * - a function: runs on every return, after an open transaction was rolled back.
 *
 * **Gotchas**
 *
 * `"auto"` reads statement text: a function of yours that calls `set_config(..., false)` or takes a session
 * advisory lock inside a plain `SELECT` is not seen. Use `"always"` if your functions change session state.
 *
 * **Example**
 *
 * ```ts
 * import type { PgConnector } from "effect-pg-pool"
 *
 * const mode: PgConnector.ResetMode = "always"
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export type ResetMode =
  | "auto"
  | "always"
  | "none"
  | ((connection: PgConnection.PgConnection) => Effect.Effect<void, SqlError>)

/**
 * What the connector needs: the connection settings (read at every connect, so they can change at run time) and the
 * reset mode.
 *
 * **Example**
 *
 * ```ts
 * import { PgConnector } from "effect-pg-pool"
 *
 * const connector = PgConnector.make({ connectOptions: () => ({ host: "127.0.0.1", port: 5432 }), reset: "auto" })
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  readonly connectOptions: () => PgConnection.Config
  readonly reset?: ResetMode | undefined
  /** Open connections that pipeline unpinned statements from many fibers (see `PgPool.Config.multiplex`). */
  readonly multiplex?: boolean | undefined
  /** Runs again after a session reset, so settings made by the pool's `configure` survive `RESET ALL`. */
  readonly reconfigure?: ((session: PgSession) => Effect.Effect<void, SqlError>) | undefined
  /** Called when the driver learns that a session died (for example a FATAL while it sat idle). */
  readonly onRetire?: ((session: PgSession) => void) | undefined
}

/**
 * The statements that return a dirty session to a fresh state. `DISCARD ALL` would also drop the driver's prepared
 * statements, so its parts are run one by one instead, and SQL-level prepared statements are deallocated by name.
 *
 * **Example**
 *
 * ```ts
 * import { PgConnector } from "effect-pg-pool"
 *
 * console.log(PgConnector.resetStatements.join(";\n"))
 * ```
 *
 * @category constants
 * @since 0.1.0
 */
export const resetStatements: ReadonlyArray<string> = [
  "SET SESSION AUTHORIZATION DEFAULT",
  "RESET ALL",
  "UNLISTEN *",
  "SELECT pg_advisory_unlock_all()",
  "CLOSE ALL",
  "DISCARD TEMP",
  "DISCARD SEQUENCES"
]

/**
 * True when an error means the session cannot be reused: a `ConnectionError`, a server error of severity FATAL or
 * PANIC, or SQLSTATE class 08 or 57P (admin shutdown, crash shutdown, cannot connect now).
 *
 * **Example**
 *
 * ```ts
 * import { PgConnector } from "effect-pg-pool"
 * import { ConnectionError, SqlError } from "effect/sql/SqlError"
 *
 * PgConnector.isBrokenError(new SqlError({ reason: new ConnectionError({ cause: new Error("reset") }) })) // true
 * ```
 *
 * @category predicates
 * @since 0.1.0
 */
export const isBrokenError = (error: SqlError): boolean => {
  if (error.reason._tag === "ConnectionError") return true
  const cause = error.reason.cause
  if (typeof cause !== "object" || cause === null) return false
  const { code, severity } = cause as { readonly code?: unknown; readonly severity?: unknown }
  if (severity === "FATAL" || severity === "PANIC") return true
  return typeof code === "string" && (code.startsWith("08") || code.startsWith("57P"))
}

/**
 * Records what a statement does to the session it runs on; called before the statement is sent.
 *
 * **Example**
 *
 * ```ts
 * import type { PgConnector } from "effect-pg-pool"
 * import { PgConnector as C } from "effect-pg-pool"
 *
 * declare const session: PgConnector.PgSession
 * C.track(session, "BEGIN") // session.txOpen === true
 * ```
 *
 * @category tracking
 * @since 0.1.0
 */
export const track = (session: PgSession, sql: string): void => {
  const flags = classify(sql)
  if (flags === 0) return
  if (flags & BEGIN) session.txOpen = true
  else if (flags & END) session.txOpen = false
  if (flags & DIRTY) session.dirty = true
  if (flags & PREPARE) session.preparedSql = true
}

/**
 * Marks the session broken when `error` means it cannot be reused, and returns `error`: for `Effect.mapError` and
 * `Effect.mapBoth` on a statement of the session.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { PgConnector } from "effect-pg-pool"
 *
 * declare const session: PgConnector.PgSession
 * const guarded = Effect.mapError(session.connection.query("SELECT 1"), (e) => PgConnector.noteError(session, e))
 * ```
 *
 * @category tracking
 * @since 0.1.0
 */
export const noteError = (session: PgSession, error: SqlError): SqlError => {
  if (isBrokenError(error)) session.broken = true
  return error
}

/**
 * Marks the session broken when a statement failed with an error that means it cannot be reused.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { PgConnector } from "effect-pg-pool"
 *
 * declare const session: PgConnector.PgSession
 * const guarded = PgConnector.watch(session, session.connection.query("SELECT 1"))
 * ```
 *
 * @category tracking
 * @since 0.1.0
 */
export const watch = <A, R>(session: PgSession, effect: Effect.Effect<A, SqlError, R>): Effect.Effect<A, SqlError, R> =>
  Effect.mapError(effect, (error) => noteError(session, error))

/** Where sql-pg keeps a connection's liveness; read defensively, since it is not part of its public API. */
const internalsKey = "~@effect/sql-pg/PgConnection/internals"

interface DriverInternals {
  readonly deadError?: () => unknown
  readonly retireHooks?: Set<() => void>
}

const internalsOf = (connection: PgConnection.PgConnection): DriverInternals | undefined => {
  const value = (connection as unknown as Record<string, unknown>)[internalsKey]
  return typeof value === "object" && value !== null ? value as DriverInternals : undefined
}

const run = (session: PgSession, sql: string) => watch(session, session.connection.query(sql, [], false))

/**
 * The reset the pool runs on a returned session that needs one: roll back an open transaction (with a warning), then
 * reset a dirty session per `mode` (deallocating SQL-level prepared statements by name), then run `reconfigure`.
 * `run` executes one of these statements on the session.
 *
 * **Example**
 *
 * ```ts
 * import { PgConnector } from "effect-pg-pool"
 *
 * declare const run: (session: PgConnector.PgSession, sql: string) => ReturnType<PgConnector.PgSession["connection"]["query"]>
 * const reset = PgConnector.makeReset("auto", run)
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeReset = (
  mode: ResetMode,
  run: (session: PgSession, sql: string) => Effect.Effect<PgConnection.Result, SqlError>,
  reconfigure?: ((session: PgSession) => Effect.Effect<void, SqlError>) | undefined
): (session: PgSession) => Effect.Effect<void, SqlError> =>
  Effect.fnUntraced(function*(session: PgSession) {
    if (session.txOpen) {
      yield* Effect.logWarning(
        `PgPool: backend ${session.processId} was returned with a transaction open; rolling it back`
      )
      yield* run(session, "ROLLBACK")
      session.txOpen = false
    }
    if (typeof mode === "function") return yield* mode(session.connection)
    if (mode === "none" || (mode === "auto" && !session.dirty)) return
    for (const statement of resetStatements) yield* run(session, statement)
    if (session.preparedSql || mode === "always") {
      const prepared = yield* run(session, "SELECT name FROM pg_prepared_statements WHERE from_sql")
      for (const row of prepared.rows) yield* run(session, `DEALLOCATE "${String(row.name).replaceAll("\"", "\"\"")}"`)
    }
    session.preparedSql = false
    if (reconfigure !== undefined) yield* reconfigure(session)
    // What configure leaves is the session's baseline, not dirt; its PREPAREs stay tracked for the next reset.
    session.dirty = false
    session.txOpen = false
  })

/**
 * A fresh session record for an open connection: nothing tracked yet, epoch 0. For connectors of your own (and test
 * doubles) that open connections some other way.
 *
 * **Example**
 *
 * ```ts
 * import type * as PgConnection from "@effect/sql-pg/PgConnection"
 * import { Scope } from "effect"
 * import { PgConnector } from "effect-pg-pool"
 *
 * declare const connection: PgConnection.PgConnection
 * const session = PgConnector.makeSession(connection, Scope.makeUnsafe())
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeSession = (
  connection: PgConnection.PgConnection,
  scope: Scope.Closeable,
  deadError?: () => unknown
): PgSession => ({
  connection,
  processId: connection.processId,
  scope,
  deadError,
  epoch: 0,
  txOpen: false,
  dirty: false,
  preparedSql: false,
  broken: false
})

/**
 * Creates the PostgreSQL connector.
 *
 * **Details**
 *
 * Each session gets its own `Scope`, closed by `close`. The ping is `SELECT 1`. On return the pool resets the session
 * when it needs it: an open transaction is rolled back (with a warning), then a dirty session is reset per `reset`.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { Pool, PgConnector } from "effect-pg-pool"
 *
 * const program = Effect.gen(function*() {
 *   const connector = PgConnector.make({ connectOptions: () => ({ host: "127.0.0.1" }) })
 *   const pool = yield* Pool.make(connector, { minSize: 2 })
 * }).pipe(Effect.scoped)
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: Options): Connector<PgSession, SqlError> => {
  const mode = options.reset ?? "auto"
  const connect = Effect.suspend(() => {
    const scope = Scope.makeUnsafe()
    const config = options.connectOptions()
    return PgConnection.make(options.multiplex === true ? { ...config, multiplex: true } : config).pipe(
      Scope.provide(scope),
      Effect.onError(() => Scope.close(scope, Exit.void)),
      Effect.map((connection): PgSession => {
        const internals = internalsOf(connection)
        const session = makeSession(
          connection,
          scope,
          typeof internals?.deadError === "function" ? internals.deadError : undefined
        )
        const retire = options.onRetire
        internals?.retireHooks?.add(() => {
          session.broken = true
          if (retire !== undefined) retire(session)
        })
        return session
      })
    )
  })

  const reset = makeReset(mode, run, options.reconfigure)

  return {
    connect,
    close: (session) => Scope.close(session.scope, Exit.void),
    ping: (session) => Effect.asVoid(run(session, "SELECT 1")),
    isBroken: (session) => session.broken || (session.deadError !== undefined && session.deadError() !== undefined),
    onReturn: (session) => {
      // Lease objects compare epochs, so every one handed out for this session now fails with "used after release".
      session.epoch++
    },
    needsReset: (session) =>
      session.txOpen || mode === "always" || typeof mode === "function" || (mode === "auto" && session.dirty),
    reset
  }
}
