/**
 * Runner: the ceiling of any pool on this stack. `@effect/sql-pg` `PgClient.makeClient` over `--pool-max`
 * connections, no pool at all: each worker fiber is bound to one connection for the whole run, so nothing is
 * acquired, queued or given back per statement beyond what the driver itself does (its own per-connection queue).
 * `--mode exclusive` spreads the workers over the connections (worker k on connection k mod size); `--mode multiplex`
 * packs them, 32 per pipelined connection, as the multiplexed pools do. Same driver, same effect/sql, same
 * statements as the pools: what a pool costing nothing would reach.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Reactivity from "effect/reactivity/Reactivity"
import { SqlClient } from "effect/sql/SqlClient"
import { runEffectClient } from "../support/effectLoop.ts"
import { main, parse } from "../support/protocol.ts"

/** The multiplexed pools' default share of one connection (`multiplexConcurrency`). */
const PACK = 32

class Clients extends Context.Service<Clients, ReadonlyArray<SqlClient>>()("bench/no-pool/Clients") {}

main(async () => {
  const args = parse()
  const multiplex = args.mode === "multiplex"
  const layer = Layer.effectContext(
    Effect.map(
      Effect.forEach(
        Array.from({ length: args.poolMax }),
        () => PgClient.makeClient({ url: Redacted.make(args.url), multiplex }),
        { concurrency: "unbounded" }
      ),
      (clients) => Context.make(Clients, clients).pipe(Context.add(SqlClient, clients[0]))
    )
  ).pipe(Layer.provide(Reactivity.layer))
  await runEffectClient(args, layer, {
    clientFor: Effect.map(Effect.service(Clients), (clients) => (worker: number) =>
      clients[(multiplex ? Math.floor(worker / PACK) : worker) % clients.length])
  })
})
