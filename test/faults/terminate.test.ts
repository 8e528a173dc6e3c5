/**
 * Scenario 3: backends terminated at random under load (`pg_terminate_backend` every 5-25 ms).
 *
 * Asserted:
 * - only leases whose backend was killed fail, each with a broken-connection `SqlError` (ConnectionError, or the
 *   FATAL 57P01 the server sends), never a `PoolTimeout`;
 * - a backend serves at most one failed lease, and that lease is the last it serves: the pool never hands out a
 *   connection it already knew was dead;
 * - every kill is accounted for exactly once: a kill lands on a borrowed connection (`returnsBad`), on an idle one
 *   (`connectionsLost`: the driver reports the FATAL, or the checkout check finds it) or on one being opened
 *   (`connectionsErrors`), so `returnsBad + connectionsLost + connectionsErrors == kills`; likewise
 *   `closed.broken + closed.checkFailed + connectionsErrors == kills`, `failed leases <= returnsBad`, and no
 *   connection is closed for any other reason;
 * - afterwards the pool is back to its size, as `pg_stat_activity` shows.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Schedule } from "effect"
import { waitFor } from "../pg/helpers.ts"
import { adminConnection } from "../support/Db.ts"
import { isConnectionLoss, load, now, poolOn, report, server, tally } from "./rig.ts"

const SIZE = 8
const DURATION_MS = 6000

describe("fault 3: backends terminated at random under load", () => {
  it.live("only statements on killed backends fail, typed; no dead connection is handed out; kills add up", () =>
    Effect.gen(function*() {
      const srv = yield* server()
      const p = yield* poolOn(srv.url, {
        minSize: SIZE,
        maxSize: SIZE,
        timeout: "5 seconds",
        reconnectSchedule: Schedule.min([Schedule.exponential("10 millis", 2), Schedule.spaced("100 millis")])
      })
      yield* p.pool.wait("20 seconds")

      // Which backend each lease ran on, and when it started.
      const leases: Array<{ readonly pid: number; readonly start: number; end: number; failed: boolean }> = []
      const loadFiber = yield* Effect.forkChild(load({
        fibers: 16,
        durationMs: DURATION_MS,
        hardLimitMs: 10_000,
        // Fibers pause between leases, so kills also land on idle connections.
        call: (_fiber, n) =>
          Effect.andThen(
            Effect.sleep(`${Math.floor(Math.random() * 30)} millis`),
            p.pool.withConnection((conn) => {
            const lease = { pid: conn.processId, start: now(), end: 0, failed: false }
            leases.push(lease)
            const statements = n % 2 === 0
              ? conn.query("SELECT pg_sleep($1)", [Math.random() * 0.01])
              : Effect.andThen(conn.query("SELECT 1"), conn.query("SELECT pg_sleep($1)", [Math.random() * 0.005]))
            return statements.pipe(Effect.onExit((exit) =>
              Effect.sync(() => {
                lease.end = now()
                lease.failed = exit._tag === "Failure"
              })
            ))
          }))
      }))

      // The killer: a random backend of the pool not killed yet, every 5-25 ms.
      const kills: Array<{ readonly pid: number; readonly at: number }> = []
      const killer = Effect.scoped(Effect.gen(function*() {
        const conn = yield* adminConnection({ url: srv.url })
        const stopAt = now() + DURATION_MS - 200
        for (let i = 0; i < 2000 && now() < stopAt; i++) {
          yield* Effect.sleep(`${5 + Math.floor(Math.random() * 20)} millis`)
          const result = yield* conn.query(
            `select pid, pg_terminate_backend(pid) as ok from pg_stat_activity
              where application_name = $1 and backend_type = 'client backend' and not (pid = any($2::int[]))
              order by random() limit 1`,
            [p.applicationName, kills.map((k) => k.pid)]
          )
          const row = result.rows[0]
          if (row?.ok === true) kills.push({ pid: Number(row.pid), at: now() })
        }
      }))
      yield* killer
      const { calls, hung } = yield* Fiber.join(loadFiber)

      // Only statements on killed backends fail, and they fail typed.
      assert.strictEqual(hung, 0)
      const killed = new Map(kills.map((k) => [k.pid, k.at]))
      const outcomes = tally(calls.map((c) => c.outcome))
      for (const call of calls) {
        if (call.outcome === "ok") continue
        assert.isTrue(isConnectionLoss(call.error), `unexpected failure: ${call.outcome} ${String(call.error)}`)
      }
      const failedLeases = leases.filter((l) => l.failed)
      assert.strictEqual(failedLeases.length, calls.filter((c) => c.outcome !== "ok").length)
      for (const lease of failedLeases) assert.isTrue(killed.has(lease.pid), `lease on ${lease.pid} failed, not killed`)

      // A backend serves at most one failed lease, and nothing after it.
      const byPid = new Map<number, Array<(typeof leases)[number]>>()
      for (const lease of leases) byPid.set(lease.pid, [...(byPid.get(lease.pid) ?? []), lease])
      for (const [pid, list] of byPid) {
        const failedAt = list.findIndex((l) => l.failed)
        if (failedAt >= 0) {
          assert.strictEqual(failedAt, list.length - 1, `backend ${pid} was handed out after a lease saw it fail`)
        }
      }
      // Leases that started after their backend was killed, before the pool could know (informational).
      const lateLeases = leases.filter((l) => killed.has(l.pid) && l.start > killed.get(l.pid)!).length

      // Every kill is accounted for once the pool has settled.
      const [stats, rows] = yield* waitFor(
        "every kill accounted for and the pool back to size",
        Effect.all([p.pool.stats, p.backends]),
        ([s, rows]) =>
          s.closed.broken + s.closed.checkFailed + s.connectionsErrors === kills.length &&
          s.returnsBad + s.connectionsLost + s.connectionsErrors === kills.length &&
          s.poolSize === SIZE && s.poolAvailable === SIZE && s.connectionsPending === 0 && rows.length === SIZE,
        { times: 200, interval: "50 millis" }
      )
      assert.isAtLeast(stats.returnsBad, failedLeases.length)
      const { broken, checkFailed, ...others } = stats.closed
      for (const [reason, count] of Object.entries(others)) assert.strictEqual(count, 0, `closed.${reason}`)
      assert.strictEqual(stats.connectionsNum - broken - checkFailed, SIZE, "opened - closed = open")
      assert.strictEqual(stats.requestsErrors, 0, "no acquisition failed")
      assert.isAbove(kills.length, 50, "enough kills to mean something")

      yield* report("03-terminate", "Backends terminated at random under load", {
        "load": `16 fibers (pausing 0-30 ms between leases) on a pool of ${SIZE}, ${DURATION_MS / 1000} s of ` +
          "1-2 statement leases (pg_sleep 0-10 ms)",
        "fault": "pg_terminate_backend of a random pool backend every 5-25 ms",
        "kills": kills.length,
        "leases": leases.length,
        "leases failed (all on killed backends)": failedLeases.length,
        "errors by kind": JSON.stringify(Object.fromEntries(Object.entries(outcomes).filter(([k]) => k !== "ok"))),
        "leases that got a backend already killed (before the pool could know)": lateLeases,
        "dead connections handed out after the pool knew": 0,
        "closed.broken / closed.checkFailed / failed connects":
          `${broken} / ${checkFailed} / ${stats.connectionsErrors}`,
        "returnsBad / connectionsLost": `${stats.returnsBad} / ${stats.connectionsLost}`,
        "relation asserted": "returnsBad + connectionsLost + failed connects = kills = closed.broken + " +
          "closed.checkFailed + failed connects; failed leases <= returnsBad",
        "acquisitions failed": stats.requestsErrors,
        "pool size = pg_stat_activity count at end": `${stats.poolSize} = ${rows.length}`
      })
    }), { timeout: 60_000 })
})
