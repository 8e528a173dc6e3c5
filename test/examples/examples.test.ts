/**
 * Smoke tests for `examples/`: each example runs as a real program (`node examples/x.ts`, a child process) against
 * the test server, in a database of its own, with `DATABASE_URL` set so that none starts an embedded server.
 *
 * Every child is killed (SIGKILL) in a `finally` if it is still running, and every wait has a bound.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { freshDatabase, quoteIdentifier, withAdmin } from "../support/Db.ts"

const root = Path.resolve(import.meta.dirname, "../..")
const localNode = Path.join(root, "node_modules/.bin/node")
const node = Fs.existsSync(localNode) ? localNode : process.execPath

interface Child {
  readonly process: ChildProcess
  /** Everything written to stdout so far. */
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves with the exit code (or the signal's name) when the process has exited. */
  readonly exited: Promise<number | string>
  readonly isRunning: () => boolean
}

const start = (example: string, env: Record<string, string>): Child => {
  const child = spawn(node, [Path.join("examples", example)], {
    cwd: root,
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const exited = new Promise<number | string>((resolve, reject) => {
    child.once("error", reject)
    child.once("close", (code, signal) => resolve(code ?? signal ?? "unknown"))
  })
  return {
    process: child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    isRunning: () => child.exitCode === null && child.signalCode === null
  }
}

const within = <A>(promise: Promise<A>, millis: number, what: string): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${millis} ms`)), millis)
    })
  ]).finally(() => clearTimeout(timer))
}

const kill = (child: Child): void => {
  if (child.isRunning()) child.process.kill("SIGKILL")
}

const describeOutput = (child: Child): string =>
  `\n--- stdout ---\n${child.stdout()}\n--- stderr ---\n${child.stderr()}`

/** Runs an example to completion (bounded) and returns its output. */
const run = async (
  example: string,
  env: Record<string, string>,
  timeoutMillis = 30_000
): Promise<{ readonly code: number | string; readonly stdout: string; readonly output: string }> => {
  const child = start(example, env)
  try {
    const code = await within(child.exited, timeoutMillis, example).catch((error: Error) => {
      throw new Error(`${error.message}${describeOutput(child)}`)
    })
    return { code, stdout: child.stdout(), output: describeOutput(child) }
  } finally {
    kill(child)
  }
}

/** A fresh database on the test server for `f`, dropped afterwards. */
const withDatabase = async <A>(name: string, f: (url: string) => Promise<A>): Promise<A> => {
  const url = await Effect.runPromise(freshDatabase(name))
  try {
    return await f(url)
  } finally {
    const database = decodeURIComponent(new URL(url).pathname.slice(1))
    await Effect.runPromise(
      withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(database)} WITH (FORCE)`, [], false))
        .pipe(Effect.ignore)
    )
  }
}

describe("examples", () => {
  it("quickstart runs and exits 0", () =>
    withDatabase("example_quickstart", async (url) => {
      const { code, output, stdout } = await run("quickstart.ts", { DATABASE_URL: url })
      assert.strictEqual(code, 0, output)
      assert.include(stdout, "database: using DATABASE_URL", output)
      assert.notInclude(stdout, "embedded PostgreSQL", output)
      assert.include(stdout, `select: [{"id":1,"num":100,"data":"abc'def"}]`, output)
      assert.include(stdout, "transaction rolled back: NotToday", output)
      assert.include(stdout, "executeMany: 3 rows inserted", output)
      assert.include(stdout, "fetchVal: count = 5", output)
      assert.include(stdout, "fetchOne (rolled back row): none", output)
      assert.include(stdout, "next borrower sees statement_timeout = 0", output)
      assert.match(stdout, /pool\.stats: poolSize=\d+ poolAvailable=\d+ requestsNum=\d+/, output)
      assert.include(stdout, "quickstart: done", output)
    }))

  it("worker processes every job exactly once and exits 0", () =>
    withDatabase("example_worker", async (url) => {
      const { code, output, stdout } = await run("worker.ts", { DATABASE_URL: url, WORKERS: "4", JOBS: "200" })
      assert.strictEqual(code, 0, output)
      const perWorker = [...stdout.matchAll(/^worker (\d+): processed (\d+) jobs$/gm)]
      assert.strictEqual(perWorker.length, 4, output)
      assert.strictEqual(perWorker.reduce((sum, match) => sum + Number(match[2]), 0), 200, output)
      assert.include(stdout, "worker: OK, all 200 jobs processed exactly once", output)
    }))

  it("demo (npm start) runs its workload, prints the summary and exits 0", () =>
    withDatabase("example_demo", async (url) => {
      const { code, output, stdout } = await run("demo.ts", { DATABASE_URL: url, DEMO_SECONDS: "2" })
      assert.strictEqual(code, 0, output)
      // Not a TTY here: a progress line per second.
      assert.match(stdout, /^\[\s*\d+\.\d s\]\s+[\d,]+ requests .*\| pool \d+\/10 /m, output)
      assert.include(stdout, "Summary", output)
      for (const label of ["requests", "queued requests", "acquire p50", "acquire p99", "connections opened"]) {
        assert.match(stdout, new RegExp(`^  ${label}\\s+\\S`, "m"), `${label}${output}`)
      }
      assert.match(stdout, /^ {2}errors\s+0$/m, output)
      assert.match(stdout, /^ {2}balance check\s+ok/m, output)
      assert.include(stdout, "demo: done", output)
    }))

  it("http-server serves the API and exits 0 on SIGTERM", () =>
    withDatabase("example_http", async (url) => {
      const child = start("http-server.ts", { DATABASE_URL: url, PORT: "0" })
      try {
        // The port, from the log line (PORT=0: the OS picked it).
        const port = await within(
          (async () => {
            for (let i = 0; i < 300; i++) {
              const match = /http-server: listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(child.stdout())
              if (match !== null) return Number(match[1])
              if (!child.isRunning()) throw new Error("exited before listening")
              await new Promise((resolve) => setTimeout(resolve, 50))
            }
            throw new Error("no listening line")
          })(),
          20_000,
          "http-server start"
        ).catch((error: Error) => {
          throw new Error(`${error.message}${describeOutput(child)}`)
        })
        const base = `http://127.0.0.1:${port}`
        const request = async (path: string, init?: RequestInit) => {
          const response = await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(10_000) })
          return { status: response.status, body: (await response.json()) as any }
        }

        const list = await request("/users")
        assert.strictEqual(list.status, 200)
        assert.isArray(list.body)
        assert.deepStrictEqual(list.body.map((user: { email: string }) => user.email), [
          "ada@example.com",
          "alan@example.com"
        ])

        const post = (body: unknown) =>
          request("/users", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body)
          })
        const created = await post({ name: "Grace Hopper", email: "grace@example.com" })
        assert.strictEqual(created.status, 201, JSON.stringify(created.body))
        assert.strictEqual(created.body.name, "Grace Hopper")
        assert.strictEqual(created.body.email, "grace@example.com")
        assert.isNumber(created.body.id)

        const one = await request(`/users/${created.body.id}`)
        assert.strictEqual(one.status, 200)
        assert.deepStrictEqual(one.body, created.body)

        assert.strictEqual((await request("/users/999999")).status, 404)
        assert.strictEqual((await post({ name: "Again", email: "grace@example.com" })).status, 409)
        assert.strictEqual((await post({ name: "", email: "nobody" })).status, 400)
        assert.strictEqual((await request("/users")).body.length, 3)

        const stats = await request("/pool/stats")
        assert.strictEqual(stats.status, 200)
        assert.isNumber(stats.body.poolSize)
        assert.isAtLeast(stats.body.poolSize, 1)
        assert.strictEqual(stats.body.poolMax, 10)
        assert.isAtLeast(stats.body.requestsNum, 5)

        const stoppedAt = performance.now()
        child.process.kill("SIGTERM")
        const code = await within(child.exited, 10_000, "http-server shutdown")
        const output = describeOutput(child)
        assert.strictEqual(code, 0, output)
        assert.isBelow(performance.now() - stoppedAt, 10_000)
        assert.include(child.stdout(), "http-server: shutting down", output)
        assert.include(child.stdout(), "http-server: stopped", output)
      } finally {
        kill(child)
      }
    }))
})
