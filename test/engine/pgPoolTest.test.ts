/**
 * PgPoolTest: the real pool engine, PgPool service and SqlClient over scripted in-memory sessions, on TestClock.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Option, Queue, Schedule, Stream } from "effect"
import * as SqlClient from "effect/sql/SqlClient"
import { ConnectionError, SqlError, UniqueViolation } from "effect/sql/SqlError"
import { TestClock } from "effect/testing"
import * as PgConnector from "../../src/PgConnector.ts"
import * as PgPool from "../../src/PgPool.ts"
import { PoolTimeout } from "../../src/PoolError.ts"
import * as PgPoolTest from "../../src/testing/PgPoolTest.ts"

/** Virtual now, in ms. */
const now = Clock.currentTimeMillis

/** Forks a child fiber that starts at once. */
const fork = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.forkChild(effect, { startImmediately: true })

/** Runs `effect` and records when (virtual ms) it ended and how. */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.exit(effect), (exit) => Effect.map(now, (at) => ({ at, exit })))

/** The typed failure of an exit. */
const failureOf = <E>(exit: Exit.Exit<unknown, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, got a success")
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (reason === undefined || reason._tag !== "Fail") throw new Error(`expected a typed failure: ${String(exit.cause)}`)
  return reason.error
}

const users: Record<number, { readonly id: number; readonly name: string }> = {
  1: { id: 1, name: "Ada" },
  2: { id: 2, name: "Grace" }
}

/** A script: users by id, a slow report, an update that touches 3 rows, and empty answers for the rest. */
const handler: PgPoolTest.Handler = ({ params, sql }) => {
  if (sql.startsWith("SELECT id, name FROM users WHERE id =")) {
    const user = users[params[0] as number]
    return Effect.succeed(user === undefined ? [] : [user])
  }
  if (sql.startsWith("SELECT slow")) return Effect.as(Effect.sleep("2 seconds"), [{ slow: true }])
  if (sql.startsWith("UPDATE users")) return Effect.succeed({ rowCount: 3 })
  return Effect.succeed([])
}

const services = Effect.gen(function*() {
  return { sql: yield* SqlClient.SqlClient, pool: yield* PgPool.PgPool, db: yield* PgPoolTest.PgPoolTest }
})

describe("PgPoolTest", () => {
  it.effect("scripted answers reach sql templates and the service helpers", () =>
    Effect.gen(function*() {
      const { db, pool, sql } = yield* services
      yield* pool.wait()

      const rows = yield* sql`SELECT id, name FROM users WHERE id = ${1}`
      assert.deepStrictEqual(rows, [{ id: 1, name: "Ada" }])
      assert.deepStrictEqual(yield* sql`SELECT id, name FROM users WHERE id = ${2}`.values, [[2, "Grace"]])
      assert.deepStrictEqual(yield* sql`SELECT id, name FROM users WHERE id = ${9}`, [])
      const streamed = yield* Stream.runCollect(sql`SELECT id, name FROM users WHERE id = ${2}`.stream)
      assert.deepStrictEqual(Array.from(streamed), [{ id: 2, name: "Grace" }])

      assert.deepStrictEqual(
        yield* pool.fetchOne("SELECT id, name FROM users WHERE id = $1", [2]),
        Option.some({ id: 2, name: "Grace" })
      )
      assert.deepStrictEqual(yield* pool.fetchVal("SELECT id, name FROM users WHERE id = $1", [1]), Option.some(1))
      assert.deepStrictEqual(yield* pool.fetchOne("SELECT id, name FROM users WHERE id = $1", [9]), Option.none())
      const update = yield* pool.execute("UPDATE users SET active = true")
      assert.strictEqual(update.command, "UPDATE")
      assert.strictEqual(update.rowCount, 3)
      assert.strictEqual(yield* pool.executeMany("UPDATE users SET name = $1", [["a"], ["b"]]), 6)

      // Every statement is logged with its parameters, the session and the virtual time.
      assert.deepStrictEqual(db.statements.slice(0, 2), [
        { sql: "SELECT id, name FROM users WHERE id = $1", params: [1], processId: 1, at: 0 },
        { sql: "SELECT id, name FROM users WHERE id = $1", params: [2], processId: 1, at: 0 }
      ])
      assert.deepStrictEqual(db.statements.slice(-4).map((s) => s.sql), [
        "BEGIN",
        "UPDATE users SET name = $1",
        "UPDATE users SET name = $1",
        "COMMIT"
      ])
      db.clearStatements()
      assert.strictEqual(db.statements.length, 0)
    }).pipe(Effect.provide(PgPoolTest.layer({ minSize: 1, handler }))))

  it.effect("result names are transformed as in production (transformResultNames)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql`SELECT created_at FROM events`
      assert.deepStrictEqual(rows, [{ createdAt: 5 }])
    }).pipe(
      Effect.provide(PgPoolTest.layer({
        minSize: 1,
        transformResultNames: (name) => name.replace(/_(\w)/g, (_, c: string) => c.toUpperCase()),
        handler: () => Effect.succeed([{ created_at: 5 }])
      }))
    ))

  it.effect("a slow handler on a small pool: PoolTimeout at exactly the timeout, through sql and the helpers", () =>
    Effect.gen(function*() {
      const { db, pool, sql } = yield* services
      yield* pool.wait()
      const slow = yield* fork(timed(sql`SELECT slow FROM report`))
      const viaSql = yield* fork(timed(sql`SELECT id, name FROM users WHERE id = ${1}`))
      const viaHelper = yield* fork(timed(pool.fetch("SELECT id, name FROM users WHERE id = $1", [1])))
      yield* TestClock.adjust(499)
      assert.isUndefined(viaSql.pollUnsafe())
      assert.isUndefined(viaHelper.pollUnsafe())
      yield* TestClock.adjust(1)

      // Through sql: a SqlError whose reason's cause is the typed PoolTimeout.
      const sqlOutcome = yield* Fiber.join(viaSql)
      assert.strictEqual(sqlOutcome.at, 500)
      const sqlError = failureOf(sqlOutcome.exit)
      assert.instanceOf(sqlError, SqlError)
      assert.strictEqual(sqlError.reason._tag, "ConnectionError")
      assert.instanceOf(sqlError.reason.cause, PoolTimeout)
      assert.strictEqual((sqlError.reason.cause as PoolTimeout).timeoutMs, 500)

      // Through the service helpers: the PoolTimeout itself, carrying the pool's stats at that moment.
      const helperOutcome = yield* Fiber.join(viaHelper)
      assert.strictEqual(helperOutcome.at, 500)
      const timeout = failureOf(helperOutcome.exit)
      assert.instanceOf(timeout, PoolTimeout)
      assert.strictEqual(timeout.stats.poolSize, 1)
      assert.strictEqual(timeout.stats.poolAvailable, 0)

      // The slow statement itself is unaffected and finishes after 2 s.
      yield* TestClock.adjust(1500)
      const slowOutcome = yield* Fiber.join(slow)
      assert.strictEqual(slowOutcome.at, 2000)
      assert.deepStrictEqual(Exit.isSuccess(slowOutcome.exit) ? slowOutcome.exit.value : undefined, [{ slow: true }])
      assert.deepStrictEqual(db.statements.map((s) => [s.sql, s.at]), [["SELECT slow FROM report", 0]])
      const stats = yield* pool.stats
      assert.strictEqual(stats.requestsErrors, 2)
    }).pipe(Effect.provide(PgPoolTest.layer({ minSize: 1, maxSize: 1, timeout: "500 millis", handler }))))

  it.effect("maxWaiting and per-acquisition timeouts behave as in production", () =>
    Effect.gen(function*() {
      const { pool, sql } = yield* services
      yield* pool.wait()
      yield* fork(sql`SELECT slow FROM report`)
      const waiting = yield* fork(timed(sql`SELECT 1`))
      // One waiter already: the next acquisition fails at once with TooManyRequests (wrapped in SqlError).
      const rejected = yield* timed(sql`SELECT 2`)
      assert.strictEqual(rejected.at, 0)
      const rejectedError = failureOf(rejected.exit)
      assert.strictEqual((rejectedError.reason.cause as { _tag: string })._tag, "TooManyRequests")
      yield* TestClock.adjust(2000)
      const served = yield* Fiber.join(waiting)
      assert.strictEqual(served.at, 2000)
      assert.isTrue(Exit.isSuccess(served.exit))
      // The service's connection() takes its own timeout.
      yield* fork(sql`SELECT slow FROM report`)
      const quick = yield* fork(timed(Effect.scoped(pool.connection({ timeout: "100 millis" }))))
      yield* TestClock.adjust(100)
      const quickOutcome = yield* Fiber.join(quick)
      assert.strictEqual(quickOutcome.at, 2100)
      assert.strictEqual((failureOf(quickOutcome.exit) as { _tag: string })._tag, "PoolTimeout")
    }).pipe(
      Effect.provide(PgPoolTest.layer({ minSize: 1, maxSize: 1, maxWaiting: 1, timeout: "10 seconds", handler }))
    ))

  it.effect("a transaction's statements reach the handler and the log in order, on one connection", () =>
    Effect.gen(function*() {
      const { db, pool, sql } = yield* services
      yield* pool.wait()
      const seen: Array<string> = []
      db.setHandler(({ sql: text }) => {
        seen.push(text)
        return Effect.succeed([])
      })
      const tx = yield* fork(sql.withTransaction(
        Effect.gen(function*() {
          yield* sql`INSERT INTO users ${sql.insert({ name: "Ada" })}`
          yield* Effect.sleep("10 millis")
          yield* sql.withTransaction(sql`UPDATE users SET name = ${"Grace"}`)
        })
      ))
      // While the transaction sleeps, other statements run on the other connection.
      yield* Effect.repeat(sql`SELECT outside`, { times: 2 })
      yield* TestClock.adjust(10)
      yield* Fiber.join(tx)

      const inTx = db.statements.filter((s) => s.sql !== "SELECT outside")
      assert.deepStrictEqual(inTx.map((s) => [s.sql, s.at]), [
        ["BEGIN", 0],
        ["INSERT INTO users (\"name\") VALUES ($1)", 0],
        ["SAVEPOINT effect_sql_1", 10],
        ["UPDATE users SET name = $1", 10],
        ["RELEASE SAVEPOINT effect_sql_1", 10],
        ["COMMIT", 10]
      ])
      assert.strictEqual(new Set(inTx.map((s) => s.processId)).size, 1)
      // The statements outside ran on the other connection.
      const outside = db.statements.filter((s) => s.sql === "SELECT outside")
      assert.strictEqual(outside.length, 3)
      assert.notInclude(outside.map((s) => s.processId), inTx[0].processId)
      assert.deepStrictEqual(seen.filter((s) => s !== "SELECT outside"), inTx.map((s) => s.sql))

      // A failure inside rolls back, on the same connection.
      db.clearStatements()
      const failed = yield* Effect.exit(
        sql.withTransaction(Effect.andThen(sql`DELETE FROM users`, Effect.fail("boom" as const)))
      )
      assert.strictEqual(failureOf(failed), "boom")
      assert.deepStrictEqual(db.statements.map((s) => s.sql), ["BEGIN", "DELETE FROM users", "ROLLBACK"])
      assert.strictEqual(new Set(db.statements.map((s) => s.processId)).size, 1)

      // pool.withTransaction runs the same way.
      db.clearStatements()
      yield* pool.withTransaction(sql`SELECT inside`)
      assert.deepStrictEqual(db.statements.map((s) => s.sql), ["BEGIN", "SELECT inside", "COMMIT"])
    }).pipe(Effect.provide(PgPoolTest.layer({ minSize: 2 }))))

  it.effect("default answers carry the statement's command tag; a COMMIT answered ROLLBACK fails the transaction", () =>
    Effect.gen(function*() {
      const { db, pool, sql } = yield* services
      const commands = yield* pool.withConnection((conn) =>
        Effect.forEach(
          ["BEGIN", "SAVEPOINT a", "ROLLBACK TO SAVEPOINT a", "RELEASE SAVEPOINT a", "COMMIT", "WITH x AS (SELECT 1) SELECT * FROM x", "insert into t values (1)"],
          (text) => Effect.map(conn.query(text), (result) => [result.command, result.rowCount])
        )
      )
      assert.deepStrictEqual(commands, [
        ["BEGIN", 0],
        ["SAVEPOINT", 0],
        ["ROLLBACK", 0],
        ["RELEASE", 0],
        ["COMMIT", 0],
        ["SELECT", 0],
        ["INSERT", 0]
      ])

      // PostgreSQL answers COMMIT with ROLLBACK when the transaction had already failed.
      db.setHandler(({ sql: text }) => Effect.succeed(text === "COMMIT" ? { command: "ROLLBACK" } : []))
      const exit = yield* Effect.exit(sql.withTransaction(sql`SELECT 1`))
      assert.strictEqual(failureOf(exit).reason._tag, "UnknownError")
      assert.include(failureOf(exit).message, "COMMIT rolled back an aborted transaction")
    }).pipe(Effect.provide(PgPoolTest.layer({ minSize: 1 }))))

  it.effect("a transaction left open on a returned connection is rolled back by the session reset", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* services
      yield* pool.withConnection((conn) => Effect.asVoid(conn.query("BEGIN")))
      yield* TestClock.adjust(0)
      assert.deepStrictEqual(db.statements.map((s) => s.sql), ["BEGIN", "ROLLBACK"])
      assert.strictEqual(db.counts.resets, 1)
      // A session that changed settings is reset with the production statements.
      db.clearStatements()
      yield* pool.execute("SET search_path TO app")
      yield* TestClock.adjust(0)
      assert.deepStrictEqual(db.statements.map((s) => s.sql), [
        "SET search_path TO app",
        "SET SESSION AUTHORIZATION DEFAULT",
        "RESET ALL",
        "UNLISTEN *",
        "SELECT pg_advisory_unlock_all()",
        "CLOSE ALL",
        "DISCARD TEMP",
        "DISCARD SEQUENCES"
      ])
    }).pipe(Effect.provide(PgPoolTest.layer({ minSize: 1 }))))

  it.effect("a failing handler's error reaches the caller; a connection error replaces the session", () =>
    Effect.gen(function*() {
      const { db, pool, sql } = yield* services
      yield* pool.wait()
      const duplicate = new SqlError({
        reason: new UniqueViolation({
          cause: new Error("duplicate key"),
          message: "duplicate key value violates unique constraint \"users_email_key\"",
          operation: "execute",
          constraint: "users_email_key"
        })
      })
      db.setHandler(({ sql: text }) => text.startsWith("INSERT") ? Effect.fail(duplicate) : Effect.succeed([]))
      const viaSql = failureOf(yield* Effect.exit(sql`INSERT INTO users ${sql.insert({ email: "a@b.c" })}`))
      assert.strictEqual(viaSql, duplicate)
      assert.strictEqual(viaSql.reason._tag, "UniqueViolation")
      const viaHelper = failureOf(yield* Effect.exit(pool.execute("INSERT INTO users (email) VALUES ($1)", ["x"])))
      assert.strictEqual(viaHelper, duplicate)
      // A server error keeps the session.
      assert.deepStrictEqual([...db.open], [1])

      // A connection error (the backend died mid-statement) marks the session broken: it is closed and replaced.
      db.setHandler(() =>
        Effect.fail(new SqlError({ reason: new ConnectionError({ cause: new Error("reset"), message: "reset" }) }))
      )
      const lost = failureOf(yield* Effect.exit(sql`SELECT 1`))
      assert.strictEqual(lost.reason._tag, "ConnectionError")
      db.setHandler(() => Effect.succeed([{ ok: 1 }]))
      yield* TestClock.adjust(0)
      assert.strictEqual(db.counts.closes, 1)
      assert.deepStrictEqual([...db.open], [2])
      assert.deepStrictEqual(yield* sql`SELECT 1`, [{ ok: 1 }])
      assert.strictEqual(db.statements.at(-1)?.processId, 2)
    }).pipe(Effect.provide(PgPoolTest.layer({ minSize: 1 }))))

  it.effect("breakConnection: statements fail with ConnectionError and the pool replaces the backend", () =>
    Effect.gen(function*() {
      const { db, pool, sql } = yield* services
      yield* pool.wait()
      const held = yield* fork(pool.withConnection((conn) =>
        Effect.andThen(Effect.sleep("1 second"), conn.query("SELECT after"))
      ))
      yield* TestClock.adjust(100)
      db.breakConnection(1)
      yield* TestClock.adjust(900)
      const exit = yield* Fiber.await(held)
      assert.strictEqual((failureOf(exit) as SqlError).reason._tag, "ConnectionError")
      assert.strictEqual(db.counts.closes, 1)
      assert.deepStrictEqual([...db.open], [2])
      yield* sql`SELECT again`
      assert.deepStrictEqual(db.statements.map((s) => [s.sql, s.processId]), [["SELECT again", 2]])
    }).pipe(Effect.provide(PgPoolTest.layer({ minSize: 1 }))))

  it.effect("connect failures back off per reconnectSchedule; a waiter times out carrying the connect error", () =>
    Effect.gen(function*() {
      const { db, pool, sql } = yield* services
      // The first three connects fail: attempts at 0, then 1, 2 and 4 s after each failure (a connect takes 50 ms).
      const early = yield* fork(timed(sql`SELECT 1`))
      const patient = yield* fork(timed(pool.withConnection((conn) => conn.query("SELECT 2"), { timeout: "1 minute" })))
      yield* TestClock.adjust(2000)
      const earlyOutcome = yield* Fiber.join(early)
      assert.strictEqual(earlyOutcome.at, 2000)
      const timeout = failureOf(earlyOutcome.exit).reason.cause as PoolTimeout
      assert.instanceOf(timeout, PoolTimeout)
      assert.instanceOf(timeout.lastConnectError, SqlError)
      assert.strictEqual((timeout.lastConnectError as SqlError).reason._tag, "ConnectionError")

      yield* TestClock.adjust(10_000)
      assert.deepStrictEqual(db.attemptTimes, [0, 1050, 3100, 7150])
      const patientOutcome = yield* Fiber.join(patient)
      assert.strictEqual(patientOutcome.at, 7200)
      assert.isTrue(Exit.isSuccess(patientOutcome.exit))
      assert.deepStrictEqual(db.statements.map((s) => [s.sql, s.at]), [["SELECT 2", 7200]])
      assert.strictEqual(db.counts.connects, 1)
      assert.strictEqual(db.counts.connectAttempts, 4)
      assert.strictEqual((yield* pool.stats).connectionsErrors, 3)
    }).pipe(
      Effect.provide(PgPoolTest.layer({
        minSize: 1,
        maxSize: 1,
        timeout: "2 seconds",
        connectLatency: "50 millis",
        failConnects: 3,
        reconnectSchedule: Schedule.exponential("1 second", 2)
      }))
    ))

  it.effect("listen receives notifications from notify() and from sql.notify", () =>
    Effect.gen(function*() {
      const { db } = yield* services
      const pg = yield* PgClient.PgClient
      yield* Effect.scoped(Effect.gen(function*() {
        const queue = yield* pg.listen("events")
        db.notify("events", "from outside")
        db.notify("other", "not for us")
        yield* pg.notify("events", "from sql")
        assert.deepStrictEqual(yield* Queue.take(queue), { processId: 0, channel: "events", payload: "from outside" })
        const second = yield* Queue.take(queue)
        assert.strictEqual(second.payload, "from sql")
      }))
      // LISTEN left state on its session: the pool's reset runs when it comes back.
      yield* TestClock.adjust(0)
      assert.deepStrictEqual(db.statements.map((s) => s.sql), [
        "LISTEN \"events\"",
        "SELECT pg_notify($1, $2)",
        "UNLISTEN \"events\"",
        ...PgConnector.resetStatements
      ])
    }).pipe(Effect.provide(PgPoolTest.layer({ minSize: 2 }))))

  it.effect("a connection used after release fails; setConnectOptions is recorded", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* services
      const conn = yield* Effect.scoped(pool.connection())
      const exit = yield* Effect.exit(conn.query("SELECT 1"))
      assert.include(failureOf(exit).message, "used after it was returned")
      assert.strictEqual(db.statements.length, 0)
      yield* pool.setConnectOptions({ host: "replica", port: 6432 })
      assert.deepStrictEqual(db.connectOptions, { host: "replica", port: 6432 })
      const bad = yield* Effect.exit(pool.setConnectOptions({ port: 0 }))
      assert.strictEqual((failureOf(bad) as { field: string }).field, "port")
    }).pipe(Effect.provide(PgPoolTest.layer({ minSize: 1 }))))

  it.effect("invalid pool settings fail the layer with PoolConfigError", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.provide(Effect.void, PgPoolTest.layer({ minSize: 3, maxSize: 2 })))
      assert.strictEqual((failureOf(exit) as { _tag: string })._tag, "PoolConfigError")
    }))
})
