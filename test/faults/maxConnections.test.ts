/**
 * Scenario 5: the server's connection slots are exhausted by another client.
 *
 * A server with max_connections 10 and superuser_reserved_connections 3 leaves 7 slots to ordinary roles; another
 * client (raw connections, same role as the pool) holds all 7.
 *
 * Asserted: callers get a `PoolTimeout` at their deadline that carries the server's 53300 "too many clients" error;
 * connects back off (one at a time, at most the schedule's count); when 3 slots free up the pool serves on those,
 * without errors, while it keeps probing for more at the backoff pace; when all free up it grows to `maxSize` under
 * load; afterwards its size is what `pg_stat_activity` shows.
 */
import * as PgConnection from "@effect/sql-pg/PgConnection"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Redacted, Schedule, Scope } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import type { PoolTimeout } from "../../src/PoolError.ts"
import { urlWithCredentials, waitFor } from "../pg/helpers.ts"
import { admin, backendsOn, load, now, poolOn, report, round, server, tally } from "./rig.ts"

const ROLE = "slot_user"
const SECRET = "slot-user-secret-7f3a"
const TIMEOUT_MS = 800

describe("fault 5: max_connections exhausted by another client", () => {
  it.live("typed errors naming the cause, backoff, recovery as slots free up", () =>
    Effect.gen(function*() {
      const srv = yield* server({ maxConnections: 10, settings: { superuser_reserved_connections: 3 } })
      yield* admin(srv.url, (conn) => conn.query(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${SECRET}'`, [], false))
      const roleUrl = urlWithCredentials(ROLE, SECRET, srv.url)

      // The other client takes every slot ordinary roles may use.
      const hogs: Array<Scope.Closeable> = []
      for (let i = 0; i < 20; i++) {
        const scope = yield* Scope.make()
        const exit = yield* Effect.exit(
          PgConnection.make({ url: Redacted.make(roleUrl), applicationName: "hog" }).pipe(Scope.provide(scope))
        )
        if (Exit.isFailure(exit)) {
          yield* Scope.close(scope, Exit.void)
          break
        }
        hogs.push(scope)
      }
      assert.strictEqual(hogs.length, 7, "slots left to ordinary roles")
      const free = (n: number) =>
        Effect.forEach(hogs.splice(0, n), (scope) => Scope.close(scope, Exit.void), { discard: true })
      yield* Effect.addFinalizer(() => free(hogs.length))

      let attempts = 0
      const p = yield* poolOn(srv.url, {
        username: ROLE,
        password: Effect.sync(() => {
          attempts++
          return Redacted.make(SECRET)
        }),
        minSize: 2,
        maxSize: 4,
        timeout: `${TIMEOUT_MS} millis`,
        reconnectSchedule: Schedule.min([Schedule.exponential("100 millis", 2), Schedule.spaced("800 millis")])
      })
      const call = () => p.pool.withConnection((conn) => conn.query("SELECT pg_sleep(0.005)"))

      // Phase 1: no slot at all. Callers get typed errors at their deadline, naming the cause.
      const startedAt = now()
      const exhausted = yield* load({ fibers: 4, durationMs: 2500, hardLimitMs: 5000, call })
      const exhaustedMs = now() - startedAt
      assert.strictEqual(exhausted.hung, 0)
      const exhaustedOutcomes = tally(exhausted.calls.map((c) => c.outcome))
      assert.deepStrictEqual(Object.keys(exhaustedOutcomes), ["PoolTimeout"])
      for (const c of exhausted.calls) {
        assert.isAtMost(c.end - c.start, TIMEOUT_MS + 300)
        const last = (c.error as PoolTimeout).lastConnectError as SqlError
        assert.strictEqual((last.reason.cause as { code?: string }).code, "53300")
        assert.notInclude((c.error as PoolTimeout).message, SECRET)
      }
      const sample = (exhausted.calls[0].error as PoolTimeout).message
      assert.match(sample, /connection slots are reserved|too many clients/)
      // Backoff: 2 connects at first, then one probe per step (100, 200, 400, 800, 800 ms ...).
      const attemptsExhausted = attempts
      assert.isAtLeast(attemptsExhausted, 4)
      assert.isAtMost(attemptsExhausted, 2 + Math.ceil(exhaustedMs / 800) + 2, "no hot loop")
      assert.strictEqual((yield* p.pool.stats).connectionsNum, 0)

      // Phase 2: three slots free. The pool serves on them, without errors, and keeps probing at the backoff pace.
      yield* free(3)
      const partialAt = now()
      const partial = yield* load({ fibers: 6, durationMs: 3000, hardLimitMs: 5000, call })
      const partialOutcomes = tally(partial.calls.map((c) => c.outcome))
      const firstServed = Math.min(...partial.calls.filter((c) => c.outcome === "ok").map((c) => c.end))
      const firstServedMs = firstServed - partialAt
      // Calls waiting while the backoff runs out may still time out; once the pool has served, none fails.
      for (const c of partial.calls) {
        if (c.outcome !== "ok") {
          assert.strictEqual(c.outcome, "PoolTimeout")
          assert.isBelow(c.start, firstServed, "a call failed after the pool served again")
        }
      }
      assert.isAtMost(firstServedMs, 800 + 1000, "served after slots freed (ms)")
      const partialStats = yield* p.pool.stats
      assert.strictEqual(partialStats.poolSize - partialStats.connectionsPending, 3, "all it can get")
      const probesWhilePartial = attempts - attemptsExhausted - 3
      // While it serves on 3 connections it probes for a 4th per the schedule, restarted by the 3 new connections
      // serving (100 + 200 + 400 + 800 + 800 ms: 5 probes in 3 s), not at its first step all along.
      assert.isAtMost(probesWhilePartial, 7, "probes back off while the pool serves")

      // Phase 3: every slot free. Under load the pool grows to maxSize.
      yield* free(hogs.length)
      const fullAt = now()
      const fullLoad = yield* Effect.forkChild(load({ fibers: 6, durationMs: 2500, hardLimitMs: 5000, call }))
      yield* waitFor("maxSize under load", p.pool.stats, (s) => s.poolSize - s.connectionsPending === 4, {
        times: 100,
        interval: "20 millis"
      })
      const growMs = now() - fullAt
      assert.isAtMost(growMs, 800 + 1000, "grown to maxSize after all slots freed (ms)")
      const full = yield* Fiber.join(fullLoad)
      assert.deepStrictEqual(Object.keys(tally(full.calls.map((c) => c.outcome))), ["ok"])
      const [stats, rows] = yield* waitFor(
        "4 connections, as pg_stat_activity shows",
        Effect.all([p.pool.stats, backendsOn(srv.url, p.applicationName)]),
        ([s, rows]) => s.poolSize === 4 && s.connectionsPending === 0 && rows.length === 4,
        { times: 100 }
      )

      yield* report("05-max-connections", "max_connections exhausted by another client", {
        "setup": "max_connections 10, superuser_reserved_connections 3; another client holds the 7 ordinary slots",
        "load": "4-6 fibers, pool 2..4 (timeout 800 ms), reconnect 100 ms ×2 capped 800 ms",
        "phase 1, no slot (ms)": round(exhaustedMs),
        "phase 1 errors seen by callers": JSON.stringify(exhaustedOutcomes),
        "the error callers see": sample.slice(0, 240),
        "connect attempts in phase 1": attemptsExhausted,
        "phase 2, 3 slots free: calls ok / failed": `${partialOutcomes.ok ?? 0} / ${
          partial.calls.length - (partialOutcomes.ok ?? 0)
        }`,
        "first statement served after slots freed (ms)": round(firstServedMs),
        "connections held in phase 2": partialStats.poolSize - partialStats.connectionsPending,
        "probes for a 4th connection during phase 2 (3 s)": probesWhilePartial,
        "phase 3, all slots free: pool size under load": stats.poolSize,
        "time to maxSize after all slots freed (ms)": round(growMs),
        "phase 3 calls (all ok)": full.calls.length,
        "pool size = pg_stat_activity count at end": `${stats.poolSize} = ${rows.length}`
      })
    }), { timeout: 60_000 })
})
