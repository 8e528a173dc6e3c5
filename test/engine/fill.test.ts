import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Schedule, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Pool from "../../src/Pool.ts"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { failed, ok, outcomes, start, timed } from "./helpers.ts"

const poolTimeoutOf = (exit: Exit.Exit<unknown, unknown> | undefined) => {
  const error = exit !== undefined && Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
  return error?._tag === "Fail" ? error.error as { readonly _tag: string; readonly lastConnectError?: unknown } : undefined
}

describe("fill", () => {
  it.effect("initial fill runs in the background, numWorkers at a time; wait returns once minSize are ready", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* Pool.make(mock.connector, { minSize: 5, numWorkers: 2 })

      // make returned at once: nothing is open yet, two connects are under way.
      const initial = yield* pool.stats
      assert.deepStrictEqual([initial.poolSize, initial.connectionsPending, mock.open.size], [2, 2, 0])

      const ready = yield* start(timed(pool.wait("1 second")))
      const tooShort = yield* start(timed(pool.wait("250 millis")))

      // Ready at 100, 100, 200, 200, 300 ms: two at a time, the fifth alone.
      const openAt: Array<[number, number]> = []
      for (const t of [99, 100, 199, 200, 249, 250, 299, 300]) {
        yield* TestClock.adjust(t - (openAt.length === 0 ? 0 : openAt[openAt.length - 1][0]))
        openAt.push([t, mock.open.size])
      }
      assert.deepStrictEqual(openAt, [[99, 0], [100, 2], [199, 2], [200, 4], [249, 4], [250, 4], [299, 4], [300, 5]])
      assert.deepStrictEqual(mock.attemptTimes, [0, 0, 100, 100, 200])

      // wait(timeout): returns once minSize are ready, or fails at its deadline.
      assert.deepStrictEqual(outcomes([ready, tooShort]), [ok(300), failed("PoolTimeout", 250)])
      // Once ready, wait returns at once.
      assert.deepStrictEqual(yield* timed(pool.wait("1 millis"), 300), ok(0))

      // Nothing beyond minSize is opened.
      yield* TestClock.adjust("10 seconds")
      const stats = yield* pool.stats
      assert.deepStrictEqual(
        [stats.poolSize, stats.poolAvailable, stats.connectionsNum, mock.counts.connectAttempts, mock.open.size],
        [5, 5, 5, 5, 5]
      )
      yield* pool.close()
      assert.strictEqual(mock.open.size, 0)
    }).pipe(Effect.scoped))

  it.effect("waitOnOpen: make returns once minSize connections are open", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const scope = yield* Scope.make()
      const made = yield* start(timed(Pool.make(mock.connector, { minSize: 5, numWorkers: 2, waitOnOpen: "1 second" })
        .pipe(Scope.provide(scope))))
      // Connects finish at 100, 100, 200, 200, 300: make returns with the fifth.
      yield* TestClock.adjust(299)
      assert.isUndefined(made.pollUnsafe())
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(outcomes([made]), [ok(300)])
      assert.strictEqual(mock.open.size, 5)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(mock.open.size, 0)
    }))

  it.effect("waitOnOpen: past the deadline make fails with PoolTimeout, and what did open is closed", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      // `true` waits up to `timeout`.
      const made = yield* start(Effect.scoped(Pool.make(mock.connector, {
        minSize: 3,
        numWorkers: 2,
        timeout: "500 millis",
        waitOnOpen: true,
        reconnectSchedule: Schedule.spaced("1 second")
      })))
      // Two connects succeed at 100; then the server refuses: the third fails at 200 and backs off.
      yield* TestClock.adjust(100)
      mock.failConnects(Infinity)
      yield* TestClock.adjust(399)
      assert.isUndefined(made.pollUnsafe())
      assert.strictEqual(mock.open.size, 2)
      yield* TestClock.adjust(1)
      const error = poolTimeoutOf(made.pollUnsafe())
      assert.strictEqual(error?._tag, "PoolTimeout")
      assert.isDefined(error?.lastConnectError)
      // The scope closed the pool: the two connections are closed and no connect is tried again.
      assert.strictEqual(mock.open.size, 0)
      yield* TestClock.adjust("5 seconds")
      assert.deepStrictEqual(mock.attemptTimes, [0, 0, 100])
      yield* Fiber.await(made)
    }))

  it.effect("waitOnOpen: interrupting the build closes what opened and stops connecting", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const made = yield* start(
        Effect.scoped(Pool.make(mock.connector, { minSize: 4, numWorkers: 2, waitOnOpen: "1 second" }))
      )
      yield* TestClock.adjust(150)
      assert.strictEqual(mock.open.size, 2)
      yield* Fiber.interrupt(made)
      assert.strictEqual(mock.open.size, 0)
      yield* TestClock.adjust("5 seconds")
      // The two connects started at 100 were interrupted with the pool; none was tried after.
      assert.deepStrictEqual([mock.attemptTimes, mock.open.size], [[0, 0, 100, 100], 0])
    }))
})
