/**
 * Runner: the server's limit, measured with `pgbench` (C/libpq) `-M prepared`, `-c` = min(concurrency, pool max),
 * `-j` = min(2, -c). `--mode plain` runs `SELECT 1;`, `--mode pipeline` 8 × `SELECT 1;` inside `\startpipeline` /
 * `\endpipeline` (8 statements per batch), w2 a custom script doing the short transaction on `accounts`.
 *
 * Latency: only pgbench's own average (per transaction; a pipelined batch of 8 counts as one). Its per-transaction
 * log (`-l`) is not usable for percentiles here: pgbench reads the clock lazily, so at this rate most logged
 * latencies are 0. CPU and peak RSS from `/usr/bin/time` when present (else CPU from the shell's `times`, no RSS).
 * pgbench has no warmup phase.
 * `BENCH_PGBENCH` names the binary (default `pgbench` on PATH).
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { emit, main, parse } from "../support/protocol.ts"

const scripts = {
  plain: "SELECT 1;\n",
  pipeline: `\\startpipeline\n${"SELECT 1;\n".repeat(8)}\\endpipeline\n`,
  tx: [
    "\\set id random(1, :accounts)",
    "BEGIN;",
    "UPDATE accounts SET balance = balance + 1 WHERE id = :id;",
    "SELECT balance FROM accounts WHERE id = :id;",
    "COMMIT;",
    ""
  ].join("\n")
}

main(async () => {
  const args = parse()
  const url = new URL(args.url)
  const binary = process.env.BENCH_PGBENCH ?? "pgbench"
  const script = args.workload === "w2" ? "tx" : args.mode === "pipeline" ? "pipeline" : "plain"
  if (args.workload !== "w1" && args.workload !== "w2") throw new Error(`pgbench runs w1 and w2, not ${args.workload}`)
  const statementsPerTx = script === "pipeline" ? 8 : 1
  const clients = Math.max(1, Math.min(args.concurrency, args.poolMax))
  const threads = Math.min(2, clients)
  const seconds = Math.max(1, Math.round(args.durationMs / 1000))
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "bench-pgbench-"))
  try {
    const file = Path.join(dir, "script.sql")
    Fs.writeFileSync(file, scripts[script])
    const pgbenchArgs = [
      "-n", // no vacuum of the pgbench tables (there are none)
      "-M",
      "prepared",
      "-c",
      String(clients),
      "-j",
      String(threads),
      "-T",
      String(seconds),
      "-P",
      "1",
      "-f",
      file,
      "-D",
      `accounts=${args.accounts}`,
      "-h",
      url.hostname,
      "-p",
      url.port || "5432",
      "-U",
      decodeURIComponent(url.username),
      decodeURIComponent(url.pathname.slice(1)) || "postgres"
    ]
    const hasTime = Fs.existsSync("/usr/bin/time")
    const [command, commandArgs] = hasTime
      ? ["/usr/bin/time", ["-f", "__TIME__ %U %S %M", binary, ...pgbenchArgs]]
      : ["bash", ["-c", `"$0" "$@"; rc=$?; echo __TIMES__ >&2; times >&2; exit $rc`, binary, ...pgbenchArgs]]
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const child = spawn(command, commandArgs as Array<string>, {
          cwd: dir,
          env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password) },
          stdio: ["ignore", "pipe", "pipe"]
        })
        let out = ""
        let err = ""
        child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()))
        child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()))
        child.on("error", reject)
        child.on("close", (exitCode) => resolve({ code: exitCode, stdout: out, stderr: err }))
      }
    )
    if (code !== 0) throw new Error(`pgbench exited with ${code}\n${stdout}\n${stderr}`)
    const number = (pattern: RegExp): number | null => {
      const match = stdout.match(pattern)
      return match === null ? null : Number(match[1])
    }
    const transactions = number(/number of transactions actually processed: (\d+)/) ?? 0
    const failed = number(/number of failed transactions: (\d+)/) ?? 0
    const tps = number(/tps = ([\d.]+) \(without initial connection time\)/) ?? 0
    const latencyMs = number(/latency average = ([\d.]+) ms/)
    // per-second progress lines: "progress: 3.0 s, 88123.4 tps, lat ..."
    const series = [...stderr.matchAll(/progress: [\d.]+ s, ([\d.]+) tps/g)].map((m) =>
      Math.round((Number(m[1]) * statementsPerTx) / 4)
    )
    let cpuUs: { user: number; system: number } | null = null
    let maxRssKb: number | null = null
    const timeLine = stderr.match(/__TIME__ ([\d.]+) ([\d.]+) (\d+)/)
    if (timeLine !== null) {
      cpuUs = { user: Math.round(Number(timeLine[1]) * 1e6), system: Math.round(Number(timeLine[2]) * 1e6) }
      maxRssKb = Number(timeLine[3])
    } else {
      const times = stderr.slice(stderr.indexOf("__TIMES__")).match(/\n.*\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s/)
      if (times !== null) {
        cpuUs = {
          user: Math.round((Number(times[1]) * 60 + Number(times[2])) * 1e6),
          system: Math.round((Number(times[3]) * 60 + Number(times[4])) * 1e6)
        }
      }
    }
    const ops = transactions * statementsPerTx
    const elapsedMs = tps > 0 ? (transactions / tps) * 1000 : seconds * 1000
    emit({
      type: "result",
      ops,
      errors: failed,
      elapsedMs: Math.round(elapsedMs),
      opsPerSec: Math.round(tps * statementsPerTx),
      latencyUs: { p50: null, p99: null, max: null, mean: latencyMs === null ? null : Math.round(latencyMs * 10000) / 10 },
      latencyNote: statementsPerTx > 1 ? `per batch of ${statementsPerTx}` : undefined,
      cpuUs,
      cpuPerOpUs: cpuUs === null || ops === 0 ? null : Math.round(((cpuUs.user + cpuUs.system) / ops) * 100) / 100,
      maxRssKb,
      // per-second progress, scaled to the 250 ms slots the other runners report
      series: { intervalMs: 250, counts: series.flatMap((c) => [c, c, c, c]) },
      connections: clients,
      threads
    })
  } finally {
    Fs.rmSync(dir, { recursive: true, force: true })
  }
})
