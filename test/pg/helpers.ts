/**
 * Shared helpers of the test/pg suite: pools on the test server and bounded polling.
 *
 * Every pool gets its own `applicationName`, so `pg_stat_activity` can be filtered to exactly its backends while
 * other test files run against the same server.
 */
import { assert } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import { randomBytes } from "node:crypto"
import * as PgPool from "../../src/PgPool.ts"
import type { PoolConfigError, PoolTimeout } from "../../src/PoolError.ts"
import { type Backend, backends, databaseUrl, quoteIdentifier, withAdmin } from "../support/Db.ts"

/** A unique `application_name` (at most 63 bytes). */
export const uniqueName = (stem: string): string => `${stem}-${randomBytes(4).toString("hex")}`

export interface TestPool {
  readonly pool: PgPool.PgPool
  readonly sql: SqlClient.SqlClient
  readonly pg: PgClient.PgClient
  readonly applicationName: string
  /** This pool's backends in `pg_stat_activity`. */
  readonly backends: Effect.Effect<ReadonlyArray<Backend>, unknown>
}

/**
 * Builds `PgPool.layer(config)` in the current scope, connected to `url` (default: the test server's `postgres`
 * database), with a unique `applicationName` unless one is given.
 */
export const makePool = (
  config: Partial<PgPool.Config> & { readonly url?: Redacted.Redacted | undefined } = {},
  options: { readonly url?: string | undefined } = {}
): Effect.Effect<TestPool, PoolConfigError | PoolTimeout, Scope.Scope> =>
  Effect.suspend(() => {
    const applicationName = config.applicationName ?? uniqueName("pgtest")
    const layer = PgPool.layer({
      url: Redacted.make(options.url ?? databaseUrl()),
      name: applicationName,
      ...config,
      applicationName
    })
    return Effect.map(Layer.build(layer), (context): TestPool => ({
      pool: Context.get(context, PgPool.PgPool),
      sql: Context.get(context, SqlClient.SqlClient),
      pg: Context.get(context, PgClient.PgClient),
      applicationName,
      backends: backends({ applicationName })
    }))
  })

/**
 * Runs `effect` until `done(value)` holds, at most `times` runs spaced by `interval`; fails with a descriptive
 * error (naming `what` and the last value or error) when the bound is reached. Never a bare sleep.
 */
export const waitFor = <A, E, R>(
  what: string,
  effect: Effect.Effect<A, E, R>,
  done: (value: A) => boolean,
  options: { readonly times?: number; readonly interval?: Duration.Input } = {}
): Effect.Effect<A, Error, R> => {
  const times = options.times ?? 100
  const interval = options.interval ?? "50 millis"
  const loop = (left: number, last: string): Effect.Effect<A, Error, R> =>
    left <= 0
      ? Effect.fail(new Error(`waitFor: ${what}: not reached after ${times} tries; last: ${last}`))
      : Effect.flatMap(Effect.exit(effect), (exit) => {
        if (exit._tag === "Success" && done(exit.value)) return Effect.succeed(exit.value)
        const seen = exit._tag === "Success" ? JSON.stringify(exit.value, bigintSafe) : String(exit.cause)
        return Effect.andThen(Effect.sleep(interval), loop(left - 1, seen))
      })
  return loop(times, "nothing")
}

const bigintSafe = (_key: string, value: unknown) => typeof value === "bigint" ? value.toString() : value

/** Wall-clock milliseconds `effect` took (the live clock: these tests run under `it.live`). */
export const timedMillis = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<[number, A], E, R> =>
  Effect.map(Effect.timed(effect), ([duration, a]) => [Duration.toMillis(duration), a])

/** A logger that records every message with its level; provide `layer` where the pool is built. */
export const captureLogs = () => {
  const entries: Array<{ readonly level: string; readonly message: string }> = []
  const logger = Logger.make((options) => {
    const message = Array.isArray(options.message) ? options.message.map(String).join(" ") : String(options.message)
    entries.push({ level: options.logLevel, message })
  })
  return { entries, layer: Logger.layer([logger]) }
}

/** The password of the test server's URL, for tests that pass credentials separately. */
export const serverPassword = (): string => decodeURIComponent(new URL(databaseUrl()).password)

/** The test server's URL with another user and password. */
export const urlWithCredentials = (user: string, password: string, base: string = databaseUrl()): string => {
  const url = new URL(base)
  url.username = encodeURIComponent(user)
  url.password = encodeURIComponent(password)
  return url.toString()
}

/** A login role (not a superuser) with a password, dropped when the scope closes; roles are cluster-wide. */
export const scopedLoginRole = (password: string) =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const role = uniqueName("login_role").replaceAll("-", "_")
      return Effect.as(
        withAdmin((admin) =>
          admin.query(`CREATE ROLE ${quoteIdentifier(role)} LOGIN PASSWORD '${password}'`, [], false)
        ),
        role
      )
    }),
    (role) =>
      Effect.ignore(withAdmin((admin) => admin.query(`DROP ROLE IF EXISTS ${quoteIdentifier(role)}`, [], false)))
  )

/** Counts process-level errors that nobody handled while `effect` runs. */
export const noUnhandledErrors = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const seen: Array<unknown> = []
      const onError = (error: unknown) => seen.push(error)
      process.on("unhandledRejection", onError)
      process.on("uncaughtException", onError)
      return { seen, onError }
    }),
    () => effect,
    ({ onError, seen }) =>
      Effect.sync(() => {
        process.off("unhandledRejection", onError)
        process.off("uncaughtException", onError)
        assert.deepStrictEqual(seen.map(String), [], "no unhandled errors")
      })
  )
