/**
 * What the web page charts: the risk-tier distribution of the online store
 * (`GET /api/v1/analytics/tiers`) and the lakehouse's data quality as the ingest role last
 * published it (`GET /api/v1/analytics/quality`).
 *
 * Tiers: counting means reading every subscriber's hash (`OnlineStore.scan`), which grows with
 * the store, so the count is cached for `tiersTtlMs` and concurrent requests share one scan: a
 * page polling every few seconds, or many pages, cost one scan per TTL at most.
 *
 * Quality: the lakehouse belongs to the ingest role (DuckDB lets one process open the file), so
 * the API serves the copy ingest publishes to Redis (`streams/quality-publisher.ts`) and says
 * how old it is; 503 until one is published.
 */
import type { FastifyInstance } from 'fastify'
import type { PublishedQuality } from '../../../streams/quality-publisher.ts'
import { RequestError } from '../../errors.ts'
import type { OnlineStore } from '../../store.ts'
import { TIERS } from '../../tiers.ts'
import type { RiskTier } from '../../tiers.ts'
import { apiErrorSchema } from '../errors.ts'

export interface AnalyticsRouteOptions {
  /** The online store; without it the tiers route is absent. */
  store?: OnlineStore | undefined
  /** The latest published quality report; without it the quality route is absent. */
  quality?: (() => Promise<PublishedQuality | undefined>) | undefined
  /**
   * How long a tier count is served before the store is scanned again.
   * @defaultValue 5000
   */
  tiersTtlMs?: number
  /** @defaultValue Date.now */
  now?: () => number
}

/** Bins of the probability histogram: [0, 0.1), [0.1, 0.2) ... [0.9, 1]. */
export const HISTOGRAM_BINS = 10

export interface TierCounts {
  counts: Record<RiskTier, number>
  subscribers: number
  /** Subscribers per probability bin of width 1 / HISTOGRAM_BINS. */
  histogram: number[]
  /** When the store was scanned (ISO time). */
  counted_at: string
}

const tiersResponse = {
  type: 'object',
  required: ['counts', 'subscribers', 'histogram', 'counted_at'],
  properties: {
    counts: {
      type: 'object',
      description: 'Subscribers by their current tier (the tier of their last churn-risk event, after hysteresis; low when none was emitted).',
      required: [...TIERS],
      properties: Object.fromEntries(TIERS.map(tier => [tier, { type: 'integer' }]))
    },
    subscribers: { type: 'integer' },
    histogram: { type: 'array', items: { type: 'integer' }, description: `Subscribers by latest churn probability, in ${HISTOGRAM_BINS} bins of equal width from 0 to 1.` },
    counted_at: { type: 'string', format: 'date-time', description: 'When the store was counted (counts are cached for a few seconds).' }
  }
} as const

const count = { type: 'integer' } as const
const qualityResponse = {
  type: 'object',
  required: ['published_at', 'age_seconds', 'report'],
  properties: {
    published_at: { type: 'string', format: 'date-time', description: 'When the ingest role published the report.' },
    age_seconds: { type: 'integer' },
    report: {
      type: 'object',
      properties: {
        pipeline: {
          type: 'object',
          properties: { bronze_total: count, silver_total: count, quarantined: count, dead_lettered: count, pass_rate: { type: 'number', description: 'Percent of Bronze rows that passed the quality gate into Silver.' } }
        },
        quality_scores: {
          type: 'object',
          properties: { avg_bronze: { type: 'number' }, excellent_gte80: count, good_60_79: count, fair_45_59: count, poor_lt45: count }
        },
        quarantine_reasons: { type: 'object', additionalProperties: count },
        by_source: { type: 'object', additionalProperties: { type: 'object', properties: { bronze: count, silver: count, quarantined: count } } },
        gold: {
          type: 'object',
          properties: { subscribers: count, freshest_feature_ms: { type: ['integer', 'null'] }, last_batch_committed_ms: { type: ['integer', 'null'] } }
        }
      }
    }
  }
} as const

export function analyticsRoutes (app: FastifyInstance, options: AnalyticsRouteOptions): void {
  const now = options.now ?? Date.now
  const { store, quality } = options
  if (store !== undefined) {
    const counter = cachedCounter(store, options.tiersTtlMs ?? 5000, now)
    app.get('/api/v1/analytics/tiers', {
      schema: { summary: 'Subscribers by risk tier and by probability, from the online store', tags: ['analytics'], response: { 200: tiersResponse, '4xx': apiErrorSchema, '5xx': apiErrorSchema } }
    }, async () => await counter())
  }
  if (quality !== undefined) {
    app.get('/api/v1/analytics/quality', {
      schema: { summary: 'The lakehouse\'s data-quality report, as the ingest role last published it', tags: ['quality'], response: { 200: qualityResponse, '4xx': apiErrorSchema, '5xx': apiErrorSchema } }
    }, async () => {
      const published = await quality().catch((error: unknown) => {
        throw new RequestError('CHURN_API_STORE_UNAVAILABLE', 503, 'Redis did not answer; try again shortly', { cause: error, retriable: true })
      })
      if (published === undefined) {
        throw new RequestError('CHURN_API_QUALITY_UNPUBLISHED', 503, 'no data-quality report yet: the ingest role publishes one to Redis when it starts and after micro-batches (at most every 10 s); is `churn ingest` running with this REDIS_KEY_PREFIX?', { retriable: true })
      }
      return {
        published_at: new Date(published.publishedAt).toISOString(),
        age_seconds: Math.max(0, Math.round((now() - published.publishedAt) / 1000)),
        report: published.report
      }
    })
  }
}

/** The tier count, scanned at most once per `ttlMs`; concurrent callers share a scan in progress. */
function cachedCounter (store: OnlineStore, ttlMs: number, now: () => number): () => Promise<TierCounts> {
  let cached: { at: number, value: TierCounts } | undefined
  let scanning: Promise<TierCounts> | undefined
  return async () => {
    if (cached !== undefined && now() - cached.at < ttlMs) return cached.value
    scanning ??= countTiers(store, now).then(value => {
      cached = { at: now(), value }
      return value
    }, (error: unknown) => {
      throw new RequestError('CHURN_API_STORE_UNAVAILABLE', 503, 'the online store did not answer; try again shortly', { cause: error, retriable: true })
    }).finally(() => { scanning = undefined })
    return await scanning
  }
}

/** Counts every stored subscriber by tier and probability bin. */
export async function countTiers (store: OnlineStore, now: () => number = Date.now): Promise<TierCounts> {
  const counts: Record<RiskTier, number> = { low: 0, medium: 0, high: 0 }
  const histogram = new Array<number>(HISTOGRAM_BINS).fill(0)
  let subscribers = 0
  for await (const page of store.scan()) {
    for (const entry of page) {
      subscribers++
      counts[entry.tier]++
      if (Number.isFinite(entry.probability)) {
        const bin = Math.min(HISTOGRAM_BINS - 1, Math.max(0, Math.floor(entry.probability * HISTOGRAM_BINS)))
        histogram[bin] = (histogram[bin] as number) + 1
      }
    }
  }
  return { counts, subscribers, histogram, counted_at: new Date(now()).toISOString() }
}
