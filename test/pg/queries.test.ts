import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { freshDatabaseScoped } from "../support/Db.ts"
import { makePool } from "./helpers.ts"

const callers = Array.from({ length: 200 }, (_, i) => i)

describe("queries on a real server", () => {
  it.live("sql templates return correct results under 200 concurrent callers", () =>
    Effect.gen(function*() {
      const { pg, pool, sql } = yield* makePool({ minSize: 2, maxSize: 10 })
      const results = yield* Effect.forEach(
        callers,
        (i) => sql`SELECT ${i}::int AS i, ${`v${i}`}::text AS s, ${pg.json({ i })} AS j`,
        { concurrency: "unbounded" }
      )
      results.forEach((rows, i) => assert.deepStrictEqual(rows, [{ i, s: `v${i}`, j: { i } }]))
      const stats = yield* pool.stats
      assert.isAtMost(stats.poolSize, 10)
      assert.strictEqual(stats.requestsErrors, 0)
      assert.strictEqual(stats.returnsBad, 0)
    }))

  const helpers = "helpers (execute, fetch, fetchOne, fetchVal, executeMany, fetchMany)"
  it.live(`${helpers} return correct results under 200 concurrent callers`, () =>
    Effect.gen(function*() {
      const url = yield* freshDatabaseScoped("pg queries helpers")
      const { pool } = yield* makePool({ minSize: 2, maxSize: 10 }, { url })
      yield* pool.execute("CREATE TABLE kv (caller int NOT NULL, k int NOT NULL, PRIMARY KEY (caller, k))")
      yield* Effect.forEach(callers, (i) =>
        Effect.gen(function*() {
          const executed = yield* pool.execute("SELECT $1::int AS i, $2::text AS s", [i, `v${i}`])
          assert.strictEqual(executed.command, "SELECT")
          assert.deepStrictEqual(executed.rows, [{ i, s: `v${i}` }])
          assert.deepStrictEqual(
            yield* pool.fetch("SELECT g AS n FROM generate_series($1::int, $1::int + 2) g", [i]),
            [{ n: i }, { n: i + 1 }, { n: i + 2 }]
          )
          const one = yield* pool.fetchOne("SELECT $1::int * 2 AS double", [i])
          assert.deepStrictEqual(one, Option.some({ double: i * 2 }))
          assert.deepStrictEqual(yield* pool.fetchOne("SELECT 1 WHERE false"), Option.none())
          assert.deepStrictEqual(yield* pool.fetchVal("SELECT $1::int + 1000, 'ignored'", [i]), Option.some(i + 1000))
          assert.deepStrictEqual(yield* pool.fetchVal("SELECT 1 WHERE false"), Option.none())
          const inserted = yield* pool.executeMany("INSERT INTO kv (caller, k) VALUES ($1, $2)", [
            [i, 1],
            [i, 2],
            [i, 3]
          ])
          assert.strictEqual(inserted, 3)
          assert.deepStrictEqual(
            yield* pool.fetchMany("SELECT k FROM kv WHERE caller = $1 AND k >= $2 ORDER BY k", [
              [i, 1],
              [i, 3],
              [i, 4]
            ]),
            [[{ k: 1 }, { k: 2 }, { k: 3 }], [{ k: 3 }], []]
          )
        }), { concurrency: "unbounded", discard: true })
      assert.deepStrictEqual(yield* pool.fetchVal("SELECT count(*)::int FROM kv"), Option.some(600))
      const stats = yield* pool.stats
      assert.isAtMost(stats.poolSize, 10)
      assert.strictEqual(stats.requestsErrors, 0)
      assert.strictEqual(stats.returnsBad, 0)
    }))

  it.live("executeMany of 200 concurrent batches × 4 rows leaves exactly 800 rows", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabaseScoped("pg queries executemany")
      const { pool } = yield* makePool({ minSize: 2, maxSize: 10 }, { url })
      yield* pool.execute("CREATE TABLE batch (caller int NOT NULL, k int NOT NULL, PRIMARY KEY (caller, k))")
      const counts = yield* Effect.forEach(
        callers,
        (i) => pool.executeMany("INSERT INTO batch (caller, k) VALUES ($1, $2)", [[i, 0], [i, 1], [i, 2], [i, 3]]),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(counts, callers.map(() => 4))
      const rows = yield* pool.fetch(
        "SELECT count(*)::int AS n, count(DISTINCT caller)::int AS callers, " +
          "count(DISTINCT (caller, k))::int AS pairs FROM batch"
      )
      assert.deepStrictEqual(rows, [{ n: 800, callers: 200, pairs: 800 }])
    }))

  it.live("a failing executeMany batch leaves none of its rows", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabaseScoped("pg queries executemany fail")
      const { pool } = yield* makePool({ minSize: 1, maxSize: 2 }, { url })
      yield* pool.execute("CREATE TABLE batch (k int PRIMARY KEY)")
      const error = yield* Effect.flip(
        pool.executeMany("INSERT INTO batch (k) VALUES ($1)", [[1], [2], [2], [3]])
      )
      assert.strictEqual(error._tag, "SqlError")
      assert.strictEqual(error._tag === "SqlError" ? error.reason._tag : undefined, "UniqueViolation")
      assert.deepStrictEqual(yield* pool.fetchVal("SELECT count(*)::int FROM batch"), Option.some(0))
      // The connection went back clean: the next batch commits.
      assert.strictEqual(yield* pool.executeMany("INSERT INTO batch (k) VALUES ($1)", [[1], [2]]), 2)
      assert.deepStrictEqual(yield* pool.fetchVal("SELECT count(*)::int FROM batch"), Option.some(2))
    }))
})
