/**
 * Testing your own code with PgPoolTest: no database, virtual time.
 *
 *   npx vitest run examples/testing.test.ts
 *
 * `UserService` is ordinary application code: it reads users with `sql` and gives every lookup its own 1 second
 * budget, after which it answers `ServiceUnavailable` instead of letting callers hang. `PgPoolTest.layer` provides the
 * same `SqlClient` (and `PgPool`) as `PgPool.layer` in production, running the real pool over in-memory sessions
 * whose answers the test scripts, so the tests below check both the happy path and what users see when the pool is
 * exhausted, at exact virtual times, in milliseconds of wall-clock time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Data, Effect, Fiber, Layer } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { TestClock } from "effect/testing"
import { PgPool } from "../src/index.ts"
import { PgPoolTest } from "../src/testing/index.ts"

// ---------------------------------------------------------------------------------------------------------------
// The application code under test
// ---------------------------------------------------------------------------------------------------------------

interface User {
  readonly id: number
  readonly name: string
}

class UserNotFound extends Data.TaggedError("UserNotFound")<{ readonly id: number }> {}

class ServiceUnavailable extends Data.TaggedError("ServiceUnavailable")<{ readonly reason: string }> {}

class UserService extends Context.Service<UserService, {
  readonly getUser: (id: number) => Effect.Effect<User, UserNotFound | ServiceUnavailable>
}>()("app/UserService") {
  static readonly layer = Layer.effect(
    UserService,
    Effect.gen(function*() {
      const sql = yield* SqlClient
      const getUser = (id: number) =>
        sql<User>`SELECT id, name FROM users WHERE id = ${id}`.pipe(
          // Our own budget: callers get an answer within 1 second, whatever the database or the pool do.
          Effect.timeoutOrElse({
            duration: "1 second",
            orElse: () => Effect.fail(new ServiceUnavailable({ reason: "the database did not answer within 1 s" }))
          }),
          Effect.catchTag("SqlError", (error) => Effect.fail(new ServiceUnavailable({ reason: error.message }))),
          Effect.flatMap((rows) => rows.length === 0 ? Effect.fail(new UserNotFound({ id })) : Effect.succeed(rows[0]))
        )
      return { getUser }
    })
  )
}

// ---------------------------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------------------------

/** The scripted database: one user, and a report that runs for 10 seconds. */
const database: PgPoolTest.Handler = ({ params, sql }) => {
  if (sql.startsWith("SELECT id, name FROM users")) {
    return Effect.succeed(params[0] === 1 ? [{ id: 1, name: "Ada Lovelace" }] : [])
  }
  if (sql.startsWith("SELECT pg_sleep")) return Effect.as(Effect.sleep("10 seconds"), [{ pg_sleep: "" }])
  return Effect.succeed([])
}

/** The service on a mock pool of one connection. */
const TestLayer = UserService.layer.pipe(
  Layer.provideMerge(PgPoolTest.layer({ minSize: 1, maxSize: 1, handler: database }))
)

describe("UserService", () => {
  it.effect("returns the user the database answers", () =>
    Effect.gen(function*() {
      const users = yield* UserService
      const db = yield* PgPoolTest.PgPoolTest

      assert.deepStrictEqual(yield* users.getUser(1), { id: 1, name: "Ada Lovelace" })
      const missing = yield* Effect.flip(users.getUser(2))
      assert.strictEqual(missing._tag, "UserNotFound")

      // The statements the service sent, with their parameters.
      assert.deepStrictEqual(db.statements.map((s) => [s.sql, s.params]), [
        ["SELECT id, name FROM users WHERE id = $1", [1]],
        ["SELECT id, name FROM users WHERE id = $1", [2]]
      ])
    }).pipe(Effect.provide(TestLayer)))

  it.effect("answers ServiceUnavailable after exactly 1 s when the pool is exhausted", () =>
    Effect.gen(function*() {
      const users = yield* UserService
      const sql = yield* SqlClient
      const pool = yield* PgPool.PgPool
      yield* pool.wait()

      // A long report holds the only connection for 10 seconds.
      const report = yield* Effect.forkChild(sql`SELECT pg_sleep(10)`, { startImmediately: true })
      const lookup = yield* Effect.forkChild(users.getUser(1), { startImmediately: true })

      yield* TestClock.adjust("999 millis")
      assert.isUndefined(lookup.pollUnsafe(), "still waiting for a connection at 999 ms")
      assert.strictEqual((yield* pool.stats).requestsWaiting, 1)

      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(lookup))
      assert.strictEqual(error._tag, "ServiceUnavailable")
      assert.strictEqual(yield* Clock.currentTimeMillis, 1000)
      // The abandoned request left the pool's queue: nothing waits, and the connection is not lost.
      assert.strictEqual((yield* pool.stats).requestsWaiting, 0)

      // Once the report finishes, lookups work again.
      yield* TestClock.adjust("9 seconds")
      yield* Fiber.join(report)
      assert.deepStrictEqual(yield* users.getUser(1), { id: 1, name: "Ada Lovelace" })
    }).pipe(Effect.provide(TestLayer)))
})
