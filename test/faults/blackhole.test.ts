/**
 * Scenario 4: the network to the server is blackholed (a proxy accepts connections but passes nothing), then heals.
 *
 * Asserted:
 * - every acquisition during the partition ends with a `PoolTimeout` at its deadline (1 s, within +300 ms), whether
 *   it waited in the queue or was checking an idle connection (`check: { idle: 0 }`: the checkout ping hangs);
 * - every connect the pool starts during the partition is given up after `connectTimeout` (500 ms, within +300 ms);
 * - a statement already running on an open connection when the partition starts is bounded by the caller's own
 *   `Effect.timeout`: the interruption sends a CancelRequest (which cannot get through either) and the driver gives up
 *   its drain after its fixed 5 s limit, so the caller gets control back within its timeout + 5 s (+1 s); the lease,
 *   ended by interruption, is closed;
 * - when traffic flows again the pool serves within 1.5 s and gets back to `minSize`, and the server's view agrees.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Schedule } from "effect"
import { timedMillis, waitFor } from "../pg/helpers.ts"
import * as Proxy from "../support/Proxy.ts"
import { backendsOn, load, now, poolOn, report, round, server, tally } from "./rig.ts"

const TIMEOUT_MS = 1000
const CONNECT_TIMEOUT_MS = 500
const SLACK_MS = 300
const DRIVER_DRAIN_MS = 5000
const HEAL_BOUND_MS = 1500

/** What a connection to PostgreSQL sent first: a CancelRequest, or a startup (a connect). */
const kindOf = (bytes: Buffer | undefined) =>
  bytes === undefined || bytes.length < 8 ? "none" : bytes.readInt32BE(4) === 80877102 ? "cancel" : "connect"

describe("fault 4: blackholed network", () => {
  it.live("acquisitions end with PoolTimeout at the deadline, connectTimeout bounds connects, traffic heals", () =>
    Effect.gen(function*() {
      const srv = yield* server()
      const proxy = yield* Proxy.make(srv.instance.port)
      const p = yield* poolOn(proxy.urlFor(srv.url), {
        minSize: 2,
        maxSize: 4,
        timeout: `${TIMEOUT_MS} millis`,
        connectTimeout: `${CONNECT_TIMEOUT_MS} millis`,
        check: { idle: 0 },
        reconnectSchedule: Schedule.min([Schedule.exponential("100 millis", 2), Schedule.spaced("400 millis")])
      })
      yield* p.pool.wait("20 seconds")

      // A statement on a borrowed connection when the partition starts: bounded by the caller's own timeout.
      const hold = yield* Effect.forkChild(timedMillis(Effect.timeoutOption(
        p.pool.withConnection((conn) =>
          Effect.andThen(conn.query("SELECT 1"), Effect.andThen(Effect.sleep("300 millis"), conn.query("SELECT 2")))
        ),
        "700 millis"
      )))
      yield* Effect.sleep("100 millis")
      yield* proxy.setMode(Proxy.blackhole)
      const partitionAt = now()

      // Acquisitions during the partition: 6 callers for 3 s, each acquiring with the pool's 1 s deadline.
      const during = yield* load({
        fibers: 6,
        durationMs: 3000,
        hardLimitMs: TIMEOUT_MS + DRIVER_DRAIN_MS + 3000,
        call: () => p.pool.withConnection((conn) => conn.query("SELECT 1"))
      })
      const [heldMs, heldResult] = yield* Fiber.join(hold)
      assert.strictEqual(heldResult._tag, "None", "the caller's timeout cut the blackholed statement")
      assert.isAtLeast(heldMs, 700)
      assert.isAtMost(heldMs, 700 + DRIVER_DRAIN_MS + 1000, "the blackholed statement returned (ms)")

      assert.strictEqual(during.hung, 0)
      const outcomes = tally(during.calls.map((c) => c.outcome))
      assert.deepStrictEqual(Object.keys(outcomes), ["PoolTimeout"], JSON.stringify(outcomes))
      const durations = during.calls.map((c) => c.end - c.start)
      for (const d of durations) {
        assert.isAtLeast(d, TIMEOUT_MS - 5)
        assert.isAtMost(d, TIMEOUT_MS + SLACK_MS, "a PoolTimeout at the deadline")
      }

      // Every connect started during the partition was given up after connectTimeout.
      const records = (yield* proxy.connections).filter((c) => c.acceptedIn === "blackhole")
      const connects = records.filter((c) => kindOf(c.firstBytes) === "connect" && c.closedAt !== undefined)
      assert.isAbove(connects.length, 0, "the pool tried to connect during the partition")
      const connectMs = connects.map((c) => c.closedAt! - c.acceptedAt)
      for (const ms of connectMs) {
        assert.isAtMost(ms, CONNECT_TIMEOUT_MS + SLACK_MS, "a connect bounded by connectTimeout")
      }
      const duringStats = yield* p.pool.stats

      // Heal: the pool serves again, by itself.
      yield* proxy.setMode(Proxy.pass)
      const healAt = now()
      const partitionMs = healAt - partitionAt
      const served = yield* waitFor(
        "a statement served after the heal",
        Effect.timeoutOption(p.pool.fetch("SELECT 1 AS one"), "2 seconds"),
        (r) => r._tag === "Some",
        { times: 40, interval: "50 millis" }
      )
      assert.strictEqual(served._tag, "Some")
      const healMs = now() - healAt
      assert.isAtMost(healMs, HEAL_BOUND_MS, "served after the heal (ms)")
      const [stats, rows] = yield* waitFor(
        "minSize connections, as pg_stat_activity shows",
        Effect.all([p.pool.stats, backendsOn(srv.url, p.applicationName)]),
        ([s, rows]) => s.poolSize === 2 && s.poolAvailable === 2 && s.connectionsPending === 0 && rows.length === 2,
        { times: 200, interval: "50 millis" }
      )
      // The lease cut by the caller's timeout was closed (as broken: the driver gave its session up).
      assert.isAtLeast(stats.closed.interrupted + stats.closed.broken, 1, "the cut lease was closed")

      yield* report("04-blackhole", "Blackholed network", {
        "setup": `pool 2..4 through a proxy; timeout ${TIMEOUT_MS} ms, connectTimeout ${CONNECT_TIMEOUT_MS} ms, ` +
          "checkout check always",
        "fault": `proxy blackholes every connection for ${round(partitionMs)} ms (new ones accepted, never answered)`,
        "acquisitions during the partition": during.calls.length,
        "errors seen by callers": JSON.stringify(outcomes),
        "acquisition time during the partition (ms, min-max)": `${round(Math.min(...durations))}-${
          round(Math.max(...durations))
        } (deadline ${TIMEOUT_MS})`,
        "connects during the partition": connects.length,
        "connect give-up time (ms, max), bound": `${round(Math.max(...connectMs))} / ${CONNECT_TIMEOUT_MS + SLACK_MS}`,
        "cancel requests sent into the partition": records.filter((c) => kindOf(c.firstBytes) === "cancel").length,
        "lease blackholed mid-statement, caller's Effect.timeout 700 ms: returned after (ms)": round(heldMs),
        "what bounds it": "the caller's Effect.timeout + the driver's 5 s cancel/drain limit; the lease is then closed",
        "closed broken / interrupted": `${stats.closed.broken} / ${stats.closed.interrupted}`,
        "failed checkout checks / failed connects in the partition":
          `${duringStats.closed.checkFailed} / ${duringStats.connectionsErrors}`,
        "first statement served after the heal (ms), bound": `${round(healMs)} / ${HEAL_BOUND_MS}`,
        "pool size = pg_stat_activity count at end": `${stats.poolSize} = ${rows.length}`
      })
    }), { timeout: 60_000 })
})
