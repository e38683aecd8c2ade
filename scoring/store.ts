/**
 * The online feature store in Redis: one hash per subscriber, `<prefix>:online:<subscriberId>`,
 * holding the newest feature version the scorer has seen, its features and freshness, the latest
 * score, and the tier and probability of the last churn-risk event (what hysteresis and the emit
 * margin compare with). Writes are conditional on the version (a Lua script), so an update older
 * than the stored one is ignored even when two scorers overlap during a rebalance.
 *
 * Subscriber ids reach Redis keys only after `checkSubscriberId`.
 */
import type { Redis } from 'ioredis'
import type { ChurnRiskEvent } from '../schemas/types.generated.ts'
import type { RiskTier } from './tiers.ts'
import { TIERS } from './tiers.ts'
import { ScoringError } from './errors.ts'

/** 1-64 printable characters: no control characters, no whitespace other than a space. */
const SUBSCRIBER_ID = /^[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]{1,64}$/u

export function isSubscriberId (id: string): boolean {
  return SUBSCRIBER_ID.test(id)
}

export function checkSubscriberId (id: string): string {
  if (!isSubscriberId(id)) throw new ScoringError('CHURN_SCORE_BAD_SUBSCRIBER', `subscriber id ${JSON.stringify(id.slice(0, 80))} must be 1-64 characters without control characters`)
  return id
}

export interface OnlineEntry {
  subscriberId: string
  version: number
  featureTime: number
  updatedAt: number
  /** Named Gold features as the changelog carried them. */
  features: Record<string, number | null>
  probability: number
  scoredAt: number
  modelVersion: number
  /** Tier and probability of the last churn-risk event; tier 'low' with no event yet. */
  tier: RiskTier
  emittedProbability: number | null
  /** An event decided and maybe published, whose batch did not finish (see {@link OnlineStore.markPending}). */
  pending?: ChurnRiskEvent | null
}

/** What the scorer needs to know about a subscriber before scoring an update. */
export interface StoredState {
  /** The stored feature version; 0 when only a pending event is stored. */
  version: number
  tier: RiskTier
  emittedProbability: number | null
  pending: ChurnRiskEvent | null
}

const FIELDS = ['v', 'tier', 'ep', 'pe'] as const

// KEYS[1] the hash; ARGV[1] mode ('newer': write only if ARGV[2] > stored version; 'same': only
// if equal, for a rescore that must not overwrite a newer update), ARGV[2] version, then field/value pairs.
// The pending event is settled either way: this batch republished it or announced past it.
const WRITE_SCRIPT = `
redis.call('HDEL', KEYS[1], 'pe')
local stored = tonumber(redis.call('HGET', KEYS[1], 'v'))
local v = tonumber(ARGV[2])
if ARGV[1] == 'newer' and stored ~= nil and stored >= v then return 0 end
if ARGV[1] == 'same' and stored ~= v then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
return 1
`

type StoreRedis = Redis & { churnOnlineWrite: (key: string, mode: string, version: string, ...fields: string[]) => Promise<number> }

export class OnlineStore {
  readonly #redis: StoreRedis
  readonly #prefix: string

  constructor (redis: Redis, prefix: string) {
    redis.defineCommand('churnOnlineWrite', { numberOfKeys: 1, lua: WRITE_SCRIPT })
    this.#redis = redis as StoreRedis
    this.#prefix = `${prefix}:online:`
  }

  key (subscriberId: string): string {
    return this.#prefix + checkSubscriberId(subscriberId)
  }

  /** The stored version, tier and last emitted probability of each id (null where unknown). */
  async states (ids: readonly string[]): Promise<Array<StoredState | null>> {
    if (ids.length === 0) return []
    const pipeline = this.#redis.pipeline()
    for (const id of ids) pipeline.hmget(this.key(id), ...FIELDS)
    const results = await pipeline.exec()
    return (results ?? []).map(([error, value]) => {
      if (error !== null) throw error
      const [v, tier, ep, pe] = value as Array<string | null>
      const pending = pe === null || pe === undefined ? null : JSON.parse(pe) as ChurnRiskEvent
      if ((v === null || v === undefined) && pending === null) return null
      return {
        version: v === null || v === undefined ? 0 : Number(v),
        tier: TIERS.includes(tier as RiskTier) ? tier as RiskTier : 'low',
        emittedProbability: ep === null || ep === undefined || ep === '' ? null : Number(ep),
        pending
      }
    })
  }

  /**
   * Records events about to be published, before they are: if the batch dies between publishing
   * and {@link write}, the replay finds them here, publishes them again (same event ids, same job
   * ids: idempotent downstream) and compares the replayed features with what was announced, not
   * with what the store held before. Without this, a replay whose newest version falls back to the
   * old tier would leave the topic's last word on that subscriber wrong.
   */
  async markPending (events: readonly ChurnRiskEvent[]): Promise<void> {
    if (events.length === 0) return
    const pipeline = this.#redis.pipeline()
    for (const e of events) pipeline.hset(this.key(e.subscriberId), 'pe', JSON.stringify(e))
    for (const [error] of await pipeline.exec() ?? []) if (error !== null) throw error
  }

  /**
   * Writes entries (only those newer than what is stored, or with `mode: 'same'` only where the
   * stored version is still the one scored); returns how many were written.
   */
  async write (entries: readonly OnlineEntry[], mode: 'newer' | 'same' = 'newer'): Promise<number> {
    if (entries.length === 0) return 0
    const pipeline = this.#redis.pipeline() as ReturnType<Redis['pipeline']> & { churnOnlineWrite: (...args: string[]) => unknown }
    for (const e of entries) {
      pipeline.churnOnlineWrite(this.key(e.subscriberId), mode, String(e.version),
        'v', String(e.version), 'ft', String(e.featureTime), 'ua', String(e.updatedAt), 'f', JSON.stringify(e.features),
        'p', String(e.probability), 'sa', String(e.scoredAt), 'mv', String(e.modelVersion),
        'tier', e.tier, 'ep', e.emittedProbability === null ? '' : String(e.emittedProbability))
    }
    let written = 0
    for (const [error, value] of await pipeline.exec() ?? []) {
      if (error !== null) throw error
      written += Number(value)
    }
    return written
  }

  async get (subscriberId: string): Promise<OnlineEntry | undefined> {
    const hash = await this.#redis.hgetall(this.key(subscriberId))
    if (hash.v === undefined) return undefined
    return parseEntry(subscriberId, hash)
  }

  /** Every stored subscriber, in pages (for a rescore). */
  async * scan (pageSize = 1000): AsyncGenerator<OnlineEntry[]> {
    let cursor = '0'
    do {
      const [next, keys] = await this.#redis.scan(cursor, 'MATCH', `${this.#prefix}*`, 'COUNT', pageSize)
      cursor = next
      if (keys.length === 0) continue
      const pipeline = this.#redis.pipeline()
      for (const k of keys) pipeline.hgetall(k)
      const page: OnlineEntry[] = []
      for (const [i, [error, value]] of (await pipeline.exec() ?? []).entries()) {
        if (error !== null) throw error
        const hash = value as Record<string, string>
        if (hash.v !== undefined) page.push(parseEntry((keys[i] as string).slice(this.#prefix.length), hash))
      }
      yield page
    } while (cursor !== '0')
  }

  /** Number of subscribers in the store. */
  async count (): Promise<number> {
    let total = 0
    for await (const page of this.scan()) total += page.length
    return total
  }
}

function parseEntry (subscriberId: string, hash: Record<string, string>): OnlineEntry {
  return {
    subscriberId,
    version: Number(hash.v),
    featureTime: Number(hash.ft),
    updatedAt: Number(hash.ua),
    features: JSON.parse(hash.f ?? '{}') as Record<string, number | null>,
    probability: Number(hash.p),
    scoredAt: Number(hash.sa),
    modelVersion: Number(hash.mv),
    tier: TIERS.includes(hash.tier as RiskTier) ? hash.tier as RiskTier : 'low',
    emittedProbability: hash.ep === undefined || hash.ep === '' ? null : Number(hash.ep),
    pending: hash.pe === undefined ? null : JSON.parse(hash.pe) as ChurnRiskEvent
  }
}
