import { assert, describe, it } from "@effect/vitest"
import * as PgConnection from "@effect/sql-pg/PgConnection"
import { Effect, Redacted } from "effect"
import { adminConnection, backends, databaseUrl, freshDatabaseScoped, terminateBackend } from "../support/Db.ts"

// Real sockets: `it.live`, never `it.effect` (TestClock would freeze connect timeouts).
describe("test support: PostgreSQL server", () => {
  it.live("PgConnection.make connects to the injected URL", () =>
    Effect.gen(function*() {
      const conn = yield* PgConnection.make({ url: Redacted.make(databaseUrl()) })
      const result = yield* conn.query("select 1 + 1 as x")
      assert.strictEqual(result.rows[0]?.x, 2)
      assert.isAbove(conn.processId, 0)
    }))

  it.live("the admin helper reads pg_stat_activity", () =>
    Effect.gen(function*() {
      const admin = yield* adminConnection()
      const result = yield* admin.query("select count(*)::int as n from pg_stat_activity")
      const n = result.rows[0]?.n
      assert.isNumber(n)
      assert.isAtLeast(n as number, 1)
    }))

  it.live("max_connections is 300", () =>
    Effect.gen(function*() {
      const admin = yield* adminConnection()
      const result = yield* admin.query("show max_connections")
      assert.strictEqual(result.rows[0]?.max_connections, "300")
    }), { skip: process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== "" })

  it.live("freshDatabase isolates, backends() sees and terminateBackend kills a connection", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabaseScoped("support test")
      const database = decodeURIComponent(new URL(url).pathname.slice(1))
      assert.match(database, /^support_test_/)
      const conn = yield* PgConnection.make({ url: Redacted.make(url), applicationName: "support-victim" })
      const current = yield* conn.query("select current_database() as db")
      assert.strictEqual(current.rows[0]?.db, database)

      const seen = yield* backends({ database })
      assert.deepStrictEqual(seen.map((b) => b.pid), [conn.processId])
      assert.strictEqual(seen[0]?.application_name, "support-victim")

      assert.isTrue(yield* terminateBackend(conn.processId))
      const error = yield* Effect.flip(conn.query("select 1"))
      assert.strictEqual(error._tag, "SqlError")
      // 57P01 admin_shutdown arrives as an ErrorResponse, or the socket just closes.
      assert.include(["ConnectionError", "UnknownError"], error.reason._tag)
    }))
})
