/**
 * Reconnect backoff: the default schedule and a stepper that turns any `Schedule` into "the next delay".
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"

/** Exponential from 1 s, doubling, capped at 10 s, each delay jittered by ±10%. */
export const defaultReconnectSchedule: Schedule.Schedule<Duration.Duration> = Schedule.min([
  Schedule.exponential("1 second", 2),
  Schedule.spaced("10 seconds")
]).pipe(
  Schedule.modifyDelay(({ duration }) =>
    Effect.map(Random.nextBetween(0.9, 1.1), (f) => Duration.millis(Math.round(Duration.toMillis(duration) * f)))
  )
)

/**
 * Steps a schedule by hand. `next` gives the delay before the next attempt; a schedule that ends keeps its last
 * delay, so the pool never stops retrying (it only reports via `onReconnectFailed`). `reset` starts over after a
 * success.
 */
export interface Backoff {
  readonly next: Effect.Effect<number>
  readonly reset: Effect.Effect<void>
}

export const makeBackoff = Effect.fnUntraced(function*(schedule: Schedule.Schedule<unknown, unknown>) {
  let step = yield* Schedule.toStep(schedule)
  let last = 1000
  const backoff: Backoff = {
    next: Clock.currentTimeMillis.pipe(
      Effect.flatMap((now) => step(now, undefined)),
      Effect.map(([, delay]) => (last = Duration.toMillis(delay))),
      Effect.catchCause(() => Effect.succeed(last))
    ),
    reset: Effect.map(Schedule.toStep(schedule), (fresh) => {
      step = fresh
    })
  }
  return backoff
})
