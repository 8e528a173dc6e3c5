/**
 * Scenario 8: session isolation (security) under concurrent load, with the default `reset: "auto"`.
 *
 * The pool logs in as an ordinary role (no superuser, no BYPASSRLS). A table has row-level security: a row is
 * visible when its tenant equals `current_setting('app.tenant', true)`, or equals `current_user`. Borrowers, many at
 * once on a pool of 4, either act as a tenant (`set_config('app.tenant', ..., false)`, or `SET ROLE` to a
 * low-privilege role) and leave that state behind, or leave other session state behind (search_path, a temp table,
 * an advisory lock, LISTEN, an SQL PREPARE, a WITH HOLD cursor), or observe.
 *
 * Asserted: a tenant sees only its own rows; an observer (who sets nothing) sees no row at all and finds the session
 * as fresh as a new one, on every backend, every time; no lease fails.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { PgPool } from "../../src/index.ts"
import { urlWithCredentials } from "../pg/helpers.ts"
import { admin, load, poolOn, report, server, tally } from "./rig.ts"

const LOGIN = "app_login"
const SECRET = "app-login-secret-51c2"
const SETTING_TENANTS = ["t1", "t2", "t3", "t4", "t5", "t6"]
const ROLE_TENANTS = ["tenant_a", "tenant_b"]

type Kind =
  | "tenant:set_config"
  | "tenant:set_role"
  | "search_path"
  | "temp table"
  | "advisory lock"
  | "listen"
  | "prepare"
  | "cursor with hold"
  | "observer"

const KINDS: ReadonlyArray<Kind> = [
  "tenant:set_config",
  "tenant:set_config",
  "tenant:set_role",
  "search_path",
  "temp table",
  "advisory lock",
  "listen",
  "prepare",
  "cursor with hold",
  "observer",
  "observer",
  "observer",
  "observer"
]

const PROBE = `
  SELECT current_user::text AS cu, session_user::text AS su,
         coalesce(current_setting('app.tenant', true), '') AS tenant,
         current_setting('search_path') AS path,
         to_regclass('pg_temp.leak_tmp') IS NOT NULL AS tmp_table,
         EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory,
         EXISTS (SELECT 1 FROM pg_listening_channels()) AS listening,
         EXISTS (SELECT 1 FROM pg_prepared_statements WHERE from_sql) AS prepared,
         EXISTS (SELECT 1 FROM pg_cursors WHERE is_holdable) AS holdable,
         (SELECT count(*) FROM docs)::int AS visible`

const fresh = { cu: LOGIN, su: LOGIN, tenant: "", path: "\"$user\", public", tmp_table: false, advisory: false,
  listening: false, prepared: false, holdable: false, visible: 0 }

describe("fault 8: session isolation under concurrent load", () => {
  it.live("no borrower ever sees another's tenant rows, role or session state", () =>
    Effect.gen(function*() {
      const srv = yield* server()
      yield* admin(srv.url, (conn) =>
        Effect.forEach([
          `CREATE ROLE ${LOGIN} LOGIN PASSWORD '${SECRET}'`,
          ...ROLE_TENANTS.map((role) => `CREATE ROLE ${role} NOLOGIN`),
          ...ROLE_TENANTS.map((role) => `GRANT ${role} TO ${LOGIN}`),
          "CREATE TABLE docs (tenant text NOT NULL, body text NOT NULL)",
          "ALTER TABLE docs ENABLE ROW LEVEL SECURITY",
          "CREATE POLICY by_setting ON docs USING (tenant = current_setting('app.tenant', true))",
          "CREATE POLICY by_role ON docs USING (tenant = current_user)",
          `GRANT SELECT ON docs TO ${LOGIN}, ${ROLE_TENANTS.join(", ")}`,
          `INSERT INTO docs SELECT t, 'secret of ' || t || ' #' || g
             FROM unnest(ARRAY['${[...SETTING_TENANTS, ...ROLE_TENANTS].join("','")}']) t, generate_series(1, 5) g`
        ], (sql) => conn.query(sql, [], false), { discard: true }))

      const p = yield* poolOn(urlWithCredentials(LOGIN, SECRET, srv.url), {
        minSize: 4,
        maxSize: 4,
        timeout: "10 seconds"
      })
      yield* p.pool.wait("20 seconds")

      const violations: Array<string> = []
      const kinds: Array<Kind> = []
      const backendsSeen = new Set<number>()
      const lease = (fiber: number, n: number) =>
        p.pool.withConnection((conn: PgPool.PooledConnection) =>
          Effect.gen(function*() {
            const kind = KINDS[Math.floor(Math.random() * KINDS.length)]
            kinds.push(kind)
            backendsSeen.add(conn.processId)
            const run = (sql: string, params: ReadonlyArray<unknown> = []) => conn.query(sql, params, false)
            switch (kind) {
              case "tenant:set_config": {
                const tenant = SETTING_TENANTS[(fiber + n) % SETTING_TENANTS.length]
                yield* run("SELECT set_config('app.tenant', $1, false)", [tenant])
                const rows = (yield* run("SELECT DISTINCT tenant FROM docs")).rows.map((r) => r.tenant)
                if (rows.length !== 1 || rows[0] !== tenant) violations.push(`${tenant} saw ${rows.join(",")}`)
                return
              }
              case "tenant:set_role": {
                const role = ROLE_TENANTS[(fiber + n) % ROLE_TENANTS.length]
                yield* run(`SET ROLE ${role}`)
                const rows = (yield* run("SELECT DISTINCT tenant FROM docs")).rows.map((r) => r.tenant)
                if (rows.length !== 1 || rows[0] !== role) violations.push(`${role} saw ${rows.join(",")}`)
                return
              }
              case "search_path":
                return yield* run("SET search_path TO pg_catalog")
              case "temp table":
                return yield* run("CREATE TEMP TABLE leak_tmp (x int)")
              case "advisory lock":
                return yield* run("SELECT pg_advisory_lock($1)", [fiber * 100_000 + n])
              case "listen":
                return yield* run("LISTEN leak_channel")
              case "prepare":
                return yield* run("PREPARE leak_stmt AS SELECT 1")
              case "cursor with hold":
                return yield* run("DECLARE leak_cur CURSOR WITH HOLD FOR SELECT 1")
              case "observer": {
                const row = (yield* run(PROBE)).rows[0] as Record<string, unknown>
                for (const [key, expected] of Object.entries(fresh)) {
                  if (row[key] !== expected) {
                    violations.push(`observer on ${conn.processId}: ${key} = ${JSON.stringify(row[key])}`)
                  }
                }
                return
              }
            }
          })
        )

      const { calls, hung } = yield* load({
        fibers: 32,
        durationMs: 30_000,
        maxCalls: 100,
        hardLimitMs: 10_000,
        call: lease
      })
      assert.strictEqual(hung, 0)
      const outcomes = tally(calls.map((c) => c.outcome))
      assert.deepStrictEqual(outcomes, { ok: calls.length }, "no lease failed (a leaked temp table, cursor or " +
        "prepared statement would make the next one fail)")
      assert.deepStrictEqual(violations.slice(0, 10), [], `${violations.length} isolation violations`)
      const byKind = tally(kinds)
      assert.isAtLeast(byKind.observer ?? 0, 500)
      assert.isAtLeast(backendsSeen.size, 4)
      const stats = yield* p.pool.stats

      yield* report("08-isolation", "Session isolation (security)", {
        "setup": "RLS on current_setting('app.tenant') and current_user; pool of 4 logged in as an ordinary " +
          "role; reset auto",
        "load": `32 fibers, ${calls.length} leases on ${backendsSeen.size} backends`,
        "leases by kind": JSON.stringify(byKind),
        "isolation violations (rows, role or state seen by the next borrower)": violations.length,
        "leases failed": calls.length - (outcomes.ok ?? 0),
        "connections closed (reset failures / broken)": `${stats.closed.resetFailed} / ${stats.closed.broken}`
      })
    }), { timeout: 90_000 })
})
