/**
 * What integration tests share: the configuration (from the environment, as the product reads
 * it), a quiet logger, and fresh resource names so no two tests touch the same topic, group,
 * subject or queue.
 */
import { randomUUID } from 'node:crypto'
import { pino } from 'pino'
import { loadConfig } from '../../config/index.ts'
import type { Config } from '../../config/index.ts'
import type { Logger } from '../../core/logger.ts'
import type { ToolEnvironment } from '../../stack/index.ts'

export const config: Config = loadConfig(process.env, { cwd: process.cwd() })

/** Silent unless TEST_LOG_LEVEL asks otherwise, so failures are not buried in client chatter. */
export const logger: Logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' })

/**
 * A logger that keeps its last `keep` lines (info and above) for a failure message: what an
 * in-process role was doing when a test gave up waiting for it.
 */
export function recordingLogger (keep = 60): { logger: Logger, tail: () => string } {
  const lines: string[] = []
  const recorded = pino({ level: 'info' }, {
    write: (line: string) => {
      lines.push(line.trimEnd())
      if (lines.length > keep) lines.shift()
    }
  })
  return { logger: recorded, tail: () => lines.join('\n') }
}

export const tools: ToolEnvironment = { searchPath: process.env.PATH ?? '', env: process.env, isRoot: process.getuid?.() === 0, logger }

export function uniqueName (prefix: string): string {
  return `${prefix}-${randomUUID()}`
}

/**
 * A configuration whose topics, consumer group and lakehouse file belong to one test only, so
 * tests never see each other's data (the benchmarks use it too, with their own `prefix`).
 * `env` is the environment it was loaded from, for child processes; `cleanup` deletes the
 * topics, their subjects and the folder.
 */
export async function isolatedConfig (overrides: Record<string, string> = {}, prefix = 'test'): Promise<{ config: Config, env: Record<string, string | undefined>, dir: string, cleanup: () => Promise<void> }> {
  const { mkdtemp, rm } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const path = await import('node:path')
  const run = randomUUID().slice(0, 8)
  const dir = await mkdtemp(path.join(tmpdir(), `churn-${prefix}-${run}-`))
  const env: Record<string, string | undefined> = {
    ...process.env,
    TOPIC_BILLING: `${prefix}.${run}.billing`,
    TOPIC_NETWORK: `${prefix}.${run}.network`,
    TOPIC_DEVICE: `${prefix}.${run}.device`,
    TOPIC_CRM_OUTCOMES: `${prefix}.${run}.crm`,
    TOPIC_FEATURES: `${prefix}.${run}.features`,
    TOPIC_CHURN_RISK: `${prefix}.${run}.risk`,
    INGEST_GROUP_ID: `${prefix}-ingest-${run}`,
    DUCKDB_PATH: path.join(dir, 'lakehouse.duckdb'),
    LAKEHOUSE_EXPORT_DIR: path.join(dir, 'export'),
    MODEL_DIR: path.join(dir, 'models'),
    SCORER_GROUP_ID: `${prefix}-scorer-${run}`,
    REDIS_KEY_PREFIX: `${prefix}-${run}`,
    OUTBOX_DIR: path.join(dir, 'outbox'),
    ...overrides
  }
  const isolated = loadConfig(env, { cwd: process.cwd() })
  const cleanup = async (): Promise<void> => {
    const { createKafka } = await import('../../streams/kafka.ts')
    const { projectTopics } = await import('../../streams/topics.ts')
    const topics = projectTopics(isolated.topics).map(t => t.topic)
    const admin = createKafka({ brokers: isolated.kafka.brokers, clientId: `${prefix}-cleanup-${run}`, logger }).admin()
    await admin.connect()
    const existing = new Set(await admin.listTopics())
    await admin.deleteTopics({ topics: topics.filter(t => existing.has(t)) }).catch(() => {})
    await admin.disconnect()
    for (const topic of topics) {
      const url = `${isolated.registry.url}/subjects/${encodeURIComponent(`${topic}-value`)}`
      await fetch(url, { method: 'DELETE' }).then(r => r.body?.cancel()).catch(() => {})
      await fetch(`${url}?permanent=true`, { method: 'DELETE' }).then(r => r.body?.cancel()).catch(() => {})
    }
    await deleteRedisKeys(isolated)
    await rm(dir, { recursive: true, force: true })
  }
  return { config: isolated, env, dir, cleanup }
}

/** Deletes every Redis key under the configuration's prefix (the online store, opt-outs, queues). */
export async function deleteRedisKeys (isolated: Config): Promise<void> {
  const { createRedis } = await import('../../core/redis.ts')
  const redis = createRedis({ url: isolated.redis.url, maxRetriesPerRequest: 1 })
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${isolated.redis.prefix}:*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await redis.unlink(...keys)
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}
