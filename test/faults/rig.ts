/**
 * The fault-test rig: a private PostgreSQL server per test (which it may stop, restart or reconfigure), pools on
 * it, the server's view of them, error classification, and the figures each scenario reports.
 *
 * Figures: when `PGPOOL_RELIABILITY_OUT` names a directory, `report(scenario, figures)` writes
 * `<dir>/<scenario>.json`; `scripts/reliability.ts` turns them into `docs/RELIABILITY.md`.
 */
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type * as PgPool from "../../src/PgPool.ts"
import { isBrokenError } from "../../src/PgConnector.ts"
import { isPoolError } from "../../src/PoolError.ts"
import { makePool, type TestPool } from "../pg/helpers.ts"
import { adminApplicationName, adminConnection, type Backend } from "../support/Db.ts"
import * as EmbeddedPg from "../support/EmbeddedPg.ts"

/** A private PostgreSQL server for one test, stopped and deleted when the scope closes. */
export const server = (options: EmbeddedPg.StartOptions = {}): Effect.Effect<Server, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => EmbeddedPg.start(options)),
    (instance) => Effect.promise(() => instance.stop())
  ).pipe(Effect.map((instance): Server => ({
    instance,
    url: instance.url,
    stop: Effect.promise(() => instance.stopServer()),
    start: Effect.promise(() => instance.startServer()),
    restart: Effect.promise(() => instance.restart())
  })))

export interface Server {
  readonly instance: EmbeddedPg.Instance
  readonly url: string
  readonly stop: Effect.Effect<void>
  readonly start: Effect.Effect<void>
  readonly restart: Effect.Effect<void>
}

/** Runs `f` on a fresh admin connection to `url` (a superuser, application_name `effect-pg-pool-admin`). */
export const admin = <A, E>(url: string, f: (admin: PgConnection.PgConnection) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(adminConnection({ url }), f))

/** Client backends on the server at `url` with this application_name. */
export const backendsOn = (url: string, applicationName: string): Effect.Effect<ReadonlyArray<Backend>, SqlError> =>
  admin(url, (conn) =>
    conn.query(
      `select pid, datname, application_name, state, query
         from pg_stat_activity
        where backend_type = 'client backend' and pid <> pg_backend_pid()
          and application_name = $1 and application_name <> $2
        order by pid`,
      [applicationName, adminApplicationName]
    )).pipe(Effect.map((result) => result.rows as unknown as ReadonlyArray<Backend>))

/** A pool (`PgPool.layer`) on the server at `url`; its `backends` are read from that server. */
export const poolOn = (
  url: string,
  config: Partial<PgPool.Config> = {}
): Effect.Effect<TestPool, unknown, Scope.Scope> =>
  Effect.map(makePool(config, { url }), (p): TestPool => ({ ...p, backends: backendsOn(url, p.applicationName) }))

/** Wall-clock milliseconds since some origin (`performance.now`). */
export const now = (): number => performance.now()

/** A short label for what a call ended with: "ok", a pool error tag, or "SqlError/<reason>[/<SQLSTATE>]". */
export const outcomeOf = (
  exit: { readonly _tag: "Success" } | { readonly _tag: "Failure"; readonly cause: Cause.Cause<unknown> }
): string => {
  if (exit._tag === "Success") return "ok"
  if (Cause.hasInterruptsOnly(exit.cause)) return "interrupted"
  if (Cause.hasDies(exit.cause)) return "defect"
  const error = Cause.squash(exit.cause)
  const poolError = poolErrorIn(error)
  if (poolError !== undefined) return poolError._tag
  if (isSqlError(error)) {
    const code = (error.reason.cause as { readonly code?: unknown } | undefined)?.code
    return `SqlError/${error.reason._tag}${typeof code === "string" ? `/${code}` : ""}`
  }
  return "untyped"
}

/** The pool error behind a failure, also when it arrives through SqlClient as the cause of a SqlError. */
export const poolErrorIn = (error: unknown) => {
  if (isPoolError(error)) return error
  if (isSqlError(error) && isPoolError(error.reason.cause)) return error.reason.cause
  return undefined
}

/** A failure the pool promises for a lost session: a broken-connection SqlError (ConnectionError, FATAL, 08*, 57P*). */
export const isConnectionLoss = (error: unknown): boolean =>
  isSqlError(error) && poolErrorIn(error) === undefined && isBrokenError(error)

/** Counts occurrences of each label. */
export const tally = (labels: Iterable<string>): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const label of labels) out[label] = (out[label] ?? 0) + 1
  return out
}

export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

export const round = (n: number): number => Math.round(n)

/** A figure of a scenario: a value with what it means. */
export type Figures = Record<string, string | number | boolean>

/**
 * Records what a scenario measured. Written to `$PGPOOL_RELIABILITY_OUT/<scenario>.json` when that variable is set
 * (by `npm run reliability`); a no-op otherwise.
 */
export const report = (scenario: string, title: string, figures: Figures): Effect.Effect<void> =>
  Effect.sync(() => {
    const dir = process.env.PGPOOL_RELIABILITY_OUT
    if (dir === undefined || dir === "") return
    Fs.mkdirSync(dir, { recursive: true })
    Fs.writeFileSync(Path.join(dir, `${scenario}.json`), JSON.stringify({ scenario, title, figures }, null, 2))
  })

/** One call of a load loop. Times are `now()` milliseconds. */
export interface Call {
  readonly fiber: number
  readonly start: number
  readonly end: number
  readonly outcome: string
  readonly error: unknown
}

export interface LoadResult {
  /** Every call, unless `keep: false`. */
  readonly calls: ReadonlyArray<Call>
  readonly hung: number
  readonly count: number
  readonly outcomes: Record<string, number>
  readonly slowest: number
}

/**
 * Runs `fibers` loops of `call` until `durationMs` has passed or each loop made `maxCalls` calls, whichever comes
 * first; every call is cut at `hardLimitMs` (counted in `hung`, which tests assert to be 0). Returns every call.
 */
export const load = (options: {
  readonly fibers: number
  readonly durationMs: number
  readonly maxCalls?: number | undefined
  readonly hardLimitMs: number
  readonly call: (fiber: number, n: number) => Effect.Effect<unknown, unknown>
  /** Keep every call in `calls` (default true); the soak only counts, so that the test holds no growing array. */
  readonly keep?: boolean | undefined
}): Effect.Effect<LoadResult> =>
  Effect.suspend(() => {
    const keep = options.keep ?? true
    const calls: Array<Call> = []
    const outcomes: Record<string, number> = {}
    let count = 0
    let slowest = 0
    let hung = 0
    const record = (call: Call) => {
      count++
      outcomes[call.outcome] = (outcomes[call.outcome] ?? 0) + 1
      slowest = Math.max(slowest, call.end - call.start)
      if (keep) calls.push(call)
    }
    const stopAt = now() + options.durationMs
    const maxCalls = options.maxCalls ?? 1_000_000
    const loop = (fiber: number) =>
      Effect.gen(function*() {
        for (let n = 0; n < maxCalls && now() < stopAt; n++) {
          const start = now()
          const exit = yield* Effect.exit(Effect.timeoutOption(options.call(fiber, n), options.hardLimitMs))
          const end = now()
          if (exit._tag === "Success" && exit.value._tag === "None") {
            hung++
            record({ fiber, start, end, outcome: "hung", error: undefined })
            continue
          }
          record({
            fiber,
            start,
            end,
            outcome: outcomeOf(exit),
            error: exit._tag === "Failure" ? Cause.squash(exit.cause) : undefined
          })
        }
      })
    return Effect.map(
      Effect.forEach(Array.from({ length: options.fibers }, (_, i) => i), loop, {
        concurrency: "unbounded",
        discard: true
      }),
      (): LoadResult => ({ calls, hung, count, outcomes, slowest })
    )
  })

/**
 * Kills a random backend of the pool (by application_name) every `minMs`..`maxMs` until `durationMs` has passed;
 * rides out server restarts by reconnecting its admin session. Returns how many backends it killed.
 */
export const killer = (
  url: string,
  applicationName: string,
  options: { readonly minMs: number; readonly maxMs: number; readonly durationMs: number }
): Effect.Effect<number> =>
  Effect.scoped(Effect.gen(function*() {
    const connect = Effect.orDie(
      Effect.retry(adminConnection({ url }), { times: 100, schedule: Schedule.spaced("100 millis") })
    )
    let conn = yield* connect
    let kills = 0
    const stopAt = now() + options.durationMs
    for (let i = 0; i < 100_000 && now() < stopAt; i++) {
      yield* Effect.sleep(`${options.minMs + Math.floor(Math.random() * (options.maxMs - options.minMs))} millis`)
      const result = yield* Effect.exit(conn.query(
        `select count(*)::int as n from (select pg_terminate_backend(pid) from pg_stat_activity
          where application_name = $1 and backend_type = 'client backend' order by random() limit 1) t`,
        [applicationName]
      ))
      if (result._tag === "Success") kills += Number(result.value.rows[0]?.n ?? 0)
      else conn = yield* connect // the server is restarting
    }
    return kills
  }))
