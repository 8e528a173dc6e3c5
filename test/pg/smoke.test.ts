import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import * as PgPool from "../../src/PgPool.ts"
import { databaseUrl } from "../support/Db.ts"

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
})
