import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { at, client, fork, holder, readyAt, makePool } from "./helpers2.ts"

const ids = (mock: MockConnector.MockConnector) => Array.from(mock.open, (c) => c.id).sort((a, b) => a - b)

describe("maintenance", () => {
  it.effect("drain replaces idle connections now and borrowed ones on return", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 3, maxSize: 3 })
      yield* readyAt(pool, 100)
      // #1 is borrowed until 250; #2 and #3 are idle when the pool is drained at 200.
      const borrowed = yield* fork(holder(pool, 150))
      yield* at(200)
      yield* pool.drain
      assert.deepStrictEqual(ids(mock), [1])
      assert.deepStrictEqual(mock.attemptTimes, [0, 0, 0, 200, 200])
      yield* at(249)
      assert.deepStrictEqual(ids(mock), [1])
      // #1 is returned at 250: closed, not reused, and replaced (250 -> 350).
      yield* at(250)
      assert.strictEqual((borrowed.pollUnsafe() as Exit.Success<{ id?: number }>).value.id, 1)
      assert.deepStrictEqual(ids(mock), [])
      yield* at(300)
      assert.deepStrictEqual(ids(mock), [4, 5])
      yield* at(350)
      assert.deepStrictEqual(mock.attemptTimes, [0, 0, 0, 200, 200, 250])
      assert.deepStrictEqual(ids(mock), [4, 5, 6])
      const s = yield* pool.stats
      assert.strictEqual(s.closed.drained, 3)
      assert.strictEqual(s.poolSize, 3)
      assert.strictEqual(s.poolAvailable, 3)
      // Connections opened after the drain are kept.
      yield* Effect.forEach([1, 2, 3], () => pool.withConnection(() => Effect.void))
      assert.deepStrictEqual(ids(mock), [4, 5, 6])
      assert.strictEqual((yield* pool.stats).closed.drained, 3)
    }).pipe(Effect.scoped))

  it.effect("resize growing starts connects at once", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1, numWorkers: 3 })
      yield* readyAt(pool, 100)
      yield* at(500)
      yield* pool.resize(4, 6)
      const s1 = yield* pool.stats
      assert.strictEqual(s1.poolMin, 4)
      assert.strictEqual(s1.poolMax, 6)
      assert.strictEqual(s1.connectionsPending, 3)
      assert.strictEqual(s1.poolSize, 4)
      yield* readyAt(pool, 600)
      assert.deepStrictEqual(mock.attemptTimes, [0, 500, 500, 500])
      assert.strictEqual(mock.open.size, 4)
      // Growing maxSize alone lets demand open connections up to the new maximum.
      const fibers = yield* Effect.forEach([1, 2, 3, 4, 5, 6], () => fork(holder(pool, 1000)))
      yield* at(700)
      assert.deepStrictEqual(mock.attemptTimes, [0, 500, 500, 500, 600, 600])
      assert.strictEqual((yield* pool.stats).poolSize, 6)
      yield* at(1700)
      assert.isTrue(fibers.every((f) => f.pollUnsafe() !== undefined))
    }).pipe(Effect.scoped))

  it.effect("resize shrinking never closes a borrowed connection", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 3, maxSize: 3 })
      yield* readyAt(pool, 100)
      // #1 and #2 are borrowed (until 300 and 400); #3 is idle. Shrink to 1 at 200.
      const seen: Array<{ readonly id: number; readonly open: boolean; readonly at: number }> = []
      const use = (ms: number) => (conn: MockConnector.MockConnection) =>
        Effect.andThen(
          Effect.sleep(ms),
          Effect.clockWith((c) =>
            Effect.sync(() => {
              seen.push({ id: conn.id, open: conn.open, at: c.currentTimeMillisUnsafe() })
            })
          )
        )
      const a = yield* fork(client(pool, use(200)))
      const b = yield* fork(client(pool, use(300)))
      yield* at(200)
      yield* pool.resize(1)
      // The idle surplus closes now; the borrowed ones stay open under their users.
      assert.deepStrictEqual(ids(mock), [1, 2])
      const s1 = yield* pool.stats
      assert.strictEqual(s1.closed.surplus, 1)
      assert.strictEqual(s1.poolSize, 2)
      assert.strictEqual(s1.poolMax, 1)
      yield* at(400)
      yield* Fiber.joinAll([a, b])
      // Both users finished on open connections. #1 returned at 300 while the pool was still over maxSize:
      // closed. #2 returned at 400 to a pool at its size: kept.
      assert.deepStrictEqual(seen, [{ id: 1, open: true, at: 300 }, { id: 2, open: true, at: 400 }])
      assert.deepStrictEqual(ids(mock), [2])
      const s2 = yield* pool.stats
      assert.strictEqual(s2.closed.surplus, 2)
      assert.strictEqual(s2.poolSize, 1)
      assert.strictEqual(s2.poolAvailable, 1)
      assert.deepStrictEqual(mock.attemptTimes, [0, 0, 0])
      // resize validates like make.
      const bad = yield* Effect.exit(pool.resize(2, 1))
      assert.isTrue(Exit.isFailure(bad))
    }).pipe(Effect.scoped))
})
