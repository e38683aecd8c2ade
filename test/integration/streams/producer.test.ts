/**
 * The synthetic producer against the real stack: every message is Confluent-framed Avro under the
 * registry's latest id for its topic, keyed by subscriber id with all of a subscriber's messages
 * in one partition; a re-run with the same seed sends the same events, which ingest lands once;
 * rate mode paces itself by its clock and starts a new cohort when a window ends.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../../config/index.ts'
import { Lakehouse } from '../../../lakehouse/lakehouse.ts'
import type { CrmOutcome } from '../../../schemas/index.ts'
import { runIngest } from '../../../streams/ingest-role.ts'
import { produceTraffic } from '../../../streams/producer.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'
import { readSourceEvents } from '../../helpers/topics.ts'

const NOW = Date.UTC(2026, 10, 20, 12)

describe('produceTraffic', () => {
  describe('when given a count', () => {
    let config: Config
    let cleanup: () => Promise<void>
    before(async () => { ({ config, cleanup } = await isolatedConfig()) })
    after(async () => { await cleanup() })

    it('sends that many framed, keyed events and one outcome per subscriber, and the same ones again from the same seed', async () => {
      const options = { config, logger, subscribers: 300, events: 6000, seed: 9, days: 30, clock: () => NOW }
      const first = await produceTraffic(options)
      assert.equal(first.sent, 6300)
      assert.equal(first.byStream.crm, 300)
      assert.equal(first.churned + first.retained, 300)
      assert.ok(first.churned > 30 && first.churned < 150, `${first.churned} churned`)

      const decoded = await readSourceEvents(config, logger)
      const total = [...decoded.values()].reduce((n, list) => n + list.length, 0)
      assert.equal(total, 6300)
      const partitionOf = new Map<string, number>()
      for (const [stream, list] of decoded) {
        assert.equal(list.length, first.byStream[stream], `${stream} count`)
        assert.equal(new Set(list.map(m => m.schemaId)).size, 1, `${stream} is written with one schema id`)
        for (const m of list) {
          assert.equal(m.key, m.value.subscriberId, 'keyed by subscriber id')
          const seen = partitionOf.get(`${stream}:${m.key}`)
          assert.ok(seen === undefined || seen === m.partition, 'a subscriber stays on one partition')
          partitionOf.set(`${stream}:${m.key}`, m.partition)
          assert.ok((m.value.eventTime as number) <= NOW && (m.value.eventTime as number) >= NOW - 30 * 86_400_000)
        }
      }
      assert.ok(new Set([...partitionOf.values()]).size > 1, 'subscribers spread over partitions')
      const outcomes = (decoded.get('crm') ?? []).map(m => m.value as unknown as CrmOutcome)
      assert.equal(new Set(outcomes.map(o => o.subscriberId)).size, 300)

      const again = await produceTraffic(options)
      assert.equal(again.sent, 6300)
      const twice = await readSourceEvents(config, logger)
      const ids = [...twice.values()].flatMap(list => list.map(m => String(m.value.eventId)))
      assert.equal(ids.length, 12_600)
      assert.equal(new Set(ids).size, 6300, 'the second run sent the same event ids')

      // Ingest lands each event once however often it was sent; the dirty share is quarantined.
      const summary = await runIngest({ config, logger, untilCaughtUp: true })
      assert.equal(summary.messages, 12_600)
      assert.equal(summary.deadLettered, 0)
      const lakehouse = await Lakehouse.open({ path: config.lakehouse.path })
      try {
        // Bronze keeps every message (each offset once); Silver each event once; the re-sent
        // copies and the dirty share are quarantined with their reasons.
        const report = await lakehouse.qualityReport()
        assert.equal(report.pipeline.bronze_total, 12_600)
        assert.equal(report.pipeline.bronze_total, report.pipeline.silver_total + report.pipeline.quarantined)
        const silver = 'SELECT event_id FROM silver_billing UNION ALL SELECT event_id FROM silver_network UNION ALL SELECT event_id FROM silver_device UNION ALL SELECT event_id FROM silver_crm'
        const [silverRows, silverIds] = (await lakehouse.connection.runAndReadAll(`SELECT count(*), count(DISTINCT event_id) FROM (${silver})`)).getRows()[0] ?? []
        assert.equal(Number(silverRows), Number(silverIds), 'no event twice in Silver')
        const dirty = Number((await lakehouse.connection.runAndReadAll(`SELECT count(DISTINCT event_id) FROM quarantine WHERE reasons <> ['duplicate_event']`)).getRows()[0]?.[0])
        assert.equal(Number(silverRows) + dirty, 6300, 'every event is in Silver or quarantined for what is wrong with it')
        assert.ok(dirty > 60 && dirty < 250, `${dirty} dirty events`)
        assert.ok((report.quarantine_reasons.duplicate_event ?? 0) > 6000)
        assert.ok((report.quarantine_reasons.quality_below_45 ?? 0) > 0)
        const counts = await lakehouse.counts()
        assert.equal(counts.silver_crm, 300)
        assert.ok((counts.gold_features ?? 0) >= 290, 'nearly every subscriber has Gold features')
        assert.deepEqual(await lakehouse.goldDifferences(), [])
      } finally {
        lakehouse.close()
      }
    })
  })

  describe('when given a rate', () => {
    let config: Config
    let cleanup: () => Promise<void>
    before(async () => { ({ config, cleanup } = await isolatedConfig()) })
    after(async () => { await cleanup() })

    it('paces events by its clock, stamps them with it, and starts a new cohort when a window ends', async () => {
      // A clock that moves 100 ms per reading: the pace is the clock's, not the machine's.
      let now = NOW
      const clock = (): number => (now += 100)
      const summary = await produceTraffic({ config, logger, subscribers: 20, rate: 50, durationMs: 3000, horizonMs: 1000, seed: 4, clock })
      assert.ok(summary.cohorts >= 3, `${summary.cohorts} cohorts`)
      const events = summary.byStream.billing + summary.byStream.network + summary.byStream.device
      assert.ok(events >= 140 && events <= 151, `${events} events for 3 s at 50/s`)
      // Every finished cohort recorded one outcome per subscriber.
      assert.equal(summary.byStream.crm, (summary.cohorts - 1) * 20)
      const decoded = await readSourceEvents(config, logger)
      const subscribers = new Set((decoded.get('network') ?? []).map(m => m.key))
      assert.ok([...subscribers].some(s => s.startsWith('SUB-C1-')), 'the second cohort has its own subscribers')
      for (const list of decoded.values()) {
        for (const m of list) assert.ok((m.value.eventTime as number) > NOW && (m.value.eventTime as number) <= NOW + 3100)
      }
    })
  })
})
