/**
 * Scenario 9: bad input. Invalid values for every configuration field, malformed URLs, a wrong password, an unknown
 * user, an unknown database, a port nothing listens on, TLS required by the client but refused by the server.
 *
 * Asserted:
 * - a bad setting fails the layer at once with a `PoolConfigError` naming the field, without a single connect;
 * - a bad server-side input (the server refuses) gives callers and `wait` a `PoolTimeout` at their deadline whose
 *   message names the problem (the server's own words and SQLSTATE, or the socket error);
 * - the password appears in no error message, no error's string or JSON form, no log line (a test Logger captures
 *   every line, with its cause);
 * - no unhandled rejection or uncaught exception reaches the process;
 * - no hot loop: failed connects follow the default backoff (at most 4 attempts in about 2 s).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, type Duration, Effect, Layer, Logger, Redacted } from "effect"
import * as PgPool from "../../src/PgPool.ts"
import type { PoolConfigError } from "../../src/PoolError.ts"
import { noUnhandledErrors, timedMillis } from "../pg/helpers.ts"
import { freePort } from "../support/EmbeddedPg.ts"
import { poolErrorIn, poolOn, report, server } from "./rig.ts"

const SECRET = "Sup3r-S3cret-pw-9d41"
const WRONG = "Wr0ng-S3cret-pw-77ab"
const secrets = [SECRET, WRONG, encodeURIComponent(SECRET), encodeURIComponent(WRONG)]

const bigintSafe = (_key: string, value: unknown) => typeof value === "bigint" ? value.toString() : value

/** Every textual form of an error a user may print or ship to a log service. */
const renderings = (error: unknown): Array<string> => {
  const out = [String(error), Cause.pretty(Cause.fail(error))]
  if (typeof error === "object" && error !== null && "message" in error) out.push(String(error.message))
  try {
    out.push(JSON.stringify(error, bigintSafe))
  } catch {
    // not serializable: the other forms cover it
  }
  return out
}

const assertNoSecret = (what: string, texts: ReadonlyArray<string>) => {
  for (const text of texts) for (const secret of secrets) assert.notInclude(text, secret, `${what} leaks the password`)
}

/** Captures every log line: its message parts (as strings and JSON) and its cause. */
const captureAllLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make((options) => {
    const parts = Array.isArray(options.message) ? options.message : [options.message]
    lines.push(
      `${options.logLevel} ${parts.map(String).join(" ")} ${JSON.stringify(parts, bigintSafe)} ${
        Cause.pretty(options.cause)
      }`
    )
  })
  return { lines, layer: Logger.layer([logger]) }
}


describe("fault 9: bad input", () => {
  it.live("every invalid setting and malformed URL fails the layer with a PoolConfigError naming it", () =>
    noUnhandledErrors(Effect.gen(function*() {
      const srv = yield* server({ password: SECRET })
      const base = srv.instance.urlFor("postgres")
      const url = (text: string) => Redacted.make(text)
      const hostPart = `127.0.0.1:${srv.instance.port}`
      const cases: ReadonlyArray<readonly [string, Partial<PgPool.Config>, string]> = [
        ["name \"\"", { name: "" }, "name"],
        ["minSize -1", { minSize: -1 }, "minSize"],
        ["minSize 1.5", { minSize: 1.5 }, "minSize"],
        ["minSize NaN", { minSize: Number.NaN }, "minSize"],
        ["maxSize < minSize", { minSize: 5, maxSize: 2 }, "maxSize"],
        ["maxSize 0", { minSize: 0, maxSize: 0 }, "maxSize"],
        ["maxSize Infinity", { minSize: 0, maxSize: Infinity }, "maxSize"],
        ["timeout \"abc\"", { timeout: "abc" as Duration.Input }, "timeout"],
        ["timeout -1", { timeout: -1 }, "timeout"],
        ["maxWaiting -1", { maxWaiting: -1 }, "maxWaiting"],
        ["maxWaiting 2.5", { maxWaiting: 2.5 }, "maxWaiting"],
        ["maxLifetime 0", { maxLifetime: 0 }, "maxLifetime"],
        ["maxIdle 0", { maxIdle: 0 }, "maxIdle"],
        ["maxUses 0", { maxUses: 0 }, "maxUses"],
        ["numWorkers 0", { numWorkers: 0 }, "numWorkers"],
        ["numWorkers Infinity", { numWorkers: Infinity }, "numWorkers"],
        ["reconnectTimeout \"soon\"", { reconnectTimeout: "soon" as Duration.Input }, "reconnectTimeout"],
        ["check.idle \"x\"", { check: { idle: "x" as Duration.Input } }, "check.idle"],
        ["leakThreshold 0", { leakThreshold: 0 }, "leakThreshold"],
        ["closeTimeout -5", { closeTimeout: -5 }, "closeTimeout"],
        ["metricsInterval 0", { metricsInterval: 0 }, "metricsInterval"],
        ["multiplexConcurrency 0", { multiplex: true, multiplexConcurrency: 0 }, "multiplexConcurrency"],
        ["multiplex with reset \"always\"", { multiplex: true, reset: "always" }, "reset"],
        ["nullPool with minSize 2", { nullPool: true, minSize: 2 }, "minSize"],
        ["host \"\"", { host: "" }, "host"],
        ["port 0", { port: 0 }, "port"],
        ["port 70000", { port: 70000 }, "port"],
        ["port 1.5", { port: 1.5 }, "port"],
        ["database 42", { database: 42 as unknown as string }, "database"],
        ["username 42", { username: 42 as unknown as string }, "username"],
        ["applicationName 42", { applicationName: 42 as unknown as string }, "applicationName"],
        ["database with NUL", { database: "a\0b" }, "database"],
        ["path 42", { path: 42 as unknown as string }, "path"],
        ["password as a plain string", { password: SECRET as unknown as Redacted.Redacted }, "password"],
        ["connectTimeout 0", { connectTimeout: 0 }, "connectTimeout"],
        ["connectTimeout \"abc\"", { connectTimeout: "abc" as Duration.Input }, "connectTimeout"],
        ["keepAlive \"abc\"", { keepAlive: "abc" as Duration.Input }, "keepAlive"],
        ["keepAlive 500 millis", { keepAlive: "500 millis" }, "keepAlive"],
        ["preparedStatementCacheSize -1", { preparedStatementCacheSize: -1 }, "preparedStatementCacheSize"],
        ["startupParameters user", { startupParameters: { user: "x" } }, "startupParameters"],
        [
          "startupParameters client_encoding LATIN1",
          { startupParameters: { client_encoding: "LATIN1" } },
          "startupParameters"
        ],
        ["url as a plain string", { url: base as unknown as Redacted.Redacted }, "url"],
        ["url not a URL", { url: url(`not a url ${SECRET}`) }, "url"],
        ["url with the mysql scheme", { url: url(`mysql://postgres:${SECRET}@${hostPart}/postgres`) }, "url"],
        ["url with port 99999", { url: url(`postgres://postgres:${SECRET}@127.0.0.1:99999/postgres`) }, "url"],
        ["url with a broken IPv6 host", { url: url(`postgres://postgres:${SECRET}@[::1/postgres`) }, "url"],
        ["url: bad percent-encoding in the user", { url: url(`postgres://po%zz:${SECRET}@${hostPart}/db`) }, "url"],
        ["url: bad percent-encoding in the password", { url: url(`postgres://pg:${SECRET}%zz@${hostPart}/db`) }, "url"],
        ["url: bad percent-encoding in the database", { url: url(`postgres://pg:${SECRET}@${hostPart}/%E0`) }, "url"],
        ["url with sslmode=bogus", { url: url(`${base}?sslmode=bogus`) }, "url"],
        ["url with connect_timeout=abc", { url: url(`${base}?connect_timeout=abc`) }, "url"],
        ["url with port=abc", { url: url(`${base}?port=abc`) }, "url"]
      ]
      const logs = captureAllLogs()
      let connects = 0
      const password = Effect.sync(() => {
        connects++
        return Redacted.make(SECRET)
      })
      const seen: Array<string> = []
      for (const [name, config, field] of cases) {
        const layer = PgPool.layer({ url: Redacted.make(base), password, minSize: 1, ...config })
        const [ms, error] = yield* timedMillis(Effect.flip(Effect.scoped(Layer.build(layer))))
        assert.strictEqual((error as PoolConfigError)._tag, "PoolConfigError", name)
        assert.strictEqual((error as PoolConfigError).field, field, name)
        assert.include(error.message, field, `${name}: the message names the field`)
        assert.isBelow(ms, 200, `${name}: fails at once`)
        assertNoSecret(name, renderings(error))
        seen.push(`${name} → ${error.message}`)
      }
      assert.strictEqual(connects, 0, "a bad setting never connects")
      assertNoSecret("logs", logs.lines)

      yield* report("09a-bad-config", "Bad input: configuration and URLs", {
        "invalid settings and malformed URLs tried": cases.length,
        "failed the layer with a PoolConfigError naming the field": cases.length,
        "connect attempts made": connects,
        "errors or log lines containing the password": 0,
        "examples": seen.filter((_, i) => i % 7 === 0).join(" | ")
      })
    }).pipe(Effect.provide(Logger.layer([])))), { timeout: 60_000 })

  it.live("wrong password, unknown user or database, wrong port, refused TLS: typed errors that name the problem", () =>
    noUnhandledErrors(Effect.gen(function*() {
      const srv = yield* server({ password: SECRET })
      const port = srv.instance.port
      const closedPort = yield* Effect.promise(() => freePort())
      // What the error message must say, and what the pool's error log line (message and error) must carry.
      const cases: ReadonlyArray<readonly [string, Partial<PgPool.Config>, RegExp, RegExp]> = [
        [
          "wrong password",
          { password: Redacted.make(WRONG) },
          /password authentication failed for user "postgres".*28P01/,
          /AuthenticationError.*28P01/
        ],
        [
          "unknown user",
          { username: "nobody_here" },
          /password authentication failed for user "nobody_here".*28P01/,
          /AuthenticationError.*28P01/
        ],
        ["unknown database", { database: "no_such_db" }, /database "no_such_db" does not exist.*3D000/, /3D000/],
        ["wrong port (nothing listening)", { port: closedPort }, /ECONNREFUSED/, /ECONNREFUSED/],
        ["TLS required, server without TLS", { ssl: true }, /refused TLS.*does not support TLS/, /refused TLS/]
      ]
      const figures: Record<string, string> = {}
      for (const [name, config, expected, logged] of cases) {
        const logs = captureAllLogs()
        const p = yield* poolOn(`postgres://postgres@127.0.0.1:${port}/postgres`, {
          password: Redacted.make(SECRET),
          minSize: 1,
          maxSize: 2,
          timeout: "1500 millis",
          reconnectTimeout: "500 millis",
          ...config
        }).pipe(Effect.provide(logs.layer))
        const [ms, error] = yield* timedMillis(Effect.flip(p.pool.fetch("SELECT 1")))
        const timeout = poolErrorIn(error)
        assert.strictEqual(timeout?._tag, "PoolTimeout", name)
        assert.isAtLeast(ms, 1450, name)
        assert.isAtMost(ms, 1500 + 400, `${name}: ends at the deadline`)
        assert.match(error.message, expected, `${name}: the error names the problem`)
        const waitError = yield* Effect.flip(p.pool.wait("500 millis"))
        assert.strictEqual(waitError._tag, "PoolTimeout")
        assert.match(waitError.message, expected)
        const stats = yield* p.pool.stats
        assert.strictEqual(stats.connectionsNum, 0, name)
        assert.isAtLeast(stats.connectionsErrors, 1, name)
        assert.isAtMost(stats.connectionsErrors, 4, `${name}: no hot loop (default backoff 1 s, 2 s, ...)`)
        // After reconnectTimeout the pool logged the failure once, as an error, naming it.
        const errorLines = logs.lines.filter((line) => line.startsWith("Error"))
        assert.strictEqual(errorLines.length, 1, `${name}: one error log line`)
        assert.match(errorLines[0], logged)
        assertNoSecret(name, [...renderings(error), ...renderings(waitError), ...logs.lines])
        figures[name] = `${timeout?._tag} after ${Math.round(ms)} ms, ${stats.connectionsErrors} connect attempts: ` +
          error.message.replace(/^.*last connect error: /, "")
      }

      yield* report("09b-bad-server-input", "Bad input: refused by the server", {
        ...figures,
        "errors or log lines containing the password": 0,
        "unhandled rejections": 0
      })
    })), { timeout: 90_000 })
})
