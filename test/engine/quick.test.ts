import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as Pool from "../../src/Pool.ts"
import * as MockConnector from "../../src/testing/MockConnector.ts"

describe("quick", () => {
  it.effect("fill and serve", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* Pool.make(mock.connector, { minSize: 5, numWorkers: 2 })
      const w = yield* pool.wait("1 second").pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(mock.open.size, 2)
      yield* TestClock.adjust("200 millis")
      assert.strictEqual(mock.open.size, 5)
      yield* Fiber.join(w)
      const fibers = yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7], () =>
        pool.withConnection(() => Effect.sleep("200 millis")).pipe(Effect.forkChild({ startImmediately: true })))
      yield* TestClock.adjust("200 millis")
      const s = yield* pool.stats
      assert.strictEqual(s.requestsNum, 7)
      yield* TestClock.adjust("1 second")
      yield* Fiber.joinAll(fibers)
      const s2 = yield* pool.stats
      assert.strictEqual(s2.poolAvailable, s2.poolSize)
      yield* pool.close()
      assert.strictEqual(mock.open.size, 0)
    }).pipe(Effect.scoped))
})
