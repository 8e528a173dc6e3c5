import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import * as PgPool from "../../src/PgPool.ts"
import type { PoolTimeout } from "../../src/PoolError.ts"
import { captureLogs, makePool, noUnhandledErrors, timedMillis, urlWithCredentials, waitFor } from "./helpers.ts"


const wrongUrl = () => urlWithCredentials("postgres", "wrong-password")

/** A wrong password as an Effect, which the pool evaluates once per connect attempt: counts the attempts. */
const countedWrongPassword = () => {
  let count = 0
  const password = Effect.sync(() => {
    count++
    return Redacted.make("wrong-password")
  })
  return { password, attempts: () => count }
}

const assertAuthTimeout = (error: unknown) => {
  assert.strictEqual((error as PoolTimeout)._tag, "PoolTimeout")
  const last = (error as PoolTimeout).lastConnectError as SqlError | undefined
  assert.strictEqual(last?._tag, "SqlError")
  assert.strictEqual(last?.reason._tag, "AuthenticationError")
  return error as PoolTimeout
}

describe("wrong password on a real server", () => {
  it.live("wrong password: a PoolTimeout carrying the AuthenticationError reaches the caller within the timeout", () =>
    noUnhandledErrors(Effect.gen(function*() {
      const logs = captureLogs()
      const p = yield* makePool({ url: Redacted.make(wrongUrl()), minSize: 1, maxSize: 4, timeout: "3 seconds" })
        .pipe(Effect.provide(logs.layer))
      const [elapsed, error] = yield* timedMillis(Effect.flip(p.pool.withConnection(() => Effect.void)))
      const timeout = assertAuthTimeout(error)
      assert.strictEqual(timeout.timeoutMs, 3000)
      assert.isAtLeast(elapsed, 2900)
      assert.isBelow(elapsed, 4500)
      // Backoff (1 s, 2 s, ...): a handful of attempts in 3 s, one at a time, not hundreds.
      const stats = yield* p.pool.stats
      assert.isAtLeast(stats.connectionsErrors, 2)
      assert.isAtMost(stats.connectionsErrors, 5)
      assert.strictEqual(stats.connectionsNum, 0)
      assert.isAtMost(stats.connectionsPending, 1)
      assert.strictEqual(stats.requestsErrors, 1)
      assert.deepStrictEqual(logs.entries.filter((entry) => entry.level === "Error" || entry.level === "Fatal"), [])
    })))

  it.live("wrong password: connects back off (the password Effect is asked once per attempt)", () =>
    noUnhandledErrors(Effect.gen(function*() {
      const { password, attempts } = countedWrongPassword()
      const p = yield* makePool({ password, minSize: 0, maxSize: 10, numWorkers: 10, timeout: "2500 millis" })
      // Ten callers at once still make one probe at a time.
      const errors = yield* Effect.forEach(
        Array.from({ length: 10 }, () => Effect.flip(p.pool.withConnection(() => Effect.void))),
        (effect) => effect,
        { concurrency: "unbounded" }
      )
      for (const error of errors) assertAuthTimeout(error)
      const stats = yield* p.pool.stats
      assert.strictEqual(attempts(), stats.connectionsErrors)
      // The first wave (numWorkers connects, before any failure is known), then one probe per backoff step.
      assert.isAtLeast(attempts(), 10 + 1)
      assert.isAtMost(attempts(), 10 + 3)
      // Nobody wants a connection any more (minSize 0): the connect loop stops.
      yield* waitFor("no connect in flight", p.pool.stats, (s) => s.connectionsPending === 0, { times: 80 })
    })))

  it.live("wrong password: through SqlClient the PoolTimeout is the cause of a SqlError, and wait fails typed", () =>
    noUnhandledErrors(Effect.gen(function*() {
      const p = yield* makePool({ url: Redacted.make(wrongUrl()), minSize: 1, maxSize: 1, timeout: "1 second" })
      const error = yield* Effect.flip(p.sql`SELECT 1`)
      assert.strictEqual(error._tag, "SqlError")
      assert.strictEqual(error.reason._tag, "ConnectionError")
      assertAuthTimeout(error.reason.cause)
      assertAuthTimeout(yield* Effect.flip(PgPool.unwrapPoolError(p.sql`SELECT 1`)))
      assertAuthTimeout(yield* Effect.flip(p.pool.wait("500 millis")))
    })))

  it.live("waitOnOpen with a wrong password: building the layer fails with the AuthenticationError, backing off", () =>
    noUnhandledErrors(Effect.gen(function*() {
      const { password, attempts } = countedWrongPassword()
      const [elapsed, error] = yield* timedMillis(
        Effect.flip(Effect.scoped(makePool({ password, minSize: 2, waitOnOpen: "2500 millis" })))
      )
      assert.strictEqual(assertAuthTimeout(error).timeoutMs, 2500)
      assert.isAtLeast(elapsed, 2400)
      assert.isBelow(elapsed, 4000)
      // The first wave (minSize connects at once), then one probe per backoff step (1 s, 2 s): not a hot loop.
      assert.isAtLeast(attempts(), 2 + 1)
      assert.isAtMost(attempts(), 2 + 3)
    })))
})
