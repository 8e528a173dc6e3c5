/**
 * Vitest global setup: one PostgreSQL server for the whole run.
 *
 * If `DATABASE_URL` is set it is used as is; otherwise an embedded server is
 * started (see `EmbeddedPg.ts`) and stopped in teardown. Tests read the URL
 * with `inject("databaseUrl")`, or `databaseUrl()` from `./Db.ts`.
 */
import type { TestProject } from "vitest/node"
import * as EmbeddedPg from "./EmbeddedPg.ts"

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL of the test server's `postgres` database. */
    databaseUrl: string
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = process.env.DATABASE_URL
  if (external !== undefined && external !== "") {
    project.provide("databaseUrl", external)
    return undefined
  }
  const startedAt = performance.now()
  const instance = await EmbeddedPg.start()
  if (process.env.PGPOOL_TEST_DEBUG) {
    process.stderr.write(
      `[globalSetup] embedded PostgreSQL on ${instance.host}:${instance.port} ready in ${
        Math.round(performance.now() - startedAt)
      } ms\n`
    )
  }
  project.provide("databaseUrl", instance.url)
  return () => instance.stop()
}
