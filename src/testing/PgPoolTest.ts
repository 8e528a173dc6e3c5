/**
 * A mock PostgreSQL pool for your own `TestClock` tests: the real pool engine, the real `PgPool` service and the real
 * `SqlClient` / `PgClient`, over in-memory sessions whose answers your test scripts. Every pool rule (timeouts,
 * `maxWaiting`, exhaustion, slow connects, backoff, stats) behaves as in production, on virtual time.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import { ConnectionError, SqlError } from "effect/sql/SqlError"
import * as Stream from "effect/Stream"
import type { Connector } from "../Connector.ts"
import { makeFaults } from "../internal/faults.ts"
import { Lease } from "../internal/lease.ts"
import { validateConnection } from "../internal/validate.ts"
import * as PgConnector from "../PgConnector.ts"
import * as PgPool from "../PgPool.ts"
import type { PoolConfigError, PoolTimeout } from "../PoolError.ts"
import type { FaultControls } from "./MockConnector.ts"

/**
 * A statement as the mock receives it.
 *
 * **Details**
 *
 * `sql` is the text sent (for `sql` templates, the compiled text with `$1..$n` placeholders), `params` its
 * parameters, `processId` the session it runs on (sessions are numbered from 1 in the order they were opened).
 *
 * **Example**
 *
 * ```ts
 * import type * as PgPoolTest from "effect-pg-pool/testing/PgPoolTest"
 *
 * const isUserLookup = (statement: PgPoolTest.Statement) => statement.sql.includes("FROM users")
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface Statement {
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
  readonly processId: number
}

/**
 * A statement in the log, with the virtual time (ms) at which it was sent.
 *
 * **Example**
 *
 * ```ts
 * import type * as PgPoolTest from "effect-pg-pool/testing/PgPoolTest"
 *
 * const show = (s: PgPoolTest.LoggedStatement) => `${s.at} ms #${s.processId}: ${s.sql}`
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface LoggedStatement extends Statement {
  readonly at: number
}

/**
 * What a handler answers: the rows, or the rows with the command tag and row count.
 *
 * **Details**
 *
 * `command` defaults to the statement's leading keyword, as PostgreSQL's command tag would read (`SELECT`, `INSERT`,
 * `BEGIN`, `COMMIT`, `ROLLBACK` for `ROLLBACK TO SAVEPOINT`, `RELEASE`, `SAVEPOINT`, ...; `WITH` and `VALUES`
 * read as `SELECT`). `rowCount` defaults to the number of rows. Answer `{ command: "ROLLBACK" }` to a `COMMIT` to
 * simulate a transaction PostgreSQL had already aborted (`sql.withTransaction` then fails).
 *
 * **Example**
 *
 * ```ts
 * import type * as PgPoolTest from "effect-pg-pool/testing/PgPoolTest"
 *
 * const rows: PgPoolTest.Answer = [{ id: 1, name: "Ada" }]
 * const updated: PgPoolTest.Answer = { rows: [], rowCount: 3 }
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export type Answer =
  | ReadonlyArray<PgConnection.Row>
  | {
    readonly rows?: ReadonlyArray<PgConnection.Row> | undefined
    readonly command?: string | undefined
    readonly rowCount?: number | undefined
  }

/**
 * Scripts the answers: called for every statement a session runs, including `BEGIN`, `COMMIT`, `ROLLBACK`,
 * `SAVEPOINT` and the session reset, in the fiber that runs the statement.
 *
 * **Details**
 *
 * It may sleep (virtual time) to simulate a slow statement, and fail with a `SqlError` to simulate a server error;
 * a failure whose reason is `ConnectionError` also marks the session broken, so the pool replaces it.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import type * as PgPoolTest from "effect-pg-pool/testing/PgPoolTest"
 *
 * const handler: PgPoolTest.Handler = ({ sql, params }) =>
 *   sql.includes("FROM users")
 *     ? Effect.as(Effect.sleep("50 millis"), [{ id: params[0], name: "Ada" }])
 *     : Effect.succeed([])
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export type Handler = (statement: Statement) => Effect.Effect<Answer, SqlError>

/**
 * Options of the mock: every setting of the pool service (`PgPool.PoolConfig`: `Pool.Options` sizes and timings,
 * `configure`, `check`, client transforms) plus the mock's own.
 *
 * **Details**
 *
 * - pool settings: as in production (`minSize` 4, `maxSize` = minSize, `timeout` 30 s, `numWorkers` 3, backoff
 *   exponential from 1 s ×2 capped at 10 s and jittered ±10%, ...; see `Pool.Options`).
 * - `handler` (every statement answers no rows): scripts the answers, see `Handler`.
 * - `connectLatency` (0), `pingLatency` (0): virtual time a connect and a checkout ping take.
 * - `failConnects` (0): the first `n` connects fail, as `failConnects(n)` called before the pool starts.
 * - `reset` ("auto"): as `PgPool.Config.reset`. On return an open transaction is rolled back (the `ROLLBACK` reaches
 *   the handler and the log); a session that ran a statement which leaves state behind (SET, LISTEN, temporary
 *   objects, ...) runs `PgConnector.resetStatements`; `"always"` resets every return, `"none"` only rolls back.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import type * as PgPoolTest from "effect-pg-pool/testing/PgPoolTest"
 *
 * const options: PgPoolTest.Options = {
 *   minSize: 1,
 *   maxSize: 2,
 *   timeout: "1 second",
 *   connectLatency: "20 millis",
 *   handler: () => Effect.succeed([{ one: 1 }])
 * }
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface Options extends PgPool.PoolConfig {
  readonly handler?: Handler | undefined
  readonly connectLatency?: Duration.Input | undefined
  readonly pingLatency?: Duration.Input | undefined
  readonly failConnects?: number | undefined
  readonly reset?: "auto" | "always" | "none" | undefined
}

/**
 * The controls and the statement log of a mock pool.
 *
 * **Details**
 *
 * - `statements`: every statement sent, in order (a live array); `clearStatements()` empties it.
 * - `setHandler(handler)`: answer later statements with another script.
 * - `open`: the process ids of the sessions open now; `counts`: connects (successful), connectAttempts, closes,
 *   pings, resets; `attemptTimes`: the virtual time (ms) each connect attempt started.
 * - `failConnects(n)`, `failPings(n)`, `failResets(n)`: the next `n` fail (`Infinity` until `recover()`). A failed
 *   connect is a `SqlError` with reason `ConnectionError`, as a refused connection is.
 * - `breakConnection(processId)` / `breakAll()`: the backend dies (as with `pg_terminate_backend` or a server
 *   restart): its statements and pings fail with a `ConnectionError`, its listeners fail, the pool replaces it.
 * - `setConnectLatency(latency)`: for later connects.
 * - `notify(channel, payload)`: delivers a notification to every listener of `channel` (as `NOTIFY` from another
 *   session). `sql.notify` / `SELECT pg_notify($1, $2)` through the pool deliver too, once the handler answered.
 * - `connectOptions`: the connection settings last given to the service's `setConnectOptions` (merged).
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import * as PgPoolTest from "effect-pg-pool/testing/PgPoolTest"
 *
 * const program = Effect.gen(function*() {
 *   const db = yield* PgPoolTest.PgPoolTest
 *   db.failConnects(Infinity)
 *   // ... the pool backs off ...
 *   db.recover()
 *   return db.statements.map((s) => s.sql)
 * })
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface PgPoolTest extends FaultControls {
  readonly statements: ReadonlyArray<LoggedStatement>
  readonly clearStatements: () => void
  readonly setHandler: (handler: Handler) => void
  readonly open: ReadonlySet<number>
  readonly connectOptions: Partial<PgConnection.Config>
  readonly breakConnection: (processId: number) => void
  readonly breakAll: () => void
  readonly setConnectLatency: (latency: Duration.Input) => void
  readonly notify: (channel: string, payload: string) => void
}

/**
 * The service tag of the mock's controls, provided by `layer` next to `PgPool`, `SqlClient` and `PgClient`.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import * as PgPoolTest from "effect-pg-pool/testing/PgPoolTest"
 *
 * const sent = Effect.gen(function*() {
 *   const db = yield* PgPoolTest.PgPoolTest
 *   return db.statements.length
 * })
 * ```
 *
 * @category services
 * @since 0.1.0
 */
export const PgPoolTest = Context.Service<PgPoolTest>("effect-pg-pool/testing/PgPoolTest")

/** One in-memory backend: the server side of a session. */
interface Backend {
  readonly processId: number
  open: boolean
  broken: boolean
  /** Listener queues by channel. */
  readonly channels: Map<string, Set<Queue.Queue<PgConnection.Notification, SqlError>>>
}

const connectionError = (operation: string, message: string) =>
  new SqlError({ reason: new ConnectionError({ cause: new Error(message), message: `PgPoolTest: ${message}`, operation }) })

const commandOf = (sql: string): string => {
  const word = /^\s*([A-Za-z]+)/.exec(sql)?.[1]?.toUpperCase() ?? ""
  switch (word) {
    case "END":
      return "COMMIT"
    case "ABORT":
      return "ROLLBACK"
    case "WITH":
    case "VALUES":
    case "TABLE":
      return "SELECT"
    default:
      return word
  }
}

const isRows = (answer: Answer): answer is ReadonlyArray<PgConnection.Row> => Array.isArray(answer)

const toResult = (sql: string, answer: Answer): PgConnection.Result => {
  const rows = isRows(answer) ? answer : answer.rows ?? []
  const command = isRows(answer) ? undefined : answer.command
  const rowCount = isRows(answer) ? undefined : answer.rowCount
  return {
    command: command ?? commandOf(sql),
    rowCount: rowCount ?? rows.length,
    oid: null,
    rows,
    fields: rows.length === 0 ? [] : Object.keys(rows[0]).map((name) => ({ name, dataTypeId: 0 }))
  }
}

const notifySql = /^\s*select\s+pg_notify\s*\(\s*\$1\s*,\s*\$2\s*\)\s*;?\s*$/i

const quote = (channel: string) => `"${channel.replaceAll("\"", "\"\"")}"`

/**
 * Creates a mock pool in the current scope: the pool service, its `PgClient` (also a `SqlClient`) and the controls.
 *
 * **When to use**
 *
 * When a test needs the pieces as values (several pools, or a pool inside a larger setup); `layer` provides them as
 * services.
 *
 * **Details**
 *
 * Runs `Pool.make` and the `PgPool` service code of production (`PgPool.makeWith`) over in-memory sessions. Time is
 * the fiber's `Clock`, so under `it.effect` every latency, timeout and backoff runs on `TestClock`.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import * as Reactivity from "effect/reactivity/Reactivity"
 * import * as PgPoolTest from "effect-pg-pool/testing/PgPoolTest"
 *
 * const program = Effect.gen(function*() {
 *   const { client, test } = yield* PgPoolTest.make({ handler: () => Effect.succeed([{ one: 1 }]) })
 *   const rows = yield* client`SELECT 1 AS one`
 *   return [rows, test.statements] as const
 * }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function*(
  options: Options = {}
): Effect.fn.Return<
  { readonly pool: PgPool.PgPool; readonly client: PgClient.PgClient; readonly test: PgPoolTest },
  PoolConfigError | PoolTimeout,
  Scope.Scope | Reactivity.Reactivity
> {
  const clock = yield* Clock.Clock
  const now = () => clock.currentTimeMillisUnsafe()
  const ms = (input: Duration.Input | undefined) => input === undefined ? 0 : Duration.toMillis(input)
  const pause = (latency: number) => latency > 0 ? Effect.sleep(latency) : Effect.void
  const mode = options.reset ?? "auto"
  const pingLatency = ms(options.pingLatency)
  let connectLatency = ms(options.connectLatency)
  let handler: Handler = options.handler ?? (() => Effect.succeed([]))
  let connectOptions: Partial<PgConnection.Config> = {}
  const statements: Array<LoggedStatement> = []
  const backends = new Map<number, Backend>()
  const open = new Set<number>()
  const counts = { connects: 0, connectAttempts: 0, closes: 0, pings: 0, resets: 0 }
  const attemptTimes: Array<number> = []
  const faults = makeFaults({ connect: options.failConnects })
  let nextProcessId = 1

  const deliver = (channel: string, payload: string, processId: number): void => {
    for (const backend of backends.values()) {
      const queues = backend.channels.get(channel)
      if (queues !== undefined) for (const queue of queues) Queue.offerUnsafe(queue, { processId, channel, payload })
    }
  }

  const kill = (backend: Backend, error: SqlError): void => {
    for (const queues of backend.channels.values()) for (const queue of queues) Queue.failCauseUnsafe(queue, Cause.fail(error))
    backend.channels.clear()
  }

  /** Sends one statement to the backend: logged, then answered by the handler. */
  const run = (backend: Backend, sql: string, params: ReadonlyArray<unknown>): Effect.Effect<PgConnection.Result, SqlError> =>
    Effect.suspend(() => {
      if (!backend.open || backend.broken) return Effect.fail(connectionError("query", "the connection was lost"))
      const statement: Statement = { sql, params, processId: backend.processId }
      statements.push({ ...statement, at: now() })
      return Effect.map(handler(statement), (answer) => {
        if (notifySql.test(sql) && typeof params[0] === "string") {
          deliver(params[0], String(params[1] ?? ""), backend.processId)
        }
        return toResult(sql, answer)
      })
    })

  const listen = (backend: Backend, channel: string) =>
    Effect.acquireRelease(
      Effect.flatMap(run(backend, `LISTEN ${quote(channel)}`, []), () =>
        Effect.map(Queue.unbounded<PgConnection.Notification, SqlError>(), (queue) => {
          let queues = backend.channels.get(channel)
          if (queues === undefined) backend.channels.set(channel, queues = new Set())
          queues.add(queue)
          return queue
        })),
      (queue) =>
        Effect.suspend(() => {
          const queues = backend.channels.get(channel)
          if (queues === undefined || !queues.delete(queue) || queues.size > 0) return Queue.shutdown(queue)
          backend.channels.delete(channel)
          return Effect.andThen(Effect.ignore(run(backend, `UNLISTEN ${quote(channel)}`, [])), Queue.shutdown(queue))
        })
    ) as Effect.Effect<Queue.Dequeue<PgConnection.Notification, SqlError>, SqlError, Scope.Scope>

  const fakeConnection = (backend: Backend): PgConnection.PgConnection => {
    const connection: PgConnection.PgConnection = {
      [PgConnection.TypeId]: PgConnection.TypeId,
      config: {},
      processId: backend.processId,
      pin: Effect.suspend(() => Effect.succeed(connection)),
      query: (sql, params = []) => run(backend, sql, params),
      queryValues: (sql, params = []) =>
        Effect.map(run(backend, sql, params), (result) =>
          result.rows.map((row) => result.fields.map((field) => row[field.name]))),
      stream: (sql, params = []) =>
        Stream.unwrap(Effect.map(run(backend, sql, params), (result) => Stream.fromIterable(result.rows))),
      listen: (channel) => listen(backend, channel),
      interrupt: Effect.void
    }
    return connection
  }

  const backendOf = (session: PgConnector.PgSession): Backend | undefined => backends.get(session.processId)

  const connect = Effect.gen(function*() {
    counts.connectAttempts++
    attemptTimes.push(now())
    yield* pause(connectLatency)
    if (faults.take("connect")) {
      return yield* connectionError("connect", "injected connect failure (connection refused)")
    }
    const backend: Backend = { processId: nextProcessId++, open: true, broken: false, channels: new Map() }
    backends.set(backend.processId, backend)
    open.add(backend.processId)
    counts.connects++
    return PgConnector.makeSession(fakeConnection(backend), Scope.makeUnsafe())
  })

  /** Runs a statement of the pool's own (reset) on the session, marking it broken on a connection error. */
  const runOwn = (session: PgConnector.PgSession, sql: string) => {
    const backend = backendOf(session)
    return PgConnector.watch(
      session,
      backend === undefined ? Effect.fail(connectionError("reset", "the connection was closed")) : run(backend, sql, [])
    )
  }

  const configure = options.configure
  // The production reset, on the fake sessions: its statements reach the handler and the log.
  const productionReset = PgConnector.makeReset(
    mode,
    runOwn,
    configure === undefined ? undefined : (session) => configure(new Lease(session))
  )
  const reset = (session: PgConnector.PgSession) =>
    Effect.suspend(() => {
      counts.resets++
      if (faults.take("reset")) {
        return Effect.fail(connectionError("reset", "injected reset failure"))
      }
      return productionReset(session)
    })

  const connector: Connector<PgConnector.PgSession, SqlError> = {
    connect,
    close: (session) =>
      Effect.suspend(() => {
        const backend = backendOf(session)
        if (backend !== undefined && backend.open) {
          backend.open = false
          backends.delete(backend.processId)
          open.delete(backend.processId)
          counts.closes++
          kill(backend, connectionError("listen", "the connection was closed"))
        }
        return Scope.close(session.scope, Exit.void)
      }),
    ping: (session) =>
      Effect.andThen(
        pause(pingLatency),
        Effect.suspend(() => {
          counts.pings++
          if (faults.take("ping")) {
            return Effect.fail(connectionError("ping", "injected ping failure"))
          }
          const backend = backendOf(session)
          return backend !== undefined && backend.open && !backend.broken
            ? Effect.void
            : Effect.fail(connectionError("ping", "the connection was lost"))
        })
      ),
    isBroken: (session) => {
      const backend = backendOf(session)
      return session.broken || backend === undefined || !backend.open || backend.broken
    },
    onReturn: (session) => {
      // As PgConnector: leases compare epochs, so every one handed out for this session now fails after release.
      session.epoch++
    },
    needsReset: (session) => session.txOpen || mode === "always" || (mode === "auto" && session.dirty),
    reset
  }

  const breakBackend = (backend: Backend): void => {
    backend.broken = true
    kill(backend, connectionError("listen", "the connection was lost"))
  }

  const test: PgPoolTest = {
    statements,
    clearStatements: () => {
      statements.length = 0
    },
    setHandler: (next) => {
      handler = next
    },
    open,
    counts,
    attemptTimes,
    get connectOptions() {
      return connectOptions
    },
    failConnects: faults.failConnects,
    failPings: faults.failPings,
    failResets: faults.failResets,
    recover: faults.recover,
    breakConnection: (processId) => {
      const backend = backends.get(processId)
      if (backend !== undefined) breakBackend(backend)
    },
    breakAll: () => {
      for (const backend of backends.values()) breakBackend(backend)
    },
    setConnectLatency: (latency) => {
      connectLatency = ms(latency)
    },
    notify: (channel, payload) => deliver(channel, payload, 0)
  }

  const { client, pool } = yield* PgPool.makeWith({
    connector: () => connector,
    setConnectOptions: (next) => {
      const merged = { ...connectOptions, ...next }
      return Effect.tap(validateConnection(merged), () => Effect.sync(() => (connectOptions = merged)))
    }
  }, options)
  // Closing the scope is the end of a test: close at once, under fibers that still hold a connection, rather than
  // wait `closeTimeout` of virtual time that nobody will advance. An explicit `pool.close()` keeps the production rule.
  yield* Effect.addFinalizer(() => pool.close(0))
  return { pool, client, test }
})

/**
 * A layer providing `PgPool`, `SqlClient` and `PgClient` (the same services as `PgPool.layer`) over a mock whose
 * answers the test scripts, plus `PgPoolTest` for its controls and statement log.
 *
 * **When to use**
 *
 * In your own tests under `it.effect`: provide it to the code under test (`Effect.provide(PgPoolTest.layer(...))`
 * inside the test, so the pool runs on the test's `TestClock`) and move time with `TestClock.adjust`.
 *
 * **Details**
 *
 * Options and defaults: see `Options`. The pool starts filling to `minSize` at once (connects take
 * `connectLatency`); closing the layer closes the pool as in production.
 *
 * **Gotchas**
 *
 * Build the layer inside the test effect (not in a module-level `ManagedRuntime`), or its timers run on the live
 * clock. A statement interrupted by a timeout ends its lease by interruption, so the pool closes that session and
 * opens a new one, as it does with PostgreSQL. When the layer's scope closes (the end of the test) the pool closes at
 * once, under fibers that still hold a connection, instead of waiting `closeTimeout` of virtual time that nobody
 * advances; an explicit `pool.close()` keeps the production rule.
 *
 * **Example**
 *
 * ```ts
 * import { assert, it } from "@effect/vitest"
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql/SqlClient"
 * import * as PgPoolTest from "effect-pg-pool/testing/PgPoolTest"
 *
 * it.effect("finds the user", () =>
 *   Effect.gen(function*() {
 *     const sql = yield* SqlClient
 *     const rows = yield* sql`SELECT * FROM users WHERE id = ${1}`
 *     assert.deepStrictEqual(rows, [{ id: 1, name: "Ada" }])
 *   }).pipe(
 *     Effect.provide(PgPoolTest.layer({ minSize: 1, handler: () => Effect.succeed([{ id: 1, name: "Ada" }]) }))
 *   ))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<PgPool.PgPool | SqlClient.SqlClient | PgClient.PgClient | PgPoolTest, PoolConfigError | PoolTimeout> =>
  Layer.effectContext(
    Effect.map(make(options), ({ client, pool, test }) =>
      Context.make(PgPool.PgPool, pool).pipe(
        Context.add(PgClient.PgClient, client),
        Context.add(SqlClient.SqlClient, client),
        Context.add(PgPoolTest, test)
      ))
  ).pipe(Layer.provide(Reactivity.layer))
