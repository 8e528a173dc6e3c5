import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Pool from "../../src/Pool.ts"
import * as MockConnector from "../../src/testing/MockConnector.ts"

describe("sizing", () => {
  it.effect("sizes are validated in make and in resize, with a PoolConfigError naming the field", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make()
      const makeError = (options: Pool.Options<MockConnector.MockConnection>) =>
        Effect.flip(Effect.scoped(Pool.make(mock.connector, options)))
      const field = (error: { readonly _tag: string; readonly field?: string }) => [error._tag, error.field]

      // make
      assert.deepStrictEqual(field(yield* makeError({ minSize: -1 })), ["PoolConfigError", "minSize"])
      assert.deepStrictEqual(field(yield* makeError({ minSize: 1.5 })), ["PoolConfigError", "minSize"])
      assert.deepStrictEqual(field(yield* makeError({ minSize: 3, maxSize: 2 })), ["PoolConfigError", "maxSize"])
      // maxSize defaults to minSize; a smaller maxSize than the default minSize (4) is caught too
      assert.deepStrictEqual(field(yield* makeError({ maxSize: 2 })), ["PoolConfigError", "maxSize"])
      assert.deepStrictEqual(field(yield* makeError({ minSize: 0, maxSize: 0 })), ["PoolConfigError", "maxSize"])
      assert.deepStrictEqual(field(yield* makeError({ minSize: 0 })), ["PoolConfigError", "maxSize"])
      assert.deepStrictEqual(field(yield* makeError({ numWorkers: 0 })), ["PoolConfigError", "numWorkers"])
      assert.deepStrictEqual(field(yield* makeError({ numWorkers: -2 })), ["PoolConfigError", "numWorkers"])
      assert.deepStrictEqual(field(yield* makeError({ waitOnOpen: "soon" as "1 second" })), ["PoolConfigError", "waitOnOpen"])
      assert.deepStrictEqual(field(yield* makeError({ waitOnOpen: 0 })), ["PoolConfigError", "waitOnOpen"])
      assert.deepStrictEqual(
        (yield* makeError({ minSize: 3, maxSize: 2 })).message,
        "PoolConfigError: maxSize must be >= minSize (3), got 2"
      )
      // A rejected pool never connected.
      assert.strictEqual(mock.counts.connectAttempts, 0)

      // Valid edge cases: min = 0 with max > 0, min = max.
      yield* Effect.scoped(Effect.asVoid(Pool.make(mock.connector, { minSize: 0, maxSize: 1 })))
      yield* Effect.scoped(Effect.asVoid(Pool.make(mock.connector, { minSize: 1, maxSize: 1, numWorkers: 1 })))

      // resize
      yield* Effect.gen(function*() {
        const pool = yield* Pool.make(mock.connector, { minSize: 2, maxSize: 4 })
        yield* pool.wait()
        const resizeError = (min: number, max?: number) => Effect.flip(pool.resize(min, max))
        assert.deepStrictEqual(field(yield* resizeError(-1, 4)), ["PoolConfigError", "minSize"])
        assert.deepStrictEqual(field(yield* resizeError(3, 2)), ["PoolConfigError", "maxSize"])
        assert.deepStrictEqual(field(yield* resizeError(0, 0)), ["PoolConfigError", "maxSize"])
        assert.deepStrictEqual(field(yield* resizeError(0)), ["PoolConfigError", "maxSize"])
        assert.deepStrictEqual(field(yield* resizeError(2, 2.5)), ["PoolConfigError", "maxSize"])
        // A rejected resize changes nothing.
        const stats = yield* pool.stats
        assert.deepStrictEqual([stats.poolMin, stats.poolMax, stats.poolSize], [2, 4, 2])
        // A valid one applies; max defaults to min.
        yield* pool.resize(3)
        const resized = yield* pool.stats
        assert.deepStrictEqual([resized.poolMin, resized.poolMax], [3, 3])
        yield* pool.wait()
        assert.strictEqual(mock.open.size, 3)
        yield* pool.close()
        assert.strictEqual(mock.open.size, 0)
      }).pipe(Effect.scoped)
    }))
})
