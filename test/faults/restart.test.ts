/**
 * Scenario 1: the server restarts under load (64 fibers on a pool of 10).
 *
 * Asserted: during the outage every call ends within the pool timeout (1 s) plus 1 s, with a typed error (a
 * `PoolTimeout`, or a broken-connection `SqlError` for statements on sessions the shutdown killed); no call hangs;
 * once the server accepts connections again the pool serves within 2.5 s and is back to 10 open connections within
 * 4 s, by itself (reconnect backoff 100 ms doubling, capped at 500 ms); afterwards nobody waits, and the pool's size
 * is what `pg_stat_activity` shows for it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Schedule } from "effect"
import { waitFor } from "../pg/helpers.ts"
import { isConnectionLoss, load, now, percentile, poolOn, report, round, server, tally } from "./rig.ts"

const TIMEOUT_MS = 1000
const CALL_BOUND_MS = TIMEOUT_MS + 1000
const FIRST_SERVE_BOUND_MS = 2500
const REFILL_BOUND_MS = 4000
const OUTAGE_MS = 2500

describe("fault 1: server restart under load", () => {
  it.live("64 fibers on a pool of 10: typed errors within the timeout during the outage, self-healing after", () =>
    Effect.gen(function*() {
      const srv = yield* server()
      const p = yield* poolOn(srv.url, {
        minSize: 10,
        maxSize: 10,
        timeout: `${TIMEOUT_MS} millis`,
        connectTimeout: "2 seconds",
        reconnectSchedule: Schedule.min([Schedule.exponential("100 millis", 2), Schedule.spaced("500 millis")])
      })
      yield* p.pool.wait("20 seconds")

      // A monitor samples the pool's open connections, to time the refill.
      const samples: Array<{ readonly t: number; readonly open: number }> = []
      const monitor = yield* Effect.forkChild(Effect.gen(function*() {
        for (let i = 0; i < 1000; i++) {
          const s = yield* p.pool.stats
          samples.push({ t: now(), open: s.poolSize - s.connectionsPending })
          yield* Effect.sleep("20 millis")
        }
      }))

      // The load: a third each of the pool's helper, SqlClient statements and transactions.
      const loadFiber = yield* Effect.forkChild(load({
        fibers: 64,
        durationMs: 10_000,
        hardLimitMs: CALL_BOUND_MS + 3000,
        call: (fiber, n) => {
          switch ((fiber + n) % 3) {
            case 0:
              return p.pool.fetch("SELECT pg_sleep(0.002)")
            case 1:
              return p.sql`SELECT pg_sleep(0.002)`
            default:
              return p.sql.withTransaction(Effect.andThen(p.sql`SELECT 1`, p.sql`SELECT pg_sleep(0.002)`))
          }
        }
      }))

      yield* Effect.sleep("2 seconds")
      const downAt = now()
      yield* srv.stop
      const stoppedAt = now()
      yield* Effect.sleep(`${OUTAGE_MS} millis`)
      yield* srv.start
      const upAt = now()
      const { calls, hung } = yield* Fiber.join(loadFiber)
      yield* Fiber.interrupt(monitor)

      // No call hangs, every call ends within the bound, every failure is typed.
      assert.strictEqual(hung, 0, "calls cut by the hard limit")
      const durations = calls.map((c) => c.end - c.start)
      const slowest = Math.max(...durations)
      assert.isAtMost(slowest, CALL_BOUND_MS, "slowest call (ms)")
      const outcomes = tally(calls.map((c) => c.outcome))
      for (const call of calls) {
        if (call.outcome === "ok" || call.outcome === "PoolTimeout") continue
        assert.isTrue(
          isConnectionLoss(call.error),
          `untyped or unexpected failure: ${call.outcome} ${String(call.error)}`
        )
      }
      const failed = calls.filter((c) => c.outcome !== "ok")
      assert.isAbove(failed.length, 0, "the outage was seen by callers")
      // Failures happen only around the outage, not before it.
      for (const call of failed) assert.isAtLeast(call.end, downAt, "a failure before the server went down")

      // Recovery: the first statement served after the server came back, and the pool back to 10 connections.
      const firstOk = Math.min(...calls.filter((c) => c.outcome === "ok" && c.end > upAt).map((c) => c.end))
      const firstServeMs = firstOk - upAt
      assert.isAtMost(firstServeMs, FIRST_SERVE_BOUND_MS, "first statement served after the server came back (ms)")
      const refilled = samples.find((s) => s.t > upAt && s.open === 10)
      assert.isDefined(refilled, "the pool refilled to 10 by itself")
      const refillMs = refilled!.t - upAt
      assert.isAtMost(refillMs, REFILL_BOUND_MS, "time to refill (ms)")
      const lastFailure = Math.max(...failed.map((c) => c.end))

      // Nobody is left waiting; the pool and the server agree on the connection count.
      const settled = yield* waitFor(
        "pool idle at 10 connections, as pg_stat_activity shows",
        Effect.all([p.pool.stats, p.backends]),
        ([s, rows]) =>
          s.requestsWaiting === 0 && s.poolSize === 10 && s.poolAvailable === 10 && s.connectionsPending === 0 &&
          rows.length === 10,
        { times: 100, interval: "50 millis" }
      )
      const stats = settled[0]
      assert.strictEqual(stats.requestsWaiting, 0)

      yield* report("01-restart", "Server restart under load", {
        "load": "64 fibers, pool of 10, 10 s of statements (helper / SqlClient / transaction)",
        "fault": `fast shutdown, server down ${round(upAt - stoppedAt)} ms (stop took ${round(stoppedAt - downAt)} ms)`,
        "calls": calls.length,
        "calls ok": outcomes.ok ?? 0,
        "errors seen by callers": failed.length,
        "errors by kind": JSON.stringify(Object.fromEntries(Object.entries(outcomes).filter(([k]) => k !== "ok"))),
        "calls that hung": hung,
        "slowest call (ms), bound": `${round(slowest)} / ${CALL_BOUND_MS}`,
        "p99 call (ms)": round(percentile(durations, 99)),
        "first statement served after server up (ms), bound": `${round(firstServeMs)} / ${FIRST_SERVE_BOUND_MS}`,
        "pool back to 10 connections after server up (ms), bound": `${round(refillMs)} / ${REFILL_BOUND_MS}`,
        "last caller error after server up (ms)": round(Math.max(0, lastFailure - upAt)),
        "connections lost / closed broken": `${stats.connectionsLost} / ${stats.closed.broken}`,
        "failed connects during the outage": stats.connectionsErrors,
        "pool size = pg_stat_activity count at end": `${stats.poolSize} = ${settled[1].length}`,
        "waiters left": stats.requestsWaiting
      })
    }), { timeout: 60_000 })
})
