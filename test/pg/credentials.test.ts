import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, Scope } from "effect"
import { backends, quoteIdentifier, withAdmin } from "../support/Db.ts"
import { makePool, scopedLoginRole, serverPassword, uniqueName, urlWithCredentials, waitFor } from "./helpers.ts"

describe("rotating credentials on a real server", () => {
  it.live("a password given as an Effect is called once per connect", () =>
    Effect.gen(function*() {
      let calls = 0
      const password = Effect.sync(() => {
        calls++
        return Redacted.make(serverPassword())
      })
      const url = Redacted.make(urlWithCredentials("postgres", ""))
      const p = yield* makePool({ url, password, minSize: 3, maxSize: 3 })
      yield* p.pool.wait("10 seconds")
      assert.strictEqual((yield* p.pool.stats).connectionsNum, 3)
      assert.strictEqual(calls, 3)
      yield* p.pool.drain
      yield* waitFor("3 new connections", p.pool.stats, (s) => s.connectionsNum === 6 && s.poolAvailable === 3)
      assert.strictEqual(calls, 6)
      // Borrowing does not ask for the password.
      yield* p.pool.fetch("SELECT 1")
      assert.strictEqual(calls, 6)
    }))

  it.live("after setConnectOptions({ applicationName }) and drain, every connection uses the new settings", () =>
    Effect.gen(function*() {
      const v1 = uniqueName("cred-v1")
      const v2 = uniqueName("cred-v2")
      const p = yield* makePool({ applicationName: v1, minSize: 3, maxSize: 3 })
      yield* p.pool.wait("10 seconds")
      yield* waitFor("3 backends on v1", backends({ applicationName: v1 }), (rows) => rows.length === 3)
      // One connection is borrowed while the pool drains: it is replaced when it comes back.
      const scope = yield* Scope.make()
      const held = yield* Scope.provide(p.pool.connection(), scope)
      const [before] = (yield* held.query("SELECT current_setting('application_name') AS name")).rows
      assert.strictEqual(before.name, v1)
      yield* p.pool.setConnectOptions({ applicationName: v2 })
      yield* p.pool.drain
      yield* Scope.close(scope, { _tag: "Success", value: undefined } as never)
      yield* waitFor(
        "every backend on v2",
        Effect.all([backends({ applicationName: v1 }), backends({ applicationName: v2 })]),
        ([old, fresh]) => old.length === 0 && fresh.length === 3
      )
      const names = yield* Effect.forEach(
        [0, 1, 2],
        () => p.pool.withConnection((conn) => conn.query("SELECT current_setting('application_name') AS name")),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(names.map((result) => result.rows[0].name), [v2, v2, v2])
      const stats = yield* p.pool.stats
      assert.strictEqual(stats.closed.drained, 3)
      assert.strictEqual(stats.poolSize, 3)
    }))

  it.live("after a password change, setConnectOptions({ password }) and drain move every connection to it", () =>
    Effect.gen(function*() {
      const role = yield* scopedLoginRole("first-password")
      const applicationName = uniqueName("cred-rotate")
      const p = yield* makePool({
        url: Redacted.make(urlWithCredentials(role, "first-password")),
        applicationName,
        minSize: 2,
        maxSize: 2
      })
      yield* p.pool.wait("10 seconds")
      const before = (yield* waitFor("2 backends", p.backends, (rows) => rows.length === 2)).map((row) => row.pid)
      yield* withAdmin((admin) =>
        admin.query(`ALTER ROLE ${quoteIdentifier(role)} PASSWORD 'second-password'`, [], false)
      )
      // Open sessions keep working under the old password.
      assert.deepStrictEqual(yield* p.pool.fetch("SELECT current_user AS who"), [{ who: role }])
      yield* p.pool.setConnectOptions({ password: Redacted.make("second-password") })
      yield* p.pool.drain
      // The server lists a backend before its client has finished connecting: wait for both sides.
      const [after, stats] = yield* waitFor(
        "2 new backends, connected",
        Effect.all([p.backends, p.pool.stats]),
        ([rows, stats]) =>
          rows.length === 2 && rows.every((row) => !before.includes(row.pid)) && stats.connectionsNum === 4 &&
          stats.poolAvailable === 2
      )
      assert.strictEqual(after.length, 2)
      assert.strictEqual(stats.connectionsErrors, 0)
      assert.strictEqual(stats.closed.drained, 2)
      assert.deepStrictEqual(yield* p.pool.fetch("SELECT current_user AS who"), [{ who: role }])
    }))
})
