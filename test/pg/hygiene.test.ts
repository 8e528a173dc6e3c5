import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { PgPool } from "../../src/index.ts"
import { adminConnection, freshDatabaseScoped, quoteIdentifier, withAdmin } from "../support/Db.ts"
import { makePool, scopedLoginRole, type TestPool, uniqueName, urlWithCredentials } from "./helpers.ts"

/** A low-privilege role for `SET ROLE`; roles are cluster-wide, so each test gets its own and drops it. */
const scopedRole = Effect.acquireRelease(
  Effect.suspend(() => {
    const role = uniqueName("hygiene_role").replaceAll("-", "_")
    return Effect.as(withAdmin((admin) => admin.query(`CREATE ROLE ${quoteIdentifier(role)} NOLOGIN`, [], false)), role)
  }),
  (role) => Effect.ignore(withAdmin((admin) => admin.query(`DROP ROLE IF EXISTS ${quoteIdentifier(role)}`, [], false)))
)

interface Case {
  readonly name: string
  /** What the first borrower runs. */
  readonly dirty: (role: string) => string
  /** A statement answering `leaked` (boolean): is the state still there? */
  readonly probe: (role: string) => string
}

const cases: ReadonlyArray<Case> = [
  {
    name: "SET ROLE",
    dirty: (role) => `SET ROLE ${quoteIdentifier(role)}`,
    probe: () => "SELECT current_user <> session_user AS leaked"
  },
  {
    name: "SET SESSION AUTHORIZATION",
    dirty: (role) => `SET SESSION AUTHORIZATION ${quoteIdentifier(role)}`,
    probe: (role) => `SELECT session_user = '${role}' AS leaked`
  },
  {
    name: "SET search_path",
    dirty: () => "SET search_path TO pg_catalog",
    probe: () => "SELECT current_setting('search_path') = 'pg_catalog' AS leaked"
  },
  {
    name: "set_config('app.tenant', '42', false)",
    dirty: () => "SELECT set_config('app.tenant', '42', false)",
    probe: () => "SELECT coalesce(current_setting('app.tenant', true), '') = '42' AS leaked"
  },
  {
    name: "a temp table",
    dirty: () => "CREATE TEMP TABLE hygiene_tmp (x int)",
    probe: () => "SELECT to_regclass('pg_temp.hygiene_tmp') IS NOT NULL AS leaked"
  },
  {
    name: "an advisory lock (pg_advisory_lock)",
    dirty: () => "SELECT pg_advisory_lock(4242)",
    probe: () =>
      "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS leaked"
  },
  {
    name: "LISTEN",
    dirty: () => "LISTEN hygiene_channel",
    probe: () => "SELECT EXISTS (SELECT 1 FROM pg_listening_channels() c WHERE c = 'hygiene_channel') AS leaked"
  },
  {
    name: "an SQL PREPARE",
    dirty: () => "PREPARE hygiene_statement AS SELECT 1",
    probe: () => "SELECT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE name = 'hygiene_statement') AS leaked"
  },
  {
    name: "a DECLARE ... WITH HOLD cursor",
    dirty: () => "DECLARE hygiene_cursor CURSOR WITH HOLD FOR SELECT 1",
    probe: () => "SELECT EXISTS (SELECT 1 FROM pg_cursors WHERE name = 'hygiene_cursor') AS leaked"
  }
]

const leaked = (conn: PgPool.PooledConnection, sql: string) =>
  Effect.map(conn.query(sql), (result) => result.rows[0]?.leaked as boolean)

/** A pool of exactly one connection on a fresh database, so consecutive borrowers share the backend. */
const onePool = (name: string, config: Partial<PgPool.Config> = {}) =>
  Effect.flatMap(freshDatabaseScoped(name), (url) => makePool({ minSize: 1, maxSize: 1, ...config }, { url }))

/** The first borrower leaves state behind (and sees it); returns whether the next borrower of the backend sees it. */
const leaksToNextBorrower = (p: TestPool, c: Case, role: string) =>
  Effect.gen(function*() {
    const first = yield* p.pool.withConnection((conn) =>
      Effect.gen(function*() {
        yield* conn.query(c.dirty(role))
        assert.isTrue(yield* leaked(conn, c.probe(role)), "the dirty statement took effect")
        return conn.processId
      })
    )
    return yield* p.pool.withConnection((conn) =>
      Effect.gen(function*() {
        assert.strictEqual(conn.processId, first, "the same backend serves the next borrower")
        return yield* leaked(conn, c.probe(role))
      })
    )
  })

describe("session hygiene on a real server", () => {
  for (const c of cases) {
    it.live(`reset "auto": the next borrower sees nothing of ${c.name}`, () =>
      Effect.gen(function*() {
        const role = yield* scopedRole
        const p = yield* onePool(`hygiene auto ${c.name}`)
        assert.isFalse(yield* leaksToNextBorrower(p, c, role))
        const stats = yield* p.pool.stats
        assert.strictEqual(stats.connectionsNum, 1)
        assert.strictEqual(stats.closed.resetFailed, 0)
      }))
  }

  for (const c of cases) {
    it.live(`reset "none": ${c.name} does leak to the next borrower`, () =>
      Effect.gen(function*() {
        const role = yield* scopedRole
        const p = yield* onePool(`hygiene none ${c.name}`, { reset: "none" })
        assert.isTrue(yield* leaksToNextBorrower(p, c, role))
      }))
  }

  it.live(`reset "auto": state left through sql templates does not reach the next borrower`, () =>
    Effect.gen(function*() {
      const p = yield* onePool("hygiene sql templates", { timeout: "5 seconds" })
      const sql = p.sql
      // Outside a transaction every sql statement borrows the only connection, so each one is a lease of its own.
      const [dirty] = yield* sql<{ pid: number; tenant: string }>`
        SELECT pg_backend_pid() AS pid, set_config('app.tenant', ${"42"}, false) AS tenant`
      assert.strictEqual(dirty.tenant, "42")
      const [next] = yield* sql<{ pid: number; tenant: string | null }>`
        SELECT pg_backend_pid() AS pid, current_setting('app.tenant', true) AS tenant`
      assert.strictEqual(next.pid, dirty.pid)
      assert.notStrictEqual(next.tenant, "42")
      yield* sql`SET search_path TO pg_catalog`
      const [path] = yield* sql<{ pid: number; search_path: string }>`
        SELECT pg_backend_pid() AS pid, current_setting('search_path') AS search_path`
      assert.strictEqual(path.pid, dirty.pid)
      assert.notStrictEqual(path.search_path, "pg_catalog")
      // A transaction's session state is reset after it, too.
      yield* sql.withTransaction(
        Effect.andThen(sql`SET SESSION search_path TO pg_catalog`, sql`SELECT pg_advisory_lock(${7})`)
      )
      const [after] = yield* sql<{ pid: number; search_path: string; locks: number }>`
        SELECT pg_backend_pid() AS pid, current_setting('search_path') AS search_path,
               (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks`
      assert.deepStrictEqual(after, { pid: dirty.pid, search_path: path.search_path, locks: 0 })
    }))

  it.live(`reset "auto": a configure that PREPAREs survives repeated resets`, () =>
    Effect.gen(function*() {
      const p = yield* onePool("hygiene configure prepare", {
        configure: (conn) => Effect.asVoid(conn.query("PREPARE configured_statement AS SELECT 42 AS answer"))
      })
      const pids = new Set<number>()
      for (let i = 0; i < 3; i++) {
        yield* p.pool.withConnection((conn) => {
          pids.add(conn.processId)
          return conn.query("SET search_path TO pg_catalog")
        })
        const rows = yield* p.pool.withConnection((conn) => {
          pids.add(conn.processId)
          return Effect.map(conn.query("EXECUTE configured_statement", [], false), (result) => result.rows)
        })
        assert.deepStrictEqual(rows, [{ answer: 42 }])
      }
      assert.strictEqual(pids.size, 1)
      const stats = yield* p.pool.stats
      assert.strictEqual(stats.closed.resetFailed, 0)
      assert.strictEqual(stats.connectionsNum, 1)
    }))

  it.live(`reset "auto": a clean lease triggers no reset, a dirty one does, and configure survives the reset`, () =>
    Effect.gen(function*() {
      const url = yield* freshDatabaseScoped("hygiene clean lease")
      // A function that changes session state behind the classifier's back: only a reset can remove its mark.
      yield* Effect.scoped(Effect.flatMap(adminConnection({ url }), (admin) =>
        Effect.andThen(
          admin.query("CREATE SCHEMA configured", [], false),
          admin.query(
            "CREATE FUNCTION public.hygiene_mark() RETURNS text LANGUAGE sql " +
              "AS $$ SELECT set_config('app.mark', 'kept', false) $$",
            [],
            false
          )
        )))
      const p = yield* makePool({
        minSize: 1,
        maxSize: 1,
        configure: (conn) => Effect.asVoid(conn.query("SET search_path TO configured, public"))
      }, { url })
      const probe = (conn: PgPool.PooledConnection) =>
        Effect.map(
          conn.query(
            "SELECT current_setting('search_path') AS search_path, current_setting('app.mark', true) AS mark, " +
              "current_setting('statement_timeout') AS statement_timeout"
          ),
          (result) => ({ processId: conn.processId, ...result.rows[0] } as Record<string, unknown>)
        )

      // A clean lease (plain SELECT) on a fresh connection: returned straight to idle, no reset in flight.
      const first = yield* p.pool.withConnection((conn) =>
        Effect.as(conn.query("SELECT hygiene_mark()"), conn.processId)
      )
      assert.strictEqual((yield* p.pool.stats).poolAvailable, 1, "a clean lease goes straight back to idle")
      assert.deepStrictEqual(yield* p.pool.withConnection(probe), {
        processId: first,
        search_path: "configured, public",
        mark: "kept",
        statement_timeout: "0"
      })

      // A dirty lease: the session is reset (the mark goes) and configure runs again (its search_path stays).
      yield* p.pool.withConnection((conn) =>
        Effect.andThen(conn.query("SET statement_timeout = '5s'"), conn.query("SET search_path TO public"))
      )
      assert.strictEqual((yield* p.pool.stats).poolAvailable, 0, "a dirty lease is reset before it is idle again")
      const after = yield* p.pool.withConnection(probe)
      assert.strictEqual(after.processId, first)
      assert.strictEqual(after.search_path, "configured, public")
      assert.strictEqual(after.statement_timeout, "0")
      assert.notStrictEqual(after.mark, "kept")
      const stats = yield* p.pool.stats
      assert.strictEqual(stats.connectionsNum, 1)
      assert.strictEqual(stats.closed.resetFailed, 0)
    }))

  it.live(`reset "auto": the reset works for a pool user that is not a superuser`, () =>
    Effect.gen(function*() {
      const role = yield* scopedLoginRole("app-password")
      const url = yield* freshDatabaseScoped("hygiene non superuser")
      const database = new URL(url).pathname.slice(1)
      const p = yield* makePool({ minSize: 1, maxSize: 1 }, {
        url: urlWithCredentials(role, "app-password", url)
      })
      // Changing roles needs privileges this user lacks; everything else it may do, and the reset must undo.
      const states = cases.filter((c) => !c.name.startsWith("SET ROLE") && !c.name.startsWith("SET SESSION"))
      for (const c of states) assert.isFalse(yield* leaksToNextBorrower(p, c, role), c.name)
      const [who] = yield* p.pool.fetch("SELECT current_user AS who, current_database() AS db")
      assert.deepStrictEqual(who, { who: role, db: database })
      const stats = yield* p.pool.stats
      assert.strictEqual(stats.closed.resetFailed, 0)
      assert.strictEqual(stats.connectionsNum, 1)
    }))

  it.live(`reset "auto": a reset keeps the driver's prepared statements`, () =>
    Effect.gen(function*() {
      const p = yield* onePool("hygiene driver statements")
      const first = yield* p.pool.withConnection((conn) =>
        Effect.gen(function*() {
          yield* conn.query("SELECT $1::int AS driver_prepared", [1])
          yield* conn.query("PREPARE hygiene_statement AS SELECT 1")
          yield* conn.query("SET search_path TO pg_catalog")
          return conn.processId
        })
      )
      const after = yield* p.pool.withConnection((conn) =>
        Effect.map(
          conn.query(
            "SELECT count(*) FILTER (WHERE NOT from_sql AND statement = 'SELECT $1::int AS driver_prepared')::int " +
              "AS driver, " +
              "count(*) FILTER (WHERE from_sql)::int AS sql FROM pg_prepared_statements",
            [],
            false
          ),
          (result) => ({ processId: conn.processId, ...result.rows[0] } as Record<string, unknown>)
        )
      )
      assert.deepStrictEqual(after, { processId: first, driver: 1, sql: 0 })
    }))
})
