/**
 * Background jobs: a queue in a table, drained by concurrent workers with `FOR UPDATE SKIP LOCKED`.
 *
 *   npm run example:worker               # embedded PostgreSQL
 *   WORKERS=8 JOBS=1000 DATABASE_URL=postgres://... npm run example:worker
 *
 * Each worker fiber loops: in one transaction it claims the oldest pending job
 * (`SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1`, so workers never wait for, nor take, a row another worker holds),
 * processes it and marks it done. The claim lasts as long as the transaction: if the worker failed or was
 * interrupted, the transaction would roll back and the job would be pending again for the next worker. A worker
 * stops when it finds nothing to claim; every loop is bounded by the number of jobs.
 *
 * At the end the program checks that every job of this run was processed exactly once (once in memory, once in the
 * table), prints what each worker did and exits (exit code 1 if the check fails).
 */
import { NodeRuntime } from "@effect/platform-node"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import { SqlClient } from "effect/sql/SqlClient"
import { PgPool } from "../src/index.ts"
import * as Database from "./support/database.ts"

const intFromEnv = (name: string, fallback: number, max: number): number => {
  const raw = process.env[name]
  const value = raw === undefined || raw === "" ? fallback : Number(raw)
  if (!Number.isInteger(value) || value < 1 || value > max) throw new Error(`${name} must be 1..${max}, got ${raw}`)
  return value
}

const WORKERS = intFromEnv("WORKERS", 4, 64)
const JOBS = intFromEnv("JOBS", 200, 100_000)

class CheckFailed extends Data.TaggedError("CheckFailed")<{ readonly message: string }> {}

interface Job {
  readonly id: number
  readonly payload: number
}

const program = Effect.gen(function*() {
  const sql = yield* SqlClient
  const pool = yield* PgPool.PgPool

  yield* sql`CREATE TABLE IF NOT EXISTS jobs (
    id         bigserial PRIMARY KEY,
    batch      text NOT NULL,
    payload    integer NOT NULL,
    status     text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
    attempts   integer NOT NULL DEFAULT 0,
    worker     integer,
    result     bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    done_at    timestamptz
  )`
  yield* sql`CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (id) WHERE status = 'pending'`

  // Enqueue this run's jobs in one statement. The batch name tells them apart from earlier runs.
  const batch = `run-${Date.now().toString(36)}-${process.pid}`
  yield* pool.execute(
    "INSERT INTO jobs (batch, payload) SELECT $1, g FROM generate_series(1, $2::int) AS g",
    [batch, JOBS]
  )
  const pending = yield* pool.fetchVal("SELECT count(*)::int FROM jobs WHERE status = 'pending'")
  const queued = Number(Option.getOrElse(pending, () => 0))
  yield* Console.log(`worker: ${JOBS} jobs enqueued (batch ${batch}), ${queued} pending in total, ${WORKERS} workers`)

  /** Claims, processes and completes one job in one transaction; `None` when nothing is left to claim. */
  const processOne = (worker: number): Effect.Effect<Option.Option<number>, unknown> =>
    sql.withTransaction(Effect.gen(function*() {
      const [job] = yield* sql<Job>`
        SELECT id::int AS id, payload FROM jobs
         WHERE status = 'pending'
         ORDER BY id
           FOR UPDATE SKIP LOCKED
         LIMIT 1`
      if (job === undefined) return Option.none()
      // The work: a little latency while the row stays locked, then a result.
      yield* Effect.sleep(yield* Random.nextBetween(0, 3))
      const result = job.payload * job.payload
      yield* sql`
        UPDATE jobs
           SET status = 'done', attempts = attempts + 1, worker = ${worker}, result = ${result}, done_at = now()
         WHERE id = ${job.id}`
      return Option.some(job.id)
    }))

  const processed = new Map<number, Array<number>>()
  const runWorker = (worker: number) =>
    Effect.gen(function*() {
      const mine: Array<number> = []
      processed.set(worker, mine)
      // Bounded: there are never more than `queued` jobs to claim.
      for (let i = 0; i <= queued; i++) {
        const claimed = yield* processOne(worker)
        if (Option.isNone(claimed)) break
        mine.push(claimed.value)
      }
    })

  const startedAt = performance.now()
  yield* Effect.forEach(Array.from({ length: WORKERS }, (_, i) => i + 1), runWorker, { concurrency: "unbounded" })
  const elapsed = performance.now() - startedAt

  for (const [worker, ids] of processed) yield* Console.log(`worker ${worker}: processed ${ids.length} jobs`)
  const all = [...processed.values()].flat()
  yield* Console.log(
    `worker: ${all.length} jobs in ${(elapsed / 1000).toFixed(2)} s ` +
      `(${Math.round(all.length / (elapsed / 1000))} jobs/s)`
  )

  // Exactly once, in memory: no job claimed twice, and every job of this batch claimed.
  const unique = new Set(all)
  if (unique.size !== all.length) {
    return yield* new CheckFailed({ message: `${all.length - unique.size} jobs were processed more than once` })
  }
  // Exactly once, in the table: every job of the batch done, in exactly one attempt, by one of our workers.
  const [check] = yield* sql<{ total: number; done_once: number; pending: number }>`
    SELECT count(*)::int AS total,
           count(*) FILTER (WHERE status = 'done' AND attempts = 1 AND result = payload::bigint * payload)::int
             AS done_once,
           count(*) FILTER (WHERE status = 'pending')::int AS pending
      FROM jobs WHERE batch = ${batch}`
  const batchIds = yield* sql<{ id: number }>`SELECT id::int AS id FROM jobs WHERE batch = ${batch}`
  const missing = batchIds.filter((row) => !unique.has(row.id)).length
  if (check === undefined || check.total !== JOBS || check.done_once !== JOBS || missing !== 0) {
    return yield* new CheckFailed({
      message: `batch ${batch}: ${JSON.stringify(check)}, ${missing} jobs not seen by any worker`
    })
  }
  yield* Console.log(`worker: OK, all ${JOBS} jobs processed exactly once`)

  const stats = yield* pool.stats
  yield* Console.log(
    `pool.stats: poolSize=${stats.poolSize} requestsNum=${stats.requestsNum} requestsQueued=${stats.requestsQueued} ` +
      `requestsWaitMs=${stats.requestsWaitMs} connectionsNum=${stats.connectionsNum} ` +
      `requestsErrors=${stats.requestsErrors}`
  )
})

const PoolLive = Database.layerPool({ name: "worker", minSize: WORKERS, maxSize: WORKERS, timeout: "10 seconds" })

NodeRuntime.runMain(program.pipe(Effect.provide(PoolLive)))
