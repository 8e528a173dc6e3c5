import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { at, fork, holder, joinAll, makePool } from "./helpers2.ts"

describe("null pool", () => {
  it.effect("a null pool keeps no idle connections: every checkout connects when nobody waits", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { nullPool: true, maxSize: 3 })
      yield* at(50)
      // Nothing is opened up front.
      assert.strictEqual(mock.counts.connectAttempts, 0)
      const a = yield* fork(holder(pool, 50))
      yield* at(200)
      // A connected (50 -> 150), used it 50 ms, and the connection was closed on return.
      const [oa] = yield* joinAll([a])
      assert.deepStrictEqual([oa.id, oa.gotAt, oa.endAt], [1, 150, 200])
      assert.strictEqual(mock.open.size, 0)
      const s1 = yield* pool.stats
      assert.strictEqual(s1.poolSize, 0)
      assert.strictEqual(s1.poolAvailable, 0)
      // The next checkout connects again; three at once connect in parallel.
      const fibers = yield* Effect.forEach([1, 2, 3], () => fork(holder(pool, 10)))
      yield* at(310)
      const outcomes = yield* joinAll(fibers)
      assert.deepStrictEqual(outcomes.map((o) => o.id), [2, 3, 4])
      assert.deepStrictEqual(outcomes.map((o) => o.gotAt), [300, 300, 300])
      assert.deepStrictEqual(mock.attemptTimes, [50, 200, 200, 200])
      assert.strictEqual(mock.open.size, 0)
      const s2 = yield* pool.stats
      assert.strictEqual(s2.poolSize, 0)
      assert.strictEqual(s2.connectionsNum, 4)
      assert.strictEqual(s2.closed.surplus, 4)
    }).pipe(Effect.scoped))

  it.effect("a null pool hands a returned connection to a waiter; maxSize bounds concurrency", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { nullPool: true, maxSize: 1 })
      const a = yield* fork(holder(pool, 200))
      yield* at(150)
      const b = yield* fork(holder(pool, 50))
      const c = yield* fork(holder(pool, 50))
      // At max 1, B and C queue instead of connecting.
      const waiting = yield* pool.stats
      assert.strictEqual(waiting.requestsWaiting, 2)
      assert.strictEqual(waiting.connectionsPending, 0)
      yield* at(500)
      const [oa, ob, oc] = yield* joinAll([a, b, c])
      // A: connect 0 -> 100, use until 300; the connection passes to B (300 -> 350), then to C (350 -> 400),
      // and is closed when C returns it with nobody waiting.
      assert.deepStrictEqual([oa.id, oa.gotAt, oa.endAt], [1, 100, 300])
      assert.deepStrictEqual([ob.id, ob.gotAt, ob.endAt], [1, 300, 350])
      assert.deepStrictEqual([oc.id, oc.gotAt, oc.endAt], [1, 350, 400])
      assert.deepStrictEqual(mock.attemptTimes, [0])
      assert.strictEqual(mock.open.size, 0)
      assert.strictEqual(mock.counts.closes, 1)
    }).pipe(Effect.scoped))

  it.effect("a null pool runs configure on every connect", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const configured: Array<number> = []
      const pool = yield* makePool(mock.connector, {
        nullPool: true,
        maxSize: 2,
        configure: (conn) =>
          Effect.andThen(
            Effect.sleep(20),
            Effect.sync(() => {
              configured.push(conn.id)
            })
          )
      })
      const first = yield* fork(holder(pool, 10))
      yield* at(200)
      const second = yield* fork(holder(pool, 10))
      yield* at(400)
      const [o1, o2] = yield* joinAll([first, second])
      // Each checkout connected (100 ms) and configured (20 ms) a fresh connection.
      assert.deepStrictEqual([o1.id, o1.gotAt], [1, 120])
      assert.deepStrictEqual([o2.id, o2.gotAt], [2, 320])
      assert.deepStrictEqual(configured, [1, 2])
      assert.strictEqual(mock.open.size, 0)
    }).pipe(Effect.scoped))
})
