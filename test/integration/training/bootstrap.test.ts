/**
 * The init container's job on the real stack, as the pod runs it (`churn bootstrap`, a child
 * process on its own topics, lakehouse and models folder): demo history, ingest to lag zero,
 * training on CRM outcomes with point-in-time features, the gate, and the exit code.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readdir } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { after, describe, it } from 'node:test'
import { Lakehouse } from '../../../lakehouse/lakehouse.ts'
import { ModelRegistry } from '../../../training/registry.ts'
import { crmLabelsSql, lakehouseFeatureHash } from '../../../training/sets.ts'
import { isolatedConfig } from '../../helpers/context.ts'

const CLI = path.resolve(import.meta.dirname, '../../../cli/main.ts')

async function churn (env: Record<string, string | undefined>, args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...env, LOG_LEVEL: 'warn' }, maxBuffer: 8 * 1024 * 1024 })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code?: number, stdout?: string, stderr?: string }
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

describe('churn bootstrap', () => {
  const cleanups: Array<() => Promise<void>> = []
  after(async () => { for (const cleanup of cleanups) await cleanup() })

  it('seeds an empty lakehouse, ingests to lag 0, trains on CRM outcomes without leaks and promotes; a rerun seeds nothing', async () => {
    const { config, env, cleanup } = await isolatedConfig()
    cleanups.push(cleanup)
    const first = await churn(env, ['bootstrap', '--seed-demo', '--subscribers', '1500', '--events', '60000', '--trees', '80', '--folds', '3'])
    assert.equal(first.code, 0, first.stderr)
    assert.match(first.stdout, /churn\s+1\s+forest\s+crm-outcomes\s+1[45]\d\d\s+28\s/)
    assert.match(first.stdout, /promoted: first model/)
    assert.match(first.stdout, /serving churn v1/)

    const registry = new ModelRegistry(config.model.dir)
    const model = await registry.current('churn')
    assert.ok(model !== undefined)
    assert.equal(model.training.labels, 'crm-outcomes')
    assert.equal(model.features.hash, lakehouseFeatureHash(), 'a scorer of Gold features accepts it')
    const auc = model.metrics.test.rocAuc
    // The synthetic churn is predictable but noisy; near 1 would mean the labels leak.
    assert.ok(auc > 0.7 && auc < 0.97, `hold-out AUC ${auc}`)
    assert.ok(model.training.window !== null)

    // Every label's features were taken before its outcome took effect (7 days ahead by default).
    const lakehouse = await Lakehouse.open(config.lakehouse)
    try {
      const late = await lakehouse.connection.runAndReadAll(`SELECT count(*) FROM (${crmLabelsSql(7)}) l JOIN silver_crm c ON c.event_id = l.label_id
        WHERE l.as_of_ms > ((c.effective_date - DATE '1970-01-01') - 7)::BIGINT * 86400000`)
      assert.equal(Number(late.getRows()[0]?.[0]), 0)
    } finally {
      lakehouse.close()
    }

    const second = await churn(env, ['bootstrap', '--seed-demo', '--trees', '80', '--folds', '0', '--seed', '9'])
    assert.equal(second.code, 0, second.stderr)
    assert.match(second.stderr + second.stdout, /no demo history generated|churn\s+2\s/)
    assert.match(second.stdout, /churn\s+2\s+forest\s+crm-outcomes/)
    assert.match(second.stdout, /(promoted|not promoted): .*current v1/)
    assert.deepEqual((await registry.list('churn')).map(m => m.version), [1, 2])
  })

  it('refuses to train without outcomes unless told to bootstrap labels, and marks such a model', async () => {
    const { config, env, cleanup } = await isolatedConfig()
    cleanups.push(cleanup)
    const produced = await churn(env, ['produce', '--subscribers', '600', '--events', '20000', '--no-outcomes'])
    assert.equal(produced.code, 0, produced.stderr)

    const refused = await churn(env, ['bootstrap'])
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /CHURN_TRAIN_EMPTY/)
    assert.match(refused.stderr, /--bootstrap-labels/)
    await assert.rejects(readdir(config.model.dir), { code: 'ENOENT' }, 'nothing written to the models folder')

    const bootstrapped = await churn(env, ['bootstrap', '--bootstrap-labels', '--trees', '40', '--folds', '0'])
    assert.equal(bootstrapped.code, 0, bootstrapped.stderr)
    assert.match(bootstrapped.stdout, /churn\s+1\s+forest\s+rule-bootstrap/)
    const model = await new ModelRegistry(config.model.dir).current('churn')
    assert.equal(model?.training.labels, 'rule-bootstrap')
  })
})
