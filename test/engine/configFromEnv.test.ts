import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Redacted } from "effect"
import * as PgPool from "../../src/PgPool.ts"

const read = (env: Record<string, string>) => Effect.result(PgPool.configFromEnv.parse(ConfigProvider.fromEnv({ env })))

describe("configFromEnv", () => {
  it.effect("reads every variable into the option it names; unset ones stay unset", () =>
    Effect.gen(function*() {
      const result = yield* read({
        DATABASE_URL: "postgres://app:secret@db.internal:5433/orders",
        PGHOST: "db.internal",
        PGPORT: "5433",
        PGUSER: "app",
        PGPASSWORD: "secret",
        PGDATABASE: "orders",
        PGAPPNAME: "orders-api",
        PGPOOL_NAME: "orders",
        PGPOOL_MIN_SIZE: "2",
        PGPOOL_MAX_SIZE: "8",
        PGPOOL_TIMEOUT: "5 seconds",
        PGPOOL_MAX_WAITING: "100",
        PGPOOL_MAX_LIFETIME: "30 minutes",
        PGPOOL_MAX_IDLE: "2 minutes",
        PGPOOL_MAX_USES: "5000",
        PGPOOL_NUM_WORKERS: "4",
        PGPOOL_RECONNECT_TIMEOUT: "1 minute",
        PGPOOL_CLOSE_TIMEOUT: "3 seconds",
        PGPOOL_WAIT_ON_OPEN: "10 seconds",
        PGPOOL_RESET: "none"
      })
      assert.strictEqual(result._tag, "Success")
      const config = result._tag === "Success" ? result.success : undefined
      const { url, password, timeout, maxLifetime, maxIdle, reconnectTimeout, closeTimeout, waitOnOpen, ...plain } =
        config!
      assert.deepStrictEqual(plain, {
        host: "db.internal",
        port: 5433,
        username: "app",
        database: "orders",
        applicationName: "orders-api",
        name: "orders",
        minSize: 2,
        maxSize: 8,
        maxWaiting: 100,
        maxUses: 5000,
        numWorkers: 4,
        reset: "none"
      })
      assert.strictEqual(Redacted.value(url!), "postgres://app:secret@db.internal:5433/orders")
      assert.strictEqual(Redacted.value(password as Redacted.Redacted<string>), "secret")
      const millis = [timeout, maxLifetime, maxIdle, reconnectTimeout, closeTimeout, waitOnOpen].map((d) =>
        Duration.toMillis(d as Duration.Duration)
      )
      assert.deepStrictEqual(millis, [5_000, 1_800_000, 120_000, 60_000, 3_000, 10_000])

      const empty = yield* read({})
      assert.deepStrictEqual(empty._tag === "Success" ? empty.success : undefined, {})
    }))

  it.effect("a malformed variable fails with a ConfigError naming it", () =>
    Effect.gen(function*() {
      for (const [name, value] of [["PGPOOL_MIN_SIZE", "two"], ["PGPOOL_WAIT_ON_OPEN", "soon"], ["PGPOOL_RESET", "sometimes"]]) {
        const result = yield* read({ [name]: value })
        assert.strictEqual(result._tag, "Failure")
        assert.include(result._tag === "Failure" ? String(result.failure) : "", name)
      }
    }))
})
