/**
 * Whether a kafkajs consumer is in touch with its cluster, for readiness. kafkajs keeps a consumer
 * alive through a broker outage (its retries, then a crash and a restart with backoff), so a
 * role that only asked "am I running?" would report ready with the broker gone. This watches the
 * consumer's instrumentation events instead: a fetch, a heartbeat or a group join is contact; a
 * crash is a problem until the next contact; and no contact for half a session timeout (the
 * broker gone while the retries run) is one too.
 */
import type { Consumer } from 'kafkajs'
import { describeError } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'

export class ConsumerContact {
  readonly #silentAfterMs: number
  #contactAt = 0
  #crash: string | undefined
  #watching = false

  /** @param sessionTimeoutMs the consumer's session timeout; silence counts after half of it (at least 5 s). */
  constructor (sessionTimeoutMs: number) {
    // Fetches return at least every maxWaitTimeInMs and heartbeats go every few seconds.
    this.#silentAfterMs = Math.max(5000, sessionTimeoutMs / 2)
  }

  /** Listens to `consumer`'s events; crashes are logged at error, once each. */
  watch (consumer: Consumer, logger: Logger): void {
    const contact = (): void => {
      this.#contactAt = Date.now()
      this.#crash = undefined
    }
    for (const name of [consumer.events.FETCH, consumer.events.HEARTBEAT, consumer.events.GROUP_JOIN]) consumer.on(name, contact)
    consumer.on(consumer.events.CRASH, event => {
      const { error, restart } = event.payload
      this.#crash = `consumer crashed${restart ? ' (restarting with backoff)' : ''}: ${describeError(error)}`
      logger.error({ err: error, restart }, 'consumer crashed')
    })
  }

  /** Call once the consumer runs: silence counts from here. */
  running (): void {
    this.#contactAt = Date.now()
    this.#watching = true
  }

  /** Call when the consumer is stopped on purpose: no problem to report any more. */
  stopped (): void {
    this.#watching = false
  }

  /** Why the consumer is not consuming, or undefined while it is in touch (or not watched). */
  get problem (): string | undefined {
    if (!this.#watching) return undefined
    if (this.#crash !== undefined) return this.#crash
    const silentMs = Date.now() - this.#contactAt
    if (silentMs > this.#silentAfterMs) return `no answer from Kafka for ${Math.round(silentMs / 1000)} s`
    return undefined
  }
}
