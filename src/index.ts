/**
 * effect-pg-pool: a production-grade PostgreSQL connection pool for Effect.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Connector from "./Connector.ts"
/** @since 0.1.0 */
export * as PgConnector from "./PgConnector.ts"
/** @since 0.1.0 */
export * as PgPool from "./PgPool.ts"
/** @since 0.1.0 */
export * as PgSqlClient from "./PgSqlClient.ts"
/** @since 0.1.0 */
export * as Pool from "./Pool.ts"
/** @since 0.1.0 */
export * as PoolError from "./PoolError.ts"
/** @since 0.1.0 */
export * as PoolStats from "./PoolStats.ts"
