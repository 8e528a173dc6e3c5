import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { makePool, type TestPool, timedMillis, waitFor } from "./helpers.ts"

const isSleeping = (row: { readonly state: string | null; readonly query: string }) =>
  row.state === "active" && row.query.includes("pg_sleep")

/**
 * Runs `statement` (a `pg_sleep(10)`) in a fiber, interrupts it once the server shows it running, and checks what
 * the issue asks: the interrupt returns promptly, no statement lingers on the server, the next borrower works, and
 * the pool's count of connections matches the server's.
 */
const interruptSleep = (p: TestPool, statement: Effect.Effect<unknown, unknown>) =>
  Effect.gen(function*() {
    yield* p.pool.wait("10 seconds")
    const fiber = yield* Effect.forkChild(statement)
    const rows = yield* waitFor("pg_sleep running", p.backends, (rows) => rows.some(isSleeping))
    const pid = rows.find(isSleeping)!.pid
    const [elapsed] = yield* timedMillis(Fiber.interrupt(fiber))
    assert.isBelow(elapsed, 2000)
    // The statement does not go on running on the server (whether its backend was cancelled or closed).
    yield* waitFor("no pg_sleep left", p.backends, (rows) => !rows.some(isSleeping), { times: 40 })
    const [next] = yield* p.sql<{ one: number }>`SELECT 1 AS one`
    assert.strictEqual(next.one, 1)
    // Nothing leaked: the pool's size is what the server sees for this pool, and the pool is back to minSize.
    const min = (yield* p.pool.stats).poolMin
    yield* waitFor(
      "pool stats and pg_stat_activity agree",
      Effect.all([p.pool.stats, p.backends]),
      ([stats, rows]) =>
        stats.poolSize === rows.length && stats.poolSize === min && stats.poolAvailable === min &&
        stats.connectionsPending === 0
    )
    return { pid, stats: yield* p.pool.stats }
  })

describe("interruption on a real server", () => {
  it.live("a sql statement interrupted during pg_sleep(10) returns promptly and leaks nothing", () =>
    Effect.gen(function*() {
      const p = yield* makePool({ minSize: 2, maxSize: 2 })
      const { stats } = yield* interruptSleep(p, p.sql`SELECT pg_sleep(10)`)
      assert.strictEqual(stats.closed.interrupted, 1)
    }))

  it.live("a withConnection query interrupted during pg_sleep(10) returns promptly and leaks nothing", () =>
    Effect.gen(function*() {
      const p = yield* makePool({ minSize: 1, maxSize: 1 })
      yield* interruptSleep(p, p.pool.withConnection((conn) => conn.query("SELECT pg_sleep(10)")))
    }))

  it.live("a scoped connection() interrupted during pg_sleep(10) returns promptly and leaks nothing", () =>
    Effect.gen(function*() {
      const p = yield* makePool({ minSize: 1, maxSize: 1 })
      yield* interruptSleep(
        p,
        Effect.scoped(Effect.flatMap(p.pool.connection(), (conn) => conn.query("SELECT pg_sleep(10)")))
      )
    }))

  it.live("a transaction interrupted during pg_sleep(10) returns promptly and leaks nothing", () =>
    Effect.gen(function*() {
      const p = yield* makePool({ minSize: 1, maxSize: 1 })
      yield* interruptSleep(p, p.sql.withTransaction(p.sql`SELECT pg_sleep(10)`))
    }))

  it.live("a statement cut by Effect.timeout returns promptly and leaks nothing", () =>
    Effect.gen(function*() {
      const p = yield* makePool({ minSize: 1, maxSize: 1 })
      yield* p.pool.wait("10 seconds")
      const [elapsed, result] = yield* timedMillis(
        Effect.timeoutOption(p.pool.fetch("SELECT pg_sleep(10)"), "200 millis")
      )
      assert.strictEqual(result._tag, "None")
      assert.isBelow(elapsed, 2000)
      yield* waitFor("no pg_sleep left", p.backends, (rows) => !rows.some(isSleeping), { times: 40 })
      assert.deepStrictEqual(yield* p.pool.fetch("SELECT 2 AS two"), [{ two: 2 }])
      yield* waitFor(
        "pool stats and pg_stat_activity agree",
        Effect.all([p.pool.stats, p.backends]),
        ([stats, rows]) => stats.poolSize === rows.length && stats.poolSize === 1
      )
    }))
})
