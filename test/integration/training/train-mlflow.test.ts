/**
 * `churn train` with MLFLOW_TRACKING_URI set logs its run to the stack's real MLflow server: the
 * parameters, the hold-out and gate figures, and the artifact file, which reads back identical to
 * the one in the models folder. The run's local record names the MLflow run.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { after, describe, it } from 'node:test'
import { ModelRegistry } from '../../../training/registry.ts'
import { config, uniqueName } from '../../helpers/context.ts'
import { TELCO } from '../../helpers/telco.ts'

const CLI = path.resolve(import.meta.dirname, '../../../cli/main.ts')
const trackingUri = `http://127.0.0.1:${config.stack.mlflowPort}`

async function api (endpoint: string): Promise<Response> {
  return await fetch(`${trackingUri}${endpoint}`, { signal: AbortSignal.timeout(10_000) })
}

describe('churn train logs to MLflow', () => {
  let dir = ''
  after(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

  it('records params, metrics and the artifact of the Telco model', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'churn-train-mlflow-'))
    const experiment = uniqueName('train')
    const env = { ...process.env, MODEL_DIR: path.join(dir, 'models'), MLFLOW_TRACKING_URI: trackingUri, MLFLOW_EXPERIMENT: experiment, LOG_LEVEL: 'warn' }
    await promisify(execFile)(process.execPath, [CLI, 'train', '--csv', TELCO, '--target', 'Churn', '--positive', 'Yes', '--name', 'telco', '--trees', '50', '--folds', '3'], { env })

    const registry = new ModelRegistry(path.join(dir, 'models'))
    const artifact = await registry.current('telco')
    assert.ok(artifact !== undefined)
    const runs = (await readFile(path.join(dir, 'models', 'telco', 'runs.jsonl'), 'utf8')).trim().split('\n')
    const record = JSON.parse(runs[0] as string) as { tracking: { mlflow: { runId: string, experimentId: string } } }
    const { runId } = record.tracking.mlflow

    const run = (await (await api(`/api/2.0/mlflow/runs/get?run_id=${runId}`)).json()) as { run: { info: { status: string, run_name: string }, data: { params: Array<{ key: string, value: string }>, metrics: Array<{ key: string, value: number }>, tags: Array<{ key: string, value: string }> } } }
    assert.equal(run.run.info.status, 'FINISHED')
    assert.equal(run.run.info.run_name, 'telco-v1')
    const params = Object.fromEntries(run.run.data.params.map(p => [p.key, p.value]))
    assert.equal(params.nEstimators, '50')
    assert.equal(params.classWeight, 'balanced')
    const metrics = Object.fromEntries(run.run.data.metrics.map(m => [m.key, m.value]))
    assert.equal(metrics.test_roc_auc, artifact.metrics.test.rocAuc)
    assert.equal(metrics.cv_roc_auc_mean, artifact.metrics.cv?.mean)
    assert.equal(metrics.promoted, 1)
    assert.equal(Object.fromEntries(run.run.data.tags.map(t => [t.key, t.value])).feature_hash, artifact.features.hash)

    const download = await api(`/api/2.0/mlflow-artifacts/artifacts/${record.tracking.mlflow.experimentId}/${runId}/artifacts/telco-v1.json`)
    assert.equal(download.status, 200)
    assert.equal(await download.text(), await readFile(registry.file('telco', 1), 'utf8'))
  })
})
