import { assert, describe, it } from "@effect/vitest"
import { Deferred, type Duration, Effect, Fiber, Option } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import { freshDatabaseScoped } from "../support/Db.ts"
import { captureLogs, makePool, type TestPool } from "./helpers.ts"

/** A pool on a fresh database with a table `t (k int primary key)`. */
const setup = (name: string, options: { readonly maxSize?: number; readonly timeout?: Duration.Input } = {}) =>
  Effect.gen(function*() {
    const url = yield* freshDatabaseScoped(name)
    const testPool = yield* makePool({ minSize: 1, maxSize: options.maxSize ?? 2, timeout: options.timeout }, { url })
    yield* testPool.pool.execute("CREATE TABLE t (k int PRIMARY KEY)")
    return testPool
  })

const keys = ({ pool }: TestPool) =>
  Effect.map(pool.fetch("SELECT k FROM t ORDER BY k"), (rows) => rows.map((row) => row.k as number))

class Boom extends Error {
  readonly _tag = "Boom"
}

/** The two ways to open a transaction: `sql.withTransaction` and `pool.withTransaction`. */
const flavours = [
  ["sql.withTransaction", (p: TestPool) => p.sql.withTransaction] as const,
  ["pool.withTransaction", (p: TestPool) => p.pool.withTransaction] as const
] as const

const insert = (p: TestPool, k: number) => p.sql`INSERT INTO t (k) VALUES (${k})`

describe("transactions on a real server", () => {
  for (const [name, withTransaction] of flavours) {
    it.live(`${name} commits on success`, () =>
      Effect.gen(function*() {
        const p = yield* setup(`tx commit ${name}`)
        const result = yield* withTransaction(p)(
          Effect.gen(function*() {
            yield* insert(p, 1)
            yield* insert(p, 2)
            // Inside the transaction its own writes are visible, outside (another connection) they are not yet.
            const inside = yield* p.sql<{ n: number }>`SELECT count(*)::int AS n FROM t`
            const outside = yield* p.pool.withConnection((conn) => conn.query("SELECT count(*)::int AS n FROM t"))
            return [inside[0].n, outside.rows[0].n]
          })
        )
        assert.deepStrictEqual(result, [2, 0])
        assert.deepStrictEqual(yield* keys(p), [1, 2])
      }))

    it.live(`${name} rolls back on failure`, () =>
      Effect.gen(function*() {
        const p = yield* setup(`tx fail ${name}`)
        const error = yield* Effect.flip(withTransaction(p)(
          Effect.gen(function*() {
            yield* insert(p, 1)
            return yield* Effect.fail(new Boom("boom"))
          })
        ))
        assert.strictEqual((error as Boom)._tag, "Boom")
        assert.deepStrictEqual(yield* keys(p), [])
        // A failing statement rolls back too, and its error comes through typed.
        const sqlError = yield* Effect.flip(withTransaction(p)(
          Effect.andThen(insert(p, 1), insert(p, 1))
        ))
        assert.strictEqual((sqlError as SqlError).reason._tag, "UniqueViolation")
        assert.deepStrictEqual(yield* keys(p), [])
      }))

    it.live(`${name} rolls back on interruption`, () =>
      Effect.gen(function*() {
        const p = yield* setup(`tx interrupt ${name}`)
        const inserted = yield* Deferred.make<void>()
        const fiber = yield* withTransaction(p)(
          Effect.gen(function*() {
            yield* insert(p, 1)
            yield* Deferred.succeed(inserted, undefined)
            return yield* Effect.never
          })
        ).pipe(Effect.forkChild)
        yield* Deferred.await(inserted)
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(yield* keys(p), [])
        // The pool serves afterwards.
        yield* withTransaction(p)(insert(p, 7))
        assert.deepStrictEqual(yield* keys(p), [7])
      }))

    it.live(`${name}: a nested savepoint rolls back alone`, () =>
      Effect.gen(function*() {
        const p = yield* setup(`tx nested ${name}`)
        const tx = withTransaction(p)
        yield* tx(
          Effect.gen(function*() {
            yield* insert(p, 1)
            const inner = yield* Effect.flip(tx(Effect.andThen(insert(p, 2), Effect.fail(new Boom("inner")))))
            assert.strictEqual((inner as Boom)._tag, "Boom")
            // A nested failing statement also rolls back to its savepoint and leaves the outer one usable.
            const innerSql = yield* Effect.flip(tx(Effect.andThen(insert(p, 3), insert(p, 1))))
            assert.strictEqual((innerSql as SqlError).reason._tag, "UniqueViolation")
            yield* tx(insert(p, 4))
            yield* insert(p, 5)
          })
        )
        assert.deepStrictEqual(yield* keys(p), [1, 4, 5])
      }))

    it.live(`${name}: a COMMIT answered with ROLLBACK is a failure`, () =>
      Effect.gen(function*() {
        const p = yield* setup(`tx aborted ${name}`)
        const error = yield* Effect.flip(withTransaction(p)(
          Effect.gen(function*() {
            yield* insert(p, 1)
            // The failed statement is swallowed, but PostgreSQL has aborted the transaction.
            yield* Effect.ignore(p.sql`SELECT 1 / 0`)
          })
        ))
        assert.strictEqual(error._tag, "SqlError")
        assert.strictEqual((error as SqlError).reason._tag, "UnknownError")
        assert.strictEqual((error as SqlError).reason.operation, "commit")
        assert.deepStrictEqual(yield* keys(p), [])
      }))
  }

  it.live("pool helpers inside pool.withTransaction run in the transaction", () =>
    Effect.gen(function*() {
      const p = yield* setup("tx helpers", { maxSize: 1, timeout: "3 seconds" })
      const error = yield* Effect.flip(p.pool.withTransaction(
        Effect.gen(function*() {
          yield* p.pool.execute("INSERT INTO t (k) VALUES ($1)", [1])
          assert.strictEqual(yield* p.pool.executeMany("INSERT INTO t (k) VALUES ($1)", [[2], [3]]), 2)
          assert.deepStrictEqual(yield* p.pool.fetchVal("SELECT count(*)::int FROM t"), Option.some(3))
          return yield* Effect.fail(new Boom("undo"))
        })
      ))
      assert.strictEqual((error as Boom)._tag, "Boom")
      assert.deepStrictEqual(yield* keys(p), [])
      yield* p.pool.withTransaction(p.pool.execute("INSERT INTO t (k) VALUES ($1)", [9]))
      assert.deepStrictEqual(yield* keys(p), [9])
    }))

  it.live("a failed executeMany inside a transaction rolls back to its savepoint alone", () =>
    Effect.gen(function*() {
      const p = yield* setup("tx batch savepoint", { maxSize: 1, timeout: "3 seconds" })
      yield* p.pool.withTransaction(
        Effect.gen(function*() {
          yield* p.pool.execute("INSERT INTO t (k) VALUES ($1)", [1])
          const error = yield* Effect.flip(p.pool.executeMany("INSERT INTO t (k) VALUES ($1)", [[2], [3], [1]]))
          assert.strictEqual(error._tag === "SqlError" ? error.reason._tag : error._tag, "UniqueViolation")
          yield* p.pool.execute("INSERT INTO t (k) VALUES ($1)", [4])
        })
      )
      assert.deepStrictEqual(yield* keys(p), [1, 4])
    }))

  it.live("a connection returned with a transaction open is rolled back and reused, with a warning", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabaseScoped("tx left open")
      const logs = captureLogs()
      const p = yield* makePool({ minSize: 1, maxSize: 1 }, { url }).pipe(Effect.provide(logs.layer))
      yield* p.pool.execute("CREATE TABLE t (k int PRIMARY KEY)")
      const first = yield* Effect.scoped(Effect.gen(function*() {
        const conn = yield* p.pool.connection()
        yield* conn.query("BEGIN")
        yield* conn.query("INSERT INTO t (k) VALUES (1)")
        return conn.processId
      }))
      const next = yield* p.pool.withConnection((conn) =>
        Effect.map(
          conn.query("SELECT pg_current_xact_id_if_assigned() IS NULL AS no_xact, (SELECT count(*)::int FROM t) AS n"),
          (result): Record<string, unknown> => ({ processId: conn.processId, ...result.rows[0] })
        )
      )
      assert.deepStrictEqual(next, { processId: first, no_xact: true, n: 0 })
      const warnings = logs.entries.filter((entry) => entry.level === "Warn" && entry.message.includes(String(first)))
      assert.strictEqual(warnings.length, 1, JSON.stringify(logs.entries))
      const stats = yield* p.pool.stats
      assert.strictEqual(stats.connectionsNum, 1)
      assert.strictEqual(stats.returnsBad, 0)
    }))

  it.live("a connection returned inside a failed transaction is rolled back and reused", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabaseScoped("tx left failed")
      const p = yield* makePool({ minSize: 1, maxSize: 1 }, { url })
      const first = yield* Effect.scoped(Effect.gen(function*() {
        const conn = yield* p.pool.connection()
        yield* conn.query("BEGIN")
        const error = yield* Effect.flip(conn.query("SELECT 1 / 0"))
        assert.strictEqual(error.reason._tag, "UnknownError")
        return conn.processId
      }))
      const next = yield* p.pool.withConnection((conn) =>
        Effect.map(
          conn.query("SELECT 1 AS one"),
          (result): Record<string, unknown> => ({ processId: conn.processId, ...result.rows[0] })
        )
      )
      assert.deepStrictEqual(next, { processId: first, one: 1 })
    }))
})
