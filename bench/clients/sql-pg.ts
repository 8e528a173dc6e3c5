/**
 * Runner: `@effect/sql-pg` `PgClient.layer` (its own pool on effect's `Pool`). `--mode multiplex` sets
 * `multiplex: true`; anything else is exclusive checkout.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Redacted from "effect/Redacted"
import { runEffectClient } from "../support/effectLoop.ts"
import { main, parse } from "../support/protocol.ts"

main(async () => {
  const args = parse()
  await runEffectClient(
    args,
    PgClient.layer({
      url: Redacted.make(args.url),
      minConnections: args.poolMin,
      maxConnections: args.poolMax,
      multiplex: args.mode === "multiplex"
    })
  )
})
