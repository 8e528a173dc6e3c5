/**
 * The client-runner protocol, Node side (the Python side is `bench/clients/common.py`).
 *
 * A runner is started once per measurement, in its own process:
 *
 *   <runner> --workload w1|w2|w4|w5 [--concurrency N] [--duration MS] [--warmup MS] [--pool-min N] [--pool-max N]
 *            [--mode M] [--accounts N] [--max-ms MS]
 *   env BENCH_URL=postgres://user:password@127.0.0.1:port/db
 *
 * It writes JSON lines on stdout: `{"type":"ready"}` (w4: steady under load; w5: pool warm) and, last,
 * `{"type":"result", ...}` or `{"type":"error","message":...}`. It reads lines on stdin: `go` (w5: fire the burst),
 * `stop` (w4: finish). Every runner also stops by itself after `--max-ms`.
 */
import * as Fs from "node:fs"
import * as Inspector from "node:inspector"
import { parseArgs } from "node:util"

export type Workload = "w1" | "w2" | "w3" | "w4" | "w5"

export interface Args {
  readonly workload: Workload
  readonly concurrency: number
  readonly durationMs: number
  readonly warmupMs: number
  readonly poolMin: number
  readonly poolMax: number
  readonly mode: string
  readonly accounts: number
  readonly maxMs: number
  readonly url: string
}

export const parse = (argv: ReadonlyArray<string> = process.argv.slice(2)): Args => {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      workload: { type: "string", default: "w1" },
      concurrency: { type: "string", default: "10" },
      duration: { type: "string", default: "5000" },
      warmup: { type: "string", default: "1000" },
      "pool-min": { type: "string", default: "10" },
      "pool-max": { type: "string", default: "10" },
      mode: { type: "string", default: "" },
      accounts: { type: "string", default: "100000" },
      "max-ms": { type: "string", default: "120000" }
    },
    strict: true
  })
  const workload = values.workload as Workload
  if (!["w1", "w2", "w3", "w4", "w5"].includes(workload)) throw new Error(`unknown workload ${workload}`)
  return {
    workload,
    concurrency: Number(values.concurrency),
    durationMs: Number(values.duration),
    warmupMs: Number(values.warmup),
    poolMin: Number(values["pool-min"]),
    poolMax: Number(values["pool-max"]),
    mode: values.mode ?? "",
    accounts: Number(values.accounts),
    maxMs: Number(values["max-ms"]),
    url: process.env.BENCH_URL ?? ""
  }
}

export const emit = (message: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

/** Wall clock in epoch milliseconds with sub-millisecond resolution (comparable across processes). */
export const epochMs = (): number => performance.timeOrigin + performance.now()

// -----------------------------------------------------------------------------
// latency histogram: 1 µs buckets below 2048 µs, then 128 log-linear sub-buckets per power of two (< 0.8 % error)
// -----------------------------------------------------------------------------

const LINEAR = 2048
const SUB = 128
const BUCKETS = LINEAR + (31 - 11) * SUB

const bucketOf = (us: number): number => {
  if (us < LINEAR) return us < 0 ? 0 : Math.floor(us)
  const e = Math.min(30, Math.floor(Math.log2(us)))
  const sub = Math.min(SUB - 1, Math.floor((us / 2 ** e - 1) * SUB))
  return LINEAR + (e - 11) * SUB + sub
}

const valueOf = (bucket: number): number => {
  if (bucket < LINEAR) return bucket + 0.5
  const e = 11 + Math.floor((bucket - LINEAR) / SUB)
  const sub = (bucket - LINEAR) % SUB
  return 2 ** e * (1 + (sub + 0.5) / SUB)
}

export class Histogram {
  readonly counts = new Float64Array(BUCKETS)
  total = 0
  sum = 0
  max = 0
  record(us: number): void {
    this.counts[bucketOf(us)]! += 1
    this.total++
    this.sum += us
    if (us > this.max) this.max = us
  }
  percentile(q: number): number | null {
    if (this.total === 0) return null
    const rank = Math.max(1, Math.ceil(q * this.total))
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return Math.round(valueOf(i) * 10) / 10
    }
    return this.max
  }
  summary(): { p50: number | null; p99: number | null; max: number; mean: number | null } {
    return {
      p50: this.percentile(0.5),
      p99: this.percentile(0.99),
      max: Math.round(this.max),
      mean: this.total === 0 ? null : Math.round((this.sum / this.total) * 10) / 10
    }
  }
}

// -----------------------------------------------------------------------------
// measurement window: ops, errors, latency, a throughput series, CPU and peak RSS
// -----------------------------------------------------------------------------

export const SERIES_MS = 250

/**
 * W1 and W2 open each client's pool (`--pool-min` concurrent short sleeps, then this pause) before the workers
 * start. Started cold, hundreds of workers wait together for the first connects through the same code; a V8
 * scavenge in that window sees every object from those allocation sites alive and pretenures the sites for the rest
 * of the process (old-space allocation, a major GC every 0.6-0.9 s: +20-50% CPU per op, ~100 MB more RSS here).
 * Whether a scavenge lands in that window is luck, so cold starts made the Effect clients' figures bimodal.
 */
export const WARM_PAUSE_MS = 300

/** The w5 result line: the burst's size, duration, latencies and errors, the pool's own figures, peak RSS. */
export const burstResult = (
  requests: number,
  durationMs: number,
  hist: Histogram,
  errors: number,
  pool: Record<string, unknown> | undefined,
  lastError: unknown
): Record<string, unknown> => ({
  type: "result",
  burst: { requests, durationMs: Math.round(durationMs * 100) / 100, latencyUs: hist.summary(), errors },
  pool,
  maxRssKb: process.resourceUsage().maxRSS,
  lastError: lastError === undefined ? undefined : String(lastError)
})

/**
 * A V8 CPU profile of exactly the measured window, written to `path` (env `BENCH_CPU_PROFILE`): `bench/run.ts`
 * profiles one run per client this way and attributes the samples (`bench/support/profile.ts`).
 */
class WindowProfile {
  private readonly session: Inspector.Session | undefined
  private resolve: () => void = () => {}
  readonly written: Promise<void>
  private readonly path: string | undefined
  constructor(path: string | undefined) {
    this.path = path
    this.written = path === undefined || path === "" ? Promise.resolve() : new Promise((resolve) => {
      this.resolve = resolve
    })
    if (path === undefined || path === "") return
    this.session = new Inspector.Session()
    this.session.connect()
    this.session.post("Profiler.enable")
    this.session.post("Profiler.setSamplingInterval", { interval: 250 })
  }
  start(): void {
    this.session?.post("Profiler.start")
  }
  stop(): void {
    const session = this.session
    if (session === undefined) return
    session.post("Profiler.stop", (error, result) => {
      if (error === null && this.path !== undefined) Fs.writeFileSync(this.path, JSON.stringify(result.profile))
      session.disconnect()
      this.resolve()
    })
  }
}

export class Recorder {
  /** 0 warmup, 1 measuring, 2 stopped */
  phase = 0
  ops = 0
  errors = 0
  readonly hist = new Histogram()
  readonly series: Array<number> = []
  private startedAt = 0
  private stoppedAt = 0
  private cpu0: NodeJS.CpuUsage = { user: 0, system: 0 }
  private cpu1: NodeJS.CpuUsage = { user: 0, system: 0 }
  private readonly profile = new WindowProfile(process.env.BENCH_CPU_PROFILE)
  start(): void {
    this.profile.start()
    this.startedAt = performance.now()
    this.cpu0 = process.cpuUsage()
    this.phase = 1
  }
  stop(): void {
    this.phase = 2
    this.stoppedAt = performance.now()
    this.cpu1 = process.cpuUsage()
    this.profile.stop()
  }
  /** Resolves once the CPU profile of the measured window (if one was asked for) is written. */
  flushed(): Promise<void> {
    return this.profile.written
  }
  /** One operation started at `t0` (performance.now()) and just completed. */
  ok(t0: number): void {
    if (this.phase !== 1) return
    const t1 = performance.now()
    this.ops++
    this.hist.record((t1 - t0) * 1000)
    const slot = Math.floor((t1 - this.startedAt) / SERIES_MS)
    while (this.series.length <= slot) this.series.push(0)
    this.series[slot]!++
  }
  fail(): void {
    if (this.phase === 1) this.errors++
  }
  result(extra: Record<string, unknown> = {}): Record<string, unknown> {
    const elapsedMs = this.stoppedAt - this.startedAt
    const user = this.cpu1.user - this.cpu0.user
    const system = this.cpu1.system - this.cpu0.system
    return {
      type: "result",
      ops: this.ops,
      errors: this.errors,
      elapsedMs: Math.round(elapsedMs),
      opsPerSec: Math.round((this.ops / elapsedMs) * 1000),
      latencyUs: this.hist.summary(),
      cpuUs: { user, system },
      cpuPerOpUs: this.ops === 0 ? null : Math.round(((user + system) / this.ops) * 100) / 100,
      maxRssKb: process.resourceUsage().maxRSS,
      series: { intervalMs: SERIES_MS, counts: this.series.slice(0, Math.floor(elapsedMs / SERIES_MS)) },
      ...extra
    }
  }
}

// -----------------------------------------------------------------------------
// w4 timeline: successes and errors per 10 ms, and the exact time of every success after the first error
// -----------------------------------------------------------------------------

export const TIMELINE_MS = 10

export class Timeline {
  readonly startEpochMs = epochMs()
  private readonly t0 = performance.now()
  readonly ok: Array<number> = []
  readonly err: Array<number> = []
  firstErrorEpochMs: number | null = null
  /** Completion times (epoch ms) of successes after the first error, capped. */
  readonly successesAfterError: Array<number> = []
  private slot(): number {
    const slot = Math.floor((performance.now() - this.t0) / TIMELINE_MS)
    while (this.ok.length <= slot) {
      this.ok.push(0)
      this.err.push(0)
    }
    return slot
  }
  success(): void {
    this.ok[this.slot()]!++
    if (this.firstErrorEpochMs !== null && this.successesAfterError.length < 20_000) {
      this.successesAfterError.push(Math.round(epochMs() * 100) / 100)
    }
  }
  failure(): void {
    this.err[this.slot()]!++
    if (this.firstErrorEpochMs === null) this.firstErrorEpochMs = epochMs()
  }
  result(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      type: "result",
      startEpochMs: this.startEpochMs,
      bucketMs: TIMELINE_MS,
      ok: this.ok,
      err: this.err,
      firstErrorEpochMs: this.firstErrorEpochMs,
      successesAfterError: this.successesAfterError,
      maxRssKb: process.resourceUsage().maxRSS,
      ...extra
    }
  }
}

// -----------------------------------------------------------------------------
// stdin commands
// -----------------------------------------------------------------------------

const waiting = new Map<string, Array<() => void>>()
const received = new Set<string>()
let listening = false

const listen = (): void => {
  if (listening) return
  listening = true
  let buffer = ""
  process.stdin.setEncoding("utf8")
  process.stdin.on("data", (chunk: string) => {
    buffer += chunk
    let index: number
    while ((index = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, index).trim()
      buffer = buffer.slice(index + 1)
      received.add(line)
      for (const resolve of waiting.get(line) ?? []) resolve()
      waiting.delete(line)
    }
  })
  // The orchestrator went away: treat it as `stop`.
  process.stdin.on("end", () => {
    for (const [, resolvers] of waiting) for (const resolve of resolvers) resolve()
    waiting.clear()
    received.add("stop")
  })
}

/** Resolves when the orchestrator sends `command`, or after `timeoutMs` (every wait is bounded). */
export const command = (name: string, timeoutMs: number): Promise<boolean> => {
  listen()
  if (received.has(name)) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs)
    const list = waiting.get(name) ?? []
    list.push(() => {
      clearTimeout(timer)
      resolve(true)
    })
    waiting.set(name, list)
  })
}

/** Stops listening so the process can exit. */
export const done = (): void => {
  process.stdin.pause()
  process.stdin.unref?.()
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export const randomId = (accounts: number): number => 1 + Math.floor(Math.random() * accounts)

/** Runs a runner's main, reporting a failure as `{"type":"error"}` and a non-zero exit code. */
export const main = (run: () => Promise<void>): void => {
  const hardStop = setTimeout(() => {
    emit({ type: "error", message: "runner exceeded its own time limit" })
    process.exit(3)
  }, Number(process.env.BENCH_HARD_MS ?? 600_000))
  hardStop.unref()
  run().then(
    () => {
      done()
      // pools that leave timers behind must not keep the process alive
      setTimeout(() => process.exit(0), 200).unref()
    },
    (error: unknown) => {
      emit({ type: "error", message: error instanceof Error ? error.stack ?? error.message : String(error) })
      process.exit(1)
    }
  )
}
