/**
 * In-memory connections for `TestClock` tests, with fault injection: connect latency, failing connects, broken
 * connections, failing pings and resets, and counters that let a test prove nothing leaked.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Connector } from "../Connector.ts"
import { makeFaults } from "../internal/faults.ts"

/**
 * The error every injected failure raises.
 *
 * **Example**
 *
 * ```ts
 * import { MockConnector } from "effect-pg-pool/testing"
 *
 * const error = new MockConnector.MockError({ operation: "connect", message: "refused" })
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export class MockError extends Data.TaggedError("MockError")<{
  readonly operation: "connect" | "ping" | "reset"
  readonly message: string
}> {}

/**
 * One in-memory connection.
 *
 * **Details**
 *
 * `broken` makes the pool discard it on return; `dirty` makes the pool reset it (when the mock resets, see
 * `MockOptions.reset`); `uses` counts the leases the test recorded with `touch`.
 *
 * **Example**
 *
 * ```ts
 * import type { MockConnector } from "effect-pg-pool/testing"
 *
 * const label = (c: MockConnector.MockConnection) => `#${c.id}${c.open ? "" : " (closed)"}`
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface MockConnection {
  readonly id: number
  open: boolean
  broken: boolean
  dirty: boolean
  resets: number
  pings: number
}

/**
 * Options of a mock.
 *
 * **Details**
 *
 * `connectLatency` (0), `pingLatency` (0), `resetLatency` (0), `closeLatency` (0): virtual time each operation
 * takes. `reset` (false): give the connector a `reset` that runs only for dirty connections (as PgConnector's
 * "auto" does); `"always"` resets every return.
 *
 * **Example**
 *
 * ```ts
 * import type { MockConnector } from "effect-pg-pool/testing"
 *
 * const slow: MockConnector.MockOptions = { connectLatency: "150 millis" }
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface MockOptions {
  readonly connectLatency?: Duration.Input | undefined
  readonly pingLatency?: Duration.Input | undefined
  readonly resetLatency?: Duration.Input | undefined
  readonly closeLatency?: Duration.Input | undefined
  readonly reset?: boolean | "always" | undefined
}

/**
 * What every test double of this package counts and lets a test inject: operation counts, connect attempt times, and
 * "the next n connects / pings / resets fail" (`Infinity` until `recover`).
 *
 * **Example**
 *
 * ```ts
 * import type { MockConnector } from "effect-pg-pool/testing"
 *
 * const outage = (faults: MockConnector.FaultControls) => faults.failConnects(Infinity)
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface FaultControls {
  readonly counts: {
    readonly connects: number
    readonly connectAttempts: number
    readonly closes: number
    readonly pings: number
    readonly resets: number
  }
  /** Times (virtual ms) at which each connect attempt started. */
  readonly attemptTimes: ReadonlyArray<number>
  readonly failConnects: (count: number) => void
  readonly failPings: (count: number) => void
  readonly failResets: (count: number) => void
  readonly recover: () => void
}

/**
 * A mock connector and its controls.
 *
 * **Details**
 *
 * - `failConnects(n)`: the next `n` connects fail (`Infinity` until `recover`). `failPings`, `failResets` likewise.
 * - `breakConnection(c)`: the connection is broken from outside: its pings fail and it is discarded on return.
 * - `open`: the connections currently open; after a pool settles it must equal the pool's connections.
 * - `counts`: connects (successful), connectAttempts, closes, pings, resets.
 * - `setConnectLatency`: change the latency of later connects.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { MockConnector } from "effect-pg-pool/testing"
 *
 * const program = Effect.gen(function*() {
 *   const mock = yield* MockConnector.make()
 *   mock.failConnects(Infinity)
 *   // ... the pool backs off ...
 *   mock.recover()
 * })
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface MockConnector extends FaultControls {
  readonly connector: Connector<MockConnection, MockError>
  readonly open: ReadonlySet<MockConnection>
  readonly breakConnection: (connection: MockConnection) => void
  readonly setConnectLatency: (latency: Duration.Input) => void
}

/**
 * Creates a mock connector.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { Pool } from "effect-pg-pool"
 * import { MockConnector } from "effect-pg-pool/testing"
 *
 * const program = Effect.gen(function*() {
 *   const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
 *   const pool = yield* Pool.make(mock.connector, { minSize: 2 })
 *   yield* pool.wait()
 *   return mock.open.size // 2
 * }).pipe(Effect.scoped)
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: MockOptions = {}): Effect.Effect<MockConnector> =>
  Effect.sync(() => {
    const ms = (input: Duration.Input | undefined) => input === undefined ? 0 : Duration.toMillis(input)
    let connectLatency = ms(options.connectLatency)
    const pause = (latency: number) => latency > 0 ? Effect.sleep(latency) : Effect.void
    const open = new Set<MockConnection>()
    const counts = { connects: 0, connectAttempts: 0, closes: 0, pings: 0, resets: 0 }
    const attemptTimes: Array<number> = []
    const faults = makeFaults()
    let nextId = 1

    const fault = (operation: MockError["operation"]) =>
      Effect.fail(new MockError({ operation, message: `mock: injected ${operation} failure` }))

    const connect = Effect.gen(function*() {
      counts.connectAttempts++
      attemptTimes.push(yield* Effect.clockWith((clock) => clock.currentTimeMillis))
      yield* pause(connectLatency)
      if (faults.take("connect")) {
        return yield* fault("connect")
      }
      const connection: MockConnection = { id: nextId++, open: true, broken: false, dirty: false, resets: 0, pings: 0 }
      counts.connects++
      open.add(connection)
      return connection
    })

    const reset = (connection: MockConnection) =>
      Effect.andThen(
        pause(ms(options.resetLatency)),
        Effect.suspend(() => {
          counts.resets++
          connection.resets++
          if (faults.take("reset")) {
            return fault("reset")
          }
          connection.dirty = false
          return Effect.void
        })
      )

    const connector: Connector<MockConnection, MockError> = {
      connect,
      close: (connection) =>
        Effect.andThen(
          pause(ms(options.closeLatency)),
          Effect.sync(() => {
            if (!connection.open) return
            connection.open = false
            counts.closes++
            open.delete(connection)
          })
        ),
      ping: (connection) =>
        Effect.andThen(
          pause(ms(options.pingLatency)),
          Effect.suspend(() => {
            counts.pings++
            connection.pings++
            if (faults.take("ping")) {
              return fault("ping")
            }
            return connection.open && !connection.broken ? Effect.void : fault("ping")
          })
        ),
      isBroken: (connection) => connection.broken || !connection.open,
      ...(options.reset === undefined || options.reset === false
        ? {}
        : { reset, needsReset: options.reset === "always" ? () => true : (connection) => connection.dirty })
    }

    return {
      connector,
      open,
      counts,
      attemptTimes,
      failConnects: faults.failConnects,
      failPings: faults.failPings,
      failResets: faults.failResets,
      recover: faults.recover,
      breakConnection: (connection) => {
        connection.broken = true
      },
      setConnectLatency: (latency) => {
        connectLatency = ms(latency)
      }
    }
  })
