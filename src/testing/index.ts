/**
 * Test doubles: in-memory connections and a mock PostgreSQL pool for `TestClock` tests.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as MockConnector from "./MockConnector.ts"
/** @since 0.1.0 */
export * as PgPoolTest from "./PgPoolTest.ts"
