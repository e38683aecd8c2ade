/**
 * Bounded waits for steps that may never end: a client's disconnect from a peer in the middle
 * of something (a group rebalance, a reconnect). Shutdown must end within the orchestrator's grace
 * period whatever a library does, and say what it left behind.
 */
import { setTimeout as sleep } from 'node:timers/promises'

/**
 * Whether `work` settles (resolves or rejects) within `ms`. It is not cancelled when it does not:
 * the caller decides what abandoning it means, and says so.
 */
export async function settlesWithin (work: Promise<unknown>, ms: number): Promise<boolean> {
  return await valueWithin(work.then(() => true, () => true), ms, false)
}

/** What `work` resolves to within `ms`, or `fallback` when it rejects or takes longer (it is not cancelled). */
export async function valueWithin<T> (work: Promise<T>, ms: number, fallback: T): Promise<T> {
  const timer = new AbortController()
  try {
    return await Promise.race([
      work.catch(() => fallback),
      sleep(ms, fallback, { signal: timer.signal, ref: false })
    ])
  } finally {
    timer.abort()
  }
}
