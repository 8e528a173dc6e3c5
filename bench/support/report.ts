/**
 * Turns the raw runs into summaries (medians and min–max over repetitions), the goals of issue 4 with their
 * ratios, and writes `<name>.json`, `<name>.md` and `w1.svg` (or `<name>-w1.svg` for other names).
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { clients as registry, overheadVariants, type Role } from "../registry.ts"
import { type Breakdown, components } from "./profile.ts"
import { drift, median, type Spread, spread } from "./stats.ts"

export interface RunRecord {
  readonly workload: "w1" | "w2" | "w3" | "w4" | "w5" | "profile"
  readonly client: string
  readonly concurrency: number
  readonly rep: number
  readonly wallMs: number
  /** Fraction of all CPUs busy (other processes) just before the run. */
  readonly background?: number | null | undefined
  /** CPU other processes took during the run, in cores. */
  readonly foreign?: number | null | undefined
  readonly result?: Record<string, unknown> | undefined
  readonly error?: string | undefined
}

export interface BenchData {
  readonly meta: {
    readonly date: string
    readonly quick: boolean
    readonly settings: {
      readonly reps: number
      readonly poolMax: number
      readonly w1: { readonly concurrency: ReadonlyArray<number>; readonly durationMs: number; readonly warmupMs: number }
      readonly w2: { readonly concurrency: number; readonly durationMs: number; readonly warmupMs: number }
      readonly w3: { readonly workers: ReadonlyArray<number>; readonly durationMs: number; readonly warmupMs: number }
      readonly w4: { readonly concurrency: number; readonly windowMs: number; readonly downMs: number }
      readonly w5: {
        readonly requests: number
        readonly poolMin: number
        readonly poolMax: number
        readonly delayMs: number
        readonly settleMs: number
      }
      readonly [key: string]: unknown
    }
    readonly machine: {
      readonly cpu: string
      readonly cores: number
      readonly memoryGb: number
      readonly os: string
      readonly loadAvgAtStart: ReadonlyArray<number>
      loadAvgAtEnd?: ReadonlyArray<number>
    }
    readonly versions: Readonly<Record<string, string | undefined>>
    readonly server: string
    readonly git: {
      readonly commit: string | undefined
      readonly uncommittedSrc: ReadonlyArray<string>
      readonly srcHashAtStart: string
      srcHashAtEnd: string | undefined
    }
    runTimeSec: number
  }
  readonly clients: ReadonlyArray<{ readonly id: string; readonly label: string; readonly role: Role; readonly kind: string }>
  readonly skipped: ReadonlyArray<{ readonly client: string; readonly reason: string }>
  readonly notes: Array<string>
  readonly runs: Array<RunRecord>
}

// -----------------------------------------------------------------------------
// summaries
// -----------------------------------------------------------------------------

/** A run during which other processes took this many cores or more is "disturbed". */
export const FOREIGN_MAX = 0.2

const isClean = (r: RunRecord) => r.foreign === null || r.foreign === undefined || r.foreign < FOREIGN_MAX

/**
 * The runs a cell's figures come from: the successful ones that other processes did not disturb, when there are at
 * least two (one for a single-repetition run); otherwise all successful runs, and the cell is marked `disturbed`.
 */
const usable = (runs: ReadonlyArray<RunRecord>): { runs: Array<RunRecord>; disturbed: boolean } => {
  const ok = runs.filter((r) => r.error === undefined && r.result !== undefined)
  const clean = ok.filter(isClean)
  return clean.length > 0 && clean.length >= Math.min(2, ok.length)
    ? { runs: clean, disturbed: false }
    : { runs: ok, disturbed: ok.length > 0 }
}

export interface LoadSummary {
  readonly client: string
  readonly concurrency: number
  readonly runs: number
  readonly failed: number
  readonly opsPerSec: Spread | null
  readonly p50Us: number | null
  readonly p99Us: number | null
  readonly meanUs: number | null
  readonly cpuPerOpUs: number | null
  readonly maxRssKb: number | null
  readonly errors: number
  readonly drift: number | null
  /** true when disturbed runs had to be used */
  readonly disturbed: boolean
  readonly used: number
}

const num = (value: unknown): number | null => (typeof value === "number" && Number.isFinite(value) ? value : null)
const get = (object: unknown, ...path: Array<string>): unknown =>
  path.reduce<unknown>((o, key) => (o !== null && typeof o === "object" ? (o as Record<string, unknown>)[key] : undefined), object)

const loadSummary = (runs: ReadonlyArray<RunRecord>, client: string, concurrency: number): LoadSummary => {
  const { disturbed, runs: ok } = usable(runs)
  return {
    client,
    concurrency,
    runs: runs.length,
    failed: runs.filter((r) => r.error !== undefined || r.result === undefined).length,
    disturbed,
    used: ok.length,
    opsPerSec: spread(ok.map((r) => num(r.result!.opsPerSec))),
    p50Us: median(ok.map((r) => num(get(r.result, "latencyUs", "p50")))),
    p99Us: median(ok.map((r) => num(get(r.result, "latencyUs", "p99")))),
    meanUs: median(ok.map((r) => num(get(r.result, "latencyUs", "mean")))),
    cpuPerOpUs: median(ok.map((r) => num(r.result!.cpuPerOpUs))),
    maxRssKb: median(ok.map((r) => num(r.result!.maxRssKb))),
    errors: ok.reduce((a, r) => a + (num(r.result!.errors) ?? 0), 0),
    drift: median(ok.map((r) => drift(r.result!.series as { intervalMs: number; counts: Array<number> } | undefined)))
  }
}

const groupBy = (runs: ReadonlyArray<RunRecord>, workload: RunRecord["workload"]) => {
  const groups = new Map<string, Array<RunRecord>>()
  for (const run of runs) {
    if (run.workload !== workload) continue
    const key = `${run.client}\u0000${run.concurrency}`
    const list = groups.get(key) ?? []
    list.push(run)
    groups.set(key, list)
  }
  return [...groups.entries()].map(([key, list]) => {
    const [client, n] = key.split("\u0000")
    return { client: client!, concurrency: Number(n), runs: list }
  })
}

export interface Summaries {
  readonly w1: ReadonlyArray<LoadSummary>
  readonly w2: ReadonlyArray<LoadSummary>
  readonly w3: ReadonlyArray<{
    readonly variant: string
    readonly workers: number
    readonly nsPerOp: Spread | null
    readonly cpuNsPerOp: number | null
    readonly failed: number
    readonly disturbed: boolean
  }>
  readonly w4: ReadonlyArray<{
    readonly client: string
    readonly firstSuccessMs: Spread | null
    readonly fullThroughputMs: Spread | null
    readonly notFull: number
    readonly baselineOpsPerSec: number | null
    readonly errors: number | null
    readonly failed: number
  }>
  readonly w5: ReadonlyArray<{
    readonly client: string
    readonly connectionsOpened: Spread | null
    readonly burstMs: Spread | null
    readonly p99Us: number | null
    readonly errors: number
    readonly failed: number
  }>
}

export const summarize = (data: BenchData): Summaries => ({
  w1: groupBy(data.runs, "w1").map((g) => loadSummary(g.runs, g.client, g.concurrency)),
  w2: groupBy(data.runs, "w2").map((g) => loadSummary(g.runs, g.client, g.concurrency)),
  w3: groupBy(data.runs, "w3").map((g) => {
    const { disturbed, runs: ok } = usable(g.runs)
    return {
      variant: g.client,
      workers: g.concurrency,
      nsPerOp: spread(ok.map((r) => num(r.result!.nsPerOp))),
      cpuNsPerOp: median(ok.map((r) => num(r.result!.cpuNsPerOp))),
      failed: g.runs.filter((r) => r.error !== undefined || r.result === undefined).length,
      disturbed
    }
  }),
  w4: groupBy(data.runs, "w4").map((g) => {
    const ok = g.runs.filter((r) => r.error === undefined && r.result !== undefined)
    return {
      client: g.client,
      firstSuccessMs: spread(ok.map((r) => num(r.result!.firstSuccessMs))),
      fullThroughputMs: spread(ok.map((r) => num(r.result!.fullThroughputMs))),
      notFull: ok.filter((r) => num(r.result!.fullThroughputMs) === null).length,
      baselineOpsPerSec: median(ok.map((r) => num(r.result!.baselineOpsPerSec))),
      errors: median(ok.map((r) => num(r.result!.errors))),
      failed: g.runs.length - ok.length
    }
  }),
  w5: groupBy(data.runs, "w5").map((g) => {
    const ok = g.runs.filter((r) => r.error === undefined && r.result !== undefined)
    return {
      client: g.client,
      connectionsOpened: spread(ok.map((r) => num(r.result!.connectionsOpened))),
      burstMs: spread(ok.map((r) => num(get(r.result, "burst", "durationMs")))),
      p99Us: median(ok.map((r) => num(get(r.result, "burst", "latencyUs", "p99")))),
      errors: ok.reduce((a, r) => a + (num(get(r.result, "burst", "errors")) ?? 0), 0),
      failed: g.runs.length - ok.length
    }
  })
})

// -----------------------------------------------------------------------------
// goals (issue 4), from this run's medians
// -----------------------------------------------------------------------------

export interface Goal {
  readonly goal: string
  readonly measured: string
  readonly ratio: number | null
  /** null: not measured */
  readonly holds: boolean | null
  /** The same ratio for the ceiling client (no pool, same driver and effect/sql): whether any pool could meet it. */
  readonly ceiling?: string | undefined
}

const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b

const r2 = (x: number | null): string => (x === null ? "n/a" : `${x.toFixed(2)}×`)

export const goals = (data: BenchData, s: Summaries): Array<Goal> => {
  const out: Array<Goal> = []
  const dist = (...cells: Array<{ readonly disturbed: boolean } | undefined>) =>
    cells.some((c) => c?.disturbed === true) ? " † (from disturbed runs)" : ""
  const roleOf = (id: string) => data.clients.find((c) => c.id === id)?.role
  const labelOf = (id: string) => data.clients.find((c) => c.id === id)?.label ?? id
  const w1 = (client: string, n: number) => s.w1.find((x) => x.client === client && x.concurrency === n)
  const pgbenchAt = (client: string, n: number) =>
    w1(client, Math.min(n, data.meta.settings.poolMax)) ?? w1(client, n)
  const levels = data.meta.settings.w1.concurrency.filter((n) => n >= 10)
  const ours = "effect-pg-pool"
  const multiplexPending = data.skipped.find((x) => x.client === "effect-pg-pool multiplex")
  const ceilingOf = (
    cell: LoadSummary | undefined,
    peer: LoadSummary | undefined,
    show: (q: number | null) => string = r2
  ): string | undefined => {
    const mine = cell?.opsPerSec?.median
    const versus = peer?.opsPerSec?.median
    return mine === undefined || versus === undefined ? undefined : `${fmtOps(mine)} = ${show(ratio(mine, versus))}${dist(cell, peer)}`
  }

  // W1 exclusive
  for (const n of levels) {
    const mine = w1(ours, n)?.opsPerSec?.median
    const peers = s.w1.filter((x) => x.concurrency === n && roleOf(x.client) === "exclusive-peer")
    const best = peers.reduce<LoadSummary | undefined>(
      (b, x) => ((x.opsPerSec?.median ?? 0) > (b?.opsPerSec?.median ?? 0) ? x : b),
      undefined
    )
    const q = ratio(mine, best?.opsPerSec?.median)
    out.push({
      goal: `W1 exclusive N=${n}: ≥ 1.1× the best exclusive peer`,
      measured: best === undefined || mine === undefined
        ? "not measured"
        : `${fmtOps(mine)} vs ${labelOf(best.client)} ${fmtOps(best.opsPerSec!.median)} = ${r2(q)}${dist(w1(ours, n), best)}`,
      ratio: q,
      holds: q === null ? null : q >= 1.1,
      ceiling: ceilingOf(w1("no-pool", n), best)
    })
  }
  // W1 multiplex
  for (const n of levels) {
    const mine = w1("effect-pg-pool-multiplex", n)?.opsPerSec?.median
    const peer = w1("sql-pg-multiplex", n)?.opsPerSec?.median
    const pipelined = pgbenchAt("pgbench-pipeline", n)?.opsPerSec?.median
    const q = ratio(mine, peer)
    out.push({
      goal: `W1 multiplex N=${n}: ≥ 1.1× @effect/sql-pg multiplex (and fraction of pipelined pgbench)`,
      measured: mine === undefined
        ? `not measured (${multiplexPending !== undefined ? "multiplex mode not implemented" : "no data"}); ` +
          `@effect/sql-pg multiplex ${fmtOps(peer)} = ${pct(ratio(peer, pipelined))} of pipelined pgbench`
        : `${fmtOps(mine)} vs ${fmtOps(peer)} = ${r2(q)}; ${pct(ratio(mine, pipelined))} of pipelined pgbench`,
      ratio: q,
      holds: q === null ? null : q >= 1.1,
      ceiling: ceilingOf(w1("no-pool-multiplex", n), w1("sql-pg-multiplex", n))
    })
  }
  // W2
  {
    const mine = s.w2.find((x) => x.client === ours)?.opsPerSec?.median
    const peers = s.w2.filter((x) => roleOf(x.client) === "exclusive-peer" || roleOf(x.client) === "multiplex-peer")
    const best = peers.reduce<LoadSummary | undefined>(
      (b, x) => ((x.opsPerSec?.median ?? 0) > (b?.opsPerSec?.median ?? 0) ? x : b),
      undefined
    )
    const limit = s.w2.find((x) => x.client === "pgbench")?.opsPerSec?.median
    const w2Ceiling = s.w2.find((x) => x.client === "no-pool")
    const q = ratio(mine, best?.opsPerSec?.median)
    const mineCell = s.w2.find((x) => x.client === ours)
    out.push({
      goal: "W2: ≥ 1.3× the best peer",
      measured: best === undefined || mine === undefined
        ? "not measured"
        : `${fmtOps(mine)} tx/s vs ${labelOf(best.client)} ${fmtOps(best.opsPerSec!.median)} = ${r2(q)}${dist(mineCell, best)}`,
      ratio: q,
      holds: q === null ? null : q >= 1.3,
      ceiling: ceilingOf(w2Ceiling, best)
    })
    const q2 = ratio(mine, limit)
    out.push({
      goal: "W2: ≥ 70% of pgbench -M prepared",
      measured: q2 === null
        ? "not measured"
        : `${fmtOps(mine)} vs ${fmtOps(limit)} = ${pct(q2)}${dist(mineCell, s.w2.find((x) => x.client === "pgbench"))}`,
      ratio: q2,
      holds: q2 === null ? null : q2 >= 0.7,
      ceiling: ceilingOf(w2Ceiling, s.w2.find((x) => x.client === "pgbench"), pct)
    })
  }
  // W3
  for (const workers of data.meta.settings.w3.workers) {
    const cell = s.w3.find((x) => x.variant === "ours-scoped" && x.workers === workers)
    const ns = cell?.nsPerOp?.median
    out.push({
      goal: `W3 scoped \`pool.connection()\`, ${workers} worker${workers === 1 ? "" : "s"}: ≤ 250 ns per acquire+release`,
      measured: ns === undefined ? "not measured" : `${Math.round(ns)} ns${dist(cell)}`,
      ratio: ns === undefined ? null : ns / 250,
      holds: ns === undefined ? null : ns <= 250
    })
  }
  // fairness
  for (const n of data.meta.settings.w1.concurrency.filter((x) => x >= 64)) {
    for (const id of [ours, "effect-pg-pool-none"]) {
      const cell = w1(id, n)
      const q = ratio(cell?.p99Us, cell?.p50Us)
      if (cell === undefined) continue
      out.push({
        goal: `Fairness, ${labelOf(id)}, N=${n}: p99 ≤ 3× p50`,
        measured: q === null
          ? "not measured"
          : `p50 ${fmtUs(cell.p50Us)}, p99 ${fmtUs(cell.p99Us)} = ${r2(q)}${dist(cell)}`,
        ratio: q,
        holds: q === null ? null : q <= 3
      })
    }
  }
  // RSS
  {
    const pairs = data.meta.settings.w1.concurrency.map((n) => ({
      n,
      mine: w1(ours, n)?.maxRssKb,
      peer: w1("sql-pg", n)?.maxRssKb
    })).filter((p) => p.mine !== undefined && p.peer !== undefined && p.mine !== null && p.peer !== null)
    const worst = pairs.reduce<typeof pairs[number] | undefined>(
      (w, p) => (w === undefined || p.mine! / p.peer! > w.mine! / w.peer! ? p : w),
      undefined
    )
    const q = worst === undefined ? null : worst.mine! / worst.peer!
    out.push({
      goal: "Peak RSS no higher than @effect/sql-pg's (W1, worst N)",
      measured: worst === undefined
        ? "not measured"
        : `N=${worst.n}: ${fmtMb(worst.mine!)} vs ${fmtMb(worst.peer!)} = ${r2(q)}`,
      ratio: q,
      holds: q === null ? null : pairs.every((p) => p.mine! <= p.peer!)
    })
  }
  // reset auto vs none
  {
    const pairs = data.meta.settings.w1.concurrency.map((n) => ({
      n,
      q: ratio(w1(ours, n)?.opsPerSec?.median, w1("effect-pg-pool-none", n)?.opsPerSec?.median),
      d: dist(w1(ours, n), w1("effect-pg-pool-none", n)) === "" ? "" : " †"
    })).filter((p) => p.q !== null)
    const worst = pairs.reduce<typeof pairs[number] | undefined>((w, p) => (w === undefined || p.q! < w.q! ? p : w), undefined)
    out.push({
      goal: "W1: reset \"auto\" keeps ≥ 90% of reset \"none\" (worst N)",
      measured: worst === undefined
        ? "not measured"
        : `${pairs.map((p) => `N=${p.n} ${pct(p.q)}${p.d}`).join(", ")}` +
          (pairs.some((p) => p.d !== "") ? " († from disturbed runs)" : ""),
      ratio: worst?.q ?? null,
      holds: worst === undefined ? null : worst.q! >= 0.9
    })
  }
  return out
}

// -----------------------------------------------------------------------------
// formatting
// -----------------------------------------------------------------------------

export const fmtOps = (x: number | null | undefined): string => {
  if (x === null || x === undefined) return "—"
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`
  if (x >= 1e4) return `${(x / 1e3).toFixed(1)}k`
  if (x >= 1e3) return `${(x / 1e3).toFixed(2)}k`
  return `${Math.round(x)}`
}
const fmtSpread = (s: Spread | null | undefined, f: (x: number) => string = fmtOps): string =>
  s === null || s === undefined ? "—" : s.n === 1 ? f(s.median) : `${f(s.median)} (${f(s.min)}–${f(s.max)})`
const mark = (x: { readonly disturbed: boolean } | undefined) => (x?.disturbed === true ? " †" : "")
export const fmtUs = (us: number | null | undefined): string => {
  if (us === null || us === undefined) return "—"
  if (us < 1000) return `${Math.round(us)} µs`
  if (us < 100_000) return `${(us / 1000).toFixed(2)} ms`
  return `${Math.round(us / 1000)} ms`
}
const fmtMb = (kb: number | null | undefined): string =>
  kb === null || kb === undefined ? "—" : `${Math.round(kb / 1024)} MB`
const pct = (x: number | null | undefined): string => (x === null || x === undefined ? "n/a" : `${Math.round(x * 100)}%`)
const fmtMs = (x: number) => `${Math.round(x)}`
const latency = (c: LoadSummary): string =>
  c.p50Us === null && c.meanUs !== null ? `avg ${fmtUs(c.meanUs)}` : `${fmtUs(c.p50Us)} / ${fmtUs(c.p99Us)}`

// -----------------------------------------------------------------------------
// chart
// -----------------------------------------------------------------------------

const palette: Record<string, string> = {
  "effect-pg-pool": "#d62728",
  "effect-pg-pool-none": "#ff9896",
  "effect-pg-pool-multiplex": "#8c1a1a",
  "sql-pg": "#1f77b4",
  "sql-pg-multiplex": "#17becf",
  "no-pool": "#bcbd22",
  "no-pool-multiplex": "#7f7f00",
  pg: "#2ca02c",
  postgres: "#9467bd",
  asyncpg: "#8c564b",
  psycopg: "#e377c2",
  pgbench: "#555555",
  "pgbench-pipeline": "#999999"
}

const tick = (v: number) => (v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : `${v}`)

const esc = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")

export const chart = (data: BenchData, s: Summaries): string => {
  const levels = data.meta.settings.w1.concurrency
  const W = 860
  const H = 460
  const left = 70
  const right = 270
  const top = 56
  const bottom = 50
  const pw = W - left - right
  const ph = H - top - bottom
  const series = data.clients
    .map((c) => {
      const points = levels.map((n) => {
        const direct = s.w1.find((x) => x.client === c.id && x.concurrency === n)?.opsPerSec?.median
        if (direct !== undefined) return { n, v: direct, extended: false }
        if (c.kind === "pgbench" && n > data.meta.settings.poolMax) {
          const v = s.w1.find((x) => x.client === c.id && x.concurrency === data.meta.settings.poolMax)?.opsPerSec?.median
          return v === undefined ? undefined : { n, v, extended: true }
        }
        return undefined
      })
      return { client: c, points }
    })
    .filter((x) => x.points.some((p) => p !== undefined))
  const values = series.flatMap((x) => x.points.filter((p) => p !== undefined).map((p) => p!.v))
  if (values.length === 0) return ""
  const lo = Math.pow(10, Math.floor(Math.log10(Math.max(1, Math.min(...values)))))
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values))))
  const x = (i: number) => left + (levels.length === 1 ? pw / 2 : (i * pw) / (levels.length - 1))
  const y = (v: number) => top + ph - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph
  const parts: Array<string> = []
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">W1 SELECT 1: ops/s vs concurrent fibers/workers (pool max ${data.meta.settings.poolMax}, median of ${data.meta.settings.reps})</text>`,
    `<text x="${left}" y="40" fill="#555">${esc(`${data.meta.machine.cpu}, ${data.meta.machine.cores} cores; Node ${data.meta.versions.node}; PostgreSQL ${data.meta.versions.postgresql}; ${data.meta.date.slice(0, 10)}`)}</text>`
  )
  // grid
  for (let decade = lo; decade <= hi; decade *= 10) {
    for (const m of [1, 2, 5]) {
      const v = decade * m
      if (v < lo || v > hi) continue
      const yy = y(v).toFixed(1)
      parts.push(
        `<line x1="${left}" x2="${left + pw}" y1="${yy}" y2="${yy}" stroke="${m === 1 ? "#ccc" : "#eee"}"/>`,
        `<text x="${left - 8}" y="${yy}" text-anchor="end" dominant-baseline="middle" fill="#444">${tick(v)}</text>`
      )
    }
  }
  levels.forEach((n, i) => {
    parts.push(
      `<line x1="${x(i)}" x2="${x(i)}" y1="${top}" y2="${top + ph}" stroke="#eee"/>`,
      `<text x="${x(i)}" y="${top + ph + 18}" text-anchor="middle" fill="#444">N = ${n}</text>`
    )
  })
  parts.push(
    `<text x="${left + pw / 2}" y="${H - 10}" text-anchor="middle" fill="#444">concurrent fibers / workers (log-spaced levels)</text>`,
    `<text transform="translate(16 ${top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#444">ops/s (log scale)</text>`,
    `<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`
  )
  series.forEach(({ client, points }, k) => {
    const color = palette[client.id] ?? "#000"
    const ours = client.role.startsWith("ours")
    const width = ours ? 3 : 1.8
    const segments: Array<string> = []
    for (let i = 1; i < points.length; i++) {
      const a = points[i - 1]
      const b = points[i]
      if (a === undefined || b === undefined) continue
      const dashed = b.extended
      segments.push(
        `<line x1="${x(i - 1).toFixed(1)}" y1="${y(a.v).toFixed(1)}" x2="${x(i).toFixed(1)}" y2="${y(b.v).toFixed(1)}" stroke="${color}" stroke-width="${width}"${dashed ? ` stroke-dasharray="5 4"` : ""}/>`
      )
    }
    parts.push(...segments)
    points.forEach((p, i) => {
      if (p === undefined || p.extended) return
      parts.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(p.v).toFixed(1)}" r="${ours ? 4 : 3}" fill="${color}"/>`)
    })
    const ly = top + 8 + k * 20
    const lx = left + pw + 16
    parts.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="${width}"/>`,
      `<text x="${lx + 28}" y="${ly}" dominant-baseline="middle"${ours ? ` font-weight="bold"` : ""}>${esc(client.label)}</text>`
    )
  })
  const noteY = top + 8 + series.length * 20 + 10
  parts.push(
    `<text x="${left + pw + 16}" y="${noteY}" fill="#666" font-size="11">pgbench: -c = min(N, ${data.meta.settings.poolMax});</text>`,
    `<text x="${left + pw + 16}" y="${noteY + 14}" fill="#666" font-size="11">dashed = its c=${data.meta.settings.poolMax} figure</text>`,
    `</svg>`
  )
  return parts.join("\n")
}

// -----------------------------------------------------------------------------
// markdown
// -----------------------------------------------------------------------------

/** Main-thread time spent running client code, per operation (everything but the syscall and the idle loop). */
const onThread = (b: Breakdown): number =>
  components.filter((c) => c !== "socket write (syscall)" && c !== "waiting for the server (idle)")
    .reduce((sum, c) => sum + b.usPerOp[c], 0)

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>, align?: string): string => {
  const sep = align ?? header.map((_, i) => (i === 0 ? ":--" : "--:")).join(" | ")
  return [`| ${header.join(" | ")} |`, `| ${sep} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n")
}

export const markdown = (data: BenchData, s: Summaries, gs: ReadonlyArray<Goal>, svgName: string): string => {
  const m = data.meta
  const st = m.settings
  const label = (id: string) => data.clients.find((c) => c.id === id)?.label ?? id
  const order = (id: string) => registry.findIndex((c) => c.id === id)
  const ids = (list: ReadonlyArray<{ client: string }>) =>
    [...new Set(list.map((x) => x.client))].sort((a, b) => order(a) - order(b))
  const lines: Array<string> = []
  lines.push(
    `# Benchmarks${m.quick ? " (quick smoke run: not for comparison)" : ""}`,
    "",
    `${m.date.slice(0, 16).replace("T", " ")} UTC · ${m.machine.cpu}, ${m.machine.cores} cores, ${m.machine.memoryGb} GB · ${m.machine.os} · ` +
      `Node ${m.versions.node} · PostgreSQL ${m.versions.postgresql} (${m.server}, same machine) · ` +
      `${m.versions.pgbench ?? "no pgbench"} · ${m.versions.python ?? "no Python"}`,
    "",
    `Measured: effect-pg-pool at commit ${m.git.commit ?? "?"}` +
      (m.git.uncommittedSrc.length > 0
        ? ` plus uncommitted changes to ${m.git.uncommittedSrc.length} file(s) under src/ (src hash ${m.git.srcHashAtStart})`
        : "") +
      (m.git.srcHashAtEnd !== undefined && m.git.srcHashAtEnd !== m.git.srcHashAtStart
        ? " — **src/ changed during the run** (figures mix two versions)"
        : "") +
      ".",
    "",
    `Libraries: effect ${m.versions.effect}, @effect/sql-pg ${m.versions["@effect/sql-pg"]}, pg ${m.versions.pg}, ` +
      `postgres ${m.versions.postgres}, asyncpg ${m.versions.asyncpg ?? "—"}, psycopg ${m.versions.psycopg ?? "—"} ` +
      `/ psycopg_pool ${m.versions.psycopg_pool ?? "—"}.`,
    "",
    `Every client runs in its own process, pool max ${st.poolMax}; runs interleaved (A B C … A B C), ` +
      `${st.reps} repetition${st.reps === 1 ? "" : "s"}; figures are medians with the min–max spread in brackets, ` +
      `over the runs during which other processes on the machine took < ${FOREIGN_MAX} cores ` +
      `(a cell with fewer than 2 such runs gets one extra run; † = all runs had to be used). ` +
      `W1 cells: ${st.w1.durationMs / 1000} s measured after ${st.w1.warmupMs / 1000} s warmup; W2 cells: ` +
        `${st.w2.durationMs / 1000} s after ${st.w2.warmupMs / 1000} s. ` +
      `Whole run: ${Math.floor(m.runTimeSec / 60)} min ${m.runTimeSec % 60} s; load average (1/5/15 min) ` +
      `${m.machine.loadAvgAtStart.join(" ")} at start, ${m.machine.loadAvgAtEnd?.join(" ") ?? "—"} at end. Produced by \`npm run bench${m.quick ? " -- --quick" : ""}\` (bench/run.ts).`,
    ""
  )
  if (gs.length > 0) {
    lines.push(
      "## Goals (issue 4), from this run",
      "",
      table(
        ["goal", "measured", "holds", "ceiling: no pool, same driver and effect/sql"],
        gs.map((g) => [
          g.goal,
          g.measured,
          g.holds === null ? "not measured" : g.holds ? "yes" : "**no**",
          g.ceiling ?? "—"
        ]),
        ":-- | :-- | :-: | :--"
      ),
      "",
      "The last column measures the same goal for a client with no pool at all: the same @effect/sql-pg connections " +
        "and effect/sql statements, each worker bound to one connection for the whole run (the driver's own queue " +
        "orders the workers sharing it). No pool can do better than costing nothing, so where that column is below " +
        "the goal too, the goal is out of reach for any pool on this driver and effect/sql: what bounds it is the " +
        "statement path the pool does not own (see the profiles below).",
      ""
    )
  }
  // W1
  if (s.w1.length > 0) {
    const levels = st.w1.concurrency
    const cell = (id: string, n: number) => s.w1.find((x) => x.client === id && x.concurrency === n)
    lines.push(
      "## W1: `SELECT 1`, N concurrent fibers/workers",
      "",
      `![W1 chart](${svgName})`,
      "",
      "ops/s:",
      "",
      table(
        ["client", ...levels.map((n) => `N=${n}`)],
        ids(s.w1).map((id) => [label(id), ...levels.map((n) => fmtSpread(cell(id, n)?.opsPerSec) + mark(cell(id, n)))])
      ),
      "",
      "Latency per operation, p50 / p99 (pgbench: its average only, see below; pipeline: per batch of 8):",
      "",
      table(
        ["client", ...levels.map((n) => `N=${n}`)],
        ids(s.w1).map((id) => [
          label(id),
          ...levels.map((n) => {
            const c = cell(id, n)
            return c === undefined ? "—" : latency(c)
          })
        ])
      ),
      "",
      "Client CPU per operation (user + system) and peak RSS of the client process:",
      "",
      table(
        ["client", ...levels.map((n) => `CPU/op N=${n}`), "peak RSS (max over N)"],
        ids(s.w1).map((id) => [
          label(id),
          ...levels.map((n) => {
            const c = cell(id, n)
            return c?.cpuPerOpUs === null || c === undefined ? "—" : `${c.cpuPerOpUs.toFixed(1)} µs`
          }),
          fmtMb(Math.max(...levels.map((n) => cell(id, n)?.maxRssKb ?? 0)) || null)
        ])
      ),
      "",
      `pgbench runs with \`-c\` = min(N, ${st.poolMax}) and \`-j 2\`: its N=${st.poolMax} figure is the server's limit at ${st.poolMax} connections, for larger N too. ` +
        "Its latency is its own average: its per-transaction log reads a lazily updated clock (most entries are 0 µs at this rate), so no percentiles.",
      ""
    )
  }
  // Where the time goes
  const profiles = data.runs.filter((r) => r.workload === "profile" && r.error === undefined && r.result?.breakdown !== undefined)
  if (profiles.length > 0) {
    const levels = [...new Set(profiles.map((r) => r.concurrency))].sort((a, b) => a - b)
    const cols = ids(profiles).flatMap((id) =>
      levels.flatMap((n) => {
        const run = profiles.find((r) => r.client === id && r.concurrency === n)
        return run === undefined ? [] : [{ id, n, b: run.result!.breakdown as Breakdown }]
      })
    )
    const us = (x: number) => x.toFixed(2)
    lines.push(
      "## Where the time goes: W1 CPU profiles",
      "",
      `One extra W1 run per Node client with a V8 CPU profile (250 µs sampling) of exactly its measured window ` +
        `(${st.profile === undefined ? "" : `${(st.profile as { durationMs: number }).durationMs / 1000} s, `}not part of the figures above); ` +
        "each sample is attributed to the package whose code was running (`bench/support/profile.ts`), in µs of the client's " +
        "main thread per operation. The profiler samples wall time: *socket write* is the `write` syscall including the time " +
        "the thread was preempted by the server process the write woke up (2 cores), and *waiting for the server* is the event " +
        "loop idle. *pool* is this project's `src/` for effect-pg-pool, effect's `Pool`/`Semaphore` for @effect/sql-pg, pg-pool " +
        "for pg (postgres.js has its pool inside its driver).",
      "",
      table(
        ["µs per operation", ...cols.map((c) => `${label(c.id)} N=${c.n}`)],
        [
          ...components.map((component) => [component, ...cols.map((c) => us(c.b.usPerOp[component]))]),
          ["**all (wall time per operation)**", ...cols.map((c) => `**${us(c.b.wallUsPerOp)}**`)],
          ["client code on the main thread (pool + driver + effect/sql + Effect + Node + GC)", ...cols.map((c) => us(onThread(c.b)))]
        ]
      ),
      ""
    )
  }
  // W2
  if (s.w2.length > 0) {
    lines.push(
      `## W2: short transaction, ${st.w2.concurrency} workers`,
      "",
      "BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = random; SELECT balance; COMMIT — through each library's transaction API.",
      "",
      table(
        ["client", "tx/s", "p50 / p99", "CPU/tx", "peak RSS", "errors"],
        ids(s.w2).map((id) => {
          const c = s.w2.find((x) => x.client === id)!
          return [
            label(id),
            fmtSpread(c.opsPerSec) + mark(c),
            latency(c),
            c.cpuPerOpUs === null ? "—" : `${c.cpuPerOpUs.toFixed(1)} µs`,
            fmtMb(c.maxRssKb),
            String(c.errors)
          ]
        })
      ),
      ""
    )
  }
  // W3
  if (s.w3.length > 0) {
    const workers = st.w3.workers
    const cell = (v: string, w: number) => s.w3.find((x) => x.variant === v && x.workers === w)
    lines.push(
      "## W3: pool overhead, fake connections, ns per acquire + release",
      "",
      `Pool of 10 in-memory connections, no server; each worker loops acquire → release with nothing in between; ${st.w3.durationMs / 1000} s per cell. ns = wall time / operations (all workers).`,
      "",
      table(
        ["pool / path", ...workers.map((w) => `${w} worker${w === 1 ? "" : "s"}`), ...workers.map((w) => `CPU ns/op, ${w}`)],
        overheadVariants.filter((v) => workers.some((w) => cell(v.id, w) !== undefined)).map((v) => [
          v.label,
          ...workers.map((w) => fmtSpread(cell(v.id, w)?.nsPerOp, (x) => `${Math.round(x)}`) + mark(cell(v.id, w))),
          ...workers.map((w) => {
            const c = cell(v.id, w)?.cpuNsPerOp
            return c === null || c === undefined ? "—" : `${Math.round(c)}`
          })
        ])
      ),
      ""
    )
  }
  // W4
  if (s.w4.length > 0) {
    lines.push(
      `## W4: recovery, server restarted under load (${st.w4.concurrency} workers)`,
      "",
      `Fast shutdown of the server, ${st.w4.downMs} ms down, start; times from the moment the server accepts connections again. ` +
        `"Full" = end of the first 100 ms window back at ≥ 80% of the throughput before the restart (window ${st.w4.windowMs / 1000} s). ` +
        "Workers sleep 10 ms after an error.",
      "",
      table(
        ["client", "first success (ms)", "full throughput (ms)", "throughput before", "errors seen"],
        ids(s.w4).map((id) => {
          const c = s.w4.find((x) => x.client === id)!
          return [
            label(id),
            fmtSpread(c.firstSuccessMs, fmtMs),
            `${fmtSpread(c.fullThroughputMs, fmtMs)}${c.notFull > 0 ? ` (${c.notFull} run${c.notFull === 1 ? "" : "s"} not within the window)` : ""}`,
            fmtOps(c.baselineOpsPerSec),
            c.errors === null ? "—" : String(Math.round(c.errors))
          ]
        })
      ),
      ""
    )
  }
  // W5
  if (s.w5.length > 0) {
    lines.push(
      `## W5: burst of ${st.w5.requests} \`SELECT 1\` against a warm pool of ${st.w5.poolMin} (max ${st.w5.poolMax}), connects delayed ${st.w5.delayMs} ms`,
      "",
      `Connections opened (fewer is better), counted by the delaying proxy from the burst until ${st.w5.settleMs} ms after it; ` +
        "each client's pool is warmed to 5 open connections first (min size 5 where the pool has one, else 5 concurrent `pg_sleep(0.05)`).",
      "",
      table(
        ["client", "connections opened", "burst done in (ms)", "p99", "errors"],
        ids(s.w5).map((id) => {
          const c = s.w5.find((x) => x.client === id)!
          return [
            label(id),
            fmtSpread(c.connectionsOpened, (x) => `${Math.round(x)}`),
            fmtSpread(c.burstMs, (x) => x.toFixed(1)),
            fmtUs(c.p99Us),
            String(c.errors)
          ]
        })
      ),
      ""
    )
  }
  if (data.skipped.length > 0 || data.notes.length > 0) {
    lines.push("## Notes", "")
    for (const x of data.skipped) lines.push(`- skipped ${x.client}: ${x.reason}`)
    for (const n of data.notes) lines.push(`- ${n}`)
    lines.push("")
  }
  return lines.join("\n")
}

/** Notes drawn from the runs: failures, errors, throughput drift within a run. */
const derivedNotes = (data: BenchData, s: Summaries): Array<string> => {
  const out: Array<string> = []
  const foreign = data.runs.map((r) => r.foreign).filter((x): x is number => typeof x === "number")
  const disturbed = foreign.filter((x) => x >= FOREIGN_MAX)
  if (disturbed.length > 0) {
    out.push(
      `${disturbed.length} of ${foreign.length} runs were disturbed: other processes took ≥ ${FOREIGN_MAX} cores ` +
        `while they ran (worst ${Math.max(...disturbed)} cores). Each run waits up to 8 s for the machine to be idle ` +
        "first; per-run `foreign` (cores) and `background` (busy fraction just before) are in the JSON."
    )
  }
  const label = (id: string) => data.clients.find((c) => c.id === id)?.label ?? id
  for (const run of data.runs) {
    if (run.error !== undefined) {
      out.push(`${run.workload} ${label(run.client)} N=${run.concurrency} rep ${run.rep} failed: ${run.error.split("\n")[0]}`)
    }
  }
  for (const [w, list] of [["W1", s.w1], ["W2", s.w2]] as const) {
    for (const c of list) {
      if (c.errors > 0) out.push(`${w} ${label(c.client)} N=${c.concurrency}: ${c.errors} failed operations`)
      if (c.drift !== null && c.drift < 0.85) {
        out.push(
          `${w} ${label(c.client)} N=${c.concurrency}: throughput slows down during a run: the last second ran at ` +
            `${Math.round(c.drift * 100)}% of the first (median over runs)`
        )
      }
      if (c.drift !== null && c.drift > 1.15) {
        out.push(
          `${w} ${label(c.client)} N=${c.concurrency}: throughput still rising during a run (last second at ` +
            `${Math.round(c.drift * 100)}% of the first): its warmup was short of steady state`
        )
      }
    }
  }
  return out
}

/** Reads a JSON written by `writeReport` back (for `--render`: re-render a run after the report code changed). */
export const readReport = (file: string): BenchData => {
  const json = JSON.parse(Fs.readFileSync(file, "utf8"))
  return {
    meta: json.meta,
    clients: json.clients,
    skipped: json.skipped,
    notes: json.baseNotes ?? [],
    runs: json.runs
  }
}

export const writeReport = (data: BenchData, outDir: string, name: string): void => {
  Fs.mkdirSync(outDir, { recursive: true })
  const s = summarize(data)
  const gs = goals(data, s)
  const svgName = name === "latest" ? "w1.svg" : `${name}-w1.svg`
  const withNotes: BenchData = { ...data, notes: [...data.notes, ...derivedNotes(data, s)] }
  Fs.writeFileSync(
    Path.join(outDir, `${name}.json`),
    `${
      JSON.stringify(
        {
          meta: data.meta,
          clients: data.clients,
          skipped: data.skipped,
          baseNotes: data.notes,
          notes: withNotes.notes,
          goals: gs,
          summary: s,
          runs: data.runs
        },
        null,
        1
      )
    }\n`
  )
  const svg = chart(data, s)
  if (svg !== "") Fs.writeFileSync(Path.join(outDir, svgName), `${svg}\n`)
  Fs.writeFileSync(Path.join(outDir, `${name}.md`), `${markdown(withNotes, s, gs, svgName)}\n`)
}
