/**
 * A lease: what a borrower holds. It is both our `PooledConnection` and `effect/sql`'s `Connection`, so `sql`
 * templates and the pool's helpers run through one place that tracks session state and refuses use after release.
 *
 * @internal
 */
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import type * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { Connection } from "effect/sql/SqlConnection"
import { ConnectionError, SqlError } from "effect/sql/SqlError"
import * as Stream from "effect/Stream"
import { noteError, type PgSession, track } from "../PgConnector.ts"

const rowsOf = (result: PgConnection.Result): ReadonlyArray<PgConnection.Row> => result.rows

type TransformRows = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

const released = (operation: string) =>
  new SqlError({
    reason: new ConnectionError({
      cause: new Error("connection used after it was returned to the pool"),
      message: "PgPool: connection used after it was returned to the pool",
      operation
    })
  })

export class Lease implements Connection {
  readonly session: PgSession
  readonly epoch: number
  /** The session's connection, or a pinned view of it (exclusive leases of a multiplexed pool). */
  readonly connection: PgConnection.PgConnection

  constructor(session: PgSession, connection: PgConnection.PgConnection = session.connection) {
    this.session = session
    this.epoch = session.epoch
    this.connection = connection
  }

  get processId(): number {
    return this.session.processId
  }

  /**
   * One statement: refused after release, tracked, its errors noted, its result shaped by `onSuccess` in the same
   * frame (`Effect.mapBoth` would add a `sync` step to every statement).
   */
  private guard<A, B, R>(
    sql: string,
    operation: string,
    f: (connection: PgConnection.PgConnection) => Effect.Effect<A, SqlError, R>,
    onSuccess: (a: A) => B
  ): Effect.Effect<B, SqlError, R> {
    const session = this.session
    if (session.epoch !== this.epoch) return Effect.fail(released(operation))
    track(session, sql)
    return Effect.matchCauseEffect(f(this.connection), {
      onFailure: (cause) => Effect.failCause(Cause.map(cause, (error) => noteError(session, error))),
      onSuccess: (a) => Effect.succeed(onSuccess(a))
    })
  }

  query(sql: string, params: ReadonlyArray<unknown> = [], prepare?: boolean) {
    return this.guard(sql, "query", (c) => c.query(sql, params, prepare), identity)
  }

  queryValues(sql: string, params: ReadonlyArray<unknown> = [], prepare?: boolean) {
    return this.guard(sql, "query", (c) => c.queryValues(sql, params, prepare), identity)
  }

  private rows(sql: string, params: ReadonlyArray<unknown>, prepare: boolean, transformRows: TransformRows) {
    return this.guard(
      sql,
      "query",
      (c) => c.query(sql, params, prepare),
      transformRows === undefined ? rowsOf : (result: PgConnection.Result) => transformRows(result.rows)
    )
  }

  stream(sql: string, params: ReadonlyArray<unknown> = []): Stream.Stream<PgConnection.Row, SqlError> {
    const session = this.session
    if (session.epoch !== this.epoch) return Stream.fail(released("stream"))
    track(session, sql)
    return Stream.mapError(this.connection.stream(sql, params), (error) => noteError(session, error))
  }

  listen(channel: string): Effect.Effect<Queue.Dequeue<PgConnection.Notification, SqlError>, SqlError, Scope.Scope> {
    return this.guard("LISTEN", "listen", (c) => c.listen(channel), identity)
  }

  // effect/sql Connection

  execute(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
    return this.rows(sql, params, true, transformRows)
  }

  executeRaw(sql: string, params: ReadonlyArray<unknown>) {
    return this.query(sql, params, true)
  }

  executeValues(sql: string, params: ReadonlyArray<unknown>) {
    return this.queryValues(sql, params, true)
  }

  executeValuesUnprepared(sql: string, params: ReadonlyArray<unknown>) {
    return this.queryValues(sql, params, false)
  }

  executeUnprepared(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
    return this.rows(sql, params, false, transformRows)
  }

  executeStream(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
    const stream = this.stream(sql, params)
    return transformRows === undefined
      ? stream
      : Stream.mapArray(stream, (rows) => transformRows(rows) as Arr.NonEmptyReadonlyArray<PgConnection.Row>)
  }
}
