import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import * as PgPool from "../../src/PgPool.ts"
import { databaseUrl } from "../support/Db.ts"
import { makePool } from "./helpers.ts"

describe("PgPool smoke", () => {
  it.live("sql and helpers", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      const pool = yield* PgPool.PgPool
      const rows = yield* sql`SELECT ${1}::int + 1 AS x`
      assert.deepStrictEqual(rows, [{ x: 2 }])
      const v = yield* pool.fetchVal("SELECT $1::int * 2", [21])
      assert.deepStrictEqual(v, Option.some(42))
      const r = yield* sql.withTransaction(sql`SELECT 1 AS one`)
      assert.deepStrictEqual(r, [{ one: 1 }])
      const s = yield* pool.stats
      console.log(s)
    }).pipe(Effect.provide(PgPool.layer({ url: Redacted.make(databaseUrl()), minSize: 2, name: "smoke" }))))

  it.live("waitOnOpen: the layer is built once minSize connections are open on the server", () =>
    Effect.scoped(Effect.gen(function*() {
      const p = yield* makePool({ minSize: 3, maxSize: 5, waitOnOpen: "10 seconds" })
      const stats = yield* p.pool.stats
      assert.deepStrictEqual([stats.poolSize, stats.poolAvailable, stats.connectionsPending], [3, 3, 0])
      assert.strictEqual((yield* p.backends).length, 3)
    })))
})
