import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import type { PgPool } from "../../src/index.ts"
import { terminateBackend } from "../support/Db.ts"
import { makePool, type TestPool, waitFor } from "./helpers.ts"

/** The backends of the pool, once exactly `n` are connected. */
const connected = (p: TestPool, n: number) =>
  Effect.map(waitFor(`${n} backends of ${p.applicationName}`, p.backends, (rows) => rows.length === n), (rows) =>
    rows.map((row) => row.pid))

/** Kills `pid` and waits until the server no longer lists it. */
const kill = (p: TestPool, pid: number) =>
  Effect.gen(function*() {
    assert.isTrue(yield* terminateBackend(pid))
    yield* waitFor(`backend ${pid} gone`, p.backends, (rows) => rows.every((row) => row.pid !== pid))
  })

/** Borrows `n` connections at once (so each is a different one) and runs a statement on each. */
const borrowAll = (pool: PgPool.PgPool, n: number) =>
  Effect.forEach(
    Array.from({ length: n }, (_, i) => i),
    (i) =>
      pool.withConnection((conn) =>
        Effect.map(conn.query("SELECT $1::int AS i, pg_backend_pid() AS pid", [i]), (result) => {
          assert.deepStrictEqual(result.rows[0]?.i, i)
          assert.strictEqual(result.rows[0]?.pid, conn.processId)
          return conn.processId
        })
      ),
    { concurrency: "unbounded" }
  )

/** True when the error says the session is gone: a ConnectionError or a FATAL server error. */
const isConnectionLoss = (error: SqlError): boolean => {
  const cause = error.reason.cause as { readonly severity?: unknown } | undefined
  return error.reason._tag === "ConnectionError" || cause?.severity === "FATAL"
}

/** A statement that runs until its backend is killed, and the pid it runs on (seen in pg_stat_activity). */
const sleeping = (p: TestPool, statement: Effect.Effect<unknown, unknown>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(statement)
    const rows = yield* waitFor(
      "pg_sleep running",
      p.backends,
      (rows) => rows.some((row) => row.state === "active" && row.query.includes("pg_sleep"))
    )
    const pid = rows.find((row) => row.state === "active" && row.query.includes("pg_sleep"))!.pid
    return { fiber, pid }
  })

describe("killed backends on a real server", () => {
  it.live("a backend killed while idle is never handed out: the broken detection replaces it (check off)", () =>
    Effect.gen(function*() {
      const p = yield* makePool({ minSize: 3, maxSize: 3, check: false })
      yield* p.pool.wait("10 seconds")
      const before = yield* connected(p, 3)
      for (const pid of before) yield* kill(p, pid)
      const served = yield* borrowAll(p.pool, 3)
      for (const pid of served) assert.notInclude(before, pid)
      assert.deepStrictEqual(yield* p.sql`SELECT 1 AS one`, [{ one: 1 }])
      const stats = yield* p.pool.stats
      assert.strictEqual(stats.closed.broken, 3)
      assert.strictEqual(stats.requestsErrors, 0)
      assert.strictEqual(stats.returnsBad, 0)
      assert.strictEqual(stats.poolSize, 3)
      assert.sameMembers(yield* connected(p, 3), served)
    }))

  const checked = "a backend killed while idle is never handed out: " +
    "the checkout check or the broken detection replaces it"
  it.live(checked, () =>
    Effect.gen(function*() {
      const p = yield* makePool({ minSize: 2, maxSize: 2, check: { idle: 0 } })
      yield* p.pool.wait("10 seconds")
      const before = yield* connected(p, 2)
      yield* kill(p, before[0])
      const served = yield* borrowAll(p.pool, 2)
      assert.notInclude(served, before[0])
      assert.include(served, before[1])
      const stats = yield* p.pool.stats
      assert.strictEqual(stats.closed.broken + stats.closed.checkFailed, 1)
      assert.strictEqual(stats.requestsErrors, 0)
      assert.strictEqual(stats.returnsBad, 0)
    }))

  const borrowed = "a backend killed while borrowed fails that caller's statement with a ConnectionError, " +
    "and the pool replaces it"
  it.live(borrowed, () =>
    Effect.gen(function*() {
      const p = yield* makePool({ minSize: 1, maxSize: 1 })
      const [original] = yield* Effect.andThen(p.pool.wait("10 seconds"), connected(p, 1))
      const { fiber, pid } = yield* sleeping(p, p.pool.withConnection((conn) => conn.query("SELECT pg_sleep(10)")))
      assert.strictEqual(pid, original)
      assert.isTrue(yield* terminateBackend(pid))
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) as SqlError : undefined
      assert.strictEqual(error?._tag, "SqlError")
      assert.isTrue(isConnectionLoss(error!), `${error?.reason._tag}`)
      const stats = yield* p.pool.stats
      assert.strictEqual(stats.returnsBad, 1)
      assert.strictEqual(stats.closed.broken, 1)
      // Replaced: later statements run on a new backend, and the pool is back to its size.
      const [next] = yield* borrowAll(p.pool, 1)
      assert.notStrictEqual(next, original)
      assert.deepStrictEqual(yield* connected(p, 1), [next])
      assert.strictEqual((yield* p.pool.stats).poolSize, 1)
    }))

  it.live("a backend killed under a sql statement fails it with a ConnectionError, and the pool replaces it", () =>
    Effect.gen(function*() {
      const p = yield* makePool({ minSize: 1, maxSize: 1 })
      yield* p.pool.wait("10 seconds")
      const { fiber, pid } = yield* sleeping(p, p.sql`SELECT pg_sleep(10)`)
      assert.isTrue(yield* terminateBackend(pid))
      const exit = yield* Fiber.await(fiber)
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) as SqlError : undefined
      assert.strictEqual(error?._tag, "SqlError")
      assert.isTrue(isConnectionLoss(error!), `${error?.reason._tag}`)
      const rows = yield* p.sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
      assert.notStrictEqual(rows[0].pid, pid)
      assert.strictEqual((yield* p.pool.stats).returnsBad, 1)
    }))

  it.live("a backend killed inside a transaction fails it with a typed ConnectionError, not a defect", () =>
    Effect.gen(function*() {
      const p = yield* makePool({ minSize: 1, maxSize: 1 })
      yield* p.pool.wait("10 seconds")
      const { fiber, pid } = yield* sleeping(p, p.sql.withTransaction(p.sql`SELECT pg_sleep(10)`))
      assert.isTrue(yield* terminateBackend(pid))
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        assert.isFalse(Cause.hasDies(exit.cause), String(Cause.pretty(exit.cause)))
        const error = Cause.squash(exit.cause) as SqlError
        assert.strictEqual(error._tag, "SqlError")
        assert.isTrue(isConnectionLoss(error), error.reason._tag)
      }
      const rows = yield* p.sql.withTransaction(p.sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`)
      assert.notStrictEqual(rows[0].pid, pid)
    }))
})
