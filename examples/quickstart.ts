/**
 * Quickstart: psycopg's / pycopg's first steps, the Effect way.
 *
 *   npm run example:quickstart          # starts an embedded PostgreSQL
 *   DATABASE_URL=postgres://... npm run example:quickstart
 *
 * In psycopg you open a `ConnectionPool`, borrow a connection with `with pool.connection() as conn`, run statements
 * and commit. Here the pool is a `Layer`: provide it once and every `sql` statement of the program runs on it,
 * `sql.withTransaction` borrows one connection for the whole transaction, and the `PgPool` service adds
 * asyncpg-style helpers (`fetchVal`, `fetchOne`, `executeMany`, ...). When the program ends, the layer's scope
 * closes the pool.
 */
import { NodeRuntime } from "@effect/platform-node"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { SqlClient } from "effect/sql/SqlClient"
import { PgPool } from "../src/index.ts"
import * as Database from "./support/database.ts"

interface Row {
  readonly id: number
  readonly num: number
  readonly data: string
}

class NotToday extends Data.TaggedError("NotToday")<{}> {}

const program = Effect.gen(function*() {
  const sql = yield* SqlClient
  const pool = yield* PgPool.PgPool

  // 1. Schema and plain statements: `sql` templates turn interpolations into parameters, never into SQL text.
  yield* sql`DROP TABLE IF EXISTS quickstart_test`
  yield* sql`CREATE TABLE quickstart_test (id serial PRIMARY KEY, num integer NOT NULL, data text NOT NULL)`
  yield* sql`INSERT INTO quickstart_test ${sql.insert({ num: 100, data: "abc'def" })}`
  const first = yield* sql<Row>`SELECT id, num, data FROM quickstart_test ORDER BY id`
  yield* Console.log("select:", JSON.stringify(first))

  // 2. A transaction: both inserts commit together, on one connection borrowed for the transaction.
  yield* sql.withTransaction(
    Effect.gen(function*() {
      yield* sql`INSERT INTO quickstart_test ${sql.insert({ num: 200, data: "two hundred" })}`
      yield* sql`UPDATE quickstart_test SET data = ${"ABC'DEF"} WHERE num = ${100}`
    })
  )
  yield* Console.log("transaction committed: 2 statements")

  // 3. A transaction that fails is rolled back: its insert is gone, the error is yours to handle.
  const failed = yield* sql.withTransaction(
    Effect.gen(function*() {
      yield* sql`INSERT INTO quickstart_test ${sql.insert({ num: 300, data: "never seen" })}`
      return yield* new NotToday()
    })
  ).pipe(Effect.flip)
  yield* Console.log(`transaction rolled back: ${failed._tag}`)

  // 4. Pool helpers: one statement each, `$1..$n` parameters, like asyncpg / pycopg.
  const inserted = yield* pool.executeMany(
    "INSERT INTO quickstart_test (num, data) VALUES ($1, $2)",
    [[1, "one"], [2, "two"], [3, "three"]]
  )
  yield* Console.log(`executeMany: ${inserted} rows inserted`)
  const count = yield* pool.fetchVal("SELECT count(*)::int FROM quickstart_test")
  yield* Console.log(`fetchVal: count = ${Option.getOrElse(count, () => "none")}`)
  const hundred = yield* pool.fetchOne("SELECT id, num, data FROM quickstart_test WHERE num = $1", [100])
  yield* Console.log("fetchOne:", JSON.stringify(Option.getOrNull(hundred)))
  const missing = yield* pool.fetchOne("SELECT id FROM quickstart_test WHERE num = $1", [300])
  yield* Console.log(`fetchOne (rolled back row): ${Option.isNone(missing) ? "none" : "FOUND"}`)

  // 5. A connection for several statements on one session: psycopg's `with pool.connection() as conn`.
  //    Whatever a borrower leaves on the session (here a SET) is reset before the next borrower gets it.
  const backend = yield* pool.withConnection((conn) =>
    Effect.gen(function*() {
      yield* conn.query("SET statement_timeout = '5s'")
      const result = yield* conn.query("SELECT pg_backend_pid() AS pid, current_setting('statement_timeout') AS st")
      return result.rows[0]
    })
  )
  yield* Console.log("withConnection:", JSON.stringify(backend))
  const after = yield* pool.fetchVal("SELECT current_setting('statement_timeout')")
  yield* Console.log(`next borrower sees statement_timeout = ${Option.getOrElse(after, () => "none")}`)

  const all = yield* sql<Row>`SELECT id, num, data FROM quickstart_test ORDER BY num`
  yield* Console.log(`rows (${all.length}):`)
  for (const row of all) yield* Console.log(`  ${row.id}\t${row.num}\t${row.data}`)

  const stats = yield* pool.stats
  yield* Console.log(
    `pool.stats: poolSize=${stats.poolSize} poolAvailable=${stats.poolAvailable} requestsNum=${stats.requestsNum} ` +
      `requestsQueued=${stats.requestsQueued} connectionsNum=${stats.connectionsNum} usageMs=${stats.usageMs}`
  )
  yield* sql`DROP TABLE quickstart_test`
  yield* Console.log("quickstart: done")
})

// The pool is a layer: `PgPool.layer({ url, minSize, maxSize, ... })`. `Database.layerPool` fills in `url` from
// DATABASE_URL or an embedded server; in an application you would write `PgPool.layer({ url: ... })` or
// `PgPool.PgPoolLive` (reads DATABASE_URL, PGPOOL_MAX_SIZE, ...).
const PoolLive = Database.layerPool({ name: "quickstart", minSize: 1, maxSize: 4, timeout: "10 seconds" })

NodeRuntime.runMain(program.pipe(Effect.provide(PoolLive)))
