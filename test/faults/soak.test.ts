/**
 * Scenario 10: soak. Two minutes of mixed load with faults: a 60 s warm-up, then 60 s measured, alike: both kill a
 * pool backend every 0.5-1.5 s and restart the server once.
 *
 * Asserted: after the measured phase, with the load stopped and the pool settled, the heap (after a forced,
 * memory-reducing garbage collection) and the RSS are within 10% of their values after the warm-up (settled the same
 * way; a full collection also runs every second throughout, so neither phase leaves a different V8 peak behind in
 * the allocator); the process holds no more active handles and requests (`process.getActiveResourcesInfo()`) than
 * after the warm-up; every failure a caller saw was typed; the pool is back to its size, as `pg_stat_activity` shows.
 *
 * `PGPOOL_SOAK_SECONDS` shortens the run for local iteration (default 120).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Schedule } from "effect"
import * as V8 from "node:v8"
import * as Vm from "node:vm"
import { waitFor } from "../pg/helpers.ts"
import { killer, load, type LoadResult, now, poolOn, report, round, server } from "./rig.ts"

const TOTAL_S = Number(process.env.PGPOOL_SOAK_SECONDS ?? 120)
// The two phases are alike (same load, kills and a restart each), so the warm-up reaches the same peaks as the
// measured phase: what stays after a memory-reducing GC can then be compared, and only growth shows.
const WARMUP_MS = Math.round(TOTAL_S * 1000 / 2)
const MEASURED_MS = TOTAL_S * 1000 - WARMUP_MS
const SIZE = 8

/**
 * A full, memory-reducing garbage collection (the "last resort" kind, which also hands free heap pages back to the
 * OS, so RSS measures what is retained rather than V8's slack), without `--expose-gc` on the command line: the flag
 * can be set at run time and the function taken from a fresh context.
 */
const collect: (options?: object) => void = (() => {
  V8.setFlagsFromString("--expose-gc")
  return Vm.runInNewContext("gc") as (options?: object) => void
})()
const gc = () => collect({ type: "major", execution: "sync", flavor: "last-resort" })

const resources = (): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const type of process.getActiveResourcesInfo()) out[type] = (out[type] ?? 0) + 1
  return out
}
const totalOf = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0)

const typed = (outcome: string) =>
  outcome === "ok" || outcome === "PoolTimeout" ||
  /^SqlError\/(ConnectionError|UnknownError\/57P0[1-3])/.test(outcome)

describe("fault 10: soak", () => {
  it.live(`${TOTAL_S} s of mixed load with faults: memory and handles back to their warm-up level`, () =>
    Effect.gen(function*() {
      const srv = yield* server()
      const p = yield* poolOn(srv.url, {
        minSize: SIZE,
        maxSize: SIZE,
        timeout: "3 seconds",
        reconnectSchedule: Schedule.min([Schedule.exponential("50 millis", 2), Schedule.spaced("500 millis")])
      })
      yield* p.sql`CREATE TABLE soak (id bigserial PRIMARY KEY, fiber int, payload text)`
      yield* p.pool.wait("20 seconds")

      let cut = 0
      const work = (fiber: number, n: number): Effect.Effect<unknown, unknown> => {
        switch ((fiber + n) % 6) {
          case 0:
            return p.pool.fetch("SELECT $1::int AS n, repeat('x', 200) AS pad", [n])
          case 1:
            return p.sql`SELECT ${n}::int AS n, pg_sleep(0.002)`
          case 2:
            return p.sql.withTransaction(Effect.andThen(
              p.sql`INSERT INTO soak (fiber, payload) VALUES (${fiber}, repeat('y', 100))`,
              p.sql`DELETE FROM soak WHERE fiber = ${fiber} AND id < (SELECT max(id) FROM soak WHERE fiber = ${fiber})`
            ))
          case 3:
            // Cut by its own timeout mid-statement: the lease is closed, the connection replaced.
            return Effect.map(Effect.timeoutOption(p.pool.fetch("SELECT pg_sleep(0.05)"), "5 millis"), (result) => {
              if (result._tag === "None") cut++
            })
          case 4:
            return p.pool.withConnection((conn) =>
              Effect.andThen(
                conn.query("SELECT set_config('app.soak', $1, false)", [String(n)]),
                conn.query("SELECT 1")
              )
            )
          default:
            return p.pool.fetchMany("SELECT $1::int AS n", [[1], [2], [3]])
        }
      }

      /** One phase: load, kills and one restart halfway; returns the load's tallies and the kill count. */
      const phase = (durationMs: number) =>
        Effect.gen(function*() {
          const [result, kills] = yield* Effect.all([
            load({ fibers: 24, durationMs, hardLimitMs: 15_000, keep: false, call: work }),
            killer(srv.url, p.applicationName, { minMs: 500, maxMs: 1500, durationMs: durationMs - 1000 }),
            Effect.sleep(`${Math.round(durationMs / 2)} millis`).pipe(
              Effect.andThen(srv.stop),
              Effect.andThen(Effect.sleep("500 millis")),
              Effect.andThen(srv.start)
            )
          ], { concurrency: "unbounded" })
          return { result, kills }
        })

      /** Waits for the pool to be idle at its size, then measures memory and handles. */
      const settle = Effect.gen(function*() {
        yield* waitFor(
          "the pool idle at its size, as pg_stat_activity shows",
          Effect.all([p.pool.stats, p.backends]),
          ([s, rows]) =>
            s.poolSize === SIZE && s.poolAvailable === SIZE && s.connectionsPending === 0 && rows.length === SIZE,
          { times: 200, interval: "50 millis" }
        )
        // Let short timers (cancel grace, metrics, reaper) run out.
        yield* Effect.sleep("2 seconds")
        for (let i = 0; i < 4; i++) {
          gc()
          yield* Effect.sleep("50 millis")
        }
        const memory = process.memoryUsage()
        return {
          heap: memory.heapUsed,
          heapTotal: memory.heapTotal,
          external: memory.external,
          rss: memory.rss,
          resources: resources()
        }
      })

      // A full collection every second keeps V8's heap from growing to a different peak in each phase (what a peak
      // leaves behind in the allocator after the final collection is noise, not retention); RSS every 5 s (a bounded
      // array) shows its course in the report.
      const rssCourse: Array<number> = []
      const sampler = yield* Effect.forkChild(Effect.gen(function*() {
        for (let i = 0; i < 1000; i++) {
          collect()
          if (i % 5 === 0) rssCourse.push(Math.round(process.memoryUsage().rss / 1048576))
          yield* Effect.sleep("1 second")
        }
      }))
      const startedAt = now()
      const warm = yield* phase(WARMUP_MS)
      const baseline = yield* settle
      const measured = yield* phase(MEASURED_MS)
      const loadMs = now() - startedAt
      // Handles settle last: a few timers of the last statements may still be running.
      const end = yield* settle
      const endResources = yield* waitFor(
        "active handles back to the warm-up level",
        Effect.sync(resources),
        (r) => totalOf(r) <= totalOf(baseline.resources),
        { times: 50, interval: "100 millis" }
      ).pipe(Effect.orElseSucceed(resources))

      yield* Fiber.interrupt(sampler)
      const check = (result: LoadResult) => {
        assert.strictEqual(result.hung, 0)
        for (const outcome of Object.keys(result.outcomes)) assert.isTrue(typed(outcome), `untyped failure: ${outcome}`)
      }
      check(warm.result)
      check(measured.result)
      const heapGrowth = end.heap / baseline.heap - 1
      const rssGrowth = end.rss / baseline.rss - 1
      const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`
      const figures = {
        "load": `24 fibers, pool of ${SIZE}, ${round(loadMs / 1000)} s: helper, SqlClient, transactions, ` +
          "statements cut by a 5 ms timeout, session state, batches",
        "faults": `${warm.kills + measured.kills} backends killed (every 0.5-1.5 s), 2 server restarts (500 ms down)`,
        "calls (warm-up / measured)": `${warm.result.count} / ${measured.result.count}`,
        "outcomes (measured)": JSON.stringify(measured.result.outcomes),
        "statements cut by their caller's timeout (all phases)": cut,
        "slowest call (ms)": round(Math.max(warm.result.slowest, measured.result.slowest)),
        "heap after warm-up / at end": `${mb(baseline.heap)} / ${mb(end.heap)} (${(heapGrowth * 100).toFixed(1)}%)`,
        "RSS after warm-up / at end": `${mb(baseline.rss)} / ${mb(end.rss)} (${(rssGrowth * 100).toFixed(1)}%)`,
        "RSS every 5 s (MB)": rssCourse.join(" "),
        "heap total / external after warm-up, at end": `${mb(baseline.heapTotal)} / ${mb(baseline.external)}, ${
          mb(end.heapTotal)
        } / ${mb(end.external)}`,
        "active handles after warm-up / at end": `${totalOf(baseline.resources)} / ${totalOf(endResources)} ${
          JSON.stringify(endResources)
        }`
      }
      yield* report("10-soak", "Soak", figures)
      assert.isAtMost(heapGrowth, 0.10, `heap growth ${JSON.stringify(figures)}`)
      assert.isAtMost(rssGrowth, 0.10, `RSS growth ${JSON.stringify(figures)}`)
      assert.isAtMost(
        totalOf(endResources),
        totalOf(baseline.resources),
        JSON.stringify({ baseline: baseline.resources, end: endResources })
      )
    }), { timeout: (TOTAL_S + 90) * 1000 })
})
