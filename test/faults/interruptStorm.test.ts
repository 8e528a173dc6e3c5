/**
 * Scenario 6: an interruption storm. 10,000 tasks, 100 at a time, each acquiring a connection and running
 * `pg_sleep` of 0-20 ms (through the pool's helpers, SqlClient, a transaction or a scoped connection), each cut by
 * its own `Effect.timeout` of 0-150 ms, so interruptions land while queued, mid-statement, mid-transaction or on
 * release.
 *
 * Asserted afterwards: no task hangs or dies, every failure is the timeout itself; the pool settles with
 * `poolSize == poolAvailable == minSize` and nobody waiting; the server shows exactly the pool's connections, none
 * running a statement and none `idle in transaction`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import { waitFor } from "../pg/helpers.ts"
import { now, outcomeOf, poolOn, report, round, server, tally } from "./rig.ts"

const TASKS = 10_000
const CONCURRENCY = 100
const CUT_MS = 150
const SIZE = 10

describe("fault 6: interruption storm", () => {
  it.live("10,000 tasks interrupted at random points leave no leaked lease, statement or transaction", () =>
    Effect.gen(function*() {
      const srv = yield* server()
      const p = yield* poolOn(srv.url, { minSize: SIZE, maxSize: SIZE, timeout: "10 seconds" })
      yield* p.sql`CREATE TABLE storm (id serial PRIMARY KEY, n int)`.pipe(Effect.asVoid)
      yield* p.pool.wait("20 seconds")

      const task = (i: number): Effect.Effect<unknown, unknown> => {
        const seconds = Math.random() * 0.02
        switch (i % 4) {
          case 0:
            return p.pool.withConnection((conn) => conn.query("SELECT pg_sleep($1)", [seconds]))
          case 1:
            return p.sql`SELECT pg_sleep(${seconds})`
          case 2:
            return p.sql.withTransaction(
              Effect.andThen(p.sql`INSERT INTO storm (n) VALUES (${i})`, p.sql`SELECT pg_sleep(${seconds})`)
            )
          default:
            return Effect.scoped(Effect.flatMap(p.pool.connection(), (conn) =>
              Effect.andThen(conn.query("SELECT 1"), conn.query("SELECT pg_sleep($1)", [seconds]))))
        }
      }

      const startedAt = now()
      const outcomes: Array<string> = []
      yield* Effect.forEach(
        Array.from({ length: TASKS }, (_, i) => i),
        (i) =>
          Effect.exit(Effect.timeout(task(i), Math.floor(Math.random() * CUT_MS))).pipe(
            Effect.timeoutOption("30 seconds"),
            Effect.map((result) => {
              if (result._tag === "None") return outcomes.push("hung")
              const exit = result.value
              if (Exit.isFailure(exit) && Cause.squash(exit.cause) instanceof Cause.TimeoutError) {
                return outcomes.push("cut by its timeout")
              }
              outcomes.push(outcomeOf(exit))
            })
          ),
        { concurrency: CONCURRENCY, discard: true }
      )
      const stormMs = now() - startedAt
      const counts = tally(outcomes)
      assert.strictEqual(outcomes.length, TASKS)
      assert.deepStrictEqual(
        Object.keys(counts).filter((k) => k !== "ok" && k !== "cut by its timeout"),
        [],
        JSON.stringify(counts)
      )

      const settledAt = now()
      const [stats, rows] = yield* waitFor(
        "the pool settled, as pg_stat_activity shows",
        Effect.all([p.pool.stats, p.backends]),
        ([s, rows]) =>
          s.poolSize === SIZE && s.poolAvailable === SIZE && s.connectionsPending === 0 && s.requestsWaiting === 0 &&
          rows.length === SIZE && rows.every((r) => r.state === "idle"),
        { times: 200, interval: "50 millis" }
      )
      const settleMs = now() - settledAt
      assert.strictEqual(stats.poolSize, stats.poolAvailable)
      assert.strictEqual(rows.filter((r) => r.state === "active").length, 0, "statements still running")
      assert.strictEqual(rows.filter((r) => r.state === "idle in transaction").length, 0, "transactions left open")
      // Nothing half-done: every row is from a transaction that committed as a whole (one insert per transaction).
      const [{ total, distinct }] = yield* p.sql<{ total: number; distinct: number }>`
        SELECT count(*)::int AS total, count(DISTINCT n)::int AS distinct FROM storm`
      assert.strictEqual(total, distinct)

      yield* report("06-interrupt-storm", "Interruption storm", {
        "load": `${TASKS} tasks, ${CONCURRENCY} at a time, pool of ${SIZE}; pg_sleep 0-20 ms; ` +
          `each cut at 0-${CUT_MS} ms`,
        "storm duration (ms)": round(stormMs),
        "tasks completed / cut by their timeout": `${counts.ok ?? 0} / ${counts["cut by its timeout"] ?? 0}`,
        "tasks that hung or died": (counts.hung ?? 0) + (counts.defect ?? 0),
        "acquisitions cancelled while queued": stats.requestsCancelled,
        "leases ended by interruption (connection closed)": stats.closed.interrupted,
        "connections closed by reason": JSON.stringify(
          Object.fromEntries(Object.entries(stats.closed).filter(([, n]) => n > 0))
        ),
        "connections opened to replace them": stats.connectionsNum - SIZE,
        "transactions committed": total,
        "time to settle after the storm (ms)": round(settleMs),
        "poolSize / poolAvailable after": `${stats.poolSize} / ${stats.poolAvailable}`,
        "server: connections / active / idle in transaction": `${rows.length} / ${
          rows.filter((r) => r.state === "active").length
        } / ${rows.filter((r) => r.state === "idle in transaction").length}`
      })
    }), { timeout: 120_000 })
})
