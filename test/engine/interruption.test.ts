import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { at, client, fork, holder, readyAt, makePool } from "./helpers2.ts"

describe("interruption", () => {
  it.effect("interrupted holders and waiters leave nothing behind and the pool still serves", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 3, maxSize: 3 })
      yield* readyAt(pool, 100)
      // Nine fibers on three connections: three hold, six queue.
      const fibers = yield* Effect.forEach(
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
        () => fork(pool.withConnection(() => Effect.never))
      )
      yield* at(200)
      const busy = yield* pool.stats
      assert.strictEqual(busy.poolAvailable, 0)
      assert.strictEqual(busy.requestsWaiting, 6)
      // Interrupt them all, queued ones first and holders in between.
      const order = [4, 0, 5, 6, 1, 7, 8, 2, 3]
      yield* Fiber.interruptAll(order.map((i) => fibers[i]))
      assert.isTrue(fibers.every((f) => {
        const exit = f.pollUnsafe()
        return exit !== undefined && Exit.isFailure(exit)
      }))
      const after = yield* pool.stats
      assert.strictEqual(after.requestsWaiting, 0)
      assert.strictEqual(after.requestsCancelled, 6)
      // The three interrupted leases closed their connections (a statement may have been in flight); the
      // replacements open 200 -> 300.
      assert.strictEqual(after.closed.interrupted, 3)
      assert.strictEqual(mock.open.size, 0)
      yield* at(300)
      const healed = yield* pool.stats
      assert.strictEqual(healed.poolAvailable, 3)
      assert.strictEqual(healed.poolSize, 3)
      assert.strictEqual(healed.requestsWaiting, 0)
      assert.strictEqual(healed.connectionsPending, 0)
      assert.strictEqual(mock.open.size, 3)
      assert.deepStrictEqual(mock.attemptTimes, [0, 0, 0, 200, 200, 200])
      // And it serves: three clients get a connection at once.
      const clients = yield* Effect.forEach([1, 2, 3], () => fork(holder(pool, 10)))
      yield* at(310)
      assert.deepStrictEqual(
        clients.map((f) => {
          const exit = f.pollUnsafe()
          return exit !== undefined && Exit.isSuccess(exit) ? exit.value.gotAt : undefined
        }),
        [300, 300, 300]
      )
    }).pipe(Effect.scoped))

  it.effect("a waiter interrupted just as a connection is handed to it gives it back", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1 })
      yield* readyAt(pool, 100)
      let w: Fiber.Fiber<unknown, unknown> | undefined
      // H holds #1 until 200. At 200, in one synchronous step, W (the oldest waiter) is interrupted and #1 is
      // returned: the finalizer added last runs first.
      const h = yield* fork(Effect.scoped(Effect.gen(function*() {
        yield* pool.connection()
        yield* Effect.addFinalizer(() => Effect.sync(() => w!.interruptUnsafe()))
        yield* Effect.sleep(100)
      })))
      yield* at(150)
      let handedToW: number | undefined
      w = yield* fork(pool.withConnection((conn) =>
        Effect.sync(() => {
          handedToW = conn.id
        })
      ))
      const w2 = yield* fork(holder(pool, 10))
      assert.strictEqual((yield* pool.stats).requestsWaiting, 2)
      yield* at(200)
      assert.isTrue(Exit.isSuccess(h.pollUnsafe()!))
      const wExit = w.pollUnsafe()
      assert.isTrue(wExit !== undefined && Exit.hasInterrupts(wExit))
      assert.isUndefined(handedToW)
      // #1 was neither lost nor closed: W2, next in line, got it at once.
      yield* at(210)
      const w2Exit = w2.pollUnsafe()
      assert.isDefined(w2Exit)
      const outcome = (w2Exit as Exit.Success<{ id?: number; gotAt?: number }>).value
      assert.deepStrictEqual([outcome.id, outcome.gotAt], [1, 200])
      const s = yield* pool.stats
      assert.strictEqual(s.requestsCancelled, 1)
      assert.strictEqual(s.closed.interrupted, 0)
      assert.strictEqual(s.poolAvailable, 1)
      assert.strictEqual(s.requestsWaiting, 0)
      assert.deepStrictEqual(mock.attemptTimes, [0])
    }).pipe(Effect.scoped))

  it.effect("a waiter whose deadline falls at the instant a connection is returned either gets it or leaves it", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1 })
      yield* readyAt(pool, 100)
      // H1 takes #1 at 100; W1 queues with a deadline at 300; H1's last sleep, registered after W1's deadline,
      // also ends at 300. W1's deadline fires first: W1 times out, and #1 goes to W2.
      const h1 = yield* fork(client(pool, () => Effect.andThen(Effect.sleep(50), Effect.sleep(150))))
      const w1 = yield* fork(holder(pool, 10, { timeout: "200 millis" }))
      const w2 = yield* fork(holder(pool, 10))
      yield* at(400)
      const get = <A>(f: Fiber.Fiber<A, never>) => (f.pollUnsafe() as Exit.Success<A>).value
      assert.isTrue(Exit.isSuccess(get(h1).exit))
      assert.strictEqual(get(w1).endAt, 300)
      assert.strictEqual(get(w1).gotAt, undefined)
      assert.deepStrictEqual([get(w2).id, get(w2).gotAt], [1, 300])
      // H2's return (its sleep registered first) and W3's deadline coincide at 600: W3 gets #1.
      const h2 = yield* fork(holder(pool, 200))
      const w3 = yield* fork(holder(pool, 10, { timeout: "200 millis" }))
      yield* at(700)
      assert.isTrue(Exit.isSuccess(get(h2).exit))
      assert.deepStrictEqual([get(w3).id, get(w3).gotAt], [1, 600])
      const s = yield* pool.stats
      assert.strictEqual(s.requestsErrors, 1)
      assert.strictEqual(s.poolAvailable, 1)
      assert.strictEqual(s.requestsWaiting, 0)
      assert.deepStrictEqual(mock.attemptTimes, [0])
    }).pipe(Effect.scoped))

  it.effect(
    "an acquisition interrupted during its checkout check counts as cancelled and closes the pinged connection",
    () =>
      Effect.gen(function*() {
        const mock = yield* MockConnector.make({ connectLatency: "100 millis", pingLatency: "100 millis" })
        const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1 })
        yield* readyAt(pool, 100)
        // #1 has been idle 1 s at 1100: the checkout pings it (100 ms); the caller is interrupted at 1150.
        yield* at(1100)
        const c = yield* fork(holder(pool, 10))
        yield* at(1150)
        assert.strictEqual(mock.counts.pings, 0)
        yield* Fiber.interrupt(c)
        // The ping may still be in flight on #1: it is closed and replaced (1150 -> 1250).
        assert.strictEqual(mock.open.size, 0)
        yield* at(1250)
        assert.deepStrictEqual(Array.from(mock.open, (x) => x.id), [2])
        const s = yield* pool.stats
        assert.strictEqual(s.requestsCancelled, 1)
        assert.strictEqual(s.requestsErrors, 0)
        assert.strictEqual(s.closed.interrupted, 1)
        assert.strictEqual(s.poolAvailable, 1)
        assert.deepStrictEqual(mock.attemptTimes, [0, 1150])
      }).pipe(Effect.scoped)
  )
})
