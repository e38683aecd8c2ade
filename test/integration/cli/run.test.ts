/**
 * The main job end to end, as `npm start` runs it, on its own topics and lakehouse file: it
 * reuses the running stack, proves the chain, sends synthetic traffic, ingests it to lag zero,
 * prints the quality report and trains a model. Run twice, the second run's events are the first run's, landed once.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
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
  before(async () => { ({ config, env, cleanup } = await isolatedConfig()) })
  after(async () => { await cleanup() })

  it('produces traffic, lands it through Gold and reports it; a second run lands nothing new', async () => {
    const run = async (): Promise<string> => (await promisify(execFile)(process.execPath, [CLI, 'run', '--events', '4000', '--subscribers', '300', '--seed', '5'], { env: { ...env, LOG_LEVEL: 'warn' }, maxBuffer: 4 * 1024 * 1024 })).stdout
    const first = await run()
    assert.match(first, /produced\s+4,300 messages for 300 subscribers/)
    assert.match(first, /ingested\s+4,300 messages in \d+ micro-batches to lag 0/)
    assert.match(first, /Gold equals its recompute from Silver: yes/)
    assert.match(first, /quality_below_45/)
    assert.match(first, /churn\s+1\s+forest\s+crm-outcomes\s+2\d\d\s+28\s/, 'trains on the CRM outcomes with history 7 days before them')
    assert.match(first, /promoted: first model; hold-out AUC/)

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
    assert.equal(once.bronze, 4300)
    assert.equal(once.crm, 300)

    const second = await run()
    assert.match(second, /ingested\s+4,300 messages/)
    assert.match(second, /churn\s+2\s+forest\s+crm-outcomes/, 'a second run trains a second version, judged by the gate')
    const twice = await silverAfter()
    assert.equal(twice.bronze, 8600, 'Bronze keeps every message')
    assert.equal(twice.silver, once.silver, 'the same events do not land in Silver twice')
    assert.equal(twice.crm, 300, 'one outcome per subscriber, not two')
  })
})
