/**
 * An HTTP API on `@effect/platform-node` backed by the pool: the FastAPI / Flask integration, the Effect way.
 *
 *   npm run example:http                 # embedded PostgreSQL, port 3000
 *   PORT=0 DATABASE_URL=postgres://... npm run example:http
 *
 *   curl localhost:3000/users
 *   curl localhost:3000/users/1
 *   curl -X POST localhost:3000/users -H 'content-type: application/json' -d '{"name":"Ada","email":"ada@example.com"}'
 *   curl localhost:3000/pool/stats
 *
 * The pool is provided once, as a layer below the HTTP server: every request's `sql` statements borrow from it, and
 * on SIGINT / SIGTERM `NodeRuntime.runMain` interrupts the program, which stops accepting requests, lets the ones in
 * flight finish, closes the pool and exits 0.
 *
 * Routes:
 * - `GET /users`: all users.
 * - `GET /users/:id`: one user, 404 when missing.
 * - `POST /users` with `{ "name", "email" }`: inserts the user and an audit row in one transaction, 201 with the row;
 *   400 on a bad body, 409 when the email is taken (the transaction rolls back).
 * - `GET /pool/stats`: the pool's `PoolStats`.
 *
 * A request that cannot get a connection within the pool's `timeout` is answered 503 with `Retry-After`.
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import { PgPool } from "../src/index.ts"
import * as Database from "./support/database.ts"

interface User {
  readonly id: number
  readonly name: string
  readonly email: string
  readonly created_at: Date
}

const NewUser = Schema.Struct({
  name: Schema.NonEmptyString,
  email: Schema.String.check(Schema.isPattern(/^[^\s@]+@[^\s@]+$/))
})

class EmailTaken extends Data.TaggedError("EmailTaken")<{ readonly email: string }> {}

const port = (() => {
  const raw = process.env.PORT
  if (raw === undefined || raw === "") return 3000
  const port = Number(raw)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be 0..65535, got ${raw}`)
  return port
})()

/** Creates the tables once at startup (idempotent, so the example can run again on the same database). */
const SchemaLive = Layer.effectDiscard(Effect.gen(function*() {
  const sql = yield* SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS users (
    id         serial PRIMARY KEY,
    name       text NOT NULL,
    email      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
  )`
  yield* sql`CREATE TABLE IF NOT EXISTS user_events (
    id      bigserial PRIMARY KEY,
    user_id integer NOT NULL REFERENCES users (id),
    event   text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
  )`
  yield* sql`INSERT INTO users ${sql.insert([
    { name: "Ada Lovelace", email: "ada@example.com" },
    { name: "Alan Turing", email: "alan@example.com" }
  ])} ON CONFLICT (email) DO NOTHING`
}))

const json = (body: unknown, status = 200) => HttpServerResponse.jsonUnsafe(body, { status })

/**
 * Answers the failures every route shares: no connection within the pool's timeout (503), any other database error
 * (500). `unwrapPoolError` turns a pool error that reached us through `SqlClient` back into the typed one.
 */
const handleDatabaseErrors = <R>(
  effect: Effect.Effect<HttpServerResponse.HttpServerResponse, SqlError, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  PgPool.unwrapPoolError(effect).pipe(
    Effect.catchTags({
      PoolTimeout: () =>
        Effect.succeed(
          HttpServerResponse.jsonUnsafe({ error: "database busy, try again" }, {
            status: 503,
            headers: { "retry-after": "1" }
          })
        ),
      TooManyRequests: () => Effect.succeed(json({ error: "database busy, try again" }, 503)),
      PoolClosed: () => Effect.succeed(json({ error: "shutting down" }, 503)),
      SqlError: (error) =>
        Effect.as(Effect.logError("database error", error), json({ error: "internal error" }, 500))
    })
  )

const Routes = HttpRouter.addAll(Effect.gen(function*() {
  const sql = yield* SqlClient
  const pool = yield* PgPool.PgPool

  const listUsers = sql<User>`SELECT id, name, email, created_at FROM users ORDER BY id`.pipe(
    Effect.map((users) => json(users)),
    handleDatabaseErrors
  )

  const getUser = Effect.gen(function*() {
    const { id } = yield* HttpRouter.params
    if (id === undefined || !/^\d{1,9}$/.test(id)) return json({ error: "not found" }, 404)
    const rows = yield* sql<User>`SELECT id, name, email, created_at FROM users WHERE id = ${Number(id)}`
    return rows.length === 0 ? json({ error: "not found" }, 404) : json(rows[0])
  }).pipe(handleDatabaseErrors)

  const createUser = Effect.gen(function*() {
    const input = yield* HttpServerRequest.schemaBodyJson(NewUser)
    // One transaction, one connection: both inserts commit together, or neither does.
    const user = yield* sql.withTransaction(Effect.gen(function*() {
      const [user] = yield* sql<User>`INSERT INTO users ${sql.insert(input)}
        ON CONFLICT (email) DO NOTHING
        RETURNING id, name, email, created_at`
      if (user === undefined) return yield* new EmailTaken({ email: input.email })
      yield* sql`INSERT INTO user_events ${sql.insert({ user_id: user.id, event: "created" })}`
      return user
    }))
    return json(user, 201)
  }).pipe(
    Effect.catchTags({
      EmailTaken: (error) => Effect.succeed(json({ error: `email already registered: ${error.email}` }, 409)),
      SchemaError: (error) => Effect.succeed(json({ error: "invalid body", details: error.message }, 400)),
      HttpServerError: () => Effect.succeed(json({ error: "invalid JSON body" }, 400))
    }),
    handleDatabaseErrors
  )

  const poolStats = Effect.map(pool.stats, (stats) => json({ name: pool.name, ...stats }))

  return [
    HttpRouter.route("GET", "/users", listUsers),
    HttpRouter.route("GET", "/users/:id", getUser),
    HttpRouter.route("POST", "/users", createUser),
    HttpRouter.route("GET", "/pool/stats", poolStats)
  ]
}))

/** Prints where the server listens (the actual port when PORT=0). */
const LogAddress = Layer.effectDiscard(
  HttpServer.addressFormattedWith((address) => Console.log(`http-server: listening on ${address}`))
)

/** Runs first when the program is interrupted, before the HTTP server and the pool are closed. */
const LogShutdown = Layer.effectDiscard(Effect.gen(function*() {
  const pool = yield* PgPool.PgPool
  yield* Effect.addFinalizer(() =>
    Effect.flatMap(
      pool.stats,
      (stats) =>
        Console.log(
          `http-server: shutting down (served ${stats.requestsNum} pool requests; ` +
            `closing ${stats.poolSize} connections)`
        )
    )
  )
}))

// The server listens only once minSize connections are open (`waitOnOpen`): the first requests find a warm pool, and a
// database that cannot be reached fails the start with a PoolTimeout that says why.
const PoolLive = Database.layerPool({
  name: "http",
  minSize: 2,
  maxSize: 10,
  timeout: "5 seconds",
  waitOnOpen: "10 seconds"
})

const ServerLive = NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })

const App = HttpRouter.serve(Routes, { disableListenLog: true }).pipe(
  Layer.provideMerge(Layer.mergeAll(LogAddress, LogShutdown)),
  Layer.provide(ServerLive),
  Layer.provide(SchemaLive),
  Layer.provideMerge(PoolLive)
)

const main = Layer.launch(App).pipe(Effect.onInterrupt(() => Console.log("http-server: stopped")))

// A signal ends the program by interruption; that is the normal way for a server to stop, so it exits 0.
NodeRuntime.runMain(main, {
  teardown: (exit, onExit) =>
    exit._tag === "Failure" && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
})
