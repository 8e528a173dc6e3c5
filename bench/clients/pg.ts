/**
 * Runner: `pg` (node-postgres) `pg.Pool`. Statements as users write them: `pool.query("SELECT 1")`, and for the
 * transaction `pool.connect()` then BEGIN / UPDATE / SELECT / COMMIT on the client (ROLLBACK on error).
 */
import pg from "pg"
import { runPromiseClient } from "../support/promiseLoop.ts"
import { main, parse } from "../support/protocol.ts"

main(async () => {
  const args = parse()
  const pool = new pg.Pool({ connectionString: args.url, max: args.poolMax })
  // an idle client's socket error is emitted on the pool: without a listener it would crash the process (w4)
  pool.on("error", () => {})
  await runPromiseClient(args, {
    query: () => pool.query("SELECT 1"),
    transaction: async (id) => {
      const client = await pool.connect()
      try {
        await client.query("BEGIN")
        await client.query("UPDATE accounts SET balance = balance + 1 WHERE id = $1", [id])
        await client.query("SELECT balance FROM accounts WHERE id = $1", [id])
        await client.query("COMMIT")
        client.release()
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {})
        client.release(error as Error)
        throw error
      }
    },
    warm: async (n) => {
      await Promise.all(Array.from({ length: n }, () => pool.query("SELECT pg_sleep(0.05)")))
    },
    poolInfo: () => ({ poolSize: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    close: () => pool.end()
  })
})
