/**
 * Where a client's time goes: a V8 CPU profile of one measured W1 window (`BENCH_CPU_PROFILE`, see `Recorder`),
 * its samples attributed to components by the script or native frame they were taken in, in µs per operation.
 *
 * The profiler samples wall time on the main thread: "waiting for the server" is the event loop idle in epoll, and
 * the socket write includes the time the thread was preempted by the server process it just woke up (2 cores).
 */
import * as Fs from "node:fs"

export const components = [
  "pool",
  "driver",
  "effect/sql statements and spans",
  "Effect runtime",
  "benchmark loop",
  "Node.js internals",
  "socket write (syscall)",
  "garbage collection",
  "other native / unattributed",
  "waiting for the server (idle)"
] as const

export type Component = typeof components[number]

export interface Breakdown {
  readonly ops: number
  readonly wallUsPerOp: number
  readonly usPerOp: Readonly<Record<Component, number>>
}

interface CallFrame {
  readonly functionName: string
  readonly url: string
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const nativeWrites = new Set(["writeBuffer", "writev", "writeUtf8String", "writeLatin1String", "writeAsciiString"])

/** Which component a frame belongs to. Pools and drivers are told apart by package, for every client. */
export const componentOf = ({ functionName, url }: CallFrame): Component => {
  if (url === "") {
    if (functionName === "(idle)") return "waiting for the server (idle)"
    if (functionName === "(garbage collector)") return "garbage collection"
    if (nativeWrites.has(functionName)) return "socket write (syscall)"
    return "other native / unattributed"
  }
  if (url.startsWith("node:")) return "Node.js internals"
  if (/\/bench\//.test(url) && !url.includes("/node_modules/")) return "benchmark loop"
  if (/\/node_modules\/effect\/dist\/(?:Pool|Semaphore)\.js$/.test(url)) return "pool"
  if (/\/node_modules\/effect\/dist\/(?:sql\/|Tracer\.js)/.test(url)) return "effect/sql statements and spans"
  if (url.includes("/node_modules/effect/")) return "Effect runtime"
  if (url.includes("/node_modules/pg-pool/")) return "pool"
  if (/\/node_modules\/(?:@effect\/sql-pg\/dist\/(?:PgConnection|PgProtocol|PgTypes|PgAuth|internal)|pg\/|pg-protocol\/|pg-types\/|postgres\/)/.test(url)) {
    return "driver"
  }
  if (url.includes("/node_modules/@effect/sql-pg/")) return "pool"
  if (/\/src\//.test(url) && !url.includes("/node_modules/")) return "pool"
  return "other native / unattributed"
}

export const breakdown = (path: string, ops: number): Breakdown => {
  const profile = JSON.parse(Fs.readFileSync(path, "utf8")) as CpuProfile
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]))
  const totals = Object.fromEntries(components.map((c) => [c, 0])) as Record<Component, number>
  let wall = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0
    const frame = frames.get(profile.samples[i]!)
    wall += delta
    if (frame !== undefined) totals[componentOf(frame)] += delta
  }
  const perOp = Object.fromEntries(components.map((c) => [c, ops === 0 ? 0 : totals[c] / ops])) as Record<Component, number>
  return { ops, wallUsPerOp: ops === 0 ? 0 : wall / ops, usPerOp: perOp }
}
