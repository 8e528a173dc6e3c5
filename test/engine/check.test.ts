import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { at, errorOf, exactBackoff, fork, holder, readyAt, tagOf, makePool } from "./helpers2.ts"

describe("checkout check", () => {
  it.effect(
    "a connection idle at least check.idle is pinged at checkout; a failing ping replaces it within the deadline",
    () =>
      Effect.gen(function*() {
        const mock = yield* MockConnector.make({ connectLatency: "100 millis", pingLatency: "10 millis" })
        const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1, timeout: "1 second" })
        yield* readyAt(pool, 100)
        // A fresh connection is not pinged.
        const a = yield* fork(holder(pool, 50))
        yield* at(1149)
        assert.strictEqual(mock.counts.pings, 0)
        // Returned at 150: idle 999 ms at 1149, not pinged.
        const b = yield* fork(holder(pool, 1))
        yield* at(1150)
        assert.strictEqual(mock.counts.pings, 0)
        // Returned at 1150: idle 1000 ms at 2150, pinged (10 ms) before it is handed out.
        yield* at(2150)
        const c = yield* fork(holder(pool, 0))
        yield* at(2160)
        assert.strictEqual(mock.counts.pings, 1)
        const [oa, ob, oc] = [a, b, c].map((f) => f.pollUnsafe())
        assert.deepStrictEqual([oa, ob, oc].map((o) => o?._tag === "Success" ? o.value.gotAt : undefined), [
          100,
          1149,
          2160
        ])
        // #1 dies silently while idle (nothing marks it broken): the next checkout pings it (fails at 3170), closes
        // it, and the caller gets the replacement (connect 3170 -> 3270), well within its 1 s deadline.
        const first = Array.from(mock.open)[0]
        yield* at(3160)
        mock.failPings(1)
        const d = yield* fork(holder(pool, 10))
        yield* at(3269)
        assert.isUndefined(d.pollUnsafe())
        yield* at(3280)
        const od = yield* Fiber.await(d)
        assert.isTrue(Exit.isSuccess(od))
        const outcome = (od as Exit.Success<{ id?: number; gotAt?: number }>).value
        assert.strictEqual(outcome.id, 2)
        assert.strictEqual(outcome.gotAt, 3270)
        assert.deepStrictEqual(mock.attemptTimes, [0, 3170])
        assert.strictEqual(mock.counts.pings, 2)
        assert.isFalse(first.open)
        const s = yield* pool.stats
        assert.strictEqual(s.connectionsLost, 1)
        assert.strictEqual(s.closed.checkFailed, 1)
        assert.strictEqual(s.requestsErrors, 0)
        assert.strictEqual(s.connectionsErrors, 0)
      }).pipe(Effect.scoped)
  )

  it.effect(
    "a check that always fails ends in PoolTimeout at the deadline after backed-off retries, never a hot loop",
    () =>
      Effect.gen(function*() {
        const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
        const pool = yield* makePool(mock.connector, {
          minSize: 1,
          maxSize: 1,
          timeout: "10 seconds",
          check: { idle: 0 },
          reconnectSchedule: exactBackoff
        })
        yield* readyAt(pool, 100)
        mock.failPings(Infinity)
        const client = yield* fork(holder(pool, 10))
        // Every fresh connection fails its first check, which counts as a failed connect: the replacements are
        // opened 1, 2, 4 s after each failure (connects take 100 ms), never in a hot loop.
        yield* at(10_099)
        assert.isUndefined(client.pollUnsafe())
        yield* at(10_100)
        const exit = client.pollUnsafe()
        assert.isDefined(exit)
        const outcome = (exit as Exit.Success<{ endAt: number; exit: Exit.Exit<void, unknown> }>).value
        assert.strictEqual(outcome.endAt, 10_100)
        assert.strictEqual(tagOf(outcome.exit), "PoolTimeout")
        const error = errorOf(outcome.exit) as { readonly lastConnectError?: MockConnector.MockError }
        assert.strictEqual(error.lastConnectError?.operation, "ping")
        assert.deepStrictEqual(mock.attemptTimes, [0, 1100, 3200, 7300])
        assert.strictEqual(mock.counts.pings, 4)
        const s = yield* pool.stats
        assert.strictEqual(s.connectionsLost, 4)
        assert.strictEqual(s.closed.checkFailed, 4)
        assert.strictEqual(s.requestsErrors, 1)
        // The next connect is due 8 s after the last failure (7400): once pings work again the pool serves.
        mock.recover()
        yield* at(15_500)
        assert.deepStrictEqual(mock.attemptTimes, [0, 1100, 3200, 7300, 15_400])
        const after = yield* fork(holder(pool, 10))
        yield* at(15_510)
        const ok = after.pollUnsafe()
        assert.isTrue(ok !== undefined && Exit.isSuccess(ok) && Exit.isSuccess(ok.value.exit))
        assert.strictEqual(mock.counts.pings, 5)
      }).pipe(Effect.scoped)
  )
  it.effect("a ping cut off by the caller's own deadline does not step the reconnect backoff", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis", pingLatency: "200 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1, check: { idle: 0 } })
      yield* readyAt(pool, 100)
      // #1 has never served; its ping (200 ms) outlives the caller's 150 ms deadline.
      const a = yield* fork(holder(pool, 0, { timeout: "150 millis" }))
      yield* at(250)
      const outcome = a.pollUnsafe()
      assert.isTrue(outcome !== undefined && Exit.isSuccess(outcome))
      assert.strictEqual(tagOf((outcome as Exit.Success<{ readonly exit: Exit.Exit<unknown, unknown> }>).value.exit), "PoolTimeout")
      // The replacement connect starts at once (250), not after a 1 s backoff step.
      assert.deepStrictEqual(mock.attemptTimes, [0, 250])
      yield* at(350)
      assert.strictEqual((yield* pool.stats).poolAvailable, 1)
    }))
})
