/**
 * The opt-out list: subscribers who must receive no campaign, a Redis set `<prefix>:opt-out` of
 * subscriber ids. The workers read it just before each delivery, so an opt-out takes effect for
 * jobs already queued, not only for later scores.
 */
import type { Redis } from 'ioredis'
import { checkSubscriberId } from './store.ts'

export function optOutKey (prefix: string): string {
  return `${prefix}:opt-out`
}

export interface OptOutListOptions {
  /** A client the caller owns and closes. */
  redis: Redis
  /** The project's Redis key prefix (`REDIS_KEY_PREFIX`). */
  prefix: string
}

/** Ids are checked (`CHURN_SCORE_BAD_SUBSCRIBER`) before they reach Redis. */
export class OptOutList {
  readonly #redis: Redis
  readonly #key: string

  constructor (options: OptOutListOptions) {
    this.#redis = options.redis
    this.#key = optOutKey(options.prefix)
  }

  /** Opts subscribers out; resolves to how many were not already. */
  async add (...subscriberIds: string[]): Promise<number> {
    if (subscriberIds.length === 0) return 0
    return await this.#redis.sadd(this.#key, ...subscriberIds.map(checkSubscriberId))
  }

  /** Opts subscribers back in; resolves to how many had opted out. */
  async remove (...subscriberIds: string[]): Promise<number> {
    if (subscriberIds.length === 0) return 0
    return await this.#redis.srem(this.#key, ...subscriberIds.map(checkSubscriberId))
  }

  async has (subscriberId: string): Promise<boolean> {
    return await this.#redis.sismember(this.#key, subscriberId) === 1
  }

  /** Every opted-out id, sorted; read with SSCAN (which may repeat an id) so a large list does not block Redis. */
  async list (): Promise<string[]> {
    const ids = new Set<string>()
    let cursor = '0'
    do {
      const [next, batch] = await this.#redis.sscan(this.#key, cursor, 'COUNT', 1000)
      cursor = next
      for (const id of batch) ids.add(id)
    } while (cursor !== '0')
    return [...ids].sort()
  }
}
