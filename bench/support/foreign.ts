/**
 * How much CPU other processes took while a run was going (Linux /proc; elsewhere nothing is measured).
 *
 * The machine has 2 cores shared by the server and the client under test; anything else running (another
 * engineer's test suite, a compiler) takes CPU from them and lowers the figures. A snapshot is taken when a runner
 * starts and when its result arrives; the CPU the whole machine spent in between, minus what our own processes
 * spent (the orchestrator, the runner and its children, the PostgreSQL server and its backends), is the foreign CPU,
 * reported in cores (0.5 = half a core on average).
 */
import * as Fs from "node:fs"

const TICK = 100 // USER_HZ: /proc reports CPU times in 1/100 s on Linux

interface Snapshot {
  readonly at: number
  readonly busy: number
  /** pid → [ppid, utime + stime + cutime + cstime] (reaped children's time included, so exited backends count) */
  readonly procs: Map<number, readonly [number, number]>
}

const readBusy = (): number | undefined => {
  try {
    const f = Fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal
    return f[0]! + f[1]! + f[2]! + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0)
  } catch {
    return undefined
  }
}

export const snapshot = (): Snapshot | undefined => {
  const busy = readBusy()
  if (busy === undefined) return undefined
  const procs = new Map<number, readonly [number, number]>()
  for (const entry of Fs.readdirSync("/proc")) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    try {
      const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      // fields[0] is state (field 3); ppid is field 4, utime 14, stime 15, cutime 16, cstime 17
      procs.set(pid, [
        Number(fields[1]),
        Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])
      ])
    } catch {
      // exited meanwhile
    }
  }
  return { at: performance.now(), busy, procs }
}

/**
 * Foreign CPU in cores between two snapshots. `roots` are our processes (the orchestrator, the runner, the
 * postmaster); their descendants count as ours too.
 */
export const foreignCores = (
  start: Snapshot | undefined,
  end: Snapshot | undefined,
  roots: ReadonlyArray<number | undefined>
): number | null => {
  if (start === undefined || end === undefined || end.at - start.at < 200) return null
  const ours = new Set<number>(roots.filter((pid): pid is number => pid !== undefined))
  // descendants, from both snapshots' parent links
  for (let grown = true; grown;) {
    grown = false
    for (const snap of [start, end]) {
      for (const [pid, [ppid]] of snap.procs) {
        if (!ours.has(pid) && ours.has(ppid)) {
          ours.add(pid)
          grown = true
        }
      }
    }
  }
  let mine = 0
  for (const pid of ours) {
    const after = end.procs.get(pid)
    if (after === undefined) continue
    mine += after[1] - (start.procs.get(pid)?.[1] ?? 0)
  }
  const foreign = Math.max(0, end.busy - start.busy - mine)
  return Math.round((foreign / TICK / ((end.at - start.at) / 1000)) * 100) / 100
}
