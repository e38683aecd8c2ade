import assert from 'node:assert/strict'
import path from 'node:path'
import { describe, it } from 'node:test'
import { MLFLOW_LIMITS, MlflowClient, checkRun, splitIntoBatches } from '../../../training/mlflow.ts'
import type { MlflowRun } from '../../../training/mlflow.ts'

// A repository file stands in for an artifact: unit tests write nothing.
const ARTIFACT = path.resolve(import.meta.dirname, '../../../python/requirements.txt')

interface Seen { method: string, path: string, body: unknown, headers: Headers }

/**
 * A stand-in MLflow for the answers a real server gives only by chance (a racing experiment
 * creation, a failed upload); the integration test covers the real one.
 */
function fakeMlflow (answer: (request: Seen) => { status: number, body: unknown } | undefined): { fetch: typeof fetch, seen: Seen[] } {
  const seen: Seen[] = []
  const fake: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input)
    const raw = init?.body
    const request: Seen = { method: init?.method ?? 'GET', path: url.pathname + url.search, body: typeof raw === 'string' ? JSON.parse(raw) : raw, headers: new Headers(init?.headers) }
    seen.push(request)
    const reply = answer(request) ?? defaultAnswer(request)
    return await Promise.resolve(new Response(JSON.stringify(reply.body), { status: reply.status, headers: { 'content-type': 'application/json' } }))
  }
  return { fetch: fake, seen }
}

function defaultAnswer (request: Seen): { status: number, body: unknown } {
  if (request.path.includes('experiments/get-by-name')) return { status: 200, body: { experiment: { experiment_id: '7', lifecycle_stage: 'active' } } }
  if (request.path.endsWith('runs/create')) return { status: 200, body: { run: { info: { run_id: 'r1', artifact_uri: 'mlflow-artifacts:/7/r1/artifacts' } } } }
  return { status: 200, body: {} }
}

const run = (overrides: Partial<MlflowRun> = {}): MlflowRun => ({
  experimentName: 'churn-test',
  runName: 'run-1',
  params: { trees: 100, engine: 'forest', balanced: true },
  metrics: { auc: 0.81 },
  ...overrides
})

describe('splitIntoBatches', () => {
  it('keeps every batch within MLflow\'s per-request limits and loses nothing', () => {
    const params = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`p${i}`, i]))
    const tags = Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`t${i}`, 'x']))
    const metrics = Object.fromEntries(Array.from({ length: 2500 }, (_, i) => [`m${i}`, i / 7]))
    const batches = splitIntoBatches({ params, tags, metrics }, 1)
    for (const batch of batches) {
      assert.ok(batch.params.length <= MLFLOW_LIMITS.paramsPerBatch)
      assert.ok(batch.tags.length <= MLFLOW_LIMITS.tagsPerBatch)
      assert.ok(batch.metrics.length <= MLFLOW_LIMITS.metricsPerBatch)
      assert.ok(batch.params.length + batch.tags.length + batch.metrics.length <= MLFLOW_LIMITS.entitiesPerBatch)
      assert.ok(Buffer.byteLength(JSON.stringify(batch)) <= MLFLOW_LIMITS.batchBytes + 100)
    }
    assert.equal(batches.flatMap(b => b.params).length, 250)
    assert.equal(batches.flatMap(b => b.tags).length, 120)
    assert.deepEqual(batches.flatMap(b => b.metrics).map(m => m.key), Object.keys(metrics))
  })

  it('splits by size when long values would pass a megabyte', () => {
    const params = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`p${i}`, 'v'.repeat(MLFLOW_LIMITS.paramValueLength)]))
    const tags = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`t${i}`, 't'.repeat(MLFLOW_LIMITS.tagValueLength)]))
    const batches = splitIntoBatches({ params, tags, metrics: {} }, 1)
    assert.ok(batches.length >= 2)
    for (const batch of batches) assert.ok(Buffer.byteLength(JSON.stringify(batch)) < 1_000_000)
  })

  it('sends params as strings and metrics with the run\'s timestamp at step 0', () => {
    const [batch] = splitIntoBatches({ params: { trees: 100, balanced: false }, metrics: { auc: 0.5 } }, 1234)
    assert.deepEqual(batch?.params, [{ key: 'trees', value: '100' }, { key: 'balanced', value: 'false' }])
    assert.deepEqual(batch?.metrics, [{ key: 'auc', value: 0.5, timestamp: 1234, step: 0 }])
  })
})

describe('checkRun', () => {
  it('refuses non-finite metrics, naming the metric', () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      assert.throws(() => { checkRun(run({ metrics: { auc: 0.8, brier: value } })) }, (error: Error & { code?: string }) => {
        assert.equal(error.code, 'CHURN_TRAIN_MLFLOW')
        assert.match(error.message, /Metric brier is (NaN|-?Infinity); MLflow runs log finite numbers only/)
        return true
      })
    }
  })

  it('refuses values over MLflow\'s length limits and artifact names that climb out', () => {
    assert.throws(() => { checkRun(run({ params: { features: 'x'.repeat(6001) } })) }, /Param features is 6001 characters long; MLflow keeps at most 6000/)
    assert.throws(() => { checkRun(run({ tags: { note: 'x'.repeat(8001) } })) }, /Tag note is 8001 characters long/)
    assert.throws(() => { checkRun(run({ metrics: { ['k'.repeat(251)]: 1 } })) }, /metric keys need 1 to 250 characters/)
    assert.throws(() => { checkRun(run({ artifacts: [{ file: ARTIFACT, name: '../escape.json' }] })) }, /relative path of plain segments/)
    assert.doesNotThrow(() => { checkRun(run({ params: { features: 'é'.repeat(6000) }, artifacts: [{ file: ARTIFACT, name: 'model/forest.json' }] })) })
  })
})

describe('MlflowClient', () => {
  describe('when a run is refused before any request', () => {
    it('sends nothing for a non-finite metric or a missing artifact file', async () => {
      const server = fakeMlflow(() => undefined)
      const client = new MlflowClient({ trackingUri: 'http://mlflow.test', fetch: server.fetch })
      await assert.rejects(client.logRun(run({ metrics: { auc: Number.NaN } })), { code: 'CHURN_TRAIN_MLFLOW' })
      await assert.rejects(client.logRun(run({ artifacts: [{ file: '/nonexistent/model.json' }] })), /Artifact \/nonexistent\/model\.json is not a readable file/)
      assert.deepEqual(server.seen, [])
    })
  })

  describe('when another client creates the experiment first', () => {
    it('takes the experiment that creation says exists', async () => {
      let lookups = 0
      const server = fakeMlflow((request) => {
        if (request.path.includes('get-by-name')) {
          lookups++
          return lookups === 1 ? { status: 404, body: { error_code: 'RESOURCE_DOES_NOT_EXIST', message: 'no such experiment' } } : undefined
        }
        if (request.path.endsWith('experiments/create')) return { status: 400, body: { error_code: 'RESOURCE_ALREADY_EXISTS', message: 'Experiment(name=churn-test) already exists.' } }
        return undefined
      })
      const logged = await new MlflowClient({ trackingUri: 'http://mlflow.test/', fetch: server.fetch }).logRun(run())
      assert.deepEqual(logged, { experimentId: '7', runId: 'r1', url: 'http://mlflow.test/#/experiments/7/runs/r1' })
      assert.deepEqual(server.seen.map(s => `${s.method} ${s.path.split('?')[0] ?? ''}`), [
        'GET /api/2.0/mlflow/experiments/get-by-name',
        'POST /api/2.0/mlflow/experiments/create',
        'GET /api/2.0/mlflow/experiments/get-by-name',
        'POST /api/2.0/mlflow/runs/create',
        'POST /api/2.0/mlflow/runs/log-batch',
        'POST /api/2.0/mlflow/runs/update'
      ])
      assert.equal((server.seen.at(-1)?.body as { status: string }).status, 'FINISHED')
    })
  })

  describe('when an upload fails after the run was created', () => {
    it('marks the run FAILED and throws the server\'s status and message', async () => {
      const server = fakeMlflow(request => request.method === 'PUT' ? { status: 503, body: { error_code: 'TEMPORARILY_UNAVAILABLE', message: 'disk full' } } : undefined)
      const client = new MlflowClient({ trackingUri: 'http://mlflow.test', fetch: server.fetch })
      await assert.rejects(client.logRun(run({ artifacts: [{ file: ARTIFACT, name: 'model/requirements.txt' }] })), (error: Error & { code?: string, status?: number, mlflowErrorCode?: string, retriable?: boolean }) => {
        assert.equal(error.code, 'CHURN_TRAIN_MLFLOW')
        assert.equal(error.status, 503)
        assert.equal(error.mlflowErrorCode, 'TEMPORARILY_UNAVAILABLE')
        assert.equal(error.retriable, true)
        assert.match(error.message, /PUT \/api\/2\.0\/mlflow-artifacts\/artifacts\/7\/r1\/artifacts\/model\/requirements\.txt with 503 TEMPORARILY_UNAVAILABLE: disk full/)
        return true
      })
      const last = server.seen.at(-1)
      assert.equal(last?.path, '/api/2.0/mlflow/runs/update')
      assert.deepEqual({ ...(last?.body as object), end_time: 0 }, { run_id: 'r1', status: 'FAILED', end_time: 0 })
    })
  })

  describe('when the run\'s artifacts are not proxied by the server', () => {
    it('says how to start the server instead of guessing a path', async () => {
      const server = fakeMlflow(request => request.path.endsWith('runs/create') ? { status: 200, body: { run: { info: { run_id: 'r2', artifact_uri: 's3://bucket/7/r2/artifacts' } } } } : undefined)
      const client = new MlflowClient({ trackingUri: 'http://mlflow.test', fetch: server.fetch })
      await assert.rejects(client.logRun(run({ artifacts: [{ file: ARTIFACT }] })), /artifact location is s3:\/\/bucket\/7\/r2\/artifacts, which the tracking server does not proxy; start it with --serve-artifacts/)
    })
  })

  describe('when the experiment is deleted', () => {
    it('refuses to log into it and says so', async () => {
      const server = fakeMlflow(request => request.path.includes('get-by-name') ? { status: 200, body: { experiment: { experiment_id: '3', lifecycle_stage: 'deleted' } } } : undefined)
      const client = new MlflowClient({ trackingUri: 'http://mlflow.test', fetch: server.fetch })
      await assert.rejects(client.logRun(run()), /experiment "churn-test" \(id 3\) is deleted/)
      assert.equal(server.seen.length, 1)
    })
  })

  it('sends credentials from the tracking URI as basic auth, not in the URL', async () => {
    const server = fakeMlflow(() => undefined)
    const logged = await new MlflowClient({ trackingUri: 'https://trainer:s%40cret@mlflow.test/prefix', fetch: server.fetch }).logRun(run())
    assert.equal(server.seen[0]?.headers.get('authorization'), `Basic ${Buffer.from('trainer:s@cret').toString('base64')}`)
    assert.match(server.seen[0]?.path ?? '', /^\/prefix\/api\/2\.0\/mlflow\//)
    assert.equal(logged.url, 'https://mlflow.test/prefix/#/experiments/7/runs/r1')
  })
})
