/**
 * Checks the connection settings before any connect, so a typo fails at once with the field's name rather than as
 * a stream of failed connects. Error texts never echo a URL or a password.
 *
 * @internal
 */
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { PoolConfigError } from "../PoolError.ts"
import { millis } from "./config.ts"

const fail = (field: string, reason: string) => Effect.fail(new PoolConfigError({ field, reason }))

export const validateConnection = (config: PgConnection.Config): Effect.Effect<void, PoolConfigError> =>
  Effect.gen(function*() {
    if (config.url !== undefined) {
      if (!Redacted.isRedacted(config.url)) return yield* fail("url", "must be a Redacted value (Redacted.make(url))")
      let url: URL
      try {
        url = new URL(Redacted.value(config.url) as string)
      } catch {
        return yield* fail("url", "is not a valid URL (expected postgres://user:password@host:port/database)")
      }
      if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
        return yield* fail("url", `must use the postgres:// or postgresql:// scheme, got ${url.protocol}//`)
      }
      if (url.port !== "" && !validPort(Number(url.port))) return yield* fail("url", "has an invalid port")
    }
    if (config.host !== undefined && (typeof config.host !== "string" || config.host.length === 0)) {
      return yield* fail("host", "must be a non-empty string")
    }
    if (config.port !== undefined && !validPort(config.port)) {
      return yield* fail("port", `must be an integer from 1 to 65535, got ${String(config.port)}`)
    }
    for (const field of ["database", "username", "applicationName", "path"] as const) {
      const value = config[field]
      if (value !== undefined && typeof value !== "string") return yield* fail(field, "must be a string")
    }
    if (config.password !== undefined && !Redacted.isRedacted(config.password) && !Effect.isEffect(config.password)) {
      return yield* fail("password", "must be a Redacted value or an Effect of one")
    }
    yield* millis("connectTimeout", config.connectTimeout, 0, { positive: true })
    yield* millis("keepAlive", config.keepAlive, 0)
    if (
      config.preparedStatementCacheSize !== undefined &&
      !(Number.isInteger(config.preparedStatementCacheSize) && config.preparedStatementCacheSize >= 0)
    ) {
      return yield* fail("preparedStatementCacheSize", "must be an integer >= 0")
    }
  })

const validPort = (port: number): boolean => Number.isInteger(port) && port >= 1 && port <= 65535
