/**
 * Runner: effect-pg-pool (this project) through its `SqlClient`.
 * `--mode auto|none` (exclusive, session reset "auto" or "none"); `--mode multiplex`: the pipelined mode
 * (`multiplex: true`, reset "auto", default `multiplexConcurrency`).
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as PgPool from "../../src/PgPool.ts"
import { runEffectClient } from "../support/effectLoop.ts"
import { main, parse } from "../support/protocol.ts"

main(async () => {
  const args = parse()
  const reset = args.mode === "none" ? "none" : "auto"
  const config: PgPool.Config = {
    url: Redacted.make(args.url),
    name: "bench",
    minSize: args.poolMin,
    maxSize: args.poolMax,
    reset,
    ...(args.mode === "multiplex" ? { multiplex: true } : {})
  }
  const poolInfo = Effect.gen(function*() {
    const pool = yield* PgPool.PgPool
    const stats = yield* pool.stats
    return {
      poolSize: stats.poolSize,
      connectionsNum: stats.connectionsNum,
      requestsQueued: stats.requestsQueued,
      connectionsPending: stats.connectionsPending
    }
  })
  await runEffectClient(args, PgPool.layer(config), { poolInfo })
})
