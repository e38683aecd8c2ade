/**
 * The lakehouse's data-quality report, published to Redis for the roles that cannot open the
 * lakehouse (DuckDB lets one process hold the file: the ingest role). Ingest writes the latest
 * report to `<REDIS_KEY_PREFIX>:quality` after micro-batches, at most every `everyMs`; the HTTP
 * API serves the copy (`GET /api/v1/analytics/quality`), saying how old it is.
 *
 * The key has no TTL: a stopped ingest leaves its last report, and `publishedAt` tells a reader
 * how stale it is (a missing key would say nothing about why).
 */
import type { Redis } from 'ioredis'
import type { QualityReport } from '../lakehouse/lakehouse.ts'

/** The report as stored: the lakehouse's report and when ingest published it. */
export interface PublishedQuality {
  /** Unix ms. */
  publishedAt: number
  report: QualityReport
}

/** The Redis key of the published report. */
export function qualityKey (prefix: string): string {
  return `${prefix}:quality`
}

/** Writes the report as the latest one. */
export async function publishQuality (redis: Redis, prefix: string, report: QualityReport, now = Date.now()): Promise<void> {
  const stored: PublishedQuality = { publishedAt: now, report }
  await redis.set(qualityKey(prefix), JSON.stringify(stored))
}

/** The latest published report, or undefined when none was published. Throws when Redis fails. */
export async function readQuality (redis: Redis, prefix: string): Promise<PublishedQuality | undefined> {
  const text = await redis.get(qualityKey(prefix))
  if (text === null) return undefined
  const parsed = JSON.parse(text) as Partial<PublishedQuality>
  if (typeof parsed.publishedAt !== 'number' || typeof parsed.report !== 'object' || parsed.report === null) return undefined
  return parsed as PublishedQuality
}

export interface QualityPublisherOptions {
  redis: Redis
  /** `REDIS_KEY_PREFIX`. */
  prefix: string
  /**
   * Least time between two publications.
   * @defaultValue 10000
   */
  everyMs?: number
}

/**
 * Decides when to publish: once at start, then after new batches at most every `everyMs`, and
 * once at stop. A failed publication is logged and tried again on the next occasion; it never
 * stops ingest.
 */
export class QualityPublisher {
  readonly #options: QualityPublisherOptions
  #lastAt = Number.NEGATIVE_INFINITY
  #lastBatches = -1

  constructor (options: QualityPublisherOptions) {
    this.#options = options
  }

  /** Whether a report is due, given the batches landed so far. */
  due (batches: number, now = Date.now()): boolean {
    return batches !== this.#lastBatches && now - this.#lastAt >= (this.#options.everyMs ?? 10_000)
  }

  /** Publishes `report()` as of `batches`; resolves false (and `onError` is told) when it failed. */
  async publish (batches: number, report: () => Promise<QualityReport>, onError: (error: unknown) => void): Promise<boolean> {
    const at = Date.now()
    try {
      await publishQuality(this.#options.redis, this.#options.prefix, await report(), at)
      this.#lastAt = at
      this.#lastBatches = batches
      return true
    } catch (error) {
      // Counted as an attempt, so a Redis outage is retried every `everyMs`, not every tick.
      this.#lastAt = at
      onError(error)
      return false
    }
  }
}
