/**
 * Helpers for tests that talk to the test PostgreSQL server provided by
 * `globalSetup.ts`.
 *
 * Everything here opens real sockets: run it under `it.live` (or
 * `Effect.provide`d live services), not under `it.effect`'s TestClock, or
 * connect timeouts never fire.
 */
import * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { SqlError } from "effect/sql/SqlError"
import { randomBytes } from "node:crypto"
import { inject } from "vitest"

/** Superuser URL of the test server's `postgres` database. */
export const databaseUrl = (): string => {
  const url = inject("databaseUrl")
  if (typeof url !== "string" || url === "") {
    throw new Error("databaseUrl was not provided: is test/support/globalSetup.ts registered in vitest.config.ts?")
  }
  return url
}

/** The URL of another database on the test server, same credentials. */
export const urlForDatabase = (database: string, base: string = databaseUrl()): string => {
  const url = new URL(base)
  url.pathname = `/${encodeURIComponent(database)}`
  return url.toString()
}

/**
 * A raw `PgConnection` to the test server as a scoped resource, for admin
 * work (`pg_terminate_backend`, `pg_stat_activity`, `CREATE DATABASE`, ...).
 * Its `application_name` is `effect-pg-pool-admin`, so it can be told apart
 * from the connections under test.
 */
export const adminConnection = (
  options: { readonly url?: string | undefined; readonly database?: string | undefined } = {}
): Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope> =>
  Effect.suspend(() => {
    const base = options.url ?? databaseUrl()
    const url = options.database === undefined ? base : urlForDatabase(options.database, base)
    return PgConnection.make({
      url: Redacted.make(url),
      applicationName: adminApplicationName,
      connectTimeout: "10 seconds",
      prepare: false
    })
  })

export const adminApplicationName = "effect-pg-pool-admin"

/** Runs `f` with a short-lived admin connection. */
export const withAdmin = <A, E, R>(
  f: (admin: PgConnection.PgConnection) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, Exclude<R, Scope.Scope>> => Effect.scoped(Effect.flatMap(adminConnection(), f))

export const quoteIdentifier = (identifier: string): string => `"${identifier.replaceAll("\"", "\"\"")}"`

/**
 * Client backends of the test server (rows of `pg_stat_activity`), excluding
 * admin connections. Narrow with `database` and/or `applicationName`.
 */
export interface Backend {
  readonly pid: number
  readonly datname: string | null
  readonly application_name: string
  readonly state: string | null
  readonly query: string
}

export const backends = (
  filter: { readonly database?: string | undefined; readonly applicationName?: string | undefined } = {}
): Effect.Effect<ReadonlyArray<Backend>, SqlError> =>
  withAdmin((admin) =>
    admin.query(
      `select pid, datname, application_name, state, query
         from pg_stat_activity
        where backend_type = 'client backend'
          and pid <> pg_backend_pid()
          and application_name <> $1
          and ($2::text is null or datname = $2::text)
          and ($3::text is null or application_name = $3::text)
        order by pid`,
      [adminApplicationName, filter.database ?? null, filter.applicationName ?? null]
    )
  ).pipe(Effect.map((result) => result.rows as unknown as ReadonlyArray<Backend>))

/** `pg_terminate_backend(pid)`: kills one server process, as a crashed backend or a DBA would. */
export const terminateBackend = (pid: number): Effect.Effect<boolean, SqlError> =>
  withAdmin((admin) => admin.query("select pg_terminate_backend($1) as ok", [pid])).pipe(
    Effect.map((result) => result.rows[0]?.ok === true)
  )

/** Terminates every client backend connected to `database` (except admin connections); returns how many. */
export const terminateDatabaseBackends = (database: string): Effect.Effect<number, SqlError> =>
  withAdmin((admin) =>
    admin.query(
      `select count(*)::int as n from (
         select pg_terminate_backend(pid)
           from pg_stat_activity
          where datname = $1 and pid <> pg_backend_pid() and application_name <> $2
       ) t`,
      [database, adminApplicationName]
    )
  ).pipe(Effect.map((result) => Number(result.rows[0]?.n ?? 0)))

/** A database name derived from `name`: lowercase `[a-z0-9_]`, a random suffix, at most 63 bytes. */
const uniqueDatabaseName = (name: string): string => {
  const stem = name.toLowerCase().replace(/[^a-z0-9_]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 40) || "test"
  return `${stem}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`
}

/**
 * Creates a new, uniquely named database (`<name>_<suffix>`) on the test
 * server and returns its URL. The database lives as long as the server.
 */
export const freshDatabase = (name: string): Effect.Effect<string, SqlError> =>
  Effect.suspend(() => {
    const database = uniqueDatabaseName(name)
    return withAdmin((admin) => admin.query(`CREATE DATABASE ${quoteIdentifier(database)}`, [], false)).pipe(
      Effect.as(urlForDatabase(database))
    )
  })

/** Like `freshDatabase`, and drops the database (`WITH (FORCE)`) when the scope closes. */
export const freshDatabaseScoped = (name: string): Effect.Effect<string, SqlError, Scope.Scope> =>
  Effect.acquireRelease(freshDatabase(name), (url) =>
    withAdmin((admin) =>
      admin.query(
        `DROP DATABASE IF EXISTS ${quoteIdentifier(decodeURIComponent(new URL(url).pathname.slice(1)))} WITH (FORCE)`,
        [],
        false
      )
    ).pipe(Effect.ignore))
