/**
 * Runner: `postgres` (postgres.js). `` sql`SELECT 1` ``, and `sql.begin` for the transaction. Defaults otherwise
 * (prepared statements on).
 */
import postgres from "postgres"
import { runPromiseClient } from "../support/promiseLoop.ts"
import { main, parse } from "../support/protocol.ts"

main(async () => {
  const args = parse()
  const sql = postgres(args.url, { max: args.poolMax, onnotice: () => {} })
  await runPromiseClient(args, {
    query: () => sql`SELECT 1`,
    transaction: (id) =>
      sql.begin(async (tx) => {
        await tx`UPDATE accounts SET balance = balance + 1 WHERE id = ${id}`
        await tx`SELECT balance FROM accounts WHERE id = ${id}`
      }),
    warm: async (n) => {
      await Promise.all(Array.from({ length: n }, () => sql`SELECT pg_sleep(0.05)`))
    },
    close: () => sql.end({ timeout: 2 })
  })
})
