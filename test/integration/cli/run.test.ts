/**
 * The main job end to end, as `npm start` runs it, on its own topics, lakehouse file, models
 * folder and Redis prefix: it reuses the running stack, proves the chain, sends synthetic
 * history, ingests it to lag zero, prints the quality report, trains a model, then runs every
 * role in one process under a few seconds of live traffic and summarises. Run twice, the second
 * run's history is the first run's, landed once.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../../config/index.ts'
import { Lakehouse } from '../../../lakehouse/lakehouse.ts'
import { isolatedConfig } from '../../helpers/context.ts'

const CLI = path.resolve(import.meta.dirname, '../../../cli/main.ts')

describe('churn run', () => {
  let config: Config
  let env: Record<string, string | undefined>
  let cleanup: () => Promise<void>
  let port: number
  before(async () => {
    ({ config, env, cleanup } = await isolatedConfig())
    // A port nobody listens on, for the HTTP role of the live phase.
    const probe = createServer()
    await new Promise<void>(resolve => probe.listen(0, '127.0.0.1', resolve))
    port = (probe.address() as AddressInfo).port
    await new Promise(resolve => probe.close(resolve))
  })
  after(async () => { await cleanup() })

  it('produces traffic, lands it through Gold and reports it; a second run lands nothing new', async () => {
    const run = async (): Promise<string> => (await promisify(execFile)(process.execPath, [CLI, 'run', '--events', '4000', '--subscribers', '300', '--seed', '5', '--live-seconds', '4', '--rate', '300'],
      { env: { ...env, LOG_LEVEL: 'warn', HTTP_PORT: String(port) }, maxBuffer: 4 * 1024 * 1024 })).stdout
    /** What the live phase landed: events in Bronze and in Silver. */
    const landedLive = (out: string): { bronze: number, silver: number } => {
      const match = /ingest landed ([\d,]+) \(([\d,]+) to Silver/.exec(out)
      assert.ok(match !== null, out)
      return { bronze: Number((match[1] as string).replace(/,/g, '')), silver: Number((match[2] as string).replace(/,/g, '')) }
    }
    const first = await run()
    assert.match(first, /produced\s+4,300 messages for 300 subscribers/)
    assert.match(first, /ingested\s+4,300 messages in \d+ micro-batches to lag 0/)
    assert.match(first, /Gold equals its recompute from Silver: yes/)
    assert.match(first, /quality_below_45/)
    assert.match(first, /churn\s+1\s+forest\s+crm-outcomes\s+2\d\d\s+28\s/, 'trains on the CRM outcomes with history 7 days before them')
    assert.match(first, /promoted: first model; hold-out AUC/)
    // The live phase: every role in one process, caught up, events by tier, jobs by channel.
    assert.match(first, /every role caught up/)
    assert.match(first, /scorer\s+model churn v1: [\d,]+ changelog records, [\d,]+ scored/)
    assert.match(first, /high\s+[\d,]+/)
    assert.match(first, /crm\s+outbox\s+[\d,]+/)
    assert.match(first, new RegExp(`queue dashboard\\s+http://127\\.0\\.0\\.1:${port}/queues`))
    const live1 = landedLive(first)
    assert.ok(live1.bronze > 0, 'live traffic landed')

    const silverAfter = async (): Promise<{ silver: number, bronze: number, crm: number }> => {
      const lakehouse = await Lakehouse.open({ path: config.lakehouse.path })
      try {
        const report = await lakehouse.qualityReport()
        return { silver: report.pipeline.silver_total, bronze: report.pipeline.bronze_total, crm: (await lakehouse.counts()).silver_crm ?? 0 }
      } finally {
        lakehouse.close()
      }
    }
    const once = await silverAfter()
    assert.equal(once.bronze, 4300 + live1.bronze)
    assert.equal(once.crm, 300)

    const second = await run()
    assert.match(second, /ingested\s+4,300 messages/)
    assert.match(second, /churn\s+2\s+forest\s+crm-outcomes/, 'a second run trains a second version, judged by the gate')
    const live2 = landedLive(second)
    const twice = await silverAfter()
    assert.equal(twice.bronze, once.bronze + 4300 + live2.bronze, 'Bronze keeps every message')
    assert.equal(twice.silver, once.silver + live2.silver, 'the same history does not land in Silver twice')
    assert.equal(twice.crm, 300, 'one outcome per subscriber, not two')
  })
})
