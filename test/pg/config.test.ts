import { assert, describe, it } from "@effect/vitest"
import { type Duration, Effect, Layer, Redacted } from "effect"
import * as PgPool from "../../src/PgPool.ts"
import type { PoolConfigError } from "../../src/PoolError.ts"
import { databaseUrl } from "../support/Db.ts"
import { makePool } from "./helpers.ts"

/** Builds `PgPool.layer(config)` and returns its error; counts connect attempts through the password Effect. */
const buildError = (config: Partial<PgPool.Config>) =>
  Effect.gen(function*() {
    let connects = 0
    const password = Effect.sync(() => {
      connects++
      return Redacted.make("s3cret-password")
    })
    const layer = PgPool.layer({ url: Redacted.make(databaseUrl()), password, ...config })
    const error = yield* Effect.flip(Layer.build(layer))
    assert.strictEqual(connects, 0, "a bad config never connects")
    return error as PoolConfigError
  })

const cases: ReadonlyArray<readonly [string, Partial<PgPool.Config>, string]> = [
  ["port 0", { port: 0 }, "port"],
  ["port 70000", { port: 70000 }, "port"],
  ["minSize -1", { minSize: -1 }, "minSize"],
  ["maxSize < minSize", { minSize: 5, maxSize: 2 }, "maxSize"],
  ["maxSize 0", { minSize: 0, maxSize: 0 }, "maxSize"],
  ["a malformed url", { url: Redacted.make("not a url at all") }, "url"],
  ["a url with the http scheme", { url: Redacted.make("http://postgres:s3cret-password@127.0.0.1:5432/db") }, "url"],
  ["a url with port 70000", { url: Redacted.make("postgres://postgres:s3cret-password@127.0.0.1:70000/db") }, "url"],
  ["timeout \"abc\"", { timeout: "abc" as Duration.Input }, "timeout"],
  ["connectTimeout \"abc\"", { connectTimeout: "abc" as Duration.Input }, "connectTimeout"]
]

describe("bad configuration", () => {
  for (const [name, config, field] of cases) {
    it.live(`bad config: ${name} fails the layer with a PoolConfigError naming ${field}`, () =>
      Effect.gen(function*() {
        const error = yield* buildError(config)
        assert.strictEqual(error._tag, "PoolConfigError")
        assert.strictEqual(error.field, field)
        assert.notInclude(error.message, "s3cret-password", "errors never echo credentials")
      }))
  }

  it.live("bad config: setConnectOptions and resize reject bad values and leave the pool working", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ minSize: 1, maxSize: 2 })
      const portError = yield* Effect.flip(pool.setConnectOptions({ port: 0 }))
      assert.strictEqual(portError._tag, "PoolConfigError")
      assert.strictEqual(portError.field, "port")
      const urlError = yield* Effect.flip(pool.setConnectOptions({ url: Redacted.make("http://x") }))
      assert.strictEqual(urlError.field, "url")
      const sizeError = yield* Effect.flip(pool.resize(5, 2))
      assert.strictEqual(sizeError.field, "maxSize")
      // Nothing was applied: a drained pool reconnects with the old settings.
      yield* pool.drain
      assert.deepStrictEqual(yield* pool.fetch("SELECT 1 AS one"), [{ one: 1 }])
      const stats = yield* pool.stats
      assert.strictEqual(stats.poolMax, 2)
      assert.strictEqual(stats.connectionsErrors, 0)
    }))
})
