/**
 * What a statement may do to its session, read from its text. The result is cached per SQL string, since prepared
 * statements repeat, so the per-statement cost is one Map lookup.
 *
 * @internal
 */

/** The statement opens a transaction block. */
export const BEGIN = 1
/** The statement ends the transaction block (COMMIT, ROLLBACK, END, ABORT, PREPARE TRANSACTION). */
export const END = 2
/** The statement may leave session state behind for the next borrower. */
export const DIRTY = 4
/** The statement creates an SQL-level prepared statement (PREPARE name AS ...). */
export const PREPARE = 8

const begin = /^\s*(?:begin|start\s+transaction)\b/i
const end = /^\s*(?:commit|end|abort|prepare\s+transaction)\b|^\s*rollback\b(?!\s+(?:work\s+|transaction\s+)?to\b)/i
const prepare = /^\s*prepare\b(?!\s+transaction\b)/i
// Statements whose effect outlives the transaction: SET / RESET (SET ROLE, SET SESSION AUTHORIZATION, search_path),
// LISTEN, cursors (DECLARE ... WITH HOLD), DISCARD, LOAD, DO blocks and procedures (which may do any of it),
// set_config(..., false), session-level advisory locks, and temporary objects.
const dirtyStart = /^\s*(?:set|reset|listen|declare|discard|load|do|call|prepare)\b/i
const dirtyAnywhere = /set_config\s*\(|pg_(?:try_)?advisory_lock|\btemp(?:orary)?\b/i

const cache = new Map<string, number>()
const cacheLimit = 2048

const compute = (sql: string): number => {
  let flags = 0
  if (begin.test(sql)) flags |= BEGIN
  else if (end.test(sql)) flags |= END
  if (dirtyStart.test(sql) || dirtyAnywhere.test(sql)) flags |= DIRTY
  if (prepare.test(sql)) flags |= PREPARE
  return flags
}

export const classify = (sql: string): number => {
  let flags = cache.get(sql)
  if (flags === undefined) {
    flags = compute(sql)
    if (cache.size >= cacheLimit) cache.clear()
    cache.set(sql, flags)
  }
  return flags
}
