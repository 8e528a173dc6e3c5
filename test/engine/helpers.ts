/**
 * Observers for the engine's TestClock tests: clients that report when (in virtual ms) and how they ended, so a
 * test can assert exact finish times with one `deepStrictEqual`.
 */
import { Clock, Effect, Fiber, Result } from "effect"
import type { Duration, Scope } from "effect"
import type * as Pool from "../../src/Pool.ts"

/** How a client ended: at `at` virtual ms (relative to the test's origin), `"ok"` or the failure's `_tag`. */
export interface Outcome {
  readonly at: number
  readonly result: string
}

export const ok = (at: number): Outcome => ({ at, result: "ok" })
export const failed = (tag: string, at: number): Outcome => ({ at, result: tag })

/** The virtual time now. */
export const now: Effect.Effect<number> = Clock.currentTimeMillis

/** Runs `effect` and reports when it ended (minus `origin`) and how. */
export const timed = <A, E extends { readonly _tag: string }, R>(
  effect: Effect.Effect<A, E, R>,
  origin = 0
): Effect.Effect<Outcome, never, R> =>
  Effect.flatMap(Effect.result(effect), (result) =>
    Effect.map(now, (at) => ({
      at: at - origin,
      result: Result.isSuccess(result) ? "ok" : result.failure._tag
    })))

/**
 * Forks `effect` and starts it at once, so forks queue in the order they are made. The fiber belongs to the
 * current scope: when a test fails, the scope interrupts it before the pool (made earlier) closes, so the pool's
 * close does not wait on the TestClock for a connection it still holds, and the failure is reported at once.
 */
export const start = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<Fiber.Fiber<A, E>, never, R | Scope.Scope> => Effect.forkScoped(effect, { startImmediately: true })

/**
 * Forks a client that borrows a connection for `holdMs` virtual ms and reports when it finished (relative to
 * `origin`) and how.
 */
export const client = <C>(
  pool: Pool.Pool<C>,
  holdMs: number,
  options: { readonly timeout?: Duration.Input | undefined; readonly origin?: number | undefined } = {}
): Effect.Effect<Fiber.Fiber<Outcome>, never, Scope.Scope> =>
  start(timed(pool.withConnection(() => Effect.sleep(holdMs), { timeout: options.timeout }), options.origin))

/** Forks one client per entry of `holds` (one timeout per client when `timeouts` is given), in order. */
export const clients = <C>(
  pool: Pool.Pool<C>,
  holds: ReadonlyArray<number>,
  options: { readonly timeouts?: ReadonlyArray<Duration.Input> | undefined; readonly origin?: number | undefined } = {}
): Effect.Effect<Array<Fiber.Fiber<Outcome>>, never, Scope.Scope> =>
  Effect.forEach(holds, (holdMs, i) => client(pool, holdMs, { timeout: options.timeouts?.[i], origin: options.origin }))

/** The outcomes of finished clients; fails the test if one is still running. */
export const outcomes = (fibers: ReadonlyArray<Fiber.Fiber<Outcome>>): Array<Outcome | "running"> =>
  fibers.map((fiber) => {
    const exit = fiber.pollUnsafe()
    if (exit === undefined) return "running"
    if (exit._tag === "Failure") throw new Error(`client died: ${String(exit.cause)}`)
    return exit.value
  })

/** Lets background fibers that need no virtual time (0-latency connects, closes) run to completion. */
export const settle: Effect.Effect<void> = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})
