import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { at, fork, holder, joinAll, readyAt, makePool } from "./helpers2.ts"

describe("maxUses", () => {
  it.effect("a connection past maxUses is replaced on return and the queued waiter receives the new one", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1, maxUses: 1 })
      yield* readyAt(pool, 100)
      // t = 100: #1 is ready. Three clients of 100 ms queue on a pool of one connection used once each.
      const fibers = yield* Effect.forEach([1, 2, 3], () => fork(holder(pool, 100)))
      yield* at(1000)
      const outcomes = yield* joinAll(fibers)
      assert.isTrue(outcomes.every((o) => Exit.isSuccess(o.exit)))
      // Each return closes the used-up connection and opens a new one (100 ms) for the next waiter: no deadlock.
      assert.deepStrictEqual(outcomes.map((o) => o.id), [1, 2, 3])
      assert.deepStrictEqual(outcomes.map((o) => o.gotAt), [100, 300, 500])
      assert.deepStrictEqual(outcomes.map((o) => o.endAt), [200, 400, 600])
      // After the last return the pool refills to minSize with a fresh connection.
      assert.deepStrictEqual(mock.attemptTimes, [0, 200, 400, 600])
      assert.deepStrictEqual(Array.from(mock.open, (c) => c.id), [4])
      const s = yield* pool.stats
      assert.strictEqual(s.closed.maxUses, 3)
      assert.strictEqual(s.poolSize, 1)
      assert.strictEqual(s.poolAvailable, 1)
      assert.strictEqual(s.requestsWaiting, 0)
      assert.strictEqual(s.requestsQueued, 2)
      assert.strictEqual(s.requestsErrors, 0)
    }).pipe(Effect.scoped))
})
