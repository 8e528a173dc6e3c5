import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as Pool from "../../src/Pool.ts"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { clients, failed, ok, outcomes, start, timed } from "./helpers.ts"

describe("fifo", () => {
  it.effect("waiters are served strictly FIFO; a returned connection goes straight to the oldest waiter", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make()
      const pool = yield* Pool.make(mock.connector, { minSize: 2, maxSize: 2 })
      yield* pool.wait()

      const fibers = yield* clients(pool, [200, 200, 200, 200, 200, 200])
      yield* TestClock.adjust("199 millis")
      assert.deepStrictEqual(outcomes(fibers), Array(6).fill("running"))
      const queued = yield* pool.stats
      assert.deepStrictEqual([queued.requestsWaiting, queued.poolAvailable], [4, 0])
      yield* TestClock.adjust("401 millis")
      // In arrival order, two at a time: a later client never overtakes an earlier one.
      assert.deepStrictEqual(outcomes(fibers), [ok(200), ok(200), ok(400), ok(400), ok(600), ok(600)])

      const stats = yield* pool.stats
      assert.deepStrictEqual(
        [stats.requestsNum, stats.requestsQueued, stats.requestsWaitMs, stats.usageMs, stats.poolAvailable],
        [6, 4, 2 * 200 + 2 * 400, 6 * 200, 2]
      )
      assert.deepStrictEqual([mock.counts.connectAttempts, mock.open.size], [2, 2])
      yield* pool.close()

      // Straight means straight: a connection handed from one user to the next was never idle, so the checkout
      // check (idle >= 1 s, here a 10 ms ping) does not delay the hand-off, however long ago it was last idle.
      const pinged = yield* MockConnector.make({ pingLatency: "10 millis" })
      const single = yield* Pool.make(pinged.connector, { minSize: 1, maxSize: 1 })
      yield* single.wait()
      const t0 = 600
      const chain = yield* clients(single, [600, 600, 600, 600], { origin: t0 })
      yield* TestClock.adjust("2400 millis")
      assert.deepStrictEqual(outcomes(chain), [ok(600), ok(1200), ok(1800), ok(2400)])
      assert.strictEqual(pinged.counts.pings, 0)
      assert.deepStrictEqual([(yield* single.stats).poolSize, pinged.open.size], [1, 1])
    }).pipe(Effect.scoped))

  it.effect("a hand-off wakes its waiter after the releasing fiber's step, not inside it; FIFO", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make()
      const pool = yield* Pool.make(mock.connector, { minSize: 2, maxSize: 2 })
      yield* pool.wait()
      const order: Array<string> = []
      // a releases, then pushes in the same synchronous step: c (the oldest waiter) must not have run in between.
      // Woken inline, c would run inside a's release: ["c got", "d got", "a released", ...].
      const holders = yield* Effect.forEach(["a", "b"], (name) =>
        Effect.forkChild(
          Effect.andThen(
            pool.withConnection(() => Effect.sleep(name === "a" ? "10 millis" : "20 millis")),
            Effect.sync(() => order.push(`${name} released`))
          )
        ))
      const waiters = yield* Effect.forEach(["c", "d"], (name) =>
        Effect.forkChild(pool.withConnection(() => Effect.sync(() => order.push(`${name} got`)))))
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.stats).requestsWaiting, 2)
      yield* TestClock.adjust("20 millis")
      yield* Effect.forEach([...holders, ...waiters], Fiber.join)
      // c gets a's connection at 10 ms and passes it straight to d; b's is not needed any more.
      assert.deepStrictEqual(order, ["a released", "c got", "d got", "b released"])

      // A waiter interrupted after it was handed a connection, before it woke, passes the connection on unused.
      const single = yield* MockConnector.make()
      const one = yield* Pool.make(single.connector, { minSize: 1, maxSize: 1 })
      yield* one.wait()
      let leaving: Fiber.Fiber<unknown, unknown> | undefined
      const holder = yield* Effect.forkChild(
        Effect.andThen(one.withConnection(() => Effect.sleep("10 millis")), Effect.suspend(() => Fiber.interrupt(leaving!)))
      )
      leaving = yield* Effect.forkChild(one.withConnection(() => Effect.never))
      const next = yield* Effect.forkChild(one.withConnection(() => Effect.succeed("next")))
      yield* Effect.yieldNow
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(holder)
      assert.strictEqual(yield* Fiber.join(next), "next")
      assert.deepStrictEqual([single.counts.connects, single.open.size], [1, 1])
      assert.deepStrictEqual((yield* one.stats).requestsCancelled, 1)
    }).pipe(Effect.scoped))

  it.effect("a chain of hand-offs whose work never waits on I/O still lets the event loop run", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make()
      const pool = yield* Pool.make(mock.connector, { minSize: 1, maxSize: 1 })
      yield* pool.wait()
      const n = 3000
      let done = 0
      let doneWhenLoopRan = -1
      const holder = yield* Effect.forkChild(pool.withConnection(() => Effect.sleep("1 millis")))
      const chain = yield* Effect.forEach(Array.from({ length: n }), () =>
        Effect.forkChild(pool.withConnection(() =>
          Effect.sync(() => {
            // The first waiter woken asks the event loop to report back: the loop runs before the chain ends.
            if (done++ === 0) setImmediate(() => (doneWhenLoopRan = done))
          })
        )))
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.stats).requestsWaiting, n)
      yield* TestClock.adjust("1 millis")
      yield* Effect.forEach([holder, ...chain], Fiber.join)
      assert.strictEqual(done, n)
      assert.isAbove(doneWhenLoopRan, 0)
      assert.isBelow(doneWhenLoopRan, n)
    }).pipe(Effect.scoped))

  it.effect("one deadline covers the whole acquisition; timeout <= 0 fails at once", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ pingLatency: "60 millis" })
      const pool = yield* Pool.make(mock.connector, { minSize: 2, maxSize: 2, timeout: "100 millis" })
      yield* pool.wait()

      const fibers = yield* clients(pool, [200, 200, 200, 200])
      yield* TestClock.adjust("99 millis")
      assert.deepStrictEqual(outcomes(fibers), Array(4).fill("running"))
      yield* TestClock.adjust("1 millis")
      const timedOut = failed("PoolTimeout", 100)
      assert.deepStrictEqual(outcomes(fibers), ["running", "running", timedOut, timedOut])
      yield* TestClock.adjust("100 millis")
      assert.deepStrictEqual(outcomes(fibers), [ok(200), ok(200), timedOut, timedOut])
      const after = yield* pool.stats
      assert.deepStrictEqual([after.requestsErrors, after.requestsWaiting, after.poolAvailable], [2, 0, 2])

      // The deadline also covers checkout checks and their retries: with both connections idle >= 1 s and 60 ms
      // pings, a failing check (60 ms) and the retry's check (cut off at the deadline) end in PoolTimeout at 100 ms.
      yield* TestClock.adjust("1 second")
      mock.failPings(1)
      const checking = yield* start(timed(pool.withConnection(() => Effect.void), 1200))
      yield* TestClock.adjust("99 millis")
      assert.deepStrictEqual(outcomes([checking]), ["running"])
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(outcomes([checking]), [failed("PoolTimeout", 100)])
      // The mock counts completed pings: the second was cut off at the deadline.
      assert.strictEqual(mock.counts.pings, 1)
      const checked = yield* pool.stats
      assert.deepStrictEqual([checked.connectionsLost, checked.closed.checkFailed, checked.poolAvailable], [2, 2, 2])

      // timeout <= 0 fails at once, even with two idle connections, and takes none of them.
      const err = yield* Effect.flip(pool.withConnection(() => Effect.void, { timeout: 0 }))
      assert.deepStrictEqual([err._tag, err._tag === "PoolTimeout" ? err.timeoutMs : NaN], ["PoolTimeout", 0])
      const atOnce = failed("PoolTimeout", 0)
      assert.deepStrictEqual(yield* timed(pool.withConnection(() => Effect.void, { timeout: -5 }), 1300), atOnce)
      assert.deepStrictEqual(yield* timed(Effect.scoped(pool.connection({ timeout: "0 millis" })), 1300), atOnce)
      // A pool-wide timeout of 0 does the same.
      const zero = yield* Pool.make(mock.connector, { minSize: 1, timeout: 0 })
      yield* zero.wait("1 second")
      assert.deepStrictEqual(yield* timed(zero.withConnection(() => Effect.void), 1300), atOnce)
      // The per-acquisition timeout overrides it.
      assert.deepStrictEqual(yield* timed(zero.withConnection(() => Effect.void, { timeout: "1 second" }), 1300), ok(0))

      const stats = yield* pool.stats
      assert.deepStrictEqual(
        [stats.requestsNum, stats.requestsErrors, stats.poolAvailable, stats.poolSize, mock.open.size],
        [8, 6, 2, 2, 3]
      )
      yield* zero.close()
      yield* pool.close()
      assert.strictEqual(mock.open.size, 0)
    }).pipe(Effect.scoped))

  it.effect("a waiter that timed out never receives a connection, and nothing is lost", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make()
      const pool = yield* Pool.make(mock.connector, { minSize: 2, maxSize: 2 })
      yield* pool.wait()

      const fibers = yield* clients(pool, [300, 300, 300, 300, 300], {
        timeouts: ["400 millis", "400 millis", "100 millis", "400 millis", "400 millis"]
      })
      yield* TestClock.adjust("100 millis")
      assert.deepStrictEqual(outcomes(fibers), ["running", "running", failed("PoolTimeout", 100), "running", "running"])
      // At 300 ms both connections go to the fourth and fifth clients, none to the third that left.
      yield* TestClock.adjust("500 millis")
      assert.deepStrictEqual(outcomes(fibers), [ok(300), ok(300), failed("PoolTimeout", 100), ok(600), ok(600)])

      const stats = yield* pool.stats
      assert.deepStrictEqual(
        [stats.poolAvailable, stats.poolSize, stats.requestsWaiting, stats.requestsErrors, stats.requestsQueued],
        [2, 2, 0, 1, 3]
      )
      assert.deepStrictEqual([mock.counts.connectAttempts, mock.open.size], [2, 2])
    }).pipe(Effect.scoped))

  it.effect("maxWaiting: an acquisition beyond maxWaiting waiters fails at once with TooManyRequests", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make()
      const pool = yield* Pool.make(mock.connector, { minSize: 1, maxSize: 1, maxWaiting: 3 })
      yield* pool.wait()

      const fibers = yield* clients(pool, [300, 100, 100, 100, 100])
      // The fifth found three waiters ahead of it and failed without waiting.
      const rejected = failed("TooManyRequests", 0)
      assert.deepStrictEqual(outcomes(fibers), ["running", "running", "running", "running", rejected])
      const queued = yield* pool.stats
      assert.deepStrictEqual([queued.requestsWaiting, queued.requestsErrors], [3, 1])
      yield* TestClock.adjust("600 millis")
      assert.deepStrictEqual(outcomes(fibers), [ok(300), ok(400), ok(500), ok(600), rejected])

      const stats = yield* pool.stats
      assert.deepStrictEqual(
        [stats.requestsNum, stats.requestsQueued, stats.requestsErrors, stats.poolAvailable, stats.poolSize],
        [5, 3, 1, 1, 1]
      )
      // With the queue empty again, acquisitions are accepted.
      assert.deepStrictEqual(yield* timed(pool.withConnection(() => Effect.void), 600), ok(0))
      assert.deepStrictEqual([mock.counts.connectAttempts, mock.open.size], [1, 1])
    }).pipe(Effect.scoped))
})
