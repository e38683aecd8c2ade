/**
 * Reading a test's lakehouse back: what Bronze holds against what the source topics hold, the
 * Silver event ids, and Gold without its bookkeeping columns (for comparing two runs).
 */
import assert from 'node:assert/strict'
import type { Config } from '../../config/index.ts'
import type { Logger } from '../../core/logger.ts'
import { Lakehouse } from '../../lakehouse/lakehouse.ts'
import { SOURCE_STREAMS } from '../../schemas/index.ts'
import { readSourceEvents } from './topics.ts'

/** Opens the configuration's lakehouse, runs `use`, closes it. */
export async function withLakehouse<T> (config: Config, use: (lakehouse: Lakehouse) => Promise<T>): Promise<T> {
  const lakehouse = await Lakehouse.open({ path: config.lakehouse.path })
  try {
    return await use(lakehouse)
  } finally {
    lakehouse.close()
  }
}

async function rows (lakehouse: Lakehouse, sql: string): Promise<unknown[][]> {
  return (await lakehouse.connection.runAndReadAll(sql)).getRows()
}

/**
 * Asserts Bronze holds every message of the source topics exactly once, offset by offset with its
 * event id, and nothing else; returns how many. Every message on the topics must decode.
 */
export async function assertBronzeEqualsTopics (config: Config, logger: Logger, timeoutMs = 120_000): Promise<number> {
  const inTopics = new Map<string, string>()
  const decoded = await readSourceEvents(config, logger, timeoutMs)
  for (const source of SOURCE_STREAMS) {
    for (const m of decoded.get(source.stream) ?? []) inTopics.set(`${config.topics[source.topicKey]}/${m.partition}/${m.offset}`, String(m.value.eventId))
  }
  const landed = new Map<string, string>()
  await withLakehouse(config, async lakehouse => {
    for (const [topic, partition, offset, id] of await rows(lakehouse, SOURCE_STREAMS.map(s => `SELECT kafka_topic, kafka_partition, kafka_offset, event_id FROM bronze_${s.stream}`).join(' UNION ALL '))) {
      const at = `${String(topic)}/${String(partition)}/${String(offset)}`
      assert.ok(!landed.has(at), `${at} landed twice`)
      landed.set(at, String(id))
    }
  })
  assert.equal(landed.size, inTopics.size, 'Bronze holds as many messages as the topics')
  for (const [at, id] of inTopics) assert.equal(landed.get(at), id, `${at} is in Bronze with its event id`)
  const ids = [...landed.values()]
  assert.equal(new Set(ids).size, ids.length, 'no event id twice')
  return landed.size
}

/** Asserts Gold equals its recompute from Silver, everything changed was published, and Bronze = Silver + quarantine. */
export async function assertLakehouseConsistent (config: Config): Promise<void> {
  await withLakehouse(config, async lakehouse => {
    assert.deepEqual(await lakehouse.goldDifferences(), [], 'Gold equals its recompute')
    assert.equal((await lakehouse.counts()).changelog_pending, 0, 'every changed Gold row was published')
    const report = await lakehouse.qualityReport()
    assert.equal(report.pipeline.bronze_total, report.pipeline.silver_total + report.pipeline.quarantined)
  })
}

/** Silver's event ids, sorted. */
export async function silverEventIds (lakehouse: Lakehouse): Promise<string[]> {
  const found = await rows(lakehouse, SOURCE_STREAMS.map(s => `SELECT event_id FROM silver_${s.stream}`).join(' UNION ALL '))
  return found.map(([id]) => String(id)).sort()
}

/**
 * Gold per subscriber without `version` and `updated_at_ms` (which count batches and read the
 * clock): two runs over the same Silver events give the same snapshot however they were batched,
 * up to the rounding of sums taken in another order (compare with {@link assertSameGold}).
 */
export async function goldSnapshot (lakehouse: Lakehouse): Promise<Map<string, unknown[]>> {
  const reader = await lakehouse.connection.runAndReadAll('SELECT * EXCLUDE (version, updated_at_ms) FROM gold_features ORDER BY subscriber_id')
  const names = reader.columnNames()
  return new Map(reader.getRowsJson().map(row => [row[names.indexOf('subscriber_id')] as string, row as unknown[]]))
}

/** Asserts two Gold snapshots hold the same subscribers with the same values (doubles to 1e-9 relative). */
export function assertSameGold (actual: ReadonlyMap<string, unknown[]>, expected: ReadonlyMap<string, unknown[]>): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), 'the same subscribers in Gold')
  for (const [subscriber, row] of expected) {
    const other = actual.get(subscriber) ?? []
    for (const [c, value] of row.entries()) {
      const got = other[c]
      if (typeof value === 'number' && typeof got === 'number') assert.ok(Math.abs(got - value) <= 1e-9 * Math.max(1, Math.abs(value)), `${subscriber} column ${c}: ${got} vs ${value}`)
      else assert.deepEqual(got, value, `${subscriber} column ${c}`)
    }
  }
}
