import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { at, client, exactBackoff, fork, holder, now, readyAt, tagOf, makePool } from "./helpers2.ts"

const value = <A>(fiber: Fiber.Fiber<A, never>): A => {
  const exit = fiber.pollUnsafe()
  if (exit === undefined || Exit.isFailure(exit)) throw new Error("fiber not done")
  return exit.value
}

describe("return path", () => {
  it.effect("a connection returned broken is closed and replaced (returnsBad)", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1 })
      yield* readyAt(pool, 100)
      // A breaks #1 and returns it at 150; B, queued since 120, gets the replacement (150 -> 250).
      const a = yield* fork(
        client(pool, (conn) => Effect.andThen(Effect.sleep(50), Effect.sync(() => mock.breakConnection(conn))))
      )
      yield* at(120)
      const b = yield* fork(holder(pool, 50))
      yield* at(300)
      assert.deepStrictEqual([value(a).id, value(a).endAt], [1, 150])
      assert.deepStrictEqual([value(b).id, value(b).gotAt], [2, 250])
      assert.deepStrictEqual(mock.attemptTimes, [0, 150])
      // invalidate marks a borrowed connection broken: closed on return (310), replaced (310 -> 410).
      const c = yield* fork(client(pool, (conn) => Effect.andThen(pool.invalidate(conn), Effect.sleep(10))))
      yield* at(410)
      assert.strictEqual(value(c).id, 2)
      assert.deepStrictEqual(mock.attemptTimes, [0, 150, 310])
      assert.deepStrictEqual(Array.from(mock.open, (x) => x.id), [3])
      // invalidate on an idle connection closes it at once.
      yield* pool.invalidate(Array.from(mock.open)[0])
      assert.strictEqual(mock.open.size, 0)
      yield* at(510)
      assert.deepStrictEqual(mock.attemptTimes, [0, 150, 310, 410])
      const s = yield* pool.stats
      assert.strictEqual(s.returnsBad, 2)
      assert.strictEqual(s.closed.broken, 3)
      assert.strictEqual(s.poolSize, 1)
      assert.strictEqual(s.poolAvailable, 1)
    }).pipe(Effect.scoped))

  it.effect("a lease ended by interruption or defect is closed and replaced", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1 })
      yield* readyAt(pool, 100)
      // Interrupted at 200 while using #1: a statement may still run on it, so it is closed, not reused.
      const a = yield* fork(client(pool, () => Effect.never))
      yield* at(200)
      yield* Fiber.interrupt(a)
      assert.isFalse(Array.from(mock.open).some((c) => c.id === 1))
      yield* at(300)
      // Replacement #2 opened 200 -> 300. A lease ending in a defect (at 350) closes #2 too.
      const b = yield* fork(client(pool, () => Effect.andThen(Effect.sleep(50), Effect.die("boom"))))
      yield* at(350)
      assert.strictEqual(tagOf(value(b).exit as Exit.Exit<unknown, unknown>), "Die")
      assert.strictEqual(value(b).id, 2)
      yield* at(450)
      // The same through a scoped lease.
      yield* Effect.scoped(Effect.andThen(pool.connection(), Effect.die("boom"))).pipe(Effect.exit)
      yield* at(550)
      // A lease ending in a typed failure is an ordinary return: the connection is kept.
      const d = yield* fork(client(pool, () => Effect.andThen(Effect.sleep(10), Effect.fail("nope"))))
      yield* at(560)
      assert.strictEqual(value(d).id, 4)
      // A callback that throws instead of returning an effect: a defect for the caller, and the connection (#4) is
      // closed like any lease ending in a defect, not lost.
      const thrown = yield* Effect.exit(pool.withConnection((): Effect.Effect<void> => {
        throw new Error("thrown")
      }))
      assert.strictEqual(tagOf(thrown as Exit.Exit<unknown, unknown>), "Die")
      assert.deepStrictEqual(Array.from(mock.open, (c) => c.id), [])
      yield* at(1000)
      assert.deepStrictEqual(mock.attemptTimes, [0, 200, 350, 450, 560])
      assert.deepStrictEqual(Array.from(mock.open, (c) => c.id), [5])
      const s = yield* pool.stats
      assert.strictEqual(s.closed.interrupted, 4)
      assert.strictEqual(s.returnsBad, 0)
      assert.strictEqual(s.poolAvailable, 1)
    }).pipe(Effect.scoped))

  it.effect("configure runs once per new connection and counts in the connect time", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const configured: Array<{ readonly id: number; readonly at: number }> = []
      const pool = yield* makePool(mock.connector, {
        minSize: 2,
        configure: (conn) =>
          Effect.andThen(
            Effect.sleep(50),
            Effect.flatMap(now, (t) => Effect.sync(() => configured.push({ id: conn.id, at: t })))
          )
      })
      yield* readyAt(pool, 150)
      assert.deepStrictEqual(configured, [{ id: 1, at: 150 }, { id: 2, at: 150 }])
      const fibers = yield* Effect.forEach([1, 2, 3, 4, 5, 6], () => fork(holder(pool, 10)))
      yield* at(200)
      assert.isTrue(fibers.every((f) => f.pollUnsafe() !== undefined))
      assert.strictEqual(configured.length, 2)
      const s = yield* pool.stats
      assert.strictEqual(s.connectionsNum, 2)
      assert.strictEqual(s.connectionsMs, 300)
    }).pipe(Effect.scoped))

  it.effect("a failing configure counts as a failed connect", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      let calls = 0
      const pool = yield* makePool(mock.connector, {
        minSize: 1,
        reconnectSchedule: exactBackoff,
        configure: () =>
          ++calls === 1
            ? Effect.fail(new MockConnector.MockError({ operation: "connect", message: "configure" }))
            : Effect.void
      })
      // The first connection fails configure at 100 and is closed; the retry waits out the backoff (1 s).
      yield* at(100)
      assert.strictEqual(mock.counts.connects, 1)
      assert.strictEqual(mock.open.size, 0)
      assert.strictEqual(mock.counts.closes, 1)
      const s1 = yield* pool.stats
      assert.strictEqual(s1.connectionsErrors, 1)
      assert.strictEqual(s1.connectionsNum, 0)
      yield* readyAt(pool, 1200)
      assert.deepStrictEqual(mock.attemptTimes, [0, 1100])
      assert.deepStrictEqual(Array.from(mock.open, (c) => c.id), [2])
      assert.strictEqual(calls, 2)
      const s2 = yield* pool.stats
      assert.strictEqual(s2.connectionsNum, 1)
      assert.strictEqual(s2.connectionsErrors, 1)
    }).pipe(Effect.scoped))

  it.effect("reset runs on every return in the background before the connection is reused", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({
        connectLatency: "100 millis",
        resetLatency: "50 millis",
        reset: "always"
      })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1 })
      yield* readyAt(pool, 100)
      const a = yield* fork(holder(pool, 50))
      yield* at(120)
      const b = yield* fork(holder(pool, 50))
      // A's lease ends at 150 without waiting for the reset; B gets #1 once the reset is done (200).
      yield* at(150)
      assert.strictEqual(value(a).endAt, 150)
      assert.isUndefined(b.pollUnsafe())
      const s = yield* pool.stats
      assert.strictEqual(s.poolAvailable, 0)
      assert.strictEqual(s.poolSize, 1)
      yield* at(300)
      assert.deepStrictEqual([value(b).id, value(b).gotAt, value(b).endAt], [1, 200, 250])
      assert.strictEqual(mock.counts.resets, 2)
      assert.strictEqual((yield* pool.stats).poolAvailable, 1)
    }).pipe(Effect.scoped))

  it.effect("reset runs only for dirty sessions when the connector says so", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({ resetLatency: "50 millis", reset: true })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1 })
      yield* readyAt(pool, 0)
      yield* pool.withConnection(() => Effect.void)
      assert.strictEqual(mock.counts.resets, 0)
      yield* pool.withConnection((conn) =>
        Effect.sync(() => {
          conn.dirty = true
        })
      )
      const s = yield* pool.stats
      assert.strictEqual(s.poolAvailable, 0)
      yield* at(50)
      assert.strictEqual(mock.counts.resets, 1)
      const conn = Array.from(mock.open)[0]
      assert.isFalse(conn.dirty)
      assert.strictEqual((yield* pool.stats).poolAvailable, 1)
    }).pipe(Effect.scoped))

  it.effect("a failing reset discards the connection", () =>
    Effect.gen(function*() {
      const mock = yield* MockConnector.make({
        connectLatency: "100 millis",
        resetLatency: "50 millis",
        reset: "always"
      })
      const pool = yield* makePool(mock.connector, { minSize: 1, maxSize: 1 })
      yield* readyAt(pool, 100)
      mock.failResets(1)
      const a = yield* fork(holder(pool, 50))
      yield* at(120)
      const b = yield* fork(holder(pool, 50))
      // The reset of #1 fails at 200: #1 is closed, the replacement (200 -> 300) goes to B.
      yield* at(199)
      assert.strictEqual(mock.open.size, 1)
      yield* at(200)
      assert.strictEqual(mock.open.size, 0)
      yield* at(400)
      assert.strictEqual(value(a).id, 1)
      assert.deepStrictEqual([value(b).id, value(b).gotAt], [2, 300])
      assert.deepStrictEqual(mock.attemptTimes, [0, 200])
      const s = yield* pool.stats
      assert.strictEqual(s.closed.resetFailed, 1)
      assert.strictEqual(s.returnsBad, 0)
      assert.strictEqual(s.poolAvailable, 1)
    }).pipe(Effect.scoped))
})
