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
      const problem = urlProblem(url)
      if (problem !== undefined) return yield* fail("url", problem)
    }
    if (config.host !== undefined && (typeof config.host !== "string" || config.host.length === 0)) {
      return yield* fail("host", "must be a non-empty string")
    }
    if (config.port !== undefined && !validPort(config.port)) {
      return yield* fail("port", `must be an integer from 1 to 65535, got ${String(config.port)}`)
    }
    for (const field of ["database", "username", "applicationName", "path", "startupOptions"] as const) {
      const value = config[field]
      if (value !== undefined && typeof value !== "string") return yield* fail(field, "must be a string")
      if (value?.includes("\0")) return yield* fail(field, "must not contain NUL")
    }
    for (const [name, value] of Object.entries(config.startupParameters ?? {})) {
      const key = name.toLowerCase()
      if (key === "user" || key === "database" || key === "replication" || key === "options") {
        return yield* fail("startupParameters", `must not set the reserved parameter ${JSON.stringify(name)}`)
      }
      if (key === "client_encoding" && !["UTF8", "UTF-8"].includes(String(value).toUpperCase())) {
        return yield* fail("startupParameters", "client_encoding must be UTF8")
      }
      if (name === "" || name.includes("\0") || typeof value !== "string" || value.includes("\0")) {
        return yield* fail("startupParameters", "names must be non-empty, names and values strings without NUL")
      }
    }
    if (config.password !== undefined && !Redacted.isRedacted(config.password) && !Effect.isEffect(config.password)) {
      return yield* fail("password", "must be a Redacted value or an Effect of one")
    }
    yield* millis("connectTimeout", config.connectTimeout, 0, { positive: true })
    // The driver truncates keepAlive to whole seconds and refuses anything outside 1 s .. 2^31-1 s at every connect.
    const keepAlive = yield* millis("keepAlive", config.keepAlive, 0)
    if (config.keepAlive !== undefined && !(keepAlive >= 1000 && keepAlive / 1000 <= 0x7fffffff)) {
      return yield* fail("keepAlive", "must be between 1 second and 2147483647 seconds")
    }
    if (
      config.preparedStatementCacheSize !== undefined &&
      !(Number.isInteger(config.preparedStatementCacheSize) && config.preparedStatementCacheSize >= 0)
    ) {
      return yield* fail("preparedStatementCacheSize", "must be an integer >= 0")
    }
  })

const validPort = (port: number): boolean => Number.isInteger(port) && port >= 1 && port <= 65535

const decodes = (value: string): boolean => {
  try {
    decodeURIComponent(value)
    return true
  } catch {
    return false
  }
}

const sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

/**
 * What `@effect/sql-pg` would refuse in a URL at every connect (its `parseUrl`), named without echoing the URL.
 */
const urlProblem = (url: URL): string | undefined => {
  const host = url.hostname.startsWith("[") ? "" : url.hostname
  const parts = [["host", host], ["username", url.username], ["password", url.password], [
    "database",
    url.pathname.replace(/^\//, "")
  ]] as const
  for (const [part, value] of parts) {
    if (!decodes(value)) return `has invalid percent-encoding in its ${part}`
  }
  for (const [key, value] of url.searchParams) {
    if (key === "port" && !validPort(Number(value))) return "has an invalid port parameter"
    if (key === "connect_timeout" && !(Number.isInteger(Number(value)) && Number(value) >= 0)) {
      return "has an invalid connect_timeout parameter (whole seconds >= 0)"
    }
    if (key === "sslmode" && !sslModes.includes(value)) return `has an unsupported sslmode (${sslModes.join(", ")})`
  }
  return undefined
}
