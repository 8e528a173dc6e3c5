/**
 * Scenario 2: the server is down when the pool starts.
 *
 * Asserted: the layer builds at once; `wait` asked for fails with a `PoolTimeout` at its deadline; connects are
 * retried one at a time, spaced per the reconnect schedule (100 ms doubling, capped at 800 ms, no jitter), counted
 * at a proxy in front of the server; `onReconnectFailed` fires once after `reconnectTimeout` (1 s); when the server
 * comes up the pool reaches `minSize` within the schedule's cap plus 1.2 s, and serves.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import type { ReconnectFailed } from "../../src/Pool.ts"
import type { PoolTimeout } from "../../src/PoolError.ts"
import { captureLogs, timedMillis, waitFor } from "../pg/helpers.ts"
import * as Proxy from "../support/Proxy.ts"
import { backendsOn, now, poolOn, report, round, server } from "./rig.ts"

const STEPS = [100, 200, 400, 800]
const CAP_MS = 800
const RECOVERY_BOUND_MS = CAP_MS + 1200

describe("fault 2: server down at start", () => {
  it.live("the layer builds, wait fails fast, connects back off per the schedule, the pool recovers", () =>
    Effect.gen(function*() {
      const srv = yield* server()
      yield* srv.stop
      const proxy = yield* Proxy.make(srv.instance.port)
      const failures: Array<ReconnectFailed> = []
      const logs = captureLogs()

      const [buildMs, p] = yield* timedMillis(poolOn(proxy.urlFor(srv.url), {
        minSize: 2,
        maxSize: 4,
        timeout: "500 millis",
        reconnectSchedule: Schedule.min([Schedule.exponential("100 millis", 2), Schedule.spaced(`${CAP_MS} millis`)]),
        reconnectTimeout: "1 second",
        onReconnectFailed: (info) => Effect.sync(() => failures.push(info))
      }).pipe(Effect.provide(logs.layer)))
      const startedAt = now()
      assert.isBelow(buildMs, 1000, "the layer builds without a server")

      // wait fails fast with a PoolTimeout that says why.
      const [waitMs, waitError] = yield* timedMillis(Effect.flip(p.pool.wait("300 millis")))
      assert.strictEqual(waitError._tag, "PoolTimeout")
      assert.isAtLeast(waitMs, 290)
      assert.isAtMost(waitMs, 300 + 300, "wait ends at its deadline")
      // A caller gets a PoolTimeout at its deadline, carrying the last connect error.
      const [callMs, callError] = yield* timedMillis(Effect.flip(p.pool.fetch("SELECT 1")))
      assert.strictEqual(callError._tag, "PoolTimeout")
      const last = (callError as PoolTimeout).lastConnectError as SqlError | undefined
      assert.strictEqual(last?.reason._tag, "ConnectionError")
      assert.isAtMost(callMs, 500 + 300)

      // Keep the server down for 3 s in all, then look at the attempts the proxy saw.
      yield* Effect.sleep(`${Math.max(0, 3000 - (now() - startedAt))} millis`)
      const attempts = (yield* proxy.connections).map((c) => c.acceptedAt)
      const stats = yield* proxy.stats
      assert.strictEqual(stats.upstreamFailures, stats.upstreamConnects, "every attempt failed")
      assert.strictEqual(stats.accepted, attempts.length)
      // The first wave is one connect per wanted connection (minSize 2), started together; then one probe at a time.
      const wave = attempts.filter((t) => t - attempts[0] < 50).length
      assert.strictEqual(wave, 2, "first wave")
      const probes = attempts.slice(wave)
      const gaps = probes.map((t, i) => t - (i === 0 ? attempts[wave - 1] : probes[i - 1]))
      gaps.forEach((gap, i) => {
        const step = STEPS[Math.min(i, STEPS.length - 1)]
        assert.isAtLeast(gap, step - 15, `gap ${i} follows the schedule (${step} ms)`)
        assert.isAtMost(gap, step + 250, `gap ${i} follows the schedule (${step} ms)`)
      })
      // 3 s: 100 + 200 + 400 + 800 + 800 = 2300 ms for five probes; a sixth lands at 3100 ms.
      assert.isAtLeast(probes.length, 4)
      assert.isAtMost(probes.length, 6, "no hot loop")
      const poolStats = yield* p.pool.stats
      assert.strictEqual(poolStats.connectionsErrors, stats.accepted, "the pool counted every failed connect")
      assert.isAtMost(poolStats.connectionsPending, 1, "one probe at a time")

      // onReconnectFailed fired once, after reconnectTimeout of failures.
      assert.strictEqual(failures.length, 1)
      assert.isAtLeast(failures[0].elapsedMs, 1000)
      assert.isAtLeast(failures[0].attempts, 2)
      // ... and the pool logged it once, as an error.
      const errorLogs = logs.entries.filter((e) => e.level === "Error")
      assert.strictEqual(errorLogs.length, 1)
      assert.include(errorLogs[0].message, "still retrying")

      // The server comes up: the pool reaches minSize by itself and serves.
      yield* srv.start
      const upAt = now()
      yield* p.pool.wait("10 seconds")
      const recoveryMs = now() - upAt
      assert.isAtMost(recoveryMs, RECOVERY_BOUND_MS, "minSize reached after the server came up (ms)")
      assert.deepStrictEqual(yield* p.pool.fetch("SELECT 1 AS one"), [{ one: 1 }])
      const [final, rows] = yield* waitFor(
        "2 connections, as pg_stat_activity shows",
        Effect.all([p.pool.stats, backendsOn(srv.url, p.applicationName)]),
        ([s, rows]) => s.poolSize === 2 && s.connectionsPending === 0 && rows.length === 2
      )
      assert.strictEqual(failures.length, 1, "onReconnectFailed fired once per outage")

      yield* report("02-down-at-start", "Server down at start", {
        "setup": "pool minSize 2 / maxSize 4 through a proxy to a stopped server; reconnect 100 ms ×2 capped 800 ms",
        "layer build time without a server (ms)": round(buildMs),
        "wait(300 ms) failed with": `${waitError._tag} after ${round(waitMs)} ms`,
        "caller (timeout 500 ms) failed with": `${callError._tag} after ${round(callMs)} ms (last connect error: ${
          last?.reason._tag
        })`,
        "connect attempts the server saw in 3 s": attempts.length,
        "first wave / probes": `${wave} / ${probes.length}`,
        "gaps between probes (ms)": gaps.map(round).join(", "),
        "onReconnectFailed calls": failures.length,
        "onReconnectFailed after (ms, attempts)":
          `${round(failures[0].elapsedMs)} ms, ${failures[0].attempts} attempts`,
        "minSize reached after server up (ms), bound": `${round(recoveryMs)} / ${RECOVERY_BOUND_MS}`,
        "pool size = pg_stat_activity count at end": `${final.poolSize} = ${rows.length}`
      })
    }), { timeout: 60_000 })
})
