/**
 * Helpers for the engine tests (behaviours 11–20): clients that record which connection they got and when,
 * moving the virtual clock to absolute times, a jitter-free reconnect schedule, and a pool that cannot hang a
 * failing test.
 */
import { Clock, Duration, Effect, Exit, Fiber, Schedule } from "effect"
import { TestClock } from "effect/testing"
import type { Connector } from "../../src/Connector.ts"
import type * as Pool from "../../src/Pool.ts"
import * as PoolModule from "../../src/Pool.ts"
import type { PoolError } from "../../src/PoolError.ts"
import type * as MockConnector from "../../src/testing/MockConnector.ts"

/** Virtual now, in ms. */
export const now: Effect.Effect<number> = Clock.currentTimeMillis

/** Forks a child fiber that starts at once (so it queues before the next line runs). */
export const fork = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Fiber.Fiber<A, E>, never, R> =>
  Effect.forkChild(effect, { startImmediately: true })

/** Moves the virtual clock to an absolute time (ms), running everything due on the way. */
export const at = (t: number): Effect.Effect<void> =>
  Effect.flatMap(now, (n) => {
    if (t < n) return Effect.die(new Error(`at(${t}): the clock is already at ${n}`))
    return TestClock.adjust(t - n)
  })

/** What a client saw: the connection id it got, when it got it, when it ended, and how. */
export interface Outcome<A, E> {
  readonly id: number | undefined
  readonly gotAt: number | undefined
  readonly endAt: number
  readonly exit: Exit.Exit<A, E>
}

/**
 * A client: acquires with `withConnection`, records which connection it got and when, then runs `use`.
 */
export const client = <A = void, E = never>(
  pool: Pool.Pool<MockConnector.MockConnection>,
  use: (conn: MockConnector.MockConnection) => Effect.Effect<A, E> = () =>
    Effect.void as unknown as Effect.Effect<A, E>,
  options?: Pool.AcquireOptions
): Effect.Effect<Outcome<A, E | PoolError>> =>
  Effect.suspend(() => {
    let id: number | undefined
    let gotAt: number | undefined
    return pool.withConnection(
      (conn) =>
        Effect.flatMap(now, (t) => {
          id = conn.id
          gotAt = t
          return use(conn)
        }),
      options
    ).pipe(
      Effect.exit,
      Effect.flatMap((exit) => Effect.map(now, (endAt) => ({ id, gotAt, endAt, exit })))
    )
  })

/** A client that holds its connection for `ms`. */
export const holder = (
  pool: Pool.Pool<MockConnector.MockConnection>,
  ms: number,
  options?: Pool.AcquireOptions
) => client(pool, () => Effect.sleep(ms), options)

/** Joins all and returns their outcomes. */
export const joinAll = <A>(fibers: ReadonlyArray<Fiber.Fiber<A, never>>): Effect.Effect<Array<A>> =>
  Effect.forEach(fibers, (f) => Fiber.join(f))

/** Exponential from 1 s, ×2, capped at 10 s, no jitter: exact attempt times. */
export const exactBackoff: Schedule.Schedule<Duration.Duration> = Schedule.min([
  Schedule.exponential("1 second", 2),
  Schedule.spaced("10 seconds")
])

/** The tag of a failed exit's error, or "Success" / "Interrupt" / "Die". */
export const tagOf = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "Success"
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (error !== undefined && error._tag === "Fail") {
    const e = error.error as { readonly _tag?: string }
    return e._tag ?? "Fail"
  }
  if (exit.cause.reasons.some((r) => r._tag === "Interrupt")) return "Interrupt"
  return "Die"
}

/** The failure of an exit (the typed error), or undefined. */
export const errorOf = <E>(exit: Exit.Exit<unknown, E>): E | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return reason !== undefined && reason._tag === "Fail" ? reason.error as E : undefined
}

/** Waits for `pool.wait()` while moving the clock to `t`; fails the test if the pool is not ready by then. */
export const readyAt = (pool: Pool.Pool<MockConnector.MockConnection>, t: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    const fiber = yield* fork(pool.wait())
    yield* at(t)
    const exit = fiber.pollUnsafe()
    if (exit === undefined || Exit.isFailure(exit)) {
      return yield* Effect.die(new Error(`pool not ready at ${t}`))
    }
  })

/**
 * `Pool.make`, plus a finalizer that closes the pool with no grace period when the test ends, so a failing test
 * that leaves a connection borrowed fails instead of hanging on the (virtual) close timeout.
 */
export const makePool = <E>(
  connector: Connector<MockConnector.MockConnection, E>,
  options?: Pool.Options<MockConnector.MockConnection, E>
) =>
  Effect.tap(
    PoolModule.make(connector, options),
    (pool) => Effect.addFinalizer(() => pool.close(0))
  )
