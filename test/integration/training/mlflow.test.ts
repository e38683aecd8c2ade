import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { MlflowClient } from '../../../training/mlflow.ts'
import { config, uniqueName } from '../../helpers/context.ts'

/** The local stack's MLflow server, on the configured port. */
const trackingUri = `http://127.0.0.1:${config.stack.mlflowPort}`

/** Reads back through MLflow's own REST API, independently of the client under test. */
async function api<T> (endpoint: string, init: { method?: string, body?: unknown } = {}): Promise<T> {
  const response = await fetch(`${trackingUri}${endpoint}`, {
    method: init.method ?? 'GET',
    headers: { 'content-type': 'application/json' },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    signal: AbortSignal.timeout(10_000)
  })
  const text = await response.text()
  assert.equal(response.status, 200, `${endpoint} answered ${response.status}: ${text}`)
  return JSON.parse(text) as T
}

interface RunData {
  info: { run_id: string, experiment_id: string, run_name: string, status: string }
  data: { params?: Array<{ key: string, value: string }>, metrics?: Array<{ key: string, value: number }>, tags?: Array<{ key: string, value: string }> }
}

async function getRun (runId: string): Promise<RunData> {
  return (await api<{ run: RunData }>(`/api/2.0/mlflow/runs/get?run_id=${runId}`)).run
}

const asRecord = (entries: Array<{ key: string, value: string | number }> = []): Record<string, string | number> =>
  Object.fromEntries(entries.map(e => [e.key, e.value]))

/** A loopback port nothing listens on: bound, then released. */
async function closedPort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

describe('MlflowClient', () => {
  const experiments = new Set<string>()
  let dir = ''
  let artifact = ''
  const model = { version: 'test-1', features: ['tenure', 'monthly_charges'], trees: [[0, 1, 0.5]] }

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'churn-mlflow-'))
    artifact = path.join(dir, 'forest.json')
    await writeFile(artifact, JSON.stringify(model))
  })

  after(async () => {
    for (const id of experiments) await api('/api/2.0/mlflow/experiments/delete', { method: 'POST', body: { experiment_id: id } }).catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })

  describe('against the stack\'s MLflow server', () => {
    const experimentName = uniqueName('churn-test')
    let first: { experimentId: string, runId: string, url: string }

    it('logs params, metrics, tags and an artifact that read back the same', async () => {
      const client = new MlflowClient({ trackingUri })
      first = await client.logRun({
        experimentName,
        runName: 'forest-1',
        params: { engine: 'forest', trees: 50, balanced: true },
        metrics: { auc: 0.8125, brier: 0.1375, rows: 4000 },
        tags: { trigger: 'integration-test' },
        artifacts: [{ file: artifact, name: 'model/forest.json' }]
      })
      experiments.add(first.experimentId)
      assert.equal(first.url, `${trackingUri}/#/experiments/${first.experimentId}/runs/${first.runId}`)

      const run = await getRun(first.runId)
      assert.equal(run.info.status, 'FINISHED')
      assert.equal(run.info.experiment_id, first.experimentId)
      assert.equal(run.info.run_name, 'forest-1')
      assert.deepEqual(asRecord(run.data.params), { engine: 'forest', trees: '50', balanced: 'true' })
      assert.deepEqual(asRecord(run.data.metrics), { auc: 0.8125, brier: 0.1375, rows: 4000 })
      assert.equal(asRecord(run.data.tags).trigger, 'integration-test')

      const listed = await api<{ files?: Array<{ path: string, is_dir: boolean, file_size?: number }> }>(`/api/2.0/mlflow/artifacts/list?run_id=${first.runId}&path=model`)
      assert.deepEqual(listed.files, [{ path: 'model/forest.json', is_dir: false, file_size: Buffer.byteLength(JSON.stringify(model)) }])
      const download = await fetch(`${trackingUri}/get-artifact?path=model/forest.json&run_uuid=${first.runId}`, { signal: AbortSignal.timeout(10_000) })
      assert.equal(download.status, 200)
      assert.deepEqual(JSON.parse(await download.text()), model)
    })

    it('logs a second run into the same experiment instead of creating another', async () => {
      const second = await new MlflowClient({ trackingUri }).logRun({ experimentName, runName: 'forest-2', params: { trees: 100 }, metrics: { auc: 0.83 } })
      assert.equal(second.experimentId, first.experimentId)
      assert.notEqual(second.runId, first.runId)
      const found = await api<{ experiments?: Array<{ experiment_id: string }> }>('/api/2.0/mlflow/experiments/search', { method: 'POST', body: { filter: `name = '${experimentName}'`, max_results: 10 } })
      assert.deepEqual(found.experiments?.map(e => e.experiment_id), [first.experimentId])
      const runs = await api<{ runs?: RunData[] }>('/api/2.0/mlflow/runs/search', { method: 'POST', body: { experiment_ids: [first.experimentId], max_results: 10 } })
      assert.deepEqual(runs.runs?.map(r => r.info.run_name).sort(), ['forest-1', 'forest-2'])
    })

    it('logs more params and metrics than one request may carry', async () => {
      const params = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`param_${i}`, i]))
      const metrics = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`feature_importance_${i}`, i / 1500]))
      const logged = await new MlflowClient({ trackingUri }).logRun({ experimentName, runName: 'wide', params, metrics })
      const run = await getRun(logged.runId)
      assert.equal(run.info.status, 'FINISHED')
      assert.equal(run.data.params?.length, 250)
      assert.deepEqual(asRecord(run.data.metrics), metrics)
    })
  })

  describe('when the tracking server does not answer', () => {
    it('fails with CHURN_TRAIN_MLFLOW within the timeout, as retriable', async () => {
      const uri = `http://127.0.0.1:${await closedPort()}`
      const started = Date.now()
      await assert.rejects(new MlflowClient({ trackingUri: uri, timeoutMs: 2000 }).logRun({ experimentName: 'unreachable', runName: 'r', params: {}, metrics: { auc: 0.5 } }), (error: Error & { code?: string, retriable?: boolean }) => {
        assert.equal(error.code, 'CHURN_TRAIN_MLFLOW')
        assert.equal(error.retriable, true)
        assert.match(error.message, new RegExp(`MLflow at ${uri.replace(/\./g, '\\.')} did not answer GET /api/2\\.0/mlflow/experiments/get-by-name: .*ECONNREFUSED`))
        return true
      })
      assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`)
    })
  })

  describe('when a metric is not finite', () => {
    it('refuses the run before creating anything on the server', async () => {
      const experimentName = uniqueName('churn-nan')
      await assert.rejects(new MlflowClient({ trackingUri }).logRun({ experimentName, runName: 'r', params: { trees: 1 }, metrics: { auc: Number.NaN } }), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'CHURN_TRAIN_MLFLOW')
        assert.match(error.message, /Metric auc is NaN/)
        return true
      })
      const response = await fetch(`${trackingUri}/api/2.0/mlflow/experiments/get-by-name?experiment_name=${encodeURIComponent(experimentName)}`, { signal: AbortSignal.timeout(10_000) })
      assert.equal(response.status, 404)
      await response.body?.cancel()
    })
  })
})
