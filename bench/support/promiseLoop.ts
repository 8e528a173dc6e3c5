/**
 * The workloads for Promise-based clients (pg, postgres.js): a runner gives a `PromiseDriver`, this file runs
 * w1 (SELECT 1), w2 (short transaction), w4 (recovery timeline) and w5 (burst) with it.
 */
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

export interface PromiseDriver {
  /** `SELECT 1` through the pool. */
  readonly query: () => Promise<unknown>
  /** BEGIN; UPDATE accounts ...; SELECT balance ...; COMMIT through the library's transaction API. */
  readonly transaction: (id: number) => Promise<unknown>
  /** Opens `n` connections (n concurrent short sleeps) so the pool is warm. */
  readonly warm: (n: number) => Promise<void>
  /** Whatever the pool can tell about itself (size, idle, waiting), reported with w5. */
  readonly poolInfo?: () => Record<string, unknown>
  readonly close: () => Promise<void>
}

const bounded = <A>(promise: Promise<A>, ms: number): Promise<A | undefined> =>
  Promise.race([promise, sleep(ms).then(() => undefined)])

const workers = (n: number, body: () => Promise<void>): Promise<Array<void>> =>
  Promise.all(Array.from({ length: n }, body))

export const runPromiseClient = async (args: Args, driver: PromiseDriver): Promise<void> => {
  let lastError: unknown
  switch (args.workload) {
    case "w1":
    case "w2": {
      const rec = new Recorder()
      const op = args.workload === "w1" ? driver.query : () => driver.transaction(randomId(args.accounts))
      await driver.warm(args.poolMin)
      await sleep(WARM_PAUSE_MS)
      setTimeout(() => rec.start(), args.warmupMs)
      setTimeout(() => rec.stop(), args.warmupMs + args.durationMs)
      await workers(args.concurrency, async () => {
        while (rec.phase < 2) {
          const t0 = performance.now()
          try {
            await op()
            rec.ok(t0)
          } catch (error) {
            lastError = error
            rec.fail()
            await sleep(1)
          }
        }
      })
      await rec.flushed()
      emit(rec.result({ lastError: lastError === undefined ? undefined : String(lastError) }))
      break
    }
    case "w4": {
      const timeline = new Timeline()
      let stopping = false
      const running = workers(args.concurrency, async () => {
        while (!stopping) {
          try {
            await driver.query()
            timeline.success()
          } catch (error) {
            lastError = error
            timeline.failure()
            await sleep(10)
          }
        }
      })
      await sleep(args.warmupMs)
      emit({ type: "ready" })
      await command("stop", args.maxMs)
      stopping = true
      await bounded(running, 5000)
      emit(timeline.result({ lastError: lastError === undefined ? undefined : String(lastError) }))
      break
    }
    case "w5": {
      await driver.warm(args.poolMin)
      emit({ type: "ready" })
      await command("go", args.maxMs)
      const hist = new Histogram()
      let errors = 0
      const t0 = performance.now()
      await workers(args.concurrency, async () => {
        const start = performance.now()
        try {
          await driver.query()
          hist.record((performance.now() - start) * 1000)
        } catch (error) {
          lastError = error
          errors++
        }
      })
      const durationMs = performance.now() - t0
      // let connects started by the burst finish, so the proxy counts them
      await sleep(args.durationMs)
      const pool = driver.poolInfo?.()
      emit(burstResult(args.concurrency, durationMs, hist, errors, pool, lastError))
      break
    }
    default:
      throw new Error(`workload ${args.workload} is not run by this client`)
  }
  await bounded(driver.close(), 5000)
}
