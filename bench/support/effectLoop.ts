/**
 * The workloads for Effect clients (effect-pg-pool, @effect/sql-pg): a runner gives a `Layer` that provides
 * `SqlClient`; every workload runs through that `SqlClient` (`sql\`SELECT 1\``, `sql.withTransaction`), the API
 * users of both libraries write, on fibers.
 */
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import { SqlClient } from "effect/sql/SqlClient"
import {
  type Args,
  burstResult,
  command,
  emit,
  Histogram,
  randomId,
  Recorder,
  sleep,
  Timeline,
  WARM_PAUSE_MS
} from "./protocol.ts"

export interface EffectClientOptions<R> {
  /** Extra figures for w5 (pool size and so on), read after the burst. */
  readonly poolInfo?: Effect.Effect<Record<string, unknown>, never, R> | undefined
  /** W1/W2 only: the `SqlClient` each worker uses (by its index) instead of the layer's one. */
  readonly clientFor?: Effect.Effect<(worker: number) => SqlClient, never, R> | undefined
}

const replicate = <A, E, R>(n: number, effect: Effect.Effect<A, E, R> | ((index: number) => Effect.Effect<A, E, R>)) =>
  Effect.forEach(Array.from({ length: n }), (_, i) => typeof effect === "function" ? effect(i) : effect, {
    concurrency: "unbounded",
    discard: true
  })

/**
 * Opens the pool before the workers start: `n` concurrent short sleeps, then a pause for connects still under way.
 * Every client does this (see `WARM_PAUSE_MS`), so none starts its workers against a cold pool.
 */
const warm = (sql: SqlClient, n: number) =>
  Effect.andThen(replicate(n, sql`SELECT pg_sleep(0.05)`), Effect.sleep(WARM_PAUSE_MS))

export const runEffectClient = <E, R>(
  args: Args,
  layer: Layer.Layer<R | SqlClient, E>,
  options: EffectClientOptions<R | SqlClient> = {}
): Promise<void> => {
  let lastError: unknown
  const program = Effect.gen(function*() {
    const sql = yield* SqlClient
    const clientFor = options.clientFor === undefined ? () => sql : yield* options.clientFor
    const query = (sql: SqlClient) => sql`SELECT 1`
    const transaction = (sql: SqlClient, id: number) =>
      sql.withTransaction(
        Effect.andThen(
          sql`UPDATE accounts SET balance = balance + 1 WHERE id = ${id}`,
          sql`SELECT balance FROM accounts WHERE id = ${id}`
        )
      )
    switch (args.workload) {
      case "w1":
      case "w2": {
        const rec = new Recorder()
        const op = args.workload === "w1" ? query : (sql: SqlClient) => transaction(sql, randomId(args.accounts))
        const clients = new Set(Array.from({ length: args.concurrency }, (_, i) => clientFor(i)))
        yield* Effect.forEach(clients, (sql) => warm(sql, args.poolMin), { concurrency: "unbounded", discard: true })
        setTimeout(() => rec.start(), args.warmupMs)
        setTimeout(() => rec.stop(), args.warmupMs + args.durationMs)
        const worker = (index: number) =>
          Effect.gen(function*() {
            const sql = clientFor(index)
            while (rec.phase < 2) {
              const t0 = performance.now()
              const exit = yield* Effect.exit(op(sql))
              if (exit._tag === "Success") rec.ok(t0)
              else {
                lastError = exit.cause
                rec.fail()
                yield* Effect.sleep(1)
              }
            }
          })
        yield* replicate(args.concurrency, worker)
        yield* Effect.promise(() => rec.flushed())
        emit(rec.result({ lastError: lastError === undefined ? undefined : String(lastError) }))
        return
      }
      case "w4": {
        const timeline = new Timeline()
        const worker = Effect.gen(function*() {
          while (true) {
            const exit = yield* Effect.exit(query(sql))
            if (exit._tag === "Success") timeline.success()
            else {
              lastError = exit.cause
              timeline.failure()
              yield* Effect.sleep(10)
            }
          }
        })
        const control = Effect.promise(async () => {
          await sleep(args.warmupMs)
          emit({ type: "ready" })
          await command("stop", args.maxMs)
        })
        // `stop` interrupts the workers, wherever they are (a worker may be waiting for a connection)
        yield* Effect.raceFirst(control, replicate(args.concurrency, worker))
        emit(timeline.result({ lastError: lastError === undefined ? undefined : String(lastError) }))
        return
      }
      case "w5": {
        yield* warm(sql, args.poolMin)
        emit({ type: "ready" })
        yield* Effect.promise(() => command("go", args.maxMs))
        const hist = new Histogram()
        let errors = 0
        const t0 = performance.now()
        yield* replicate(
          args.concurrency,
          Effect.suspend(() => {
            const start = performance.now()
            return Effect.exit(query(sql)).pipe(Effect.map((exit) => {
              if (exit._tag === "Success") hist.record((performance.now() - start) * 1000)
              else {
                lastError = exit.cause
                errors++
              }
            }))
          })
        )
        const durationMs = performance.now() - t0
        yield* Effect.sleep(args.durationMs)
        const pool = options.poolInfo === undefined ? undefined : yield* options.poolInfo
        emit(burstResult(args.concurrency, durationMs, hist, errors, pool, lastError))
        return
      }
      default:
        throw new Error(`workload ${args.workload} is not run by this client`)
    }
  })
  // the layer provides everything the program needs (`SqlClient`, and whatever `poolInfo` reads)
  const provided = Effect.provide(program, layer) as Effect.Effect<void, unknown>
  return Effect.runPromise(Effect.orDie(provided))
}
