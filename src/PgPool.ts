/**
 * The PostgreSQL pool: a scoped `Layer` that provides `PgPool`, `SqlClient` and `PgClient`, so every `sql` statement
 * and `sql.withTransaction` of a program runs on it, plus psycopg/asyncpg-style helpers on the service itself.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Config_ from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Queue from "effect/Queue"
import * as Reactivity from "effect/reactivity/Reactivity"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import type * as Stream from "effect/Stream"
import type { Connector } from "./Connector.ts"
import { Lease } from "./internal/lease.ts"
import { validateConnection } from "./internal/validate.ts"
import * as PgConnector from "./PgConnector.ts"
import * as PgSqlClient from "./PgSqlClient.ts"
import * as Pool from "./Pool.ts"
import { isPoolError, PoolConfigError, type PoolError, type PoolTimeout } from "./PoolError.ts"

/**
 * A connection lent by the pool: statements on one PostgreSQL session.
 *
 * **Details**
 *
 * `query` returns the whole result (command, rowCount, rows, fields); `queryValues` rows as arrays; `stream` rows as
 * they arrive; `listen` a queue of notifications for the lease's scope. Parameters are `$1..$n`. Using a connection
 * after its lease ended fails with a `SqlError` ("connection used after it was returned to the pool").
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { PgPool } from "effect-pg-pool"
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* PgPool.PgPool
 *   const conn = yield* pool.connection()
 *   const result = yield* conn.query("SELECT $1::int + 1 AS x", [41])
 *   return result.rows[0]
 * }).pipe(Effect.scoped)
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface PooledConnection {
  readonly processId: number
  readonly query: (
    sql: string,
    params?: ReadonlyArray<unknown>,
    prepare?: boolean
  ) => Effect.Effect<PgConnection.Result, SqlError>
  readonly queryValues: (
    sql: string,
    params?: ReadonlyArray<unknown>,
    prepare?: boolean
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>
  readonly stream: (sql: string, params?: ReadonlyArray<unknown>) => Stream.Stream<PgConnection.Row, SqlError>
  readonly listen: (
    channel: string
  ) => Effect.Effect<Queue.Dequeue<PgConnection.Notification, SqlError>, SqlError, Scope.Scope>
}

/**
 * The settings of the pool service that do not depend on how sessions are opened: the pool options of
 * `Pool.Options` (sizes, timeouts, lifetimes, backoff, check, null pool), the client options and `configure`.
 *
 * **Details**
 *
 * - pool options: see `Pool.Options` (`minSize` 4, `maxSize` = minSize, `timeout` 30 s, ...).
 * - `configure` (none): runs once per new connection (and again after a session reset), e.g. `SET search_path`.
 * - `check` (`{ idle: "1 second" }`): the checkout check; `run` receives a `PooledConnection`.
 * - `transformResultNames`, `transformQueryNames`, `transformJson`, `spanAttributes`: as `@effect/sql-pg`'s client;
 *   `database`, `host`, `port` only label spans here.
 *
 * **Example**
 *
 * ```ts
 * import type { PgPool } from "effect-pg-pool"
 *
 * const sizing: PgPool.PoolConfig = { name: "app", minSize: 2, maxSize: 10, timeout: "5 seconds" }
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface PoolConfig
  extends Omit<Pool.Options<PooledConnection, SqlError>, "configure" | "check" | "multiplex">, PgSqlClient.ClientOptions
{
  /**
   * Pipelined mode (default false): single statements (`sql` outside a transaction and the helpers `execute`,
   * `fetch`, `fetchOne`, `fetchVal`) from many fibers share connections and are pipelined. Transactions, `reserve`,
   * streams, `listen`, `connection()`, `executeMany` and `fetchMany` still take a connection exclusively (pinned).
   */
  readonly multiplex?: boolean | undefined
  /** How many statements may share one connection at once in pipelined mode (default 32). */
  readonly multiplexConcurrency?: number | undefined
  readonly configure?: ((connection: PooledConnection) => Effect.Effect<void, SqlError>) | undefined
  readonly check?: false | Pool.CheckOptions<PooledConnection, SqlError> | undefined
}

/**
 * Everything the pool takes: the connection settings of `@effect/sql-pg`'s `PgConnection`, the pool options of
 * `Pool.Options` (sizes, timeouts, lifetimes, backoff, check, null pool) and the PostgreSQL-specific ones below.
 *
 * **Details**
 *
 * - connection fields: `url`, `host`, `port`, `path`, `ssl`, `database`, `username`, `password` (a `Redacted`, or an
 *   `Effect` evaluated at every connect for rotating credentials), `connectTimeout` (5 s), `keepAlive`,
 *   `applicationName`, `startupParameters`, `startupOptions`, `types`, `prepare` (true),
 *   `preparedStatementCacheSize` (100), `maxMessageSize`.
 * - `reset` ("auto"): session hygiene between borrowers, see `PgConnector.ResetMode`.
 * - `configure` (none): runs once per new connection (and again after a session reset), e.g. `SET search_path`.
 * - `transformResultNames`, `transformQueryNames`, `transformJson`, `spanAttributes`: as `@effect/sql-pg`'s client.
 *
 * **Example**
 *
 * ```ts
 * import { Redacted } from "effect"
 * import type { PgPool } from "effect-pg-pool"
 *
 * const config: PgPool.Config = {
 *   url: Redacted.make("postgres://app@127.0.0.1:5432/app"),
 *   name: "app",
 *   minSize: 2,
 *   maxSize: 10,
 *   timeout: "5 seconds"
 * }
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface Config extends Omit<PgConnection.Config, "multiplex" | "stream">, PoolConfig {
  readonly reset?: PgConnector.ResetMode | undefined
}

/**
 * The pool service.
 *
 * **Details**
 *
 * - `connection(options?)`: a `PooledConnection` until the scope closes. `withConnection(f, options?)`: one for `f`.
 * - `withTransaction(effect)`: runs `effect` in a transaction; `sql` statements inside it run on its connection.
 * - Helpers, each borrowing a connection for one statement or one batch: `execute` (the whole result), `fetch`
 *   (rows), `fetchOne` (first row), `fetchVal` (first column of the first row), `executeMany` (one statement for
 *   many parameter sets in one transaction, returns rows affected), `fetchMany` (rows per parameter set).
 * - Management: `stats`, `popStats`, `resize`, `check`, `wait`, `drain`, `close`, `isClosing`, and
 *   `setConnectOptions` (new connections use the merged settings; with `drain`, a running service moves to new
 *   credentials or a new host).
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { PgPool } from "effect-pg-pool"
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* PgPool.PgPool
 *   const count = yield* pool.fetchVal("SELECT count(*)::int FROM users")
 *   const stats = yield* pool.stats
 * })
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface PgPool extends
  Pick<
    Pool.Pool<PgConnector.PgSession>,
    "name" | "isClosing" | "stats" | "popStats" | "resize" | "check" | "wait" | "drain" | "close"
  >
{
  readonly connection: (options?: Pool.AcquireOptions) => Effect.Effect<PooledConnection, PoolError, Scope.Scope>
  readonly withConnection: <A, E, R>(
    f: (connection: PooledConnection) => Effect.Effect<A, E, R>,
    options?: Pool.AcquireOptions
  ) => Effect.Effect<A, E | PoolError, R>
  readonly withTransaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | PoolError | SqlError, R>
  readonly execute: (
    sql: string,
    params?: ReadonlyArray<unknown>
  ) => Effect.Effect<PgConnection.Result, SqlError | PoolError>
  readonly executeMany: (
    sql: string,
    paramsList: Iterable<ReadonlyArray<unknown>>
  ) => Effect.Effect<number, SqlError | PoolError>
  readonly fetch: (
    sql: string,
    params?: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<PgConnection.Row>, SqlError | PoolError>
  readonly fetchOne: (
    sql: string,
    params?: ReadonlyArray<unknown>
  ) => Effect.Effect<Option.Option<PgConnection.Row>, SqlError | PoolError>
  readonly fetchVal: (
    sql: string,
    params?: ReadonlyArray<unknown>
  ) => Effect.Effect<Option.Option<unknown>, SqlError | PoolError>
  readonly fetchMany: (
    sql: string,
    paramsList: Iterable<ReadonlyArray<unknown>>
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<PgConnection.Row>>, SqlError | PoolError>
  readonly setConnectOptions: (options: Partial<PgConnection.Config>) => Effect.Effect<void, PoolConfigError>
}

/**
 * The service tag.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { PgPool } from "effect-pg-pool"
 *
 * const stats = Effect.gen(function*() {
 *   const pool = yield* PgPool.PgPool
 *   return yield* pool.stats
 * })
 * ```
 *
 * @category services
 * @since 0.1.0
 */
export const PgPool = Context.Service<PgPool>("effect-pg-pool/PgPool")

const connectionKeys = [
  "url",
  "host",
  "port",
  "path",
  "ssl",
  "database",
  "username",
  "password",
  "connectTimeout",
  "keepAlive",
  "applicationName",
  "startupParameters",
  "startupOptions",
  "types",
  "prepare",
  "preparedStatementCacheSize",
  "maxMessageSize"
] as const satisfies ReadonlyArray<keyof PgConnection.Config>

const connectionOf = (config: Partial<PgConnection.Config>): PgConnection.Config => {
  const out: Record<string, unknown> = {}
  for (const key of connectionKeys) if (config[key] !== undefined) out[key] = config[key]
  return out as PgConnection.Config
}

const hostOf = (config: PgConnection.Config): { host?: string; port?: number; database?: string } => {
  const out: { host?: string; port?: number; database?: string } = {}
  if (config.host !== undefined) out.host = config.host
  if (config.port !== undefined) out.port = config.port
  if (config.database !== undefined) out.database = config.database
  return out
}

/**
 * How the pool service gets its sessions: what `makeWith` needs besides the pool settings.
 *
 * **Details**
 *
 * - `connector(invalidate)`: builds the `Connector` that opens, checks, resets and closes sessions. `invalidate`
 *   retires a session the driver learned is dead: it is closed at once when idle, on return when borrowed.
 * - `setConnectOptions`: what the service's `setConnectOptions` does (validate and store the settings that later
 *   connects use).
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { PgConnector, type PgPool } from "effect-pg-pool"
 *
 * const driver: PgPool.Driver = {
 *   connector: (invalidate) =>
 *     PgConnector.make({ connectOptions: () => ({ host: "127.0.0.1" }), onRetire: invalidate }),
 *   setConnectOptions: () => Effect.void
 * }
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export interface Driver {
  readonly connector: (
    invalidate: (session: PgConnector.PgSession) => void
  ) => Connector<PgConnector.PgSession, SqlError>
  readonly setConnectOptions: (options: Partial<PgConnection.Config>) => Effect.Effect<void, PoolConfigError>
}

/**
 * Creates the pool, its `PgClient` (also a `SqlClient`) and the service over any source of `PgSession`s.
 *
 * **When to use**
 *
 * To run the real pool and service over sessions that are not opened by `PgConnector` (`PgPoolTest` runs it over
 * in-memory sessions). For a PostgreSQL server, use `make` or the layers.
 *
 * **Details**
 *
 * Validates the pool settings first (a `PoolConfigError` names the field), starts filling to `minSize` in the
 * background and returns at once. Closing the scope closes the pool gracefully (see `Pool.Pool.close`).
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { PgConnector, PgPool } from "effect-pg-pool"
 *
 * const program = Effect.gen(function*() {
 *   const { client } = yield* PgPool.makeWith({
 *     connector: (invalidate) =>
 *       PgConnector.make({ connectOptions: () => ({ host: "127.0.0.1" }), onRetire: invalidate }),
 *     setConnectOptions: () => Effect.void
 *   }, { maxSize: 4 })
 *   return yield* client`SELECT 1 AS one`
 * }).pipe(Effect.scoped)
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeWith = Effect.fnUntraced(function*(
  driver: Driver,
  config: PoolConfig
): Effect.fn.Return<
  { readonly pool: PgPool; readonly client: PgClient.PgClient },
  PoolConfigError | PoolTimeout,
  Scope.Scope | Reactivity.Reactivity
> {
  const configure = config.configure
  let engine: Pool.Pool<PgConnector.PgSession> | undefined
  const connector = driver.connector((session) => {
    if (engine !== undefined) Effect.runSync(engine.invalidate(session))
  })
  const check = config.check
  const run = check === false || check?.run === undefined ? undefined : check.run
  engine = yield* Pool.make(connector, {
    ...config,
    multiplex: config.multiplex === true ? config.multiplexConcurrency ?? 32 : undefined,
    // What configure leaves is the session's baseline, not dirt: a clean first lease must not trigger a reset.
    configure: configure === undefined ? undefined : (session) =>
      Effect.tap(configure(new Lease(session)), () => Effect.sync(() => (session.dirty = false))),
    check: check === false ? false : { idle: check?.idle, run: run === undefined ? undefined : (session) => run(new Lease(session)) }
  }).pipe(
    // The engine's `multiplex` is this service's `multiplexConcurrency`: name the field the user wrote.
    Effect.mapError((error) =>
      error._tag === "PoolConfigError" && error.field === "multiplex"
        ? new PoolConfigError({ field: "multiplexConcurrency", reason: error.reason })
        : error
    )
  )
  const pool = engine
  const client = yield* PgSqlClient.make(pool, config)

  /** The lease of the enclosing `withTransaction` (ours or `sql.withTransaction`), if any. */
  const currentTransaction = Effect.map(
    Effect.serviceOption(client.transactionService),
    (tx) => Option.isSome(tx) && tx.value[0] instanceof Lease ? tx.value[0] : undefined
  )

  // Inside a transaction a helper runs on the transaction's connection: borrowing another one would escape the
  // transaction (and wait forever on a pool of one).
  const inTransactionOr = (borrow: typeof pool.withShared) =>
  <A, E>(f: (lease: Lease) => Effect.Effect<A, E>): Effect.Effect<A, E | PoolError> =>
    Effect.flatMap(
      currentTransaction,
      (lease) => lease !== undefined ? f(lease) : borrow((session) => f(new Lease(session)))
    )
  // One statement: may share a connection in pipelined mode.
  const withLease = inTransactionOr(pool.withShared)
  // Several statements that must see one session (a batch's BEGIN ... COMMIT): never shared.
  const withOwnLease = inTransactionOr(pool.withConnection)

  /**
   * Runs `f` for every parameter set in one transaction on one connection; inside a transaction, under a savepoint,
   * so a failed batch leaves none of its rows and the enclosing transaction usable.
   */
  const batch = <A>(
    sql: string,
    paramsList: Iterable<ReadonlyArray<unknown>>,
    f: (result: PgConnection.Result) => A
  ): Effect.Effect<Array<A>, SqlError | PoolError> =>
    Effect.flatMap(currentTransaction, (tx) => {
      const [begin, commit, rollback] = tx === undefined
        ? ["BEGIN", "COMMIT", "ROLLBACK"]
        : ["SAVEPOINT effect_pg_pool_batch", "RELEASE SAVEPOINT effect_pg_pool_batch",
          "ROLLBACK TO SAVEPOINT effect_pg_pool_batch"]
      return withOwnLease((lease) =>
        Effect.gen(function*() {
          yield* lease.query(begin)
          const out: Array<A> = []
          for (const params of paramsList) out.push(f(yield* lease.query(sql, params)))
          yield* lease.query(commit)
          return out
        }).pipe(Effect.onError(() => Effect.ignore(lease.query(rollback))))
      )
    })

  const fetch = (sql: string, params?: ReadonlyArray<unknown>) =>
    withLease((lease) => Effect.map(lease.query(sql, params), (result) => result.rows))

  const service: PgPool = {
    name: pool.name,
    connection: (options) => PgSqlClient.exclusiveLease(pool, config, options),
    withConnection: (f, options) => pool.withConnection((session) => f(new Lease(session)), options),
    withTransaction: (effect) => unwrapPoolError(client.withTransaction(effect)),
    execute: (sql, params) => withLease((lease) => lease.query(sql, params)),
    executeMany: (sql, paramsList) =>
      Effect.map(batch(sql, paramsList, (result) => result.rowCount), (counts) => counts.reduce((a, b) => a + b, 0)),
    fetch,
    fetchOne: (sql, params) => Effect.map(fetch(sql, params), (rows) => Option.fromNullishOr(rows[0])),
    fetchVal: (sql, params) =>
      Effect.map(
        withLease((lease) => lease.queryValues(sql, params)),
        (rows) => rows.length === 0 || rows[0].length === 0 ? Option.none() : Option.some(rows[0][0])
      ),
    fetchMany: (sql, paramsList) => batch(sql, paramsList, (result) => result.rows),
    isClosing: pool.isClosing,
    stats: pool.stats,
    popStats: pool.popStats,
    resize: pool.resize,
    check: pool.check,
    wait: pool.wait,
    drain: pool.drain,
    close: pool.close,
    setConnectOptions: driver.setConnectOptions
  }
  return { pool: service, client }
})

/**
 * Creates the pool, its `PgClient` (also a `SqlClient`) and the service in the current scope.
 *
 * **Details**
 *
 * Validates the configuration first (a `PoolConfigError` names the field), starts filling to `minSize` in the
 * background and returns at once. Closing the scope closes the pool gracefully (see `Pool.Pool.close`).
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { PgPool } from "effect-pg-pool"
 *
 * const program = Effect.gen(function*() {
 *   const { pool, client } = yield* PgPool.make({ host: "127.0.0.1", database: "app" })
 *   return yield* client`SELECT 1 AS one`
 * }).pipe(Effect.scoped)
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function*(
  config: Config
): Effect.fn.Return<
  { readonly pool: PgPool; readonly client: PgClient.PgClient },
  PoolConfigError | PoolTimeout,
  Scope.Scope | Reactivity.Reactivity
> {
  let connectOptions = connectionOf(config)
  yield* validateConnection(connectOptions)
  if (config.multiplex === true && config.reset !== undefined && config.reset !== "auto" && config.reset !== "none") {
    // A shared connection cannot be reset after every statement: only a dirty one is, once its sharers are done.
    return yield* new PoolConfigError({ field: "reset", reason: "must be \"auto\" or \"none\" with multiplex" })
  }
  const configure = config.configure
  return yield* makeWith({
    connector: (invalidate) =>
      PgConnector.make({
        connectOptions: () => connectOptions,
        reset: config.reset,
        multiplex: config.multiplex,
        reconfigure: configure === undefined ? undefined : (session) => configure(new Lease(session)),
        onRetire: invalidate
      }),
    setConnectOptions: (options) => {
      const next = { ...connectOptions, ...connectionOf(options) }
      return Effect.as(validateConnection(next), undefined).pipe(
        Effect.tap(() => Effect.sync(() => (connectOptions = next)))
      )
    }
  }, { ...config, ...hostOf(connectOptions) })
})

const layerFrom = <E, R>(
  config: Effect.Effect<Config, E, R>
): Layer.Layer<
  PgPool | SqlClient.SqlClient | PgClient.PgClient,
  E | PoolConfigError | PoolTimeout,
  Exclude<R, Scope.Scope>
> =>
  Layer.effectContext(
    Effect.gen(function*() {
      const { client, pool } = yield* make(yield* config)
      return Context.make(PgPool, pool).pipe(
        Context.add(PgClient.PgClient, client),
        Context.add(SqlClient.SqlClient, client)
      )
    })
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * A layer providing `PgPool`, `SqlClient` and `PgClient` from a configuration.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql/SqlClient"
 * import { PgPool } from "effect-pg-pool"
 *
 * const PoolLive = PgPool.layer({ host: "127.0.0.1", database: "app", maxSize: 10 })
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient
 *   return yield* sql`SELECT 1`
 * }).pipe(Effect.provide(PoolLive))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  config: Config
): Layer.Layer<PgPool | SqlClient.SqlClient | PgClient.PgClient, PoolConfigError | PoolTimeout> =>
  layerFrom(Effect.succeed(config))

/**
 * A layer whose configuration comes from `Config`s (environment, files, or any `ConfigProvider`).
 *
 * **Example**
 *
 * ```ts
 * import { Config } from "effect"
 * import { PgPool } from "effect-pg-pool"
 *
 * const PoolLive = PgPool.layerConfig({
 *   url: Config.Redacted("DATABASE_URL"),
 *   maxSize: Config.Int("POOL_SIZE")
 * })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  config: Config_.Wrap<Config>
): Layer.Layer<PgPool | SqlClient.SqlClient | PgClient.PgClient, PoolConfigError | PoolTimeout | Config_.ConfigError> =>
  layerFrom(Config_.unwrap(config))

const optional = <A>(config: Config_.Config<A>) => Config_.option(config)

/**
 * The configuration `PgPoolLive` reads: `DATABASE_URL`, or `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
 * `PGDATABASE`, `PGAPPNAME`; and `PGPOOL_NAME`, `PGPOOL_MIN_SIZE`, `PGPOOL_MAX_SIZE`, `PGPOOL_TIMEOUT`,
 * `PGPOOL_MAX_WAITING`, `PGPOOL_MAX_LIFETIME`, `PGPOOL_MAX_IDLE`, `PGPOOL_MAX_USES`, `PGPOOL_NUM_WORKERS`,
 * `PGPOOL_RECONNECT_TIMEOUT`, `PGPOOL_CLOSE_TIMEOUT`, `PGPOOL_WAIT_ON_OPEN`, `PGPOOL_RESET` (auto | always | none).
 * Durations are written like `30 seconds` or `500 millis`. Unset variables take the defaults.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { PgPool } from "effect-pg-pool"
 *
 * const config = Effect.map(PgPool.configFromEnv, (c) => c.maxSize)
 * ```
 *
 * @category config
 * @since 0.1.0
 */
export const configFromEnv: Config_.Config<Config> = Config_.all({
  url: optional(Config_.Redacted("DATABASE_URL")),
  host: optional(Config_.String("PGHOST")),
  port: optional(Config_.Port("PGPORT")),
  username: optional(Config_.String("PGUSER")),
  password: optional(Config_.Redacted("PGPASSWORD")),
  database: optional(Config_.String("PGDATABASE")),
  applicationName: optional(Config_.String("PGAPPNAME")),
  name: optional(Config_.String("PGPOOL_NAME")),
  minSize: optional(Config_.Int("PGPOOL_MIN_SIZE")),
  maxSize: optional(Config_.Int("PGPOOL_MAX_SIZE")),
  timeout: optional(Config_.Duration("PGPOOL_TIMEOUT")),
  maxWaiting: optional(Config_.Int("PGPOOL_MAX_WAITING")),
  maxLifetime: optional(Config_.Duration("PGPOOL_MAX_LIFETIME")),
  maxIdle: optional(Config_.Duration("PGPOOL_MAX_IDLE")),
  maxUses: optional(Config_.Int("PGPOOL_MAX_USES")),
  numWorkers: optional(Config_.Int("PGPOOL_NUM_WORKERS")),
  reconnectTimeout: optional(Config_.Duration("PGPOOL_RECONNECT_TIMEOUT")),
  closeTimeout: optional(Config_.Duration("PGPOOL_CLOSE_TIMEOUT")),
  waitOnOpen: optional(Config_.Duration("PGPOOL_WAIT_ON_OPEN")),
  reset: optional(Config_.Literals(["auto", "always", "none"], "PGPOOL_RESET"))
}).pipe(
  Config_.map((options) => {
    const out: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(options)) {
      if (Option.isSome(value as Option.Option<unknown>)) out[key] = (value as Option.Some<unknown>).value
    }
    return out as Config
  })
)

/**
 * The pool configured from the environment (see `configFromEnv`), providing `PgPool`, `SqlClient` and `PgClient`.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { NodeRuntime } from "@effect/platform-node"
 * import { SqlClient } from "effect/sql/SqlClient"
 * import { PgPool } from "effect-pg-pool"
 *
 * const main = Effect.gen(function*() {
 *   const sql = yield* SqlClient
 *   return yield* sql`SELECT now()`
 * })
 * NodeRuntime.runMain(main.pipe(Effect.provide(PgPool.PgPoolLive)))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const PgPoolLive: Layer.Layer<
  PgPool | SqlClient.SqlClient | PgClient.PgClient,
  PoolConfigError | PoolTimeout | Config_.ConfigError
> = layerFrom(configFromEnv)

/**
 * A pool with psycopg's NullConnectionPool semantics: no idle connections are kept, a checkout with nobody to hand
 * a connection back opens a new one, and `maxSize` (required) still bounds concurrency and queues the rest.
 *
 * **Example**
 *
 * ```ts
 * import { PgPool } from "effect-pg-pool"
 *
 * // For serverless or tests: every statement gets a fresh session, at most 5 at once.
 * const PoolLive = PgPool.layerNull({ host: "127.0.0.1", maxSize: 5 })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerNull = (
  config: Omit<Config, "nullPool" | "minSize">
): Layer.Layer<PgPool | SqlClient.SqlClient | PgClient.PgClient, PoolConfigError | PoolTimeout> =>
  layer({ ...config, minSize: 0, nullPool: true })

/**
 * Turns a failure of `sql` statements caused by the pool back into the typed pool error.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { PgPool } from "effect-pg-pool"
 *
 * declare const query: Effect.Effect<number, import("effect/sql/SqlError").SqlError>
 * const typed = PgPool.unwrapPoolError(query) // Effect<number, SqlError | PoolError>
 * ```
 *
 * @category errors
 * @since 0.1.0
 */
export const unwrapPoolError = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | PoolError, R> =>
  Effect.mapError(effect, (error) => {
    const cause = isSqlError(error) ? error.reason.cause : undefined
    return isPoolError(cause) ? cause : error
  })
