/**
 * `npm start`: the pool under a concurrent workload, with live stats.
 *
 *   npm start                              # embedded PostgreSQL, 5 s of load
 *   DEMO_SECONDS=2 npm start
 *   DATABASE_URL=postgres://... npm start  # creates demo_accounts / demo_transfers there
 *
 * 64 fibers share a pool of at most 10 connections (minSize 2, so the pool grows on demand):
 * - 60 run a web-request mix, 80% point reads and 20% transfers (a short transaction: two updates in id order and
 *   an insert);
 * - 4 run slow report queries (`pg_sleep` 100-300 ms), holding a connection each meanwhile.
 * Every operation borrows its connection with `pool.withConnection` and times the acquisition itself, so the
 * summary's p50/p99 acquire times are what callers saw. A progress line shows the pool's stats while it runs (on a
 * terminal rewritten in place every 250 ms, otherwise a line per second). At the end the total balance is checked
 * (transfers move money, they never create it), the summary is printed, the pool closes and an embedded server is
 * stopped.
 */
import { NodeRuntime } from "@effect/platform-node"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { SqlClient } from "effect/sql/SqlClient"
import { PgPool } from "../src/index.ts"
import type { PoolStats } from "../src/PoolStats.ts"
import * as Database from "./support/database.ts"

const SECONDS = (() => {
  const raw = process.env.DEMO_SECONDS
  const value = raw === undefined || raw === "" ? 5 : Number(raw)
  if (!Number.isFinite(value) || value <= 0 || value > 600) {
    throw new Error(`DEMO_SECONDS must be in (0, 600], got ${raw}`)
  }
  return value
})()
const WEB_FIBERS = 60
const REPORT_FIBERS = 4
const MAX_SIZE = 10
const ACCOUNTS = 1000
const INITIAL_BALANCE = 1000
const TTY = process.stdout.isTTY === true

class BalanceMismatch extends Data.TaggedError("BalanceMismatch")<{
  readonly before: number
  readonly after: number
}> {}

/** Everything the workload counts. Plain mutable state: the fibers run on one JS thread. */
const counters = {
  reads: 0,
  transfers: 0,
  reports: 0,
  errors: 0,
  errorTags: new Map<string, number>(),
  /** acquisition times in ms, one per operation */
  acquire: [] as Array<number>
}
const opsDone = () => counters.reads + counters.transfers + counters.reports

const recordError = (error: unknown) =>
  Effect.sync(() => {
    counters.errors++
    const tag = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "unknown"
    counters.errorTags.set(tag, (counters.errorTags.get(tag) ?? 0) + 1)
  })

const program = Effect.gen(function*() {
  const sql = yield* SqlClient
  const pool = yield* PgPool.PgPool

  // --- schema -----------------------------------------------------------------------------------------------------
  yield* sql`DROP TABLE IF EXISTS demo_transfers, demo_accounts`
  yield* sql`CREATE TABLE demo_accounts (id integer PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL)`
  yield* sql`CREATE TABLE demo_transfers (
    id         bigserial PRIMARY KEY,
    from_id    integer NOT NULL REFERENCES demo_accounts (id),
    to_id      integer NOT NULL REFERENCES demo_accounts (id),
    amount     bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  )`
  yield* sql`INSERT INTO demo_accounts (id, owner, balance)
    SELECT g, 'owner ' || g, ${INITIAL_BALANCE} FROM generate_series(1, ${ACCOUNTS}::int) AS g`
  const totalBefore = Number(Option.getOrElse(yield* pool.fetchVal("SELECT sum(balance) FROM demo_accounts"), () => 0))
  yield* Console.log(
    `demo: ${ACCOUNTS} accounts; ${WEB_FIBERS + REPORT_FIBERS} fibers (${WEB_FIBERS} web: 80% reads, 20% transfers; ` +
      `${REPORT_FIBERS} slow reports) on a pool of maxSize ${MAX_SIZE} for ${SECONDS} s`
  )

  // --- one operation: borrow, time the acquisition, run ------------------------------------------------------------
  const timed = <A, E>(f: (conn: PgPool.PooledConnection) => Effect.Effect<A, E>) =>
    Effect.suspend(() => {
      const requestedAt = performance.now()
      return pool.withConnection((conn) => {
        counters.acquire.push(performance.now() - requestedAt)
        return f(conn)
      })
    })

  const randomAccount = () => 1 + Math.floor(Math.random() * ACCOUNTS)

  const read = timed((conn) =>
    conn.query("SELECT id, owner, balance FROM demo_accounts WHERE id = $1", [randomAccount()])
  ).pipe(Effect.tap(() => Effect.sync(() => counters.reads++)))

  // A short transaction on the borrowed connection. (Application code would write `sql.withTransaction(...)`; the
  // demo borrows explicitly so that it can time the acquisition.) Rows are locked in id order: no deadlocks.
  const transfer = Effect.suspend(() => {
    const from = randomAccount()
    let to = randomAccount()
    if (to === from) to = from === ACCOUNTS ? 1 : from + 1
    const amount = 1 + Math.floor(Math.random() * 50)
    const [first, second] = from < to ? [from, to] : [to, from]
    return timed((conn) =>
      Effect.gen(function*() {
        yield* conn.query("BEGIN")
        for (const id of [first, second]) {
          yield* conn.query("UPDATE demo_accounts SET balance = balance + $2 WHERE id = $1", [
            id,
            id === from ? -amount : amount
          ])
        }
        yield* conn.query("INSERT INTO demo_transfers (from_id, to_id, amount) VALUES ($1, $2, $3)", [from, to, amount])
        yield* conn.query("COMMIT")
      }).pipe(Effect.onError(() => Effect.ignore(conn.query("ROLLBACK"))))
    ).pipe(Effect.tap(() => Effect.sync(() => counters.transfers++)))
  })

  const report = Effect.suspend(() =>
    timed((conn) =>
      conn.query("SELECT pg_sleep($1::float8 / 1000), count(*) AS n, sum(balance) AS total FROM demo_accounts", [
        100 + Math.floor(Math.random() * 200)
      ])
    ).pipe(Effect.tap(() => Effect.sync(() => counters.reports++)))
  )

  const startedAt = performance.now()
  const deadline = startedAt + SECONDS * 1000
  /** Repeats `op` until the deadline; bounded by the clock and, as a backstop, by a generous iteration count. */
  const loop = <E>(op: Effect.Effect<unknown, E>) =>
    Effect.gen(function*() {
      for (let i = 0; i < 10_000_000 && performance.now() < deadline; i++) {
        yield* op.pipe(Effect.catch(recordError))
      }
    })

  // --- live progress -------------------------------------------------------------------------------------------------
  const baseline = yield* pool.stats
  let lastOps = 0
  let lastAt = startedAt
  const progressLine = (stats: PoolStats) => {
    const now = performance.now()
    const ops = opsDone()
    const rate = (ops - lastOps) / Math.max((now - lastAt) / 1000, 1e-3)
    lastOps = ops
    lastAt = now
    return `[${((now - startedAt) / 1000).toFixed(1).padStart(5)} s] ${fmt(ops).padStart(9)} requests ` +
      `${fmt(rate).padStart(7)}/s | pool ${stats.poolSize}/${stats.poolMax} ` +
      `in use ${String(stats.poolSize - stats.poolAvailable).padStart(2)} ` +
      `idle ${String(stats.poolAvailable).padStart(2)}` +
      ` | waiting ${String(stats.requestsWaiting).padStart(2)} | queued ` +
      `${fmt(stats.requestsQueued - baseline.requestsQueued).padStart(7)} | errors ${counters.errors}`
  }
  const printProgress = Effect.flatMap(pool.stats, (stats) =>
    Effect.sync(() => {
      const line = progressLine(stats)
      // One line rewritten in place; cut to the terminal's width, or it would wrap and stop being one line.
      if (TTY) process.stdout.write(`\r${line.slice(0, terminalWidth())}\x1b[K`)
      else process.stdout.write(`${line}\n`)
    }))
  // Interrupted when the workload ends; bounded anyway, in case it did not.
  const interval = TTY ? 250 : 1000
  const progress = yield* Effect.sleep(interval).pipe(
    Effect.andThen(printProgress),
    Effect.repeat({ while: () => performance.now() < deadline + 10_000 }),
    Effect.forkChild
  )

  // --- the workload -----------------------------------------------------------------------------------------------
  // A web fiber is a stream of requests with a little application time (0-19 ms) between them.
  const web = loop(Effect.suspend(() =>
    Effect.andThen(Effect.sleep(Math.floor(Math.random() * 20)), Math.random() < 0.8 ? read : transfer)
  ))
  yield* Effect.all(
    [
      ...Array.from({ length: WEB_FIBERS }, () => web),
      ...Array.from({ length: REPORT_FIBERS }, () => loop(report))
    ],
    { concurrency: "unbounded", discard: true }
  )
  const elapsed = (performance.now() - startedAt) / 1000
  yield* Fiber.interrupt(progress)
  if (TTY) {
    // The final state, with the average rate rather than the last quarter second's.
    lastOps = 0
    lastAt = startedAt
    yield* printProgress
    process.stdout.write("\n")
  }

  // --- summary -----------------------------------------------------------------------------------------------------
  const stats = yield* pool.stats
  const totalAfter = Number(Option.getOrElse(yield* pool.fetchVal("SELECT sum(balance) FROM demo_accounts"), () => 0))
  const transfersLogged = Number(
    Option.getOrElse(yield* pool.fetchVal("SELECT count(*) FROM demo_transfers"), () => 0)
  )
  const acquire = Float64Array.from(counters.acquire).sort()
  const percentile = (p: number) =>
    acquire.length === 0 ? 0 : acquire[Math.min(acquire.length - 1, Math.floor(p * acquire.length))]!
  const requests = opsDone()
  const poolRequests = stats.requestsNum - baseline.requestsNum
  const queued = stats.requestsQueued - baseline.requestsQueued

  const rows: Array<[string, string]> = [
    ["duration", `${elapsed.toFixed(1)} s, ${WEB_FIBERS + REPORT_FIBERS} fibers, pool maxSize ${MAX_SIZE}`],
    ["requests", `${fmt(requests)} (${fmt(requests / elapsed)}/s)`],
    ["  reads", fmt(counters.reads)],
    ["  transfers", `${fmt(counters.transfers)} (${fmt(transfersLogged)} logged)`],
    ["  slow reports", fmt(counters.reports)],
    ["queued requests", `${fmt(queued)} (${pct(queued, poolRequests)} of ${fmt(poolRequests)} acquisitions)`],
    ["time queued", `${fmt(stats.requestsWaitMs - baseline.requestsWaitMs)} ms in total`],
    ["acquire p50", `${percentile(0.5).toFixed(3)} ms`],
    ["acquire p99", `${percentile(0.99).toFixed(3)} ms`],
    ["acquire max", `${percentile(1).toFixed(3)} ms`],
    [
      "connections opened",
      `${stats.connectionsNum} (pool size now ${stats.poolSize}, ${stats.connectionsErrors} failed)`
    ],
    [
      "errors",
      counters.errors === 0
        ? "0"
        : `${counters.errors} (${[...counters.errorTags].map(([tag, n]) => `${tag}: ${n}`).join(", ")})`
    ],
    ["balance check", totalBefore === totalAfter ? `ok (${fmt(totalAfter)} before and after)` : "MISMATCH"]
  ]
  const width = Math.max(...rows.map(([label]) => label.length))
  yield* Console.log("\nSummary")
  yield* Console.log(`  ${"".padEnd(width, "-")}  ${"".padEnd(40, "-")}`)
  for (const [label, value] of rows) yield* Console.log(`  ${label.padEnd(width)}  ${value}`)
  yield* Console.log("")
  if (totalBefore !== totalAfter) return yield* new BalanceMismatch({ before: totalBefore, after: totalAfter })
  yield* Console.log("demo: closing the pool")
})

/** Room for the progress line on a terminal; a pty of unknown size reports 0 columns. */
const terminalWidth = (): number => {
  const columns = process.stdout.columns
  return columns !== undefined && columns > 20 ? columns - 1 : 200
}
const fmt = (n: number): string => Math.round(n).toLocaleString("en-US")
const pct = (part: number, whole: number): string => whole === 0 ? "0%" : `${((100 * part) / whole).toFixed(1)}%`

const PoolLive = Database.layerPool({ name: "demo", minSize: 2, maxSize: MAX_SIZE, timeout: "5 seconds" })

NodeRuntime.runMain(
  program.pipe(
    // Ctrl+C: the workload's fibers are interrupted, then the pool closes and an embedded server stops.
    Effect.onInterrupt(() => Console.log(`${TTY ? "\n" : ""}demo: interrupted, closing the pool`)),
    Effect.provide(PoolLive),
    Effect.andThen(Console.log("demo: done"))
  )
)
