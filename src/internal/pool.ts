/**
 * The pool engine. All state lives in this closure and changes only inside synchronous sections (the JS runtime
 * is single-threaded, so each section is atomic); fibers are only for waiting, connecting, resetting, closing and
 * timers. The rules are listed in `Pool.ts`.
 *
 * Invariants:
 * - An entry is in exactly one state; `all` holds every entry not CLOSED, `idle` exactly the IDLE ones.
 * - A waiter is on `waiters` until it is handed an entry (`waiter.entry`) or leaves; a waiter that leaves after
 *   being handed one gives it back, so no entry is ever stranded.
 * - `pending` counts connect loops alive; `all.size + pending <= maxSize` except transiently after a shrink.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Scheduler from "effect/Scheduler"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import type { Connector } from "../Connector.ts"
import type { AcquireOptions, Options, Pool } from "../Pool.ts"
import { PoolClosed, type PoolConfigError, PoolTimeout, TooManyRequests } from "../PoolError.ts"
import type { ClosedByReason, PoolStats } from "../PoolStats.ts"
import { makeBackoff } from "./backoff.ts"
import { resolve, sizes } from "./config.ts"
import { Heap, type HeapNode } from "./heap.ts"
import { List, type Node } from "./list.ts"
import { makeMetrics } from "./metrics.ts"

const IDLE = 0
const BORROWED = 1
const RETURNING = 2
const CHECKING = 3
const CLOSED = 4
/** Closed as soon as the shared statements still running on it finish. */
const RETIRING = 5

interface Entry<C> extends Node<Entry<C>> {
  readonly conn: C
  readonly expiresAt: number
  readonly generation: number
  state: number
  uses: number
  /** When it was last put back in circulation (opened, returned, reset or checked): the checkout check reads it. */
  returnedAt: number
  borrowedAt: number
  /** Served a lease: a check failure on a connection that never served counts as a failed connect. */
  served: boolean
  /** `failures` when its connect started (see `noteConnectFailure`). */
  readonly connectSeq: number
  invalid: boolean
  /** Shared statements running on it now (multiplex); it stays idle, and is closed or reset only once they end. */
  sharers: number
  /** Why a RETIRING entry is closed. */
  retiring: keyof ClosedByReason | undefined
  /** A shared statement dirtied it: reset once the last sharer leaves. */
  resetWhenFree: boolean
  timer: Fiber.Fiber<unknown> | undefined
  leak: Fiber.Fiber<unknown> | undefined
}

interface Waiter<C> extends Node<Waiter<C>>, HeapNode {
  resume: ((effect: Effect.Effect<Entry<C>, PoolTimeout | PoolClosed>) => void) | undefined
  entry: Entry<C> | undefined
  readonly timeoutMs: number
}

/** What one `withConnection` or `withShared` run holds, for its finalizer. */
interface Held<C> {
  entry: Entry<C> | undefined
  startedAt: number
}

/** What an acquisition can fail with. */
type AcquireError = PoolTimeout | PoolClosed | TooManyRequests

/**
 * The engine's `withShared` with a third argument that maps the acquisition's own errors, so a caller who wants other
 * error types (the `SqlClient` borrower wants `SqlError`) pays for the mapping only when an acquisition waits, not with
 * an `Effect.mapError` frame around every run. Reached through `sharedAs`, since `Pool` is an interface others may
 * implement.
 */
export const sharedAsKey: unique symbol = Symbol.for("effect-pg-pool/Pool/sharedAs")

export type SharedAs<C> = <A, E, R, E3>(
  f: (connection: C) => Effect.Effect<A, E, R>,
  options: AcquireOptions | undefined,
  onPoolError: (error: AcquireError) => E3
) => Effect.Effect<A, E | E3, R>

/** `pool`'s `withShared` with mapped acquisition errors, when `pool` is this engine's itself (not a copy). */
export const sharedAs = <C>(pool: Pool<C>): SharedAs<C> | undefined =>
  (pool as Pool<C> & { readonly [sharedAsKey]?: SharedAs<C> })[sharedAsKey]

type Counters = {
  -readonly [K in Exclude<
    keyof PoolStats,
    "poolMin" | "poolMax" | "poolSize" | "poolAvailable" | "requestsWaiting" | "connectionsPending" | "closed"
  >]: number
}

const zeroCounters = (): Counters => ({
  requestsNum: 0,
  requestsQueued: 0,
  requestsWaitMs: 0,
  requestsErrors: 0,
  requestsCancelled: 0,
  acquireMs: 0,
  usageMs: 0,
  returnsBad: 0,
  connectionsNum: 0,
  connectionsMs: 0,
  connectionsErrors: 0,
  connectionsLost: 0
})

const zeroClosed = (): { -readonly [K in keyof ClosedByReason]: number } => ({
  broken: 0,
  checkFailed: 0,
  interrupted: 0,
  lifetime: 0,
  maxUses: 0,
  idle: 0,
  drained: 0,
  surplus: 0,
  resetFailed: 0,
  poolClosed: 0
})

/** Hand-offs one scheduled batch wakes at most (see `flushHandOffs`). */
const HANDOFF_BATCH = 1024

const interruptedOrDied = (exit: Exit.Exit<unknown, unknown>): boolean =>
  Exit.isFailure(exit) && (Cause.hasInterrupts(exit.cause) || Cause.hasDies(exit.cause))

export const make = Effect.fnUntraced(function*<C, E = unknown>(
  connector: Connector<C, E>,
  options: Options<C, E> = {}
): Effect.fn.Return<Pool<C>, PoolConfigError | PoolTimeout, Scope.Scope> {
  const cfg = yield* resolve(options)
  const context = yield* Effect.context<never>()
  const clock = yield* Clock.Clock
  const random = yield* Random.Random
  const runFork = Effect.runForkWith(context)
  const dispatcher = Context.get(context, Scheduler.Scheduler).makeDispatcher()
  const backoff = yield* makeBackoff(cfg.reconnectSchedule)
  const metrics = makeMetrics(cfg.name, context)
  const checkRun = cfg.checkRun ?? connector.ping
  const reset = connector.reset
  const needsReset = connector.needsReset
  const onReturn = connector.onReturn

  let minSize = cfg.minSize
  let maxSize = cfg.maxSize
  const all = new Set<Entry<C>>()
  const byConn = new Map<C, Entry<C>>()
  const idle = new List<Entry<C>>()
  const waiters = new List<Waiter<C>>()
  // The same waiters by deadline: one reaper fiber times them out, instead of a timer per waiter.
  const deadlines = new Heap<Waiter<C>>()
  let reaper: Fiber.Fiber<unknown> | undefined
  let reaperAt = Infinity
  const readyWaiters = new Set<Deferred.Deferred<void, PoolClosed>>()
  const fibers = new Set<Fiber.Fiber<unknown, unknown>>()
  let pending = 0
  let returning = 0
  let generation = 0
  let closing = false
  let closeDone: Deferred.Deferred<void> | undefined
  let allReturned: Deferred.Deferred<void> | undefined
  // Lowest idle count seen since the shrinker last ran: that many connections were never needed in the window.
  let idleLow = 0
  // Reconnect state, shared by every connect loop so that a sick server sees one probe at a time.
  let streak = 0
  let nextAttemptAt = 0
  let outageStart = -1
  let outageReported = false
  let lastConnectError: unknown = undefined
  // Failures that stepped the backoff. A connect (or first check) that started before the latest of them was in
  // flight alongside it and failed for the same reason, so it does not step the backoff again.
  let failures = 0
  // A connection served or passed a check since the backoff last stepped. A bare successful connect does not
  // count: connections that fail their first check would otherwise restart the backoff every time. Nor does one
  // opened before that step (see `prove`).
  let proven = true
  // Only a connection opened since the backoff last stepped proves that connects work again: older ones serving
  // say nothing about new connects (server slots exhausted, pg_hba or the password changed), and letting them
  // restart the backoff would keep the pool probing at the schedule's first delay for as long as they serve.
  const prove = (entry: Entry<C>): void => {
    if (entry.connectSeq === failures) proven = true
  }
  const counters = zeroCounters()
  let base = zeroCounters()
  const closed = zeroClosed()
  let closedBase = zeroClosed()

  const now = () => clock.currentTimeMillisUnsafe()

  const spawn = (effect: Effect.Effect<unknown>): Fiber.Fiber<unknown> => {
    const fiber = runFork(effect)
    fibers.add(fiber)
    fiber.addObserver(() => fibers.delete(fiber))
    return fiber
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Stats
  // ---------------------------------------------------------------------------------------------------------------

  /** Counters since the last `popStats`, or since the start when `sinceStart` (the metrics export only grows). */
  const snapshot = (sinceStart = false): PoolStats => {
    const out = { ...counters }
    const closedNow = { ...closed }
    if (!sinceStart) {
      for (const key in out) out[key as keyof Counters] -= base[key as keyof Counters]
      for (const key in closedNow) closedNow[key as keyof ClosedByReason] -= closedBase[key as keyof ClosedByReason]
    }
    return {
      poolMin: minSize,
      poolMax: maxSize,
      poolSize: all.size + pending,
      poolAvailable: idle.length,
      requestsWaiting: waiters.length,
      connectionsPending: pending,
      ...out,
      closed: closedNow
    }
  }

  const timeoutError = (timeoutMs: number) =>
    new PoolTimeout({
      pool: cfg.name,
      timeoutMs,
      stats: snapshot(),
      ...(lastConnectError === undefined || streak === 0 ? {} : { lastConnectError })
    })

  // ---------------------------------------------------------------------------------------------------------------
  // State changes: each has one owner below.
  // ---------------------------------------------------------------------------------------------------------------

  const setState = (entry: Entry<C>, state: number): void => {
    if (entry.state === RETURNING) returning--
    if (state === RETURNING) returning++
    entry.state = state
  }

  const closeEntry = (entry: Entry<C>, reason: keyof ClosedByReason, underUsers = false): void => {
    if (entry.state === CLOSED) return
    if (entry.sharers > 0 && !underUsers) {
      // Shared statements are still running on it: out of circulation now, closed when the last one ends.
      idle.remove(entry)
      if (entry.state !== RETIRING) entry.retiring = reason
      setState(entry, RETIRING)
      return
    }
    setState(entry, CLOSED)
    idle.remove(entry)
    all.delete(entry)
    byConn.delete(entry.conn)
    closed[reason]++
    if (entry.timer !== undefined) entry.timer.interruptUnsafe()
    if (entry.leak !== undefined) entry.leak.interruptUnsafe()
    spawn(Effect.uninterruptible(connector.close(entry.conn)))
    if (closing) {
      if (all.size === 0 && allReturned !== undefined) Deferred.doneUnsafe(allReturned, Effect.void)
    } else {
      pump()
    }
  }

  /** Why an entry that is not in use must not be reused, if it must not. */
  const expiredReason = (entry: Entry<C>, t: number): keyof ClosedByReason | undefined => {
    if (closing) return "poolClosed"
    if (entry.generation < generation) return "drained"
    if (entry.expiresAt <= t) return "lifetime"
    if (entry.uses >= cfg.maxUses) return "maxUses"
    if (all.size + pending > maxSize) return "surplus"
    return undefined
  }

  /** Puts a usable entry back into circulation: to the oldest waiter, else idle. */
  const put = (entry: Entry<C>, t: number): void => {
    const reason = expiredReason(entry, t)
    if (reason !== undefined) return closeEntry(entry, reason)
    // Every caller has just seen the connection work (used, reset, checked or opened), handed-off ones included: a
    // connection passed from one user to the next was never idle and needs no checkout check.
    entry.returnedAt = t
    // An exclusive user may have taken it under `multiplex` shared statements: with no room for a shared waiter it
    // stays idle until one of them ends (`unshare` passes it on then), so no waiter ever pushes it past the bound.
    const waiter = entry.sharers < cfg.multiplex ? takeWaiter() : undefined
    if (waiter !== undefined) {
      setState(entry, BORROWED)
      waiter.entry = entry
      handOff(waiter)
      return
    }
    if (cfg.nullPool) return closeEntry(entry, "surplus")
    setState(entry, IDLE)
    idle.push(entry)
  }

  // Hand-offs wake their waiters in one scheduled batch, as effect's Semaphore does, not inside the release that
  // freed the connection: a waiter woken inline writes its statement (a syscall that wakes a server process) in the
  // middle of the loop reading the other connections' results. Batched, the results are read first and the next
  // statements go out together. Hand-offs made while a batch runs (the woken waiter finished at once and passed its
  // connection on, or a shared acquisition passed on a connection with room left) join it, up to a bound: past it
  // the rest wait for the next turn, so a chain of waiters that never wait on I/O cannot starve the event loop.
  let handOffs: Array<Waiter<C>> = []
  let handOffScheduled = false
  const flushHandOffs = () => {
    const batch = handOffs
    let i = 0
    for (; i < batch.length && i < HANDOFF_BATCH; i++) {
      const waiter = batch[i]!
      // `entry` is cleared when the waiter was interrupted meanwhile (cancelWaiter passed the connection on).
      if (waiter.entry !== undefined) waiter.resume!(Effect.succeed(waiter.entry))
    }
    handOffs = i < batch.length ? batch.slice(i) : []
    if (handOffs.length > 0) dispatcher.scheduleTask(flushHandOffs, 0)
    else handOffScheduled = false
  }
  const handOff = (waiter: Waiter<C>): void => {
    handOffs.push(waiter)
    if (handOffScheduled) return
    handOffScheduled = true
    dispatcher.scheduleTask(flushHandOffs, 0)
  }

  /** Takes the oldest usable idle entry, closing expired ones on the way. */
  const takeIdle = (t: number): Entry<C> | undefined => {
    let entry: Entry<C> | undefined
    while ((entry = idle.head) !== undefined) {
      idle.remove(entry)
      if (entry.expiresAt <= t) {
        closeEntry(entry, "lifetime")
        continue
      }
      if (connector.isBroken(entry.conn)) {
        counters.connectionsLost++
        closeEntry(entry, "broken")
        continue
      }
      if (idle.length < idleLow) idleLow = idle.length
      setState(entry, BORROWED)
      return entry
    }
    return undefined
  }

  const lend = (entry: Entry<C>, t: number, borrower: Fiber.Fiber<unknown, unknown> | undefined): void => {
    entry.uses++
    entry.borrowedAt = t
    if (cfg.leakThresholdMs !== Infinity) entry.leak = spawn(leakWarning(entry, borrowerOf(borrower)))
  }

  const release = (entry: Entry<C>, exit: Exit.Exit<unknown, unknown>): void => {
    if (entry.state !== BORROWED) return
    if (onReturn !== undefined) onReturn(entry.conn)
    const t = now()
    const used = t - entry.borrowedAt
    counters.usageMs += used
    metrics.usage(used)
    if (entry.leak !== undefined) {
      entry.leak.interruptUnsafe()
      entry.leak = undefined
    }
    if (entry.invalid || connector.isBroken(entry.conn)) {
      counters.returnsBad++
      return closeEntry(entry, "broken")
    }
    // A statement may still be running on a connection whose user was interrupted or died.
    if (interruptedOrDied(exit)) return closeEntry(entry, "interrupted")
    entry.served = true
    prove(entry)
    if (reset !== undefined && !closing && (needsReset === undefined || needsReset(entry.conn))) {
      setState(entry, RETURNING)
      spawn(resetThenPut(entry, reset))
      return
    }
    put(entry, t)
  }

  const resetThenPut = (entry: Entry<C>, run: (conn: C) => Effect.Effect<void, E>) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.exit(restore(run(entry.conn))), (exit) =>
        Effect.sync(() => {
          if (entry.state !== RETURNING) return
          if (Exit.isSuccess(exit) || closing) put(entry, now())
          else closeEntry(entry, "resetFailed")
        }))
    )

  const addEntry = (conn: C, t: number, connectSeq: number): void => {
    if (closing) {
      closed.poolClosed++
      spawn(Effect.uninterruptible(connector.close(conn)))
      return
    }
    const lifetime = cfg.maxLifetimeMs === Infinity ? Infinity : cfg.maxLifetimeMs * (1 - 0.05 * random.nextDoubleUnsafe())
    const entry: Entry<C> = {
      prev: undefined,
      next: undefined,
      list: undefined,
      conn,
      expiresAt: t + lifetime,
      generation,
      state: BORROWED,
      uses: 0,
      returnedAt: t,
      borrowedAt: t,
      served: false,
      connectSeq,
      invalid: false,
      sharers: 0,
      retiring: undefined,
      resetWhenFree: false,
      timer: undefined,
      leak: undefined
    }
    all.add(entry)
    byConn.set(conn, entry)
    if (lifetime !== Infinity) entry.timer = spawn(expireLater(entry, lifetime))
    put(entry, t)
    if (all.size >= minSize && readyWaiters.size > 0) {
      for (const ready of readyWaiters) Deferred.doneUnsafe(ready, Effect.void)
      readyWaiters.clear()
    }
  }

  const expireLater = (entry: Entry<C>, lifetime: number) =>
    Effect.andThen(
      Effect.sleep(lifetime),
      Effect.sync(() => {
        entry.timer = undefined
        // A borrowed entry is closed on return, a checking or resetting one when it comes back.
        if (entry.state === IDLE) closeEntry(entry, "lifetime")
      })
    )

  /** Who borrowed: the fiber and the span it acquired in (a JS stack here would only show the runtime). */
  const borrowerOf = (fiber: Fiber.Fiber<unknown, unknown> | undefined): string => {
    if (fiber === undefined) return "an unknown fiber"
    const span = Context.getOption(fiber.context, Tracer.ParentSpan)
    return Option.isSome(span) && span.value._tag === "Span"
      ? `fiber #${fiber.id} in span "${span.value.name}"`
      : `fiber #${fiber.id} (no span: wrap the caller in Effect.withSpan to see where)`
  }

  const leakWarning = (entry: Entry<C>, borrower: string) =>
    Effect.andThen(
      Effect.sleep(cfg.leakThresholdMs),
      Effect.suspend(() =>
        Effect.logWarning(
          `pool "${cfg.name}": a connection has been held for more than ${cfg.leakThresholdMs} ms ` +
            `(possible leak), acquired by ${borrower}`
        ).pipe(Effect.annotateLogs({ pool: cfg.name, heldMs: now() - entry.borrowedAt }))
      )
    )

  // ---------------------------------------------------------------------------------------------------------------
  // Growth and reconnects
  // ---------------------------------------------------------------------------------------------------------------

  /** How many more connects the pool wants, counting `inFlight` connect loops as already under way. */
  const wanted = (inFlight: number): number =>
    Math.max(minSize - all.size - inFlight, waiters.length - inFlight - returning)

  /** Starts the connects that demand and `minSize` call for, within `numWorkers` and `maxSize`. */
  const pump = (): void => {
    if (closing) return
    // `wanted` and the limit are re-read on every turn: a connect that completes (or fails) synchronously inside
    // `spawn` changes both.
    while (wanted(pending) > 0 && pending < (streak > 0 ? 1 : cfg.numWorkers) && all.size + pending < maxSize) {
      pending++
      spawn(connectLoop)
    }
  }

  const noteConnectFailure = (error: unknown, t: number, seq: number) =>
    Effect.suspend(() => {
      lastConnectError = error
      streak++
      if (outageStart < 0) outageStart = t
      if (!outageReported && t - outageStart >= cfg.reconnectTimeoutMs) {
        outageReported = true
        const info = { pool: cfg.name, attempts: streak, elapsedMs: t - outageStart, lastError: error }
        if (cfg.onReconnectFailed !== undefined) {
          spawn(Effect.catchCause(cfg.onReconnectFailed(info), (cause) => Effect.logError(cause)))
        }
        spawn(
          Effect.logError(`pool "${cfg.name}": connects have failed for ${info.elapsedMs} ms; still retrying`, error)
        )
      }
      if (seq !== failures) return Effect.void
      failures++
      const restart = proven ? backoff.reset : Effect.void
      proven = false
      return Effect.andThen(
        restart,
        Effect.map(backoff.next, (delay) => {
          nextAttemptAt = t + delay
        })
      )
    })

  const noteConnectSuccess = Effect.sync(() => {
    streak = 0
    nextAttemptAt = 0
    outageStart = -1
    outageReported = false
  })

  /** Opens one connection and runs `configure`; the connection is closed if configure fails or is interrupted. */
  const open: Effect.Effect<C, unknown> = Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(restore(connector.connect), (conn) => {
      if (cfg.configure === undefined) return Effect.succeed(conn)
      return Effect.as(
        Effect.onError(restore(cfg.configure(conn)), () => connector.close(conn)),
        conn
      )
    })
  )

  /**
   * One connect loop: waits out the backoff, connects, and on failure retries while the pool still wants a
   * connection and no other loop is probing.
   */
  const connectLoop: Effect.Effect<void> = Effect.suspend(() => {
    let counted = true
    const leave = () => {
      if (counted) {
        counted = false
        pending--
      }
    }
    const attempt: Effect.Effect<boolean> = Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.exit(restore(open)), (exit) => {
        const t = now()
        if (Exit.isSuccess(exit)) {
          leave()
          // Counted before `addEntry`, which may wake `wait` callers: their stats must include this connect.
          counters.connectionsNum++
          counters.connectionsMs += t - started
          return Effect.as(
            Effect.andThen(noteConnectSuccess, Effect.sync(() => addEntry(exit.value, t, seq))),
            true
          ).pipe(Effect.tap(() => Effect.sync(() => metrics.connect(now() - started))))
        }
        if (Cause.hasInterruptsOnly(exit.cause)) return Effect.succeed(true)
        counters.connectionsErrors++
        return Effect.as(noteConnectFailure(Cause.squash(exit.cause), t, seq), false)
      })
    )
    let started = 0
    let seq = 0
    const loop: Effect.Effect<void> = Effect.suspend(() => {
      const delay = nextAttemptAt - now()
      // A failure noted while this loop slept moves `nextAttemptAt` on: look again after waking.
      if (delay > 0) return Effect.andThen(Effect.sleep(delay), loop)
      started = now()
      seq = failures
      return Effect.flatMap(attempt, (done) => {
        if (done) {
          if (counted === false) pump()
          return Effect.void
        }
        // Only one loop probes a failing server; the others leave and pump restarts them on success.
        if (closing || pending > 1 || wanted(pending - 1) <= 0) {
          leave()
          pump()
          return Effect.void
        }
        return loop
      })
    })
    return Effect.ensuring(loop, Effect.sync(leave))
  })

  // ---------------------------------------------------------------------------------------------------------------
  // Acquisition
  // ---------------------------------------------------------------------------------------------------------------

  type Restore = <A, E2, R>(effect: Effect.Effect<A, E2, R>) => Effect.Effect<A, E2, R>

  const cancelWaiter = (waiter: Waiter<C>): void => {
    if (waiters.remove(waiter)) {
      deadlines.remove(waiter)
      return
    }
    const entry = waiter.entry
    if (entry !== undefined) {
      // Handed a connection as it left: pass it on, it was never used.
      waiter.entry = undefined
      put(entry, now())
    }
  }

  const waitForEntry = (timeoutMs: number, deadline: number): Effect.Effect<Entry<C>, PoolTimeout | PoolClosed> =>
    Effect.callback<Entry<C>, PoolTimeout | PoolClosed>((resume) => {
      const waiter: Waiter<C> = {
        prev: undefined,
        next: undefined,
        list: undefined,
        resume,
        entry: undefined,
        deadline,
        heapIndex: -1,
        timeoutMs
      }
      // Queue only once `resume` exists: the pump below may complete a connect synchronously and hand it over.
      waiters.push(waiter)
      deadlines.push(waiter)
      armReaper(deadline)
      pump()
      // Runs only if the waiter is interrupted while still waiting.
      return Effect.sync(() => cancelWaiter(waiter))
    })

  /** Takes the oldest waiter off both queues. */
  const takeWaiter = (): Waiter<C> | undefined => {
    const waiter = waiters.shift()
    if (waiter !== undefined) deadlines.remove(waiter)
    return waiter
  }

  /** Makes sure the reaper wakes by `deadline`; with one pool-wide timeout it is started once per busy period. */
  const armReaper = (deadline: number): void => {
    if (deadline >= reaperAt) return
    if (reaper !== undefined) reaper.interruptUnsafe()
    reaperAt = deadline
    reaper = spawn(reapAt(deadline))
  }

  const reapAt = (deadline: number): Effect.Effect<void> =>
    Effect.andThen(
      Effect.sleep(Math.max(0, deadline - now())),
      Effect.suspend(() => {
        const t = now()
        let waiter: Waiter<C> | undefined
        while ((waiter = deadlines.peek()) !== undefined && waiter.deadline <= t) {
          deadlines.remove(waiter)
          waiters.remove(waiter)
          waiter.resume!(Effect.fail(timeoutError(waiter.timeoutMs)))
        }
        const next = deadlines.peek()
        if (next === undefined) {
          reaperAt = Infinity
          reaper = undefined
          return Effect.void
        }
        reaperAt = next.deadline
        return reapAt(next.deadline)
      })
    )

  /**
   * `Effect.timeout` that does not wait for `effect` to wind down when cut off (by the timeout or an interruption):
   * the acquisition deadline is the caller's, and an interrupted statement can take the driver seconds to give up
   * (its CancelRequest cannot get through a network partition). The caller closes the connection right after, and
   * `effect` is interrupted in the background.
   */
  const detachedTimeout = <A, E2>(effect: Effect.Effect<A, E2>, ms: number): Effect.Effect<A, E2 | Cause.TimeoutError> =>
    Effect.suspend(() => {
      const fiber = spawn(Effect.exit(effect)) as Fiber.Fiber<Exit.Exit<A, E2>>
      return Effect.onExit(
        Effect.timeout(Effect.flatMap(Fiber.join(fiber), (exit) => exit), ms),
        (exit) => Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => fiber.interruptUnsafe())
      )
    })

  /** Runs the checkout check within the deadline; false when the entry failed it (and was closed). */
  const checkOut = (restore: Restore, entry: Entry<C>, deadline: number): Effect.Effect<boolean> => {
    setState(entry, CHECKING)
    return Effect.flatMap(
      Effect.exit(restore(detachedTimeout(checkRun(entry.conn), Math.max(0, deadline - now())))),
      (exit) => {
        if (entry.state !== CHECKING) return Effect.succeed(false)
        if (Exit.isSuccess(exit)) {
          setState(entry, BORROWED)
          prove(entry)
          return Effect.succeed(true)
        }
        if (Cause.hasInterruptsOnly(exit.cause)) {
          // Interrupted before it got a connection: a cancelled acquisition. The ping may still be in flight.
          counters.requestsCancelled++
          closeEntry(entry, "interrupted")
          return Effect.interrupt
        }
        const error = Cause.squash(exit.cause)
        counters.connectionsLost++
        // A connection that fails its first check is as good as a failed connect: back off, and do so before
        // closing it, since closing starts its replacement. A ping cut off by the caller's own deadline says
        // nothing about the server, so it does not step the backoff.
        const note = entry.served || Cause.isTimeoutError(error)
          ? Effect.void
          : noteConnectFailure(error, now(), entry.connectSeq)
        return Effect.as(Effect.andThen(note, Effect.sync(() => closeEntry(entry, "checkFailed"))), false)
      }
    )
  }

  /**
   * One acquisition that could not take an idle connection synchronously: queue, wait, check. Once every connection
   * is busy every acquisition comes here, so its state is one object with shared methods (a generator, or a closure
   * per step, cost a microsecond per acquisition with hundreds waiting).
   */
  class Acquisition {
    readonly restore: Restore
    readonly timeoutMs: number
    readonly takeFromIdle: boolean
    readonly borrower: Fiber.Fiber<unknown, unknown> | undefined
    readonly start: number
    readonly deadline: number
    waitStart = 0
    constructor(
      restore: Restore,
      timeoutMs: number,
      takeFromIdle: boolean,
      borrower: Fiber.Fiber<unknown, unknown> | undefined,
      start: number
    ) {
      this.restore = restore
      this.timeoutMs = timeoutMs
      this.takeFromIdle = takeFromIdle
      this.borrower = borrower
      this.start = start
      this.deadline = start + timeoutMs
    }

    attempt(queued: boolean): Effect.Effect<Entry<C>, PoolTimeout | PoolClosed | TooManyRequests> {
      const entry = this.takeFromIdle && (waiters.length === 0 || queued) ? takeIdle(now()) : undefined
      if (entry !== undefined) return this.got(entry)
      if (cfg.maxWaiting > 0 && waiters.length >= cfg.maxWaiting) {
        counters.requestsErrors++
        return Effect.fail(new TooManyRequests({ pool: cfg.name, maxWaiting: cfg.maxWaiting }))
      }
      if (!queued) counters.requestsQueued++
      this.waitStart = now()
      // `this` is the handler pair: `onSuccess` and `onFailure` are bound per acquisition.
      return Effect.matchCauseEffect(this.restore(waitForEntry(this.timeoutMs, this.deadline)), this)
    }

    readonly onFailure = (cause: Cause.Cause<PoolTimeout | PoolClosed>): Effect.Effect<never, PoolTimeout | PoolClosed> => {
      this.waited()
      if (Cause.hasInterruptsOnly(cause)) counters.requestsCancelled++
      else counters.requestsErrors++
      return Effect.failCause(cause)
    }

    readonly onSuccess = (entry: Entry<C>): Effect.Effect<Entry<C>, PoolTimeout | PoolClosed | TooManyRequests> => {
      this.waited()
      return this.got(entry)
    }

    waited(): void {
      const ms = now() - this.waitStart
      counters.requestsWaitMs += ms
      metrics.wait(ms)
    }

    got(entry: Entry<C>): Effect.Effect<Entry<C>, PoolTimeout | PoolClosed | TooManyRequests> {
      if (now() - entry.returnedAt < cfg.checkIdleMs) return Effect.succeed(this.lent(entry))
      return Effect.flatMap(checkOut(this.restore, entry, this.deadline), (ok) => {
        if (ok) return Effect.succeed(this.lent(entry))
        if (now() >= this.deadline) {
          counters.requestsErrors++
          return Effect.fail(timeoutError(this.timeoutMs))
        }
        return this.attempt(true)
      })
    }

    lent(entry: Entry<C>): Entry<C> {
      const t = now()
      lend(entry, t, this.borrower)
      counters.acquireMs += t - this.start
      return entry
    }
  }

  const slowAcquire = (
    restore: Restore,
    timeoutMs: number,
    takeFromIdle = true,
    borrower?: Fiber.Fiber<unknown, unknown>
  ): Effect.Effect<Entry<C>, PoolTimeout | PoolClosed | TooManyRequests> =>
    Effect.suspend(() => {
      const start = now()
      counters.requestsNum++
      if (closing) {
        counters.requestsErrors++
        return Effect.fail(new PoolClosed({ pool: cfg.name }))
      }
      if (timeoutMs <= 0) {
        counters.requestsErrors++
        return Effect.fail(timeoutError(timeoutMs))
      }
      return new Acquisition(restore, timeoutMs, takeFromIdle, borrower, start).attempt(false)
    })

  const timeoutOf = (options: AcquireOptions | undefined): number =>
    options?.timeout === undefined ? cfg.timeoutMs : Duration.toMillis(Duration.fromInputUnsafe(options.timeout))

  /** The hot path: an idle connection that needs no check is a synchronous take. */
  const takeFast = (timeoutMs: number, borrower?: Fiber.Fiber<unknown, unknown>): Entry<C> | undefined => {
    if (closing || waiters.length > 0 || timeoutMs <= 0) return undefined
    const entry = idle.head
    if (entry === undefined) return undefined
    const t = now()
    if (entry.expiresAt <= t || t - entry.returnedAt >= cfg.checkIdleMs || connector.isBroken(entry.conn)) return undefined
    idle.remove(entry)
    if (idle.length < idleLow) idleLow = idle.length
    setState(entry, BORROWED)
    counters.requestsNum++
    lend(entry, t, borrower)
    return entry
  }

  const acquire = (restore: Restore, timeoutMs: number): Effect.Effect<Entry<C>, PoolTimeout | PoolClosed | TooManyRequests> => {
    const entry = takeFast(timeoutMs)
    return entry !== undefined ? Effect.succeed(entry) : slowAcquire(restore, timeoutMs)
  }

  // Finalizers release synchronously when called and return a constant: one Effect op less per lease.
  const releaseWith = (entry: Entry<C>) => (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
    release(entry, exit)
    return Effect.void
  }

  const lease = (scope: Scope.Scope, entry: Entry<C>): Effect.Effect<C> =>
    Effect.as(Scope.addFinalizerExit(scope, releaseWith(entry)), entry.conn)

  const connection = (options?: AcquireOptions): Effect.Effect<C, PoolTimeout | PoolClosed | TooManyRequests, Scope.Scope> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.withFiber((fiber) => {
        const scope = Context.getUnsafe(fiber.context, Scope.Scope)
        const timeoutMs = timeoutOf(options)
        const entry = takeFast(timeoutMs, fiber)
        return entry !== undefined
          ? lease(scope, entry)
          : Effect.flatMap(slowAcquire(restore, timeoutMs, true, fiber), (entry) => lease(scope, entry))
      })
    )

  /** `f(conn)`, a throw in it a defect: `Effect.suspend` without the extra step. */
  const run = <A, E2, R>(f: (connection: C) => Effect.Effect<A, E2, R>, conn: C): Effect.Effect<A, E2, R> => {
    try {
      return f(conn)
    } catch (defect) {
      return Effect.die(defect)
    }
  }

  /**
   * Runs `use` with the finalizer that gives its connection back already on the fiber's stack: `use` records in
   * `held` what it took (synchronously, or after an uninterruptible wait) and `end` gets it on exit. No interruption
   * can fall between a take and that finalizer, so the fast path needs no uninterruptible region around the body.
   * The finalizer returns `undefined`, not `Effect.void`: `onExitPrimitive` then hands the exit on as it is, where a
   * returned effect costs a `flatMap` per run (~100-270 ns of a ~3 µs statement on an instant driver).
   */
  const holding = <A, E2, R>(
    use: (held: Held<C>, fiber: Fiber.Fiber<unknown, unknown>) => Effect.Effect<A, E2, R>,
    end: (entry: Entry<C>, exit: Exit.Exit<unknown, unknown>, startedAt: number) => void
  ): Effect.Effect<A, E2, R> =>
    Effect.suspend(() => {
      const held: Held<C> = { entry: undefined, startedAt: 0 }
      return Effect.onExitPrimitive(Effect.withFiber((fiber) => use(held, fiber)), (exit) => {
        if (held.entry !== undefined) end(held.entry, exit, held.startedAt)
        return undefined
      })
    })

  /** The acquisition with its errors mapped by `onPoolError` (as they are without one). */
  const mapped = <A, E3>(
    acquisition: Effect.Effect<A, AcquireError>,
    onPoolError: ((error: AcquireError) => E3) | undefined
  ): Effect.Effect<A, E3> =>
    // Without a mapper `E3` is `AcquireError` (see the callers' defaults): the cast only restates that.
    onPoolError === undefined ? acquisition as Effect.Effect<A, never> : Effect.mapError(acquisition, onPoolError)

  const withConnection = <A, E2, R, E3 = AcquireError>(
    f: (connection: C) => Effect.Effect<A, E2, R>,
    options?: AcquireOptions,
    onPoolError?: (error: AcquireError) => E3
  ): Effect.Effect<A, E2 | E3, R> =>
    holding((held, fiber) => {
      const timeoutMs = timeoutOf(options)
      const entry = held.entry = takeFast(timeoutMs, fiber)
      if (entry !== undefined) return run(f, entry.conn)
      return Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(mapped(slowAcquire(restore, timeoutMs, true, fiber), onPoolError), (taken) => {
          held.entry = taken
          return restore(run(f, taken.conn))
        })
      )
    }, release)

  /** The end of one shared statement. */
  const unshare = (entry: Entry<C>, startedAt: number): void => {
    entry.sharers--
    const t = now()
    counters.usageMs += t - startedAt
    metrics.usage(t - startedAt)
    if (entry.state === RETIRING) {
      if (entry.sharers === 0) closeEntry(entry, entry.retiring ?? "poolClosed")
      return
    }
    // Borrowed exclusively or being checked meanwhile: that path owns it now.
    if (entry.state !== IDLE && entry.state !== RETURNING) return
    entry.returnedAt = t
    if (connector.isBroken(entry.conn)) {
      counters.returnsBad++
      return closeEntry(entry, "broken")
    }
    entry.served = true
    prove(entry)
    if (entry.state === RETURNING) {
      if (entry.resetWhenFree && entry.sharers === 0 && reset !== undefined) {
        entry.resetWhenFree = false
        spawn(resetThenPut(entry, reset))
      }
      return
    }
    const reason = expiredReason(entry, t)
    if (reason !== undefined) return closeEntry(entry, reason)
    if (reset !== undefined && needsReset !== undefined && needsReset(entry.conn)) {
      // A shared statement changed the session: no new sharer may see it; reset once the others are done.
      idle.remove(entry)
      setState(entry, RETURNING)
      if (entry.sharers === 0) spawn(resetThenPut(entry, reset))
      else entry.resetWhenFree = true
      return
    }
    // A slot freed up on a connection someone is waiting for (every connection was full).
    if (waiters.length > 0) {
      idle.remove(entry)
      put(entry, t)
    }
  }

  /** Puts a connection just taken by a shared acquisition back in circulation, passing on what it can still carry. */
  const joinShared = (entry: Entry<C>, t: number): void => {
    if (entry.sharers < cfg.multiplex) return put(entry, t)
    setState(entry, IDLE)
    entry.returnedAt = t
    idle.push(entry)
  }

  /**
   * The first idle connection a shared statement may join now, if any. Statements are packed onto the first
   * connections rather than spread: the driver writes the statements queued on one connection in the same tick as
   * one batch, so packing means fewer writes and round trips, and connections nobody needs stay idle to be shrunk.
   */
  const shareable = (t: number): Entry<C> | undefined => {
    for (let entry = idle.head; entry !== undefined; entry = entry.next) {
      if (
        entry.sharers < cfg.multiplex && entry.expiresAt > t && t - entry.returnedAt < cfg.checkIdleMs &&
        !connector.isBroken(entry.conn)
      ) return entry
    }
    return undefined
  }

  /**
   * Multiplex: runs `f` on an idle connection that other shared statements may be using at the same time (up to
   * `multiplex` of them). The connection stays idle; exclusive acquisitions can still take it, and get it once the
   * statements already on it are done (the driver pipelines them). Without `multiplex` it is `withConnection`.
   */
  const withShared = <A, E2, R, E3 = AcquireError>(
    f: (connection: C) => Effect.Effect<A, E2, R>,
    options?: AcquireOptions,
    onPoolError?: (error: AcquireError) => E3
  ): Effect.Effect<A, E2 | E3, R> => {
    if (cfg.multiplex <= 1) return withConnection(f, options, onPoolError)
    return holding((held) => {
      const t = now()
      const joined = !closing && waiters.length === 0 ? shareable(t) : undefined
      if (joined !== undefined) {
        joined.sharers++
        joined.uses++
        counters.requestsNum++
        held.entry = joined
        held.startedAt = t
        return run(f, joined.conn)
      }
      // Nothing to join: take one like any acquisition (in line, checks included) and share it. When every idle
      // connection is full, wait for a slot instead of taking one of them.
      const full = idle.length > 0 && waiters.length === 0 && !closing
      const timeoutMs = timeoutOf(options)
      return Effect.uninterruptibleMask((restore) => {
        const acquisition = full ? slowAcquire(restore, timeoutMs, false) : acquire(restore, timeoutMs)
        return Effect.flatMap(mapped(acquisition, onPoolError), (taken) => {
          if (taken.leak !== undefined) {
            taken.leak.interruptUnsafe()
            taken.leak = undefined
          }
          taken.sharers++
          taken.served = true
          held.startedAt = now()
          joinShared(taken, held.startedAt)
          held.entry = taken
          return restore(run(f, taken.conn))
        })
      })
    }, (entry, _, startedAt) => unshare(entry, startedAt))
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Maintenance
  // ---------------------------------------------------------------------------------------------------------------

  const shrink = (): void => {
    let surplus = Math.min(idleLow, idle.length, all.size - minSize)
    while (surplus-- > 0 && idle.head !== undefined) closeEntry(idle.head, "idle")
    idleLow = idle.length
  }

  const checkEntry = (entry: Entry<C>): Effect.Effect<void> =>
    Effect.uninterruptibleMask((restore) => {
      if (entry.state !== IDLE) return Effect.void
      idle.remove(entry)
      setState(entry, CHECKING)
      if (entry.expiresAt <= now()) return Effect.sync(() => closeEntry(entry, "lifetime"))
      return Effect.flatMap(Effect.exit(restore(Effect.timeout(checkRun(entry.conn), cfg.timeoutMs))), (exit) =>
        Effect.sync(() => {
          if (entry.state !== CHECKING) return
          if (Exit.isSuccess(exit)) return put(entry, now())
          if (Cause.hasInterruptsOnly(exit.cause)) return closeEntry(entry, "interrupted")
          counters.connectionsLost++
          closeEntry(entry, "checkFailed")
        }))
    })

  const close = (timeout?: Duration.Input): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (closeDone !== undefined) return Deferred.await(closeDone)
      const done = Deferred.makeUnsafe<void>()
      closeDone = done
      closing = true
      allReturned = Deferred.makeUnsafe<void>()
      const graceMs = timeout === undefined
        ? cfg.closeTimeoutMs
        : Math.max(0, Duration.toMillis(Duration.fromInputUnsafe(timeout)))
      let waiter: Waiter<C> | undefined
      while ((waiter = takeWaiter()) !== undefined) waiter.resume!(Effect.fail(new PoolClosed({ pool: cfg.name })))
      for (const ready of readyWaiters) Deferred.doneUnsafe(ready, Effect.fail(new PoolClosed({ pool: cfg.name })))
      readyWaiters.clear()
      for (const entry of idle.toArray()) closeEntry(entry, "poolClosed")
      if (all.size === 0) Deferred.doneUnsafe(allReturned, Effect.void)
      return Effect.gen(function*() {
        yield* Effect.timeoutOption(Deferred.await(allReturned!), graceMs)
        // Past the grace period: close the rest under their users, whose statements then fail.
        for (const entry of Array.from(all)) closeEntry(entry, "poolClosed", true)
        while (fibers.size > 0) yield* Fiber.interruptAll(Array.from(fibers))
        metrics.export(snapshot(true))
        Deferred.doneUnsafe(done, Effect.void)
      }).pipe(Effect.uninterruptible)
    })

  // ---------------------------------------------------------------------------------------------------------------
  // Start
  // ---------------------------------------------------------------------------------------------------------------

  yield* Effect.addFinalizer(() => close())
  if (!cfg.nullPool) spawn(Effect.forever(Effect.andThen(Effect.sleep(cfg.maxIdleMs), Effect.sync(shrink))))
  spawn(Effect.forever(Effect.andThen(Effect.sleep(cfg.metricsIntervalMs), Effect.sync(() => metrics.export(snapshot(true))))))
  pump()

  const pool: Pool<C> = {
    name: cfg.name,
    connection,
    withConnection,
    withShared,
    invalidate: (conn) =>
      Effect.sync(() => {
        const entry = byConn.get(conn)
        if (entry === undefined) return
        if (entry.state === IDLE) {
          // Died while in the pool (the driver said so): lost, like one found dead by a check.
          counters.connectionsLost++
          closeEntry(entry, "broken")
        } else entry.invalid = true
      }),
    stats: Effect.sync(() => snapshot()),
    popStats: Effect.sync(() => {
      const stats = snapshot()
      base = { ...counters }
      closedBase = { ...closed }
      return stats
    }),
    resize: (min, max) =>
      Effect.flatMap(sizes(min, max ?? min, { minSize }), (next) =>
        Effect.sync(() => {
          if (closing) return
          minSize = next.minSize
          maxSize = next.maxSize
          let over = all.size + pending - maxSize
          while (over-- > 0 && idle.head !== undefined) closeEntry(idle.head, "surplus")
          pump()
        })),
    check: Effect.suspend(() => Effect.forEach(idle.toArray(), checkEntry, { discard: true })),
    wait: (timeout) =>
      Effect.suspend(() => {
        if (closing) return Effect.fail(new PoolClosed({ pool: cfg.name }))
        if (all.size >= minSize) return Effect.void
        const timeoutMs = timeout === undefined ? cfg.timeoutMs : Duration.toMillis(Duration.fromInputUnsafe(timeout))
        const ready = Deferred.makeUnsafe<void, PoolClosed>()
        readyWaiters.add(ready)
        return Deferred.await(ready).pipe(
          Effect.timeoutOrElse({ duration: timeoutMs, orElse: () => Effect.fail(timeoutError(timeoutMs)) }),
          Effect.ensuring(Effect.sync(() => readyWaiters.delete(ready)))
        )
      }),
    drain: Effect.sync(() => {
      generation++
      for (const entry of idle.toArray()) closeEntry(entry, "drained")
    }),
    close,
    isClosing: Effect.sync(() => closing)
  }
  // Not enumerable: a wrapper made by spreading the pool (`{ ...pool, withShared }`) must not be bypassed through it.
  Object.defineProperty(pool, sharedAsKey, { value: withShared satisfies SharedAs<C> })
  // psycopg's open(wait=True), asyncpg's create_pool: the caller gets a pool with minSize connections open, or the
  // reason it has none (a PoolTimeout carrying the last connect error); the scope's finalizer closes what did open.
  // Nothing else can close the pool before it is returned, so PoolClosed here is a defect.
  if (cfg.waitOnOpenMs !== undefined) yield* Effect.catchTag(pool.wait(cfg.waitOnOpenMs), "PoolClosed", Effect.die)
  return pool
})
