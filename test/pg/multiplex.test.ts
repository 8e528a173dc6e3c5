import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option } from "effect"
import { freshDatabaseScoped } from "../support/Db.ts"
import { makePool, timedMillis, waitFor } from "./helpers.ts"

// Pipelined mode on a real server: single statements share connections, everything else stays exclusive.
describe("multiplex on PostgreSQL", () => {
  it.live("200 concurrent single statements share two connections, 32 at a time each, with correct results", () =>
    Effect.gen(function*() {
      const { pool, sql } = yield* makePool({ minSize: 2, maxSize: 2, multiplex: true })
      yield* pool.wait("5 seconds")
      const results = yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => i),
        (i) =>
          i % 2 === 0
            ? Effect.map(sql<{ x: number }>`SELECT ${i}::int * 2 AS x`, (rows) => rows[0]?.x)
            : Effect.map(pool.fetchVal("SELECT $1::int * 2", [i]), Option.getOrUndefined),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(results, Array.from({ length: 200 }, (_, i) => i * 2))
      const stats = yield* pool.stats
      // 2 connections × multiplexConcurrency 32 joined at once; the other 136 queued for a slot (exclusive: 198).
      assert.deepStrictEqual([stats.requestsNum, stats.requestsQueued, stats.poolSize], [200, 136, 2])
    }))

  it.live("transactions stay exclusive and isolated while shared statements run beside them", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabaseScoped("mux_tx")
      const { pool, sql } = yield* makePool({ minSize: 2, maxSize: 2, multiplex: true }, { url })
      yield* sql`CREATE TABLE t (n int NOT NULL)`
      const failing = sql.withTransaction(
        Effect.andThen(sql`INSERT INTO t VALUES (-1)`, Effect.fail("boom" as const))
      )
      const work = Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (i): Effect.Effect<Exit.Exit<unknown, unknown>> =>
        i % 4 === 0
          ? Effect.exit(failing)
          : i % 4 === 1
          ? Effect.exit(sql.withTransaction(sql`INSERT INTO t VALUES (${i})`))
          : Effect.exit(sql`SELECT count(*)::int AS n FROM t WHERE n < 0`), { concurrency: "unbounded" })
      const exits = yield* work
      // No shared statement ever saw the uncommitted -1 rows of a transaction in flight.
      for (const [i, exit] of exits.entries()) {
        if (i % 4 === 0) assert.isTrue(Exit.isFailure(exit))
        else assert.isTrue(Exit.isSuccess(exit), `statement ${i}`)
        if (i % 4 >= 2 && Exit.isSuccess(exit)) assert.deepStrictEqual(exit.value, [{ n: 0 }])
      }
      const rows = yield* pool.fetchVal("SELECT count(*)::int FROM t")
      assert.deepStrictEqual(rows, Option.some(10))
    }))

  it.live("an interrupted statement in a transaction is cancelled on the server (the lease is pinned)", () =>
    Effect.gen(function*() {
      const { pool, sql, backends } = yield* makePool({ minSize: 1, maxSize: 1, multiplex: true })
      const fiber = yield* Effect.forkChild(sql.withTransaction(sql`SELECT pg_sleep(10)`))
      yield* waitFor("the statement runs", backends, (bs) => bs.some((b) => b.state === "active"))
      const [ms] = yield* timedMillis(Fiber.interrupt(fiber))
      assert.isBelow(ms, 2000)
      yield* waitFor("nothing active", backends, (bs) => bs.every((b) => b.state !== "active"))
      assert.deepStrictEqual(yield* pool.fetchVal("SELECT 1"), Option.some(1))
    }))

  it.live("session state set by a shared statement does not reach later statements", () =>
    Effect.gen(function*() {
      const { sql } = yield* makePool({ minSize: 1, maxSize: 1, multiplex: true })
      yield* sql`SET application_name TO 'leaked'`
      yield* waitFor(
        "reset after the dirty statement",
        sql<{ application_name: string }>`SHOW application_name`,
        (rows) => rows[0]?.application_name !== "leaked",
        { times: 20 }
      )
    }))

  it.live("multiplex refuses a reset that would run after every statement", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(makePool({ multiplex: true, reset: "always" }))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      assert.strictEqual(error?._tag === "Fail" ? (error.error as { field?: string }).field : undefined, "reset")
    }))
})
