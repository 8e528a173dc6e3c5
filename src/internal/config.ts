/**
 * Turns `Pool.Options` into plain numbers (milliseconds) with defaults, or a `PoolConfigError` naming the field.
 * The one place where defaults live.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import type { Options, ReconnectFailed } from "../Pool.ts"
import { PoolConfigError } from "../PoolError.ts"
import { defaultReconnectSchedule } from "./backoff.ts"

export interface Resolved<C, E> {
  readonly name: string
  readonly minSize: number
  readonly maxSize: number
  readonly timeoutMs: number
  readonly maxWaiting: number
  readonly maxLifetimeMs: number
  readonly maxIdleMs: number
  readonly maxUses: number
  readonly numWorkers: number
  readonly reconnectSchedule: Schedule.Schedule<unknown, unknown>
  readonly reconnectTimeoutMs: number
  readonly onReconnectFailed: ((info: ReconnectFailed) => Effect.Effect<void>) | undefined
  readonly configure: ((connection: C) => Effect.Effect<void, E>) | undefined
  /** Infinity when the checkout check is off. */
  readonly checkIdleMs: number
  readonly checkRun: ((connection: C) => Effect.Effect<void, E>) | undefined
  readonly leakThresholdMs: number
  readonly closeTimeoutMs: number
  readonly nullPool: boolean
  readonly metricsIntervalMs: number
  /** Shared statements per connection at once; 1 when multiplexing is off. */
  readonly multiplex: number
  /** How long `make` waits for minSize connections; undefined: it does not wait. */
  readonly waitOnOpenMs: number | undefined
}

let poolCounter = 0

const fail = (field: string, reason: string) => Effect.fail(new PoolConfigError({ field, reason }))

/** Milliseconds of a `Duration.Input`, or a config error naming the field. */
export const millis = (
  field: string,
  input: Duration.Input | undefined,
  fallback: number,
  options: { readonly positive?: boolean } = {}
): Effect.Effect<number, PoolConfigError> => {
  if (input === undefined) return Effect.succeed(fallback)
  const decoded = Duration.fromInput(input)
  if (Option.isNone(decoded)) return fail(field, `is not a duration: ${JSON.stringify(String(input))}`)
  const ms = Duration.toMillis(decoded.value)
  if (Number.isNaN(ms)) return fail(field, "is not a duration")
  if (options.positive === true ? ms <= 0 : ms < 0) {
    return fail(field, `must be ${options.positive === true ? "> 0" : ">= 0"}, got ${ms} ms`)
  }
  return Effect.succeed(ms)
}

const integer = (
  field: string,
  value: number | undefined,
  fallback: number,
  min: number
): Effect.Effect<number, PoolConfigError> => {
  if (value === undefined) return Effect.succeed(fallback)
  if (typeof value !== "number" || Number.isNaN(value) || (value !== Infinity && !Number.isInteger(value))) {
    return fail(field, `must be an integer, got ${String(value)}`)
  }
  if (value < min) return fail(field, `must be >= ${min}, got ${value}`)
  return Effect.succeed(value)
}

/** Validates a pair of sizes; shared by `make` and `resize`. */
export const sizes = (
  minSize: number | undefined,
  maxSize: number | undefined,
  defaults: { readonly minSize: number }
): Effect.Effect<{ readonly minSize: number; readonly maxSize: number }, PoolConfigError> =>
  Effect.flatMap(integer("minSize", minSize, defaults.minSize, 0), (min) => {
    if (min === Infinity) return fail("minSize", "must be finite")
    return Effect.flatMap(integer("maxSize", maxSize, min, 0), (max) => {
      if (max === Infinity) return fail("maxSize", "must be finite")
      if (max < min) return fail("maxSize", `must be >= minSize (${min}), got ${max}`)
      if (max === 0) return fail("maxSize", "must be > 0")
      return Effect.succeed({ minSize: min, maxSize: max })
    })
  })

/** `waitOnOpen` in milliseconds: undefined when off, the pool's `timeout` when `true`. */
const waitOnOpenMs = (
  input: boolean | Duration.Input | undefined,
  timeoutMs: number
): Effect.Effect<number | undefined, PoolConfigError> =>
  input === undefined || input === false
    ? Effect.succeed(undefined)
    : input === true
    ? Effect.succeed(timeoutMs)
    : millis("waitOnOpen", input, timeoutMs, { positive: true })

export const resolve = Effect.fnUntraced(function*<C, E>(options: Options<C, E>) {
  const nullPool = options.nullPool === true
  if (nullPool && options.minSize !== undefined && options.minSize !== 0) {
    return yield* fail("minSize", `must be 0 in a null pool, got ${options.minSize}`)
  }
  const size = yield* sizes(options.minSize, options.maxSize, { minSize: nullPool ? 0 : 4 })
  const name = options.name ?? `pool-${++poolCounter}`
  if (typeof name !== "string" || name.length === 0) return yield* fail("name", "must be a non-empty string")
  const check = options.check
  const timeoutMs = yield* millis("timeout", options.timeout, 30_000)
  const resolved: Resolved<C, E> = {
    name,
    minSize: size.minSize,
    maxSize: size.maxSize,
    timeoutMs,
    maxWaiting: yield* integer("maxWaiting", options.maxWaiting, 0, 0),
    maxLifetimeMs: yield* millis("maxLifetime", options.maxLifetime, 3_600_000, { positive: true }),
    maxIdleMs: yield* millis("maxIdle", options.maxIdle, 600_000, { positive: true }),
    maxUses: yield* integer("maxUses", options.maxUses, Infinity, 1),
    // A null pool connects on behalf of callers, so it needs one worker per possible connection.
    numWorkers: nullPool ? size.maxSize : yield* integer("numWorkers", options.numWorkers, 3, 1),
    reconnectSchedule: options.reconnectSchedule ?? defaultReconnectSchedule,
    reconnectTimeoutMs: yield* millis("reconnectTimeout", options.reconnectTimeout, 300_000),
    onReconnectFailed: options.onReconnectFailed,
    configure: options.configure,
    checkIdleMs: check === false ? Infinity : yield* millis("check.idle", check?.idle, 1000),
    checkRun: check === false ? undefined : check?.run,
    leakThresholdMs: yield* millis("leakThreshold", options.leakThreshold, Infinity, { positive: true }),
    closeTimeoutMs: yield* millis("closeTimeout", options.closeTimeout, 5000),
    nullPool,
    metricsIntervalMs: yield* millis("metricsInterval", options.metricsInterval, 5000, { positive: true }),
    multiplex: yield* integer("multiplex", options.multiplex, 1, 1),
    waitOnOpenMs: yield* waitOnOpenMs(options.waitOnOpen, timeoutMs)
  }
  if (resolved.multiplex === Infinity) return yield* fail("multiplex", "must be finite")
  if (options.numWorkers !== undefined && nullPool) yield* integer("numWorkers", options.numWorkers, 3, 1)
  if (resolved.numWorkers === Infinity) return yield* fail("numWorkers", "must be finite")
  return resolved
})
