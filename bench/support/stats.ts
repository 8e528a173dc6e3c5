/** Medians and spreads over repetitions. */

export interface Spread {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly n: number
}

export const spread = (values: ReadonlyArray<number | null | undefined>): Spread | null => {
  const xs = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v)).sort((a, b) => a - b)
  if (xs.length === 0) return null
  const mid = Math.floor(xs.length / 2)
  const median = xs.length % 2 === 1 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2
  return { median, min: xs[0]!, max: xs[xs.length - 1]!, n: xs.length }
}

export const median = (values: ReadonlyArray<number | null | undefined>): number | null =>
  spread(values)?.median ?? null

/**
 * Throughput drift within one run: ops in the last second over ops in the first second of the measurement window
 * (from the 250 ms series). `null` when the window is shorter than 2 s.
 */
export const drift = (series: { readonly intervalMs: number; readonly counts: ReadonlyArray<number> } | undefined) => {
  if (series === undefined) return null
  const per = Math.round(1000 / series.intervalMs)
  const counts = series.counts
  if (counts.length < 2 * per) return null
  const sum = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0)
  const first = sum(counts.slice(0, per))
  const last = sum(counts.slice(counts.length - per))
  return first === 0 ? null : Math.round((last / first) * 1000) / 1000
}
