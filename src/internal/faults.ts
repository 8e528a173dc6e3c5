/**
 * Injected failures for the test doubles (`MockConnector`, `PgPoolTest`): "the next n connects / pings / resets fail".
 *
 * @internal
 */
export type Fault = "connect" | "ping" | "reset"

export interface Faults {
  /** True (and one fewer pending) when the next operation of this kind must fail. */
  readonly take: (fault: Fault) => boolean
  readonly failConnects: (count: number) => void
  readonly failPings: (count: number) => void
  readonly failResets: (count: number) => void
  readonly recover: () => void
}

export const makeFaults = (initial: { readonly connect?: number | undefined } = {}): Faults => {
  const pending: Record<Fault, number> = { connect: initial.connect ?? 0, ping: 0, reset: 0 }
  return {
    take: (fault) => {
      if (pending[fault] <= 0) return false
      pending[fault]--
      return true
    },
    failConnects: (count) => {
      pending.connect = count
    },
    failPings: (count) => {
      pending.ping = count
    },
    failResets: (count) => {
      pending.reset = count
    },
    recover: () => {
      pending.connect = pending.ping = pending.reset = 0
    }
  }
}
