/**
 * Every client the benchmark runs. One entry = one client: its runner in `bench/clients/`, the mode passed to it,
 * its role in the goals, and the workloads it takes part in. Runs are interleaved in this order.
 *
 * To add a client, add an entry (and a runner speaking the protocol of `bench/support/protocol.ts` if it is a new
 * library). An entry with `pending` is listed as skipped with that note instead of being run.
 */
export type DbWorkload = "w1" | "w2" | "w4" | "w5"

export type Role =
  /** effect-pg-pool, exclusive checkout, default settings: the figure the goals are about */
  | "ours"
  /** effect-pg-pool, other settings */
  | "ours-variant"
  /** effect-pg-pool pipelined */
  | "ours-multiplex"
  | "exclusive-peer"
  | "multiplex-peer"
  /** no pool: workers bound to connections of the same driver and effect/sql, what a pool costing nothing reaches */
  | "ceiling"
  | "ceiling-multiplex"
  /** pgbench: the server's limit */
  | "limit"
  | "limit-pipelined"

export interface Client {
  readonly id: string
  readonly label: string
  readonly kind: "node" | "python" | "pgbench"
  /** file in bench/clients/ */
  readonly runner: string
  readonly mode?: string
  readonly role: Role
  readonly workloads: ReadonlyArray<DbWorkload>
  /** When set, the client is listed as skipped with this note instead of being run. */
  readonly pending?: string
  /** Python module the client needs (checked before running; skipped with a note when missing). */
  readonly pythonModule?: string
}

const all: ReadonlyArray<DbWorkload> = ["w1", "w2", "w4", "w5"]

export const clients: ReadonlyArray<Client> = [
  {
    id: "effect-pg-pool",
    label: "effect-pg-pool (reset auto)",
    kind: "node",
    runner: "effect-pg-pool.ts",
    mode: "auto",
    role: "ours",
    workloads: all
  },
  {
    id: "effect-pg-pool-none",
    label: "effect-pg-pool (reset none)",
    kind: "node",
    runner: "effect-pg-pool.ts",
    mode: "none",
    role: "ours-variant",
    workloads: ["w1", "w2"]
  },
  {
    id: "effect-pg-pool-multiplex",
    label: "effect-pg-pool multiplex",
    kind: "node",
    runner: "effect-pg-pool.ts",
    mode: "multiplex",
    role: "ours-multiplex",
    workloads: all
  },
  {
    id: "sql-pg",
    label: "@effect/sql-pg PgClient",
    kind: "node",
    runner: "sql-pg.ts",
    mode: "exclusive",
    role: "exclusive-peer",
    workloads: all
  },
  {
    id: "sql-pg-multiplex",
    label: "@effect/sql-pg PgClient multiplex",
    kind: "node",
    runner: "sql-pg.ts",
    mode: "multiplex",
    role: "multiplex-peer",
    workloads: ["w1", "w2", "w4", "w5"]
  },
  {
    id: "no-pool",
    label: "ceiling: no pool (@effect/sql-pg connections, each worker bound to one)",
    kind: "node",
    runner: "no-pool.ts",
    mode: "exclusive",
    role: "ceiling",
    workloads: ["w1", "w2"]
  },
  {
    id: "no-pool-multiplex",
    label: "ceiling: no pool, multiplex (32 workers per pipelined connection)",
    kind: "node",
    runner: "no-pool.ts",
    mode: "multiplex",
    role: "ceiling-multiplex",
    workloads: ["w1"]
  },
  { id: "pg", label: "pg.Pool", kind: "node", runner: "pg.ts", role: "exclusive-peer", workloads: all },
  { id: "postgres", label: "postgres.js", kind: "node", runner: "postgres.ts", role: "exclusive-peer", workloads: all },
  {
    id: "asyncpg",
    label: "asyncpg Pool (Python)",
    kind: "python",
    runner: "py_asyncpg.py",
    role: "exclusive-peer",
    workloads: all,
    pythonModule: "asyncpg"
  },
  {
    id: "psycopg",
    label: "psycopg_pool (Python)",
    kind: "python",
    runner: "py_psycopg.py",
    role: "exclusive-peer",
    workloads: all,
    pythonModule: "psycopg_pool"
  },
  {
    id: "pgbench",
    label: "pgbench -M prepared",
    kind: "pgbench",
    runner: "pgbench.ts",
    mode: "plain",
    role: "limit",
    workloads: ["w1", "w2"]
  },
  {
    id: "pgbench-pipeline",
    label: "pgbench -M prepared, pipeline 8",
    kind: "pgbench",
    runner: "pgbench.ts",
    mode: "pipeline",
    role: "limit-pipelined",
    workloads: ["w1"]
  }
]

/** W3 (pool overhead, fake connections): modes of bench/clients/overhead.ts. */
export interface OverheadVariant {
  readonly id: string
  readonly label: string
  readonly baseline?: boolean
}

export const overheadVariants: ReadonlyArray<OverheadVariant> = [
  { id: "ours-scoped", label: "effect-pg-pool `Effect.scoped(pool.connection())`" },
  { id: "ours-with", label: "effect-pg-pool `pool.withConnection`" },
  { id: "effect-get", label: "effect `Effect.scoped(Pool.get)`" },
  { id: "effect-use", label: "effect `Pool.use`" },
  { id: "pg-pool", label: "pg.Pool `connect()` + `release()`" },
  { id: "sql-ours", label: "a statement, `` sql`SELECT 1` ``, through effect-pg-pool's `SqlClient` (instant driver)" },
  {
    id: "sql-floor",
    label: "baseline: the same statement through effect/sql `SqlClient.make`, one instant connection, no pool",
    baseline: true
  },
  { id: "scope-floor", label: "baseline: `Effect.scoped` + one finalizer, no pool", baseline: true },
  { id: "effect-baseline", label: "baseline: Effect worker loop alone", baseline: true },
  { id: "promise-baseline", label: "baseline: async worker loop alone", baseline: true }
]
