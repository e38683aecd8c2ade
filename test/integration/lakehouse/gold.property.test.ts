/**
 * The lakehouse's central invariant, on real DuckDB: after any sequence of micro-batches (late and
 * out-of-order events, duplicates, rejects, CRM outcomes, batches of one event or many), the
 * incrementally maintained Gold equals Gold recomputed from Silver in one query; and features "as
 * of" a time equal Gold recomputed from only the events before that time.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DAY_MS, MODEL_FEATURES, daysSinceLastActivity } from '../../../lakehouse/features.ts'
import { Lakehouse } from '../../../lakehouse/lakehouse.ts'
import type { LandedEvent } from '../../../lakehouse/lakehouse.ts'
import type { SourceStream } from '../../../schemas/catalog.ts'
import { seededRandom } from '../../helpers/random.ts'
import type { Random } from '../../helpers/random.ts'

const NOW = Date.UTC(2026, 10, 20, 12)
const SUBSCRIBERS = ['SUB-1', 'SUB-2', 'SUB-3', 'SUB-4', 'SUB-5', 'SUB-6']

interface Drawn { stream: SourceStream, value: Record<string, unknown> }

function drawEvent (random: Random, n: number): Drawn {
  const subscriberId = random.pick(SUBSCRIBERS)
  // Twenty days of history, so windows slide and buckets expire; now and then a future event.
  const eventTime = random.chance(0.02) ? NOW + DAY_MS : NOW - random.int(0, 20 * DAY_MS)
  const qualityScore = random.chance(0.1) ? random.int(0, 44) : random.int(45, 100)
  const envelope = { eventId: `evt-${n}`, subscriberId, eventTime, qualityScore }
  const bad = random.chance(0.05)
  switch (random.pick(['billing', 'network', 'network', 'device', 'crm'] as const)) {
    case 'billing': return {
      stream: 'billing',
      value: {
        ...envelope, invoiceId: `inv-${n}`, billingCycle: '2026-10', planCode: 'P1', currency: 'ZMW',
        billAmount: bad ? -5 : random.int(50, 500) / 3, dataUsedMb: random.int(0, 9000) / 7, voiceMinutes: random.int(0, 300), smsCount: random.int(0, 50),
        daysOverdue: random.chance(0.3) ? random.int(1, 90) : 0, paymentStatus: random.pick(['PAID', 'PENDING', 'OVERDUE', 'FAILED', 'UNKNOWN']), paymentMethod: 'card',
        topUpAmount: random.chance(0.5) ? null : random.int(0, 100)
      }
    }
    case 'network': return {
      stream: 'network',
      value: {
        ...envelope, cellId: `cell-${random.int(1, 9)}`, radioTechnology: 'LTE_4G', signalDbm: bad ? 3 : -random.int(60, 120) - random.next(),
        latencyMs: random.int(10, 300) + random.next(), packetLossPct: random.int(0, 20) / 3, throughputMbps: random.int(1, 300) / 7,
        droppedCalls: random.int(0, 3), sessionMinutes: random.int(0, 60) / 3
      }
    }
    case 'device': return {
      stream: 'device',
      value: {
        ...envelope, deviceId: `dev-${subscriberId}`, deviceModel: 'X1', osVersion: 'A14', batteryPct: bad ? 140 : random.int(0, 100) / 1.1,
        appSessions: random.int(0, 9), activeMinutes: random.int(0, 600) / 9, storageFreePct: random.int(0, 100)
      }
    }
    case 'crm': return {
      stream: 'crm',
      value: { ...envelope, outcome: random.pick(['CHURNED', 'RETAINED']), effectiveDate: Math.floor(eventTime / DAY_MS), reason: null }
    }
  }
}

function toBatch (drawn: readonly Drawn[], firstOffset: bigint): Partial<Record<SourceStream, LandedEvent[]>> {
  const events: Partial<Record<SourceStream, LandedEvent[]>> = {}
  drawn.forEach((d, i) => {
    (events[d.stream] ??= []).push({ topic: `t.${d.stream}`, partition: 0, offset: firstOffset + BigInt(i), schemaId: 1, value: d.value })
  })
  return events
}

describe('Gold maintained per micro-batch', () => {
  for (const seed of [1, 7, 42, 1234, 99_991]) {
    it(`equals Gold recomputed from Silver after every batch (seed ${seed})`, async () => {
      const random = seededRandom(seed)
      const lakehouse = await Lakehouse.open({ path: ':memory:' })
      try {
        let n = 0
        let offset = 0n
        const sent: Drawn[] = []
        const batches = random.int(6, 14)
        for (let b = 0; b < batches; b++) {
          const size = random.chance(0.2) ? 1 : random.int(2, 80)
          const drawn: Drawn[] = []
          for (let i = 0; i < size; i++) {
            // Some events are re-sent: the same id and time, in a later batch or the same one.
            const event = drawn.length > 0 && random.chance(0.05)
              ? random.pick(drawn)
              : sent.length > 0 && random.chance(0.05) ? random.pick(sent) : drawEvent(random, n++)
            drawn.push(event)
            sent.push(event)
          }
          const result = await lakehouse.landBatch({ now: NOW, events: toBatch(drawn, offset), offsets: [{ topic: 't', partition: 0, nextOffset: offset + BigInt(size) }] })
          offset += BigInt(size)
          assert.equal(result.bronze, size)
          assert.equal(result.silver + result.quarantined, size, 'every Bronze row is in Silver or in quarantine')
          const differences = await lakehouse.goldDifferences()
          assert.deepEqual(differences, [], `batch ${b + 1} of seed ${seed}: Gold differs from the recompute`)
        }
        const counts = await lakehouse.counts()
        const uniqueIds = new Set(sent.map(d => d.value.eventId)).size
        const silverTotal = counts.silver_billing! + counts.silver_network! + counts.silver_device! + counts.silver_crm!
        assert.ok(uniqueIds < sent.length, 'the case re-sends some events')
        assert.ok(silverTotal <= uniqueIds, 'Silver holds each event id at most once')
        for (const source of ['billing', 'network', 'device', 'crm']) {
          const reader = await lakehouse.connection.runAndReadAll(`SELECT count(*) - count(DISTINCT event_id) FROM silver_${source}`)
          assert.equal(Number(reader.getRows()[0]?.[0]), 0, `silver_${source} holds an event id twice`)
        }
        assert.equal(counts.quarantine! + silverTotal, sent.length)
        assert.equal((await lakehouse.storedOffsets())[0]?.nextOffset, offset)
      } finally {
        lakehouse.close()
      }
    })
  }

  it('a rolled-back batch leaves nothing behind, and the next one lands', async () => {
    const random = seededRandom(5)
    const lakehouse = await Lakehouse.open({ path: ':memory:' })
    try {
      const good = Array.from({ length: 20 }, (_, i) => drawEvent(random, i))
      await lakehouse.landBatch({ now: NOW, events: toBatch(good, 0n), offsets: [{ topic: 't', partition: 0, nextOffset: 20n }] })
      const before = await lakehouse.counts()
      // A value of the wrong type makes the Bronze append throw mid-batch, after other rows went in.
      const valid = Array.from({ length: 5 }, (_, i) => drawEvent(random, 100 + i))
      const network = valid.find(d => d.stream === 'network') ?? drawEvent(seededRandom(3), 200)
      const broken = [...valid, { stream: network.stream, value: { ...network.value, eventId: 'broken', signalDbm: 'not a number' } }]
      await assert.rejects(lakehouse.landBatch({ now: NOW, events: toBatch(broken, 20n), offsets: [{ topic: 't', partition: 0, nextOffset: 26n }] }), { code: 'CHURN_LAKEHOUSE_BATCH_FAILED' })
      assert.deepEqual(await lakehouse.counts(), before)
      assert.equal((await lakehouse.storedOffsets())[0]?.nextOffset, 20n)
      await lakehouse.landBatch({ now: NOW, events: toBatch(valid, 20n), offsets: [{ topic: 't', partition: 0, nextOffset: 25n }] })
      assert.deepEqual(await lakehouse.goldDifferences(), [])
    } finally {
      lakehouse.close()
    }
  })
})

describe('Gold state across restarts', () => {
  it('reloads the committed state, compacts its logs, and rebuilds from Silver when asked, staying equal to the recompute', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const path = await import('node:path')
    const dir = await mkdtemp(path.join(tmpdir(), 'churn-gold-'))
    const file = path.join(dir, 'lakehouse.duckdb')
    const random = seededRandom(77)
    let n = 0
    const land = async (lakehouse: Lakehouse, count: number): Promise<void> => {
      const drawn = Array.from({ length: count }, () => drawEvent(random, n++))
      await lakehouse.landBatch({ now: NOW, events: toBatch(drawn, BigInt(n)), offsets: [] })
    }
    try {
      // A snapshot every 3 batches: the reopen loads batch 3's snapshot and replays batches 4 and 5.
      let lakehouse = await Lakehouse.open({ path: file, snapshotEveryBatches: 3 })
      for (let i = 0; i < 5; i++) await land(lakehouse, 40)
      const before = await lakehouse.goldRow('SUB-1')
      const snapshots = await lakehouse.connection.runAndReadAll("SELECT count(*), max(batch_id) FROM gold_state_log")
      assert.ok(Number(snapshots.getRows()[0]?.[0]) > 0, 'a snapshot was taken')
      assert.equal(Number(snapshots.getRows()[0]?.[1]), 3, 'the last snapshot is batch 3, so batches 4 and 5 are replayed')
      lakehouse.close()

      lakehouse = await Lakehouse.open({ path: file, snapshotEveryBatches: 3 })
      assert.deepEqual(await lakehouse.goldRow('SUB-1'), before, 'Gold survives a reopen')
      for (let i = 0; i < 5; i++) await land(lakehouse, 40)
      assert.deepEqual(await lakehouse.goldDifferences(), [], 'batches after a reopen merge into the reloaded state')
      const versionBefore = (await lakehouse.goldRow('SUB-2'))?.version ?? 0

      await lakehouse.compactGold()
      const logRows = await lakehouse.connection.runAndReadAll('SELECT count(*) - count(DISTINCT subscriber_id) FROM gold_features_log')
      assert.equal(Number(logRows.getRows()[0]?.[0]), 0, 'compaction keeps one version per subscriber')
      await land(lakehouse, 40)
      assert.deepEqual(await lakehouse.goldDifferences(), [])

      await lakehouse.rebuildGold()
      assert.deepEqual(await lakehouse.goldDifferences(), [])
      assert.ok(((await lakehouse.goldRow('SUB-2'))?.version ?? 0) > versionBefore, 'versions keep increasing through a rebuild')
      await land(lakehouse, 40)
      assert.deepEqual(await lakehouse.goldDifferences(), [])
      lakehouse.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('features as of a point in time', () => {
  it('equal Gold recomputed from only the events before that time, and ignore CRM events', async () => {
    const random = seededRandom(2026)
    const drawn = Array.from({ length: 600 }, (_, i) => drawEvent(random, i))
    const asOf = NOW - 6 * DAY_MS - 12_345
    const everything = await Lakehouse.open({ path: ':memory:' })
    const past = await Lakehouse.open({ path: ':memory:' })
    try {
      // All of it, in several batches, out of time order.
      for (let i = 0; i < drawn.length; i += 150) {
        await everything.landBatch({ now: NOW, events: toBatch(drawn.slice(i, i + 150), BigInt(i)), offsets: [] })
      }
      await past.landBatch({ now: NOW, events: toBatch(drawn.filter(d => (d.value.eventTime as number) < asOf && d.stream !== 'crm'), 0n), offsets: [] })
      const labels = `SELECT subscriber_id AS label_id, subscriber_id, ${asOf}::BIGINT AS as_of_ms FROM (SELECT DISTINCT subscriber_id FROM silver_network)`
      const asOfRows = await everything.featuresAsOf(labels)
      assert.ok(asOfRows.length >= 3, 'several subscribers have history before the cut')
      for (const row of asOfRows) {
        const expected = await past.goldRow(String(row.subscriber_id))
        assert.ok(expected !== undefined, `${String(row.subscriber_id)} has events before the cut`)
        for (const name of MODEL_FEATURES) {
          const want: number | null | undefined = name === 'days_since_last_activity' ? daysSinceLastActivity(asOf, expected.lastEventMs) : expected.features[name]
          const got = row[name] === null ? null : Number(row[name])
          if (want === null || want === undefined || got === null) assert.equal(got, want ?? null, `${name} of ${String(row.subscriber_id)}`)
          else assert.ok(Math.abs(got - want) <= 1e-9 * Math.max(1, Math.abs(want)), `${name} of ${String(row.subscriber_id)}: ${got} vs ${want}`)
        }
      }
    } finally {
      everything.close()
      past.close()
    }
  })
})
