/**
 * Runner for W3, pool overhead with fake connections (no server): ns per acquire + release, 10 connections,
 * `--concurrency` workers each looping acquire → release with nothing in between.
 *
 * `--mode`:
 * - `ours-scoped`     this project's engine on `MockConnector`: `Effect.scoped(pool.connection())` (the path users take)
 * - `ours-with`       same pool, `pool.withConnection(() => Effect.void)`
 * - `effect-get`      effect's `Pool.make({ acquire, size })`: `Effect.scoped(Pool.get(pool))`
 * - `effect-use`      same pool, `Pool.use(pool, () => Effect.void)`
 * - `pg-pool`         `pg.Pool` with a no-op `Client` (the `Client` option): `await pool.connect(); client.release()`
 * - `effect-baseline` the worker loop alone (`Effect.void`), what every Effect figure includes
 * - `promise-baseline` the worker loop alone (`await` of a resolved promise), what the pg.Pool figure includes
 * - `scope-floor`     `Effect.scoped` around one finalizer, no pool: what any scoped acquire + release costs at least
 * - `sql-ours`        a whole statement, `sql\`SELECT 1\``, through this project's `SqlClient` on sessions whose
 *                     driver answers at once (the pool, the lease, session tracking, effect/sql, spans; no I/O)
 * - `sql-floor`       the same statement through effect/sql's `SqlClient.make` on one such connection, no pool
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as EffectPool from "effect/Pool"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection } from "effect/sql/SqlConnection"
import type { SqlError } from "effect/sql/SqlError"
import { EventEmitter } from "node:events"
import pg from "pg"
import type { Connector } from "../../src/Connector.ts"
import * as PgConnector from "../../src/PgConnector.ts"
import * as PgSqlClient from "../../src/PgSqlClient.ts"
import * as Pool from "../../src/Pool.ts"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { emit, main, parse } from "../support/protocol.ts"

const SIZE = 10

/** What pg-pool needs from a `Client`: connect, end, events, and the two flags it reads on release. */
class NoopClient extends EventEmitter {
  _queryable = true
  _ending = false
  connect(callback?: (error?: Error) => void): Promise<void> | void {
    if (callback === undefined) return Promise.resolve()
    process.nextTick(callback)
  }
  end(callback?: (error?: Error) => void): Promise<void> | void {
    this._ending = true
    this._queryable = false
    process.nextTick(() => this.emit("end"))
    if (callback === undefined) return Promise.resolve()
    process.nextTick(callback)
  }
  query(): Promise<{ rows: Array<unknown> }> {
    return Promise.resolve({ rows: [] })
  }
}

/** A driver connection that answers every statement at once with one row: the statement path without I/O. */
const answer: PgConnection.Result = { rows: [{ "?column?": 1 }], command: "SELECT", rowCount: 1 } as unknown as PgConnection.Result
const instantConnection = {
  processId: 1,
  query: () => Effect.succeed(answer),
  queryValues: () => Effect.succeed(answer)
} as unknown as PgConnection.PgConnection

/** `PgConnector` with `connect` replaced: sessions on `instantConnection`, everything else as in production. */
const instantConnector = (): Connector<PgConnector.PgSession, SqlError> => {
  const real = PgConnector.make({ connectOptions: () => ({}), reset: "auto" })
  return {
    ...real,
    connect: Effect.sync(() => PgConnector.makeSession(instantConnection, Scope.makeUnsafe())),
    ping: () => Effect.void
  }
}

interface Totals {
  ops: number
}

const CHECK_EVERY = 64

/** `workers` fibers looping `op` until `deadline` (performance.now()); the deadline is read every 64 ops. */
const effectRun = (op: Effect.Effect<unknown, unknown>, workers: number, deadline: number, totals: Totals) =>
  Effect.forEach(
    Array.from({ length: workers }),
    () =>
      Effect.gen(function*() {
        let n = 0
        while (true) {
          yield* op
          n++
          if (n % CHECK_EVERY === 0 && performance.now() >= deadline) break
        }
        totals.ops += n
      }),
    { concurrency: "unbounded", discard: true }
  )

const promiseRun = async (op: () => Promise<unknown>, workers: number, deadline: number, totals: Totals) => {
  await Promise.all(Array.from({ length: workers }, async () => {
    let n = 0
    while (true) {
      await op()
      n++
      if (n % CHECK_EVERY === 0 && performance.now() >= deadline) break
    }
    totals.ops += n
  }))
}

interface Window {
  readonly ops: number
  readonly elapsedMs: number
  readonly cpu: NodeJS.CpuUsage
}

/** Runs `run` once for the warmup, then measures a second run (Promise clients). */
const measure = async (
  run: (deadline: number, totals: Totals) => Promise<void>,
  warmupMs: number,
  durationMs: number
): Promise<Window> => {
  await run(performance.now() + warmupMs, { ops: 0 })
  const totals = { ops: 0 }
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await run(t0 + durationMs, totals)
  const elapsedMs = performance.now() - t0
  return { ops: totals.ops, elapsedMs, cpu: process.cpuUsage(cpu0) }
}

main(async () => {
  const args = parse()
  const workers = args.concurrency
  const mode = args.mode
  let window: Window
  const withEffect = (
    make: Effect.Effect<Effect.Effect<unknown, unknown>, unknown, Scope.Scope>
  ): Promise<Window> =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const op = yield* make
      yield* effectRun(op, workers, performance.now() + args.warmupMs, { ops: 0 })
      const totals = { ops: 0 }
      const cpu0 = process.cpuUsage()
      const t0 = performance.now()
      yield* effectRun(op, workers, t0 + args.durationMs, totals)
      const elapsedMs = performance.now() - t0
      return { ops: totals.ops, elapsedMs, cpu: process.cpuUsage(cpu0) }
    })))
  switch (mode) {
    case "ours-scoped":
    case "ours-with": {
      window = await withEffect(Effect.gen(function*() {
        const mock = yield* MockConnector.make()
        const pool = yield* Pool.make(mock.connector, { minSize: SIZE, maxSize: SIZE })
        yield* pool.wait("5 seconds")
        return mode === "ours-scoped"
          ? Effect.scoped(pool.connection())
          : pool.withConnection(() => Effect.void)
      }))
      break
    }
    case "effect-get":
    case "effect-use": {
      window = await withEffect(Effect.gen(function*() {
        const pool = yield* EffectPool.make({ acquire: Effect.sync(() => ({ open: true })), size: SIZE })
        // fill it before measuring
        yield* Effect.forEach(Array.from({ length: SIZE }), () => EffectPool.get(pool), { concurrency: "unbounded" })
          .pipe(Effect.scoped)
        return mode === "effect-get"
          ? Effect.scoped(EffectPool.get(pool))
          : EffectPool.use(pool, () => Effect.void)
      }))
      break
    }
    case "scope-floor": {
      const finalizer = Effect.void
      window = await withEffect(Effect.succeed(Effect.scoped(Effect.withFiber((fiber) =>
        Scope.addFinalizerExit(Context.getUnsafe(fiber.context, Scope.Scope), () => finalizer)
      ))))
      break
    }
    case "sql-ours":
    case "sql-floor": {
      window = await withEffect(Effect.provide(
        Effect.gen(function*() {
          if (mode === "sql-ours") {
            const pool = yield* Pool.make(instantConnector(), { minSize: SIZE, maxSize: SIZE })
            yield* pool.wait("5 seconds")
            const sql = yield* PgSqlClient.make(pool, {})
            return sql`SELECT 1`
          }
          const connection: Connection = {
            execute: () => Effect.succeed(answer.rows),
            executeRaw: () => Effect.succeed(answer),
            executeValues: () => Effect.succeed([]),
            executeValuesUnprepared: () => Effect.succeed([]),
            executeUnprepared: () => Effect.succeed(answer.rows),
            executeStream: () => {
              throw new Error("not used")
            }
          }
          const sql = yield* SqlClient.make({
            driver: "pg",
            acquirer: Effect.succeed(connection),
            borrower: (f) => f(connection),
            compiler: PgClient.makeCompiler(),
            // the attributes every PostgreSQL client here sets (sql-pg's, and this project's)
            spanAttributes: [
              ["db.system.name", "postgresql"],
              ["db.namespace", "postgres"],
              ["server.address", "localhost"],
              ["server.port", 5432]
            ]
          })
          return sql`SELECT 1`
        }),
        Reactivity.layer
      ))
      break
    }
    case "effect-baseline": {
      window = await withEffect(Effect.succeed(Effect.void))
      break
    }
    case "pg-pool": {
      const pool = new pg.Pool({ max: SIZE, Client: NoopClient as unknown as typeof pg.Client })
      const clients = await Promise.all(Array.from({ length: SIZE }, () => pool.connect()))
      for (const client of clients) client.release()
      window = await measure(
        (deadline, totals) =>
          promiseRun(async () => {
            const client = await pool.connect()
            client.release()
          }, workers, deadline, totals),
        args.warmupMs,
        args.durationMs
      )
      await pool.end()
      break
    }
    case "promise-baseline": {
      window = await measure(
        (deadline, totals) => promiseRun(() => Promise.resolve(), workers, deadline, totals),
        args.warmupMs,
        args.durationMs
      )
      break
    }
    default:
      throw new Error(`unknown mode ${mode}`)
  }
  const cpuUs = window.cpu.user + window.cpu.system
  emit({
    type: "result",
    ops: window.ops,
    elapsedMs: Math.round(window.elapsedMs),
    opsPerSec: Math.round((window.ops / window.elapsedMs) * 1000),
    nsPerOp: Math.round((window.elapsedMs * 1e6) / window.ops),
    cpuNsPerOp: Math.round((cpuUs * 1000) / window.ops),
    cpuUs: window.cpu,
    maxRssKb: process.resourceUsage().maxRSS
  })
})
