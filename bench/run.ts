/**
 * `npm run bench` (full, about 20 minutes on 2 cores) and `npm run bench -- --quick` (smoke, about a minute).
 *
 * Starts an embedded PostgreSQL (or uses DATABASE_URL), runs every client of `bench/registry.ts` in its own child
 * process, interleaved (A B C ... A B C) for each cell, and writes `docs/bench/latest.{md,json}` and
 * `docs/bench/w1.svg` (a quick run writes `bench/out/quick.*` instead). See bench/README.md.
 *
 * Options: --quick, --reps N, --only w1,w2,w3,w4,w5, --clients id,id (see bench/registry.ts), --out DIR,
 * --render FILE.json (no run: rewrite the Markdown, chart and JSON of an earlier run next to FILE).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import pg from "pg"
import * as EmbeddedPg from "../test/support/EmbeddedPg.ts"
import { type Client, clients as allClients, type DbWorkload, overheadVariants } from "./registry.ts"
import * as DelayProxy from "./support/DelayProxy.ts"
import * as Foreign from "./support/foreign.ts"
import { breakdown } from "./support/profile.ts"
import { epochMs } from "./support/protocol.ts"
import { type BenchData, FOREIGN_MAX, readReport, type RunRecord, writeReport } from "./support/report.ts"

const benchDir = Path.dirname(fileURLToPath(import.meta.url))
const repoDir = Path.dirname(benchDir)

// -----------------------------------------------------------------------------
// settings
// -----------------------------------------------------------------------------

const { values: cli } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    reps: { type: "string" },
    only: { type: "string" },
    clients: { type: "string" },
    out: { type: "string" },
    render: { type: "string" }
  },
  strict: true
})

const quick = cli.quick === true
const settings = {
  quick,
  reps: cli.reps !== undefined ? Number(cli.reps) : quick ? 1 : 3,
  poolMax: 10,
  accounts: 100_000,
  w1: quick
    ? { concurrency: [10, 64], durationMs: 700, warmupMs: 300 }
    : { concurrency: [1, 10, 64, 256], durationMs: 5000, warmupMs: 800 },
  // W2 warms for longer: after each repetition's VACUUM every client's first second ran 20-50% below its last
  w2: quick ? { concurrency: 64, durationMs: 700, warmupMs: 300 } : { concurrency: 64, durationMs: 5000, warmupMs: 3000 },
  w3: quick ? { workers: [1, 64], durationMs: 200, warmupMs: 100 } : { workers: [1, 64], durationMs: 1500, warmupMs: 500 },
  w4: quick
    ? { concurrency: 64, warmupMs: 700, baselineMs: 400, downMs: 300, windowMs: 2000 }
    : { concurrency: 64, warmupMs: 1200, baselineMs: 1000, downMs: 500, windowMs: 5000 },
  w5: { requests: 50, poolMin: 5, poolMax: 50, delayMs: 150, settleMs: quick ? 500 : 1000 },
  profile: quick ? { concurrency: [64], durationMs: 700, warmupMs: 300 } : { concurrency: [10, 64], durationMs: 3000, warmupMs: 800 }
}
const workloads = new Set((cli.only ?? "w1,profile,w2,w3,w4,w5").split(",").map((s) => s.trim()))
const clientFilter = cli.clients === undefined ? undefined : new Set(cli.clients.split(",").map((s) => s.trim()))
const outDir = Path.resolve(repoDir, cli.out ?? (quick ? "bench/out" : "docs/bench"))
const outName = quick && cli.out === undefined ? "quick" : "latest"

const log = (message: string) => process.stderr.write(`${message}\n`)

// -----------------------------------------------------------------------------
// tools: Python, pgbench
// -----------------------------------------------------------------------------

const which = (name: string): string | undefined => {
  for (const dir of (process.env.PATH ?? "").split(Path.delimiter)) {
    const file = Path.join(dir, name)
    try {
      Fs.accessSync(file, Fs.constants.X_OK)
      return file
    } catch {
      // not here
    }
  }
  return undefined
}

const python = process.env.BENCH_PYTHON ?? (Fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : which("python3"))

const pythonModuleVersion = (module: string): string | undefined => {
  if (python === undefined) return undefined
  const out = spawnSync(python, ["-c", `import ${module}; print(getattr(${module}, "__version__", "?"))`], {
    encoding: "utf8",
    timeout: 20_000
  })
  return out.status === 0 ? out.stdout.trim() : undefined
}

const findPgbench = (): string | undefined => {
  if (process.env.BENCH_PGBENCH !== undefined) return process.env.BENCH_PGBENCH
  const onPath = which("pgbench")
  if (onPath !== undefined) return onPath
  try {
    for (const version of Fs.readdirSync("/usr/lib/postgresql").sort().reverse()) {
      const file = `/usr/lib/postgresql/${version}/bin/pgbench`
      if (Fs.existsSync(file)) return file
    }
  } catch {
    // none
  }
  return undefined
}

/** What was measured: the commit, the uncommitted files under src/, and a hash of src/ (to tell if it changed). */
const srcHash = (): string => {
  const hash = createHash("sha1")
  const walk = (dir: string) => {
    for (const entry of Fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const file = Path.join(dir, entry.name)
      if (entry.isDirectory()) walk(file)
      else hash.update(`${Path.relative(repoDir, file)}\0`).update(Fs.readFileSync(file))
    }
  }
  walk(Path.join(repoDir, "src"))
  return hash.digest("hex").slice(0, 12)
}

const gitInfo = () => {
  const git = (...args: Array<string>) => {
    const out = spawnSync("git", args, { cwd: repoDir, encoding: "utf8", timeout: 10_000 })
    return out.status === 0 ? out.stdout.trim() : undefined
  }
  return {
    commit: git("rev-parse", "--short", "HEAD"),
    uncommittedSrc: (git("status", "--porcelain", "--", "src") ?? "").split("\n").filter((l) => l !== ""),
    srcHashAtStart: srcHash(),
    srcHashAtEnd: undefined as string | undefined
  }
}

const packageVersion = (name: string): string | undefined => {
  try {
    return JSON.parse(Fs.readFileSync(Path.join(repoDir, "node_modules", name, "package.json"), "utf8")).version
  } catch {
    return undefined
  }
}

// -----------------------------------------------------------------------------
// child processes
// -----------------------------------------------------------------------------

const children = new Set<ChildProcess>()

interface ChildOutcome {
  readonly result?: Record<string, unknown> | undefined
  readonly error?: string | undefined
  readonly wallMs: number
  /** CPU other processes took while the runner ran, in cores (see support/foreign.ts) */
  readonly foreign: number | null
}

interface ChildHandle {
  readonly ready: Promise<boolean>
  readonly send: (line: string) => void
  readonly done: Promise<ChildOutcome>
}

let pgbenchBinary: string | undefined

const startChild = (
  client: Pick<Client, "kind" | "runner">,
  argv: ReadonlyArray<string>,
  url: string,
  timeoutMs: number,
  env: Record<string, string> = {}
): ChildHandle => {
  const script = Path.join(benchDir, "clients", client.runner)
  const [command, args] = client.kind === "python"
    ? [python!, [script, ...argv]]
    : [process.execPath, [script, ...argv]]
  const started = performance.now()
  const before = Foreign.snapshot()
  let foreign: number | null = null
  const child = spawn(command, args, {
    cwd: repoDir,
    env: {
      ...process.env,
      BENCH_URL: url,
      BENCH_HARD_MS: String(timeoutMs),
      ...(pgbenchBinary === undefined ? {} : { BENCH_PGBENCH: pgbenchBinary }),
      PYTHONUNBUFFERED: "1",
      ...env
    },
    stdio: ["pipe", "pipe", "pipe"]
  })
  children.add(child)
  let resolveReady: (ok: boolean) => void = () => {}
  const ready = new Promise<boolean>((resolve) => (resolveReady = resolve))
  let result: Record<string, unknown> | undefined
  let error: string | undefined
  let stdout = ""
  let stderr = ""
  child.stdout!.setEncoding("utf8")
  child.stdout!.on("data", (chunk: string) => {
    stdout += chunk
    let index: number
    while ((index = stdout.indexOf("\n")) >= 0) {
      const line = stdout.slice(0, index).trim()
      stdout = stdout.slice(index + 1)
      if (line === "") continue
      try {
        const message = JSON.parse(line) as Record<string, unknown>
        if (message.type === "ready") resolveReady(true)
        else if (message.type === "result") {
          result = message
          foreign = Foreign.foreignCores(before, Foreign.snapshot(), [process.pid, child.pid, instance?.postmasterPid()])
        }
        else if (message.type === "error") error = String(message.message)
      } catch {
        stderr += `${line}\n`
      }
    }
  })
  child.stderr!.setEncoding("utf8")
  child.stderr!.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000)
  })
  child.stdin!.on("error", () => {})
  // every child is bounded: killed (by its pid, it is ours) when it overstays
  const killer = setTimeout(() => {
    error = `killed after ${timeoutMs} ms`
    child.kill("SIGKILL")
  }, timeoutMs + 5000)
  const done = new Promise<ChildOutcome>((resolve) => {
    child.on("close", (code) => {
      clearTimeout(killer)
      children.delete(child)
      resolveReady(false)
      const wallMs = Math.round(performance.now() - started)
      if (result !== undefined && code === 0) resolve({ result, wallMs, foreign })
      else {
        const tail = stderr.trim().split("\n").slice(-8).join("\n")
        resolve({ error: `${error ?? `exit code ${code}`}${tail === "" ? "" : `\n${tail}`}`, result, wallMs, foreign })
      }
    })
    child.on("error", (cause) => {
      error = String(cause)
    })
  })
  return {
    ready,
    send: (line) => {
      if (child.exitCode === null && child.stdin!.writable) child.stdin!.write(`${line}\n`)
    },
    done
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

// -----------------------------------------------------------------------------
// background load: other processes on the machine skew a run. Before each run, wait (bounded) until the CPUs are
// mostly idle, and record how busy they were.
// -----------------------------------------------------------------------------

const readCpu = (): { idle: number; total: number } | undefined => {
  try {
    const fields = Fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
    return { idle: fields[3]! + (fields[4] ?? 0), total: fields.reduce((a, b) => a + b, 0) }
  } catch {
    return undefined
  }
}

const busyFraction = async (ms: number): Promise<number | null> => {
  const a = readCpu()
  await sleep(ms)
  const b = readCpu()
  if (a === undefined || b === undefined || b.total === a.total) return null
  return 1 - (b.idle - a.idle) / (b.total - a.total)
}

const QUIET = 0.25

const foreignNote = (foreign: number | null) =>
  foreign !== null && foreign >= FOREIGN_MAX ? `  (other processes took ${foreign} cores)` : ""

/** Fraction of all CPUs busy just before a run (our server idle, no runner alive), after waiting up to 8 s for < 25%. */
const waitQuiet = async (): Promise<number | null> => {
  const deadline = performance.now() + 8_000
  let busy: number | null = null
  while (true) {
    busy = await busyFraction(150)
    if (busy === null || busy < QUIET || performance.now() >= deadline) break
    await sleep(350)
  }
  return busy === null ? null : Math.round(busy * 100) / 100
}

// -----------------------------------------------------------------------------
// main
// -----------------------------------------------------------------------------

let instance: EmbeddedPg.Instance | undefined
let proxy: DelayProxy.DelayProxy | undefined
let shuttingDown = false

const cleanup = async () => {
  for (const child of children) child.kill("SIGKILL")
  children.clear()
  await proxy?.close().catch(() => {})
  await instance?.stop().catch(() => {})
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (shuttingDown) return
    shuttingDown = true
    log(`\n${signal}: stopping children and the server`)
    cleanup().finally(() => process.exit(130))
  })
}

const benchDatabase = "effect_pg_pool_bench"

const withClient = async <A>(url: string, f: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end()
  }
}

const cpuModel = (): string => {
  try {
    const line = Fs.readFileSync("/proc/cpuinfo", "utf8").split("\n").find((l) => l.startsWith("model name"))
    if (line !== undefined) return line.split(":")[1]!.trim()
  } catch {
    // not Linux
  }
  return Os.cpus()[0]?.model ?? "unknown"
}

const run = async (): Promise<void> => {
  const startedAt = performance.now()
  const major = Number(process.versions.node.split(".")[0])
  if (major < 22) throw new Error(`Node ${process.versions.node}: run through npm (node_modules/.bin/node is Node 24)`)

  const notes: Array<string> = []
  const skipped: Array<{ client: string; reason: string }> = []

  // --- which clients run
  pgbenchBinary = findPgbench()
  const pythonVersions: Record<string, string | undefined> = {}
  const selected: Array<Client> = []
  for (const client of allClients) {
    if (clientFilter !== undefined && !clientFilter.has(client.id)) continue
    if (client.pending !== undefined) {
      skipped.push({ client: client.label, reason: client.pending })
      continue
    }
    if (client.kind === "python") {
      const module = client.pythonModule!
      pythonVersions[module] ??= pythonModuleVersion(module)
      if (pythonVersions[module] === undefined) {
        skipped.push({
          client: client.label,
          reason: python === undefined
            ? "no python3 found"
            : `Python module ${module} not importable by ${python} (apt-get install python3-asyncpg python3-psycopg-pool)`
        })
        continue
      }
    }
    if (client.kind === "pgbench" && pgbenchBinary === undefined) {
      skipped.push({ client: client.label, reason: "pgbench not found on PATH (apt-get install postgresql-client)" })
      continue
    }
    selected.push(client)
  }
  if (pythonVersions.psycopg_pool !== undefined) pythonVersions.psycopg = pythonModuleVersion("psycopg")
  const forWorkload = (w: DbWorkload) => selected.filter((c) => c.workloads.includes(w))

  // --- server
  const external = process.env.DATABASE_URL
  let adminUrl: string
  if (external !== undefined && external !== "") {
    adminUrl = external
    log(`server: DATABASE_URL`)
  } else {
    const t0 = performance.now()
    instance = await EmbeddedPg.start({ maxConnections: 300 })
    adminUrl = instance.url
    log(`server: embedded PostgreSQL on 127.0.0.1:${instance.port} (${Math.round(performance.now() - t0)} ms)`)
  }
  const dbUrl = (() => {
    const url = new URL(adminUrl)
    url.pathname = `/${benchDatabase}`
    return url.toString()
  })()
  const server = await withClient(adminUrl, async (client) => {
    const exists = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [benchDatabase])
    if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${benchDatabase}`)
    const version = (await client.query("SHOW server_version")).rows[0].server_version as string
    const maxConnections = Number((await client.query("SHOW max_connections")).rows[0].max_connections)
    return { version, maxConnections }
  })
  if (server.maxConnections < 150) {
    notes.push(`server max_connections is ${server.maxConnections}: W5 opens up to 50 connections per client`)
  }
  await withClient(dbUrl, async (client) => {
    await client.query("DROP TABLE IF EXISTS accounts")
    await client.query("CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL DEFAULT 0)")
    await client.query(`INSERT INTO accounts SELECT g, 0 FROM generate_series(1, ${settings.accounts}) g`)
    await client.query("VACUUM ANALYZE accounts")
  })
  const pgbenchVersion = pgbenchBinary === undefined
    ? undefined
    : spawnSync(pgbenchBinary, ["--version"], { encoding: "utf8" }).stdout.trim()

  const data: BenchData = {
    meta: {
      date: new Date().toISOString(),
      quick,
      settings,
      machine: {
        cpu: cpuModel(),
        cores: Os.cpus().length,
        memoryGb: Math.round(Os.totalmem() / 2 ** 30),
        os: `${Os.type()} ${Os.release()}`,
        loadAvgAtStart: Os.loadavg().map((x) => Math.round(x * 100) / 100)
      },
      versions: {
        node: process.versions.node,
        postgresql: server.version,
        pgbench: pgbenchVersion,
        python: python === undefined
          ? undefined
          : spawnSync(python, ["--version"], { encoding: "utf8" }).stdout.trim(),
        effect: packageVersion("effect"),
        "@effect/sql-pg": packageVersion("@effect/sql-pg"),
        pg: packageVersion("pg"),
        postgres: packageVersion("postgres"),
        asyncpg: pythonVersions.asyncpg,
        psycopg: pythonVersions.psycopg,
        psycopg_pool: pythonVersions.psycopg_pool
      },
      server: external !== undefined && external !== "" ? "DATABASE_URL" : "embedded",
      git: gitInfo(),
      runTimeSec: 0
    },
    clients: selected.map((c) => ({ id: c.id, label: c.label, role: c.role, kind: c.kind })),
    skipped,
    notes,
    runs: []
  }

  const record = (run: RunRecord) => {
    data.runs.push(run)
  }
  /** Records a runner's outcome; `override` replaces its result or error (an analysis of the result, say). */
  const recordOutcome = (
    workload: RunRecord["workload"],
    client: string,
    concurrency: number,
    rep: number,
    background: number | null,
    outcome: ChildOutcome,
    override: Pick<RunRecord, "result" | "error"> = {}
  ) =>
    record({
      workload,
      client,
      concurrency,
      rep,
      wallMs: outcome.wallMs,
      foreign: outcome.foreign,
      background,
      result: outcome.result,
      error: outcome.error,
      ...override
    })
  const save = () => {
    data.meta.runTimeSec = Math.round((performance.now() - startedAt) / 1000)
    data.meta.machine.loadAvgAtEnd = Os.loadavg().map((x) => Math.round(x * 100) / 100)
    data.meta.git.srcHashAtEnd = srcHash()
    writeReport(data, outDir, outName)
  }

  const dbArgs = (workload: string, concurrency: number, durationMs: number, warmupMs: number, mode?: string) => [
    "--workload",
    workload,
    "--concurrency",
    String(concurrency),
    "--duration",
    String(durationMs),
    "--warmup",
    String(warmupMs),
    "--pool-min",
    String(settings.poolMax),
    "--pool-max",
    String(settings.poolMax),
    "--accounts",
    String(settings.accounts),
    ...(mode === undefined ? [] : ["--mode", mode])
  ]

  const simple = async (
    workload: "w1" | "w2",
    client: Client,
    concurrency: number,
    rep: number,
    durationMs: number,
    warmupMs: number
  ) => {
    const background = await waitQuiet()
    const handle = startChild(
      client,
      dbArgs(workload, concurrency, durationMs, warmupMs, client.mode),
      dbUrl,
      durationMs + warmupMs + 60_000
    )
    const outcome = await handle.done
    recordOutcome(workload, client.id, concurrency, rep, background, outcome)
    const ops = outcome.result?.opsPerSec as number | undefined
    log(
      `  ${client.id.padEnd(26)} ${
        outcome.error !== undefined ? `FAILED: ${outcome.error.split("\n")[0]}` : `${ops?.toLocaleString("en-US")} ops/s`
      }${foreignNote(outcome.foreign)}`
    )
  }

  /** Runs of a cell that no failure and no foreign load spoiled. */
  const cleanRuns = (workload: RunRecord["workload"], client: string, n: number) =>
    data.runs.filter((r) =>
      r.workload === workload && r.client === client && r.concurrency === n && r.error === undefined &&
      (r.foreign === null || r.foreign === undefined || r.foreign < FOREIGN_MAX)
    ).length

  // --- W1: SELECT 1
  if (workloads.has("w1")) {
    const list = forWorkload("w1")
    // pgbench runs -c = min(N, pool max): N=1 and N=10 (the same server limit stands for 64 and 256)
    const at = (n: number) =>
      list.filter((c) =>
        !(c.kind === "pgbench" && n > settings.poolMax && settings.w1.concurrency.includes(settings.poolMax))
      )
    for (const n of settings.w1.concurrency) {
      for (let rep = 1; rep <= settings.reps; rep++) {
        log(`[w1 N=${n} rep ${rep}/${settings.reps}]`)
        for (const client of at(n)) await simple("w1", client, n, rep, settings.w1.durationMs, settings.w1.warmupMs)
      }
      // one extra pass for the clients whose runs other processes disturbed
      const again = at(n).filter((c) => cleanRuns("w1", c.id, n) < settings.reps)
      if (again.length > 0 && !quick) {
        log(`[w1 N=${n} extra pass: ${again.map((c) => c.id).join(", ")}]`)
        for (const client of again) {
          await simple("w1", client, n, settings.reps + 1, settings.w1.durationMs, settings.w1.warmupMs)
        }
      }
    }
    save()
  }

  // --- Where the time goes: one W1 run per Node client with a CPU profile of its measured window
  if (workloads.has("profile")) {
    const list = forWorkload("w1").filter((c) => c.kind === "node")
    const dir = Path.join(benchDir, "out", "profiles")
    Fs.mkdirSync(dir, { recursive: true })
    for (const n of settings.profile.concurrency) {
      log(`[profile W1 N=${n}]`)
      for (const client of list) {
        const file = Path.join(dir, `${client.id}-${n}.cpuprofile`)
        Fs.rmSync(file, { force: true })
        const background = await waitQuiet()
        const { durationMs, warmupMs } = settings.profile
        const outcome = await startChild(
          client,
          dbArgs("w1", n, durationMs, warmupMs, client.mode),
          dbUrl,
          durationMs + warmupMs + 60_000,
          { BENCH_CPU_PROFILE: file }
        ).done
        const ops = outcome.result?.ops
        const error = outcome.error ?? (Fs.existsSync(file) ? undefined : "no profile written")
        recordOutcome("profile", client.id, n, 1, background, outcome, {
          result: error === undefined && typeof ops === "number"
            ? { ...outcome.result, breakdown: breakdown(file, ops) }
            : outcome.result,
          error
        })
        log(`  ${client.id.padEnd(26)} ${error === undefined ? `profiled, ${Number(ops).toLocaleString("en-US")} ops` : `FAILED: ${error.split("\n")[0]}`}`)
      }
    }
    save()
  }

  // --- W2: short transaction
  if (workloads.has("w2")) {
    const list = forWorkload("w2")
    const n = settings.w2.concurrency
    for (let rep = 1; rep <= settings.reps; rep++) {
      log(`[w2 N=${n} rep ${rep}/${settings.reps}]`)
      for (const client of list) await simple("w2", client, n, rep, settings.w2.durationMs, settings.w2.warmupMs)
      await withClient(dbUrl, (c) => c.query("VACUUM accounts"))
    }
    const again = list.filter((c) => cleanRuns("w2", c.id, n) < settings.reps)
    if (again.length > 0 && !quick) {
      log(`[w2 extra pass: ${again.map((c) => c.id).join(", ")}]`)
      for (const client of again) {
        await simple("w2", client, n, settings.reps + 1, settings.w2.durationMs, settings.w2.warmupMs)
      }
    }
    save()
  }

  // --- W3: pool overhead with fake connections
  const overhead = async (variant: string, workers: number, rep: number) => {
    const background = await waitQuiet()
    const handle = startChild(
      { kind: "node", runner: "overhead.ts" },
      [
        "--workload",
        "w3",
        "--mode",
        variant,
        "--concurrency",
        String(workers),
        "--duration",
        String(settings.w3.durationMs),
        "--warmup",
        String(settings.w3.warmupMs)
      ],
      "",
      settings.w3.durationMs + settings.w3.warmupMs + 60_000
    )
    const outcome = await handle.done
    recordOutcome("w3", variant, workers, rep, background, outcome)
    log(
      `  ${variant.padEnd(26)} ${
        outcome.error !== undefined ? `FAILED: ${outcome.error.split("\n")[0]}` : `${outcome.result?.nsPerOp} ns/op`
      }${foreignNote(outcome.foreign)}`
    )
  }
  if (workloads.has("w3")) {
    for (const workers of settings.w3.workers) {
      for (let rep = 1; rep <= settings.reps; rep++) {
        log(`[w3 workers=${workers} rep ${rep}/${settings.reps}]`)
        for (const variant of overheadVariants) await overhead(variant.id, workers, rep)
      }
      const again = overheadVariants.filter((v) => cleanRuns("w3", v.id, workers) < settings.reps)
      if (again.length > 0 && !quick) {
        log(`[w3 workers=${workers} extra pass: ${again.map((v) => v.id).join(", ")}]`)
        for (const variant of again) await overhead(variant.id, workers, settings.reps + 1)
      }
    }
    save()
  }

  // --- W4: server restarted under load
  if (workloads.has("w4")) {
    if (instance === undefined) {
      notes.push("W4 (recovery) skipped: it restarts the server, which needs the embedded one (DATABASE_URL is set)")
    } else {
      const server = instance
      const s = settings.w4
      // the smoke run restarts the server under the Node exclusive clients only
      const list = forWorkload("w4").filter((c) =>
        !quick || (c.kind === "node" && (c.role === "ours" || c.role === "exclusive-peer"))
      )
      for (let rep = 1; rep <= settings.reps; rep++) {
        log(`[w4 N=${s.concurrency} rep ${rep}/${settings.reps}]`)
        for (const client of list) {
          const background = await waitQuiet()
          const handle = startChild(
            client,
            [...dbArgs("w4", s.concurrency, 0, s.warmupMs, client.mode), "--max-ms", "60000"],
            dbUrl,
            90_000
          )
          let timing: Record<string, number> | undefined
          if (await handle.ready) {
            await sleep(s.baselineMs)
            const stopAt = epochMs()
            await server.stopServer()
            const downAt = epochMs()
            await sleep(s.downMs)
            const startAt = epochMs()
            await server.startServer()
            const upAt = epochMs()
            timing = { stopAt, downAt, startAt, upAt }
            await sleep(s.windowMs)
            handle.send("stop")
          }
          const outcome = await handle.done
          if (!server.isRunning()) await server.startServer()
          const analysis = outcome.result !== undefined && timing !== undefined
            ? analyzeRecovery(outcome.result, timing, s.baselineMs)
            : undefined
          recordOutcome("w4", client.id, s.concurrency, rep, background, outcome, {
            result: analysis,
            error: outcome.error ?? (timing === undefined ? "runner never became ready" : undefined)
          })
          log(
            `  ${client.id.padEnd(26)} ${
              analysis === undefined
                ? `FAILED: ${(outcome.error ?? "no result").split("\n")[0]}`
                : `first ok +${analysis.firstSuccessMs} ms, full +${analysis.fullThroughputMs} ms (baseline ${analysis.baselineOpsPerSec} ops/s, ${analysis.errors} errors)`
            }`
          )
          await sleep(300)
        }
      }
      save()
    }
  }

  // --- W5: burst against a warm pool with slow connects
  if (workloads.has("w5")) {
    const s = settings.w5
    const list = forWorkload("w5")
    const target = new URL(dbUrl)
    for (let rep = 1; rep <= settings.reps; rep++) {
      log(`[w5 burst ${s.requests} rep ${rep}/${settings.reps}]`)
      for (const client of list) {
        const background = await waitQuiet()
        proxy = await DelayProxy.start(Number(target.port || 5432), s.delayMs, target.hostname)
        const viaProxy = new URL(dbUrl)
        viaProxy.port = String(proxy.port)
        const handle = startChild(
          client,
          [
            "--workload",
            "w5",
            "--concurrency",
            String(s.requests),
            "--pool-min",
            String(s.poolMin),
            "--pool-max",
            String(s.poolMax),
            "--duration",
            String(s.settleMs),
            "--max-ms",
            "60000",
            ...(client.mode === undefined ? [] : ["--mode", client.mode])
          ],
          viaProxy.toString(),
          90_000
        )
        let before: number | undefined
        let warmOpen: number | undefined
        if (await handle.ready) {
          // wait until the warm connections are all open and nothing more is connecting (bounded)
          const deadline = performance.now() + 10_000
          let stableSince = performance.now()
          let last = -1
          while (performance.now() < deadline) {
            const open = proxy.open()
            if (open !== last) {
              last = open
              stableSince = performance.now()
            }
            if (open >= s.poolMin && performance.now() - stableSince >= 300) break
            await sleep(20)
          }
          warmOpen = proxy.open()
          before = proxy.accepted()
          handle.send("go")
        }
        const outcome = await handle.done
        const opened = before === undefined ? undefined : proxy.accepted() - before
        await proxy.close()
        proxy = undefined
        recordOutcome("w5", client.id, s.requests, rep, background, outcome, {
          result: outcome.result === undefined ? undefined : { ...outcome.result, connectionsOpened: opened, warmOpen }
        })
        const burst = outcome.result?.burst as { durationMs: number } | undefined
        log(
          `  ${client.id.padEnd(26)} ${
            outcome.error !== undefined
              ? `FAILED: ${outcome.error.split("\n")[0]}`
              : `opened ${opened} (warm ${warmOpen}), burst ${burst?.durationMs} ms`
          }`
        )
        await sleep(200)
      }
    }
    save()
  }

  save()
  log(`done in ${data.meta.runTimeSec} s: ${Path.relative(repoDir, Path.join(outDir, `${outName}.md`))}`)
}

interface RecoveryResult {
  readonly startEpochMs: number
  readonly bucketMs: number
  readonly ok: ReadonlyArray<number>
  readonly err: ReadonlyArray<number>
  readonly successesAfterError: ReadonlyArray<number>
  readonly maxRssKb?: number
  readonly lastError?: string
}

/**
 * From a runner's timeline: throughput before the stop, time from server up to the first success, and to the end
 * of the first 100 ms window back at ≥ 80 % of that throughput.
 */
const analyzeRecovery = (
  raw: Record<string, unknown>,
  timing: Record<string, number>,
  baselineMs: number
) => {
  const r = raw as unknown as RecoveryResult
  const slot = (t: number) => Math.floor((t - r.startEpochMs) / r.bucketMs)
  const sum = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0)
  const b0 = Math.max(0, slot(timing.stopAt! - baselineMs))
  const b1 = slot(timing.stopAt!)
  const baselineOpsPerSec = Math.round(sum(r.ok.slice(b0, b1)) / (((b1 - b0) * r.bucketMs) / 1000))
  const upAt = timing.upAt!
  let first = r.successesAfterError.find((t) => t >= upAt)
  if (first === undefined) {
    const s = r.ok.findIndex((count, i) => count > 0 && i >= slot(upAt))
    if (s >= 0) first = r.startEpochMs + s * r.bucketMs
  }
  const window = Math.round(100 / r.bucketMs)
  const target = 0.8 * baselineOpsPerSec * ((window * r.bucketMs) / 1000)
  let full: number | undefined
  for (let s = Math.max(0, slot(upAt)); s + window <= r.ok.length; s++) {
    if (sum(r.ok.slice(s, s + window)) >= target) {
      full = r.startEpochMs + (s + window) * r.bucketMs
      break
    }
  }
  // 100 ms timeline from 1 s before the stop, for the JSON
  const per = Math.round(100 / r.bucketMs)
  const from = Math.max(0, slot(timing.stopAt! - 1000))
  const timeline: Array<number> = []
  for (let s = from; s < r.ok.length; s += per) timeline.push(Math.round(sum(r.ok.slice(s, s + per)) * (1000 / 100)))
  return {
    baselineOpsPerSec,
    stopMs: Math.round(timing.downAt! - timing.stopAt!),
    startMs: Math.round(upAt - timing.startAt!),
    firstSuccessMs: first === undefined ? null : Math.round(first - upAt),
    fullThroughputMs: full === undefined ? null : Math.round(full - upAt),
    errors: sum(r.err),
    maxRssKb: r.maxRssKb,
    lastError: r.lastError?.slice(0, 300),
    timeline: { fromEpochMs: r.startEpochMs + from * r.bucketMs, intervalMs: 100, opsPerSec: timeline }
  }
}

const render = (file: string) => {
  const path = Path.resolve(file)
  writeReport(readReport(path), Path.dirname(path), Path.basename(path, ".json"))
  log(`rendered ${Path.relative(repoDir, path.replace(/\.json$/, ".md"))}`)
}

if (cli.render !== undefined) render(cli.render)
else run().then(
  async () => {
    await cleanup()
    process.exit(0)
  },
  async (error: unknown) => {
    log(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    await cleanup()
    process.exit(1)
  }
)
