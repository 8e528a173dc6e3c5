/**
 * Scenario 7: money is never lost. Concurrent transfer transactions between 20 accounts, each recording its transfer
 * id in the same transaction, while pool backends are killed every 30-80 ms and the server restarts once.
 *
 * Asserted: the total balance is unchanged; every account's balance is exactly its opening balance plus the
 * transfers recorded for it (each transfer committed whole or not at all); every transfer id is recorded at most
 * once and only for a transfer that was attempted; every transfer the client saw succeed is recorded; every failure
 * the client saw is typed (a lost connection or a `PoolTimeout`), never a defect.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Schedule } from "effect"
import type { PgPool } from "../../src/index.ts"
import { isConnectionLoss, killer, load, now, poolErrorIn, poolOn, report, round, server, tally } from "./rig.ts"

const ACCOUNTS = 20
const OPENING = 1000
const DURATION_MS = 8000

describe("fault 7: money never lost", () => {
  it.live("transfers under killed backends and a restart: totals hold, each transfer whole or not at all", () =>
    Effect.gen(function*() {
      const srv = yield* server()
      const p = yield* poolOn(srv.url, {
        minSize: 8,
        maxSize: 8,
        timeout: "2 seconds",
        reconnectSchedule: Schedule.min([Schedule.exponential("50 millis", 2), Schedule.spaced("400 millis")])
      })
      const sql = p.sql
      yield* sql`CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)`
      yield* sql`CREATE TABLE transfers (id text PRIMARY KEY, src int NOT NULL, dst int NOT NULL, amount int NOT NULL)`
      yield* sql`INSERT INTO accounts SELECT g, ${OPENING} FROM generate_series(1, ${ACCOUNTS}) g`
      yield* p.pool.wait("20 seconds")

      const attempted = new Set<string>()
      const confirmed = new Set<string>()
      const transfer = (fiber: number, n: number) =>
        Effect.suspend(() => {
          const id = `t-${fiber}-${n}`
          const a = 1 + Math.floor(Math.random() * ACCOUNTS)
          const b = 1 + ((a + Math.floor(Math.random() * (ACCOUNTS - 1))) % ACCOUNTS)
          const amount = 1 + Math.floor(Math.random() * 50)
          // Lower id first, so concurrent transfers never deadlock.
          const [first, firstDelta, second, secondDelta] = a < b ? [a, -amount, b, amount] : [b, amount, a, -amount]
          const body = Effect.all([
            sql`UPDATE accounts SET balance = balance + ${firstDelta} WHERE id = ${first}`,
            sql`UPDATE accounts SET balance = balance + ${secondDelta} WHERE id = ${second}`,
            sql`INSERT INTO transfers (id, src, dst, amount) VALUES (${id}, ${a}, ${b}, ${amount})`
          ], { discard: true })
          attempted.add(id)
          // Half through SqlClient's transactions, half through the pool service's.
          const tx = n % 2 === 0 ? sql.withTransaction(body) : (p.pool as PgPool.PgPool).withTransaction(body)
          return Effect.tap(tx, () => Effect.sync(() => confirmed.add(id)))
        })

      const loadStart = now()
      const loadFiber = yield* Effect.forkChild(load({
        fibers: 16,
        durationMs: DURATION_MS,
        hardLimitMs: 10_000,
        call: transfer
      }))

      // Faults: kill a random pool backend every 30-80 ms; restart the server once, halfway.
      let kills = 0
      const killing = Effect.map(
        killer(srv.url, p.applicationName, { minMs: 30, maxMs: 80, durationMs: DURATION_MS - 500 }),
        (n) => (kills = n)
      )
      const restarter = Effect.gen(function*() {
        yield* Effect.sleep(`${DURATION_MS / 2} millis`)
        yield* srv.stop
        yield* Effect.sleep("500 millis")
        yield* srv.start
      })
      yield* Effect.all([killing, restarter], { concurrency: "unbounded", discard: true })
      const { calls, hung } = yield* Fiber.join(loadFiber)
      const loadMs = now() - loadStart

      // Every failure the client saw is typed.
      assert.strictEqual(hung, 0)
      const outcomes = tally(calls.map((c) => c.outcome))
      for (const call of calls) {
        if (call.outcome === "ok") continue
        assert.isTrue(
          isConnectionLoss(call.error) || poolErrorIn(call.error)?._tag === "PoolTimeout",
          `unexpected failure: ${call.outcome} ${String(call.error)}`
        )
      }

      // The books balance.
      const [{ total }] = yield* sql<{ total: string }>`SELECT sum(balance)::text AS total FROM accounts`
      assert.strictEqual(Number(total), ACCOUNTS * OPENING, "total balance")
      const recorded = yield* sql<{ id: string }>`SELECT id FROM transfers`
      const ids = new Set(recorded.map((r) => r.id))
      assert.strictEqual(ids.size, recorded.length, "every transfer id recorded once")
      for (const id of ids) assert.isTrue(attempted.has(id), `recorded transfer ${id} was never attempted`)
      for (const id of confirmed) assert.isTrue(ids.has(id), `confirmed transfer ${id} is missing`)
      const mismatched = yield* sql<{ id: number }>`
        SELECT a.id FROM accounts a
         WHERE a.balance <> ${OPENING}
           - coalesce((SELECT sum(amount) FROM transfers WHERE src = a.id), 0)
           + coalesce((SELECT sum(amount) FROM transfers WHERE dst = a.id), 0)`
      assert.deepStrictEqual(mismatched, [], "each balance is its opening balance plus its recorded transfers")
      const ambiguous = [...ids].filter((id) => !confirmed.has(id)).length
      const stats = yield* p.pool.stats

      yield* report("07-money", "Money never lost", {
        "load": `16 fibers, ${DURATION_MS / 1000} s of transfer transactions between ${ACCOUNTS} accounts (pool of 8)`,
        "faults": `${kills} backends killed (every 30-80 ms), 1 server restart (500 ms down)`,
        "transfers attempted": attempted.size,
        "transfers confirmed to the client": confirmed.size,
        "errors seen by callers": JSON.stringify(
          Object.fromEntries(Object.entries(outcomes).filter(([k]) => k !== "ok"))
        ),
        "transfers committed": ids.size,
        "committed though the client saw an error (lost COMMIT reply)": ambiguous,
        "confirmed transfers missing": 0,
        "total balance before / after": `${ACCOUNTS * OPENING} / ${Number(total)}`,
        "accounts whose balance disagrees with their transfers": mismatched.length,
        "connections closed broken / failed connects": `${stats.closed.broken} / ${stats.connectionsErrors}`,
        "load duration (ms)": round(loadMs)
      })
    }), { timeout: 90_000 })
})
