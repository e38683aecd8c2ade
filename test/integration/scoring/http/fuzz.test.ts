/**
 * The API fuzzed from its own OpenAPI document by schemathesis (pinned in python/requirements.txt,
 * run from the project's venv) against a live server serving a model and an online store: every
 * operation the document lists, with a bounded number of generated cases each, valid and
 * invalid. No answer may be a 5xx or break its documented schema; without a key, every keyed
 * operation must answer 401.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../../../config/index.ts'
import { createRedis } from '../../../../core/redis.ts'
import { buildApp } from '../../../../scoring/http/app.ts'
import { redisCheck } from '../../../../scoring/http/checks.ts'
import { ModelHolder } from '../../../../scoring/model-holder.ts'
import { campaignQueues } from '../../../../scoring/queues.ts'
import { OnlineStore } from '../../../../scoring/store.ts'
import { ensurePythonEnv, pythonEnvironment } from '../../../../stack/python.ts'
import { fitWith } from '../../../../training/engines.ts'
import { runTraining } from '../../../../training/pipeline.ts'
import { ModelRegistry } from '../../../../training/registry.ts'
import { lakehouseFeatureHash } from '../../../../training/sets.ts'
import { syntheticTrainingSet } from '../../../../training/synthetic.ts'
import { config as baseConfig, isolatedConfig, logger, tools } from '../../../helpers/context.ts'
import { API_KEY } from '../../../helpers/http.ts'

const run = promisify(execFile)

/** Generated cases per operation and phase: enough to reach every schema branch, under a minute in all. */
const MAX_EXAMPLES = 25

interface Outcome { code: number, output: string }

describe('the API under schemathesis', () => {
  let config: Config
  let cleanup: () => Promise<void>
  let app: FastifyInstance
  let base: string
  let schemathesis: string
  let reports: string
  let workDir: string
  const closers: Array<() => Promise<void> | void> = []

  before(async () => {
    const python = await ensurePythonEnv({ paths: { root: baseConfig.stack.dir }, tools })
    schemathesis = path.join(path.dirname(python), 'schemathesis')
    const isolated = await isolatedConfig({ API_KEYS: API_KEY, API_RATE_LIMIT_PER_MINUTE: '10000000', API_MAX_BATCH: '50' }, 'fuzz')
    config = isolated.config
    cleanup = isolated.cleanup
    reports = path.join(isolated.dir, 'reports')
    workDir = isolated.dir

    const set = await syntheticTrainingSet({ subscribers: 600 })
    const registry = new ModelRegistry(config.model.dir)
    await runTraining(set, {
      name: config.serving.modelName,
      registry,
      train: { engine: 'forest', fit: fitWith('forest'), forest: { nEstimators: 20, seed: 5 }, folds: 0, tiers: config.risk },
      gate: { tolerance: 1, minAuc: 0 },
      logger
    })
    const models = new ModelHolder({ registry, name: config.serving.modelName, pollMs: 60_000, logger, expectedFeatureHash: lakehouseFeatureHash() })
    await models.start()
    closers.push(() => { models.stop() })

    const redis = createRedis({ url: config.redis.url, maxRetriesPerRequest: 1 })
    closers.push(() => { redis.disconnect() })
    const store = new OnlineStore(redis, config.redis.prefix)
    const now = Date.now()
    await store.write([{
      subscriberId: 'SUB-0001',
      version: 1,
      featureTime: now,
      updatedAt: now,
      features: Object.fromEntries(set.schema.names.map((name, c) => {
        const value = set.x[c] as number
        return [name, Number.isNaN(value) ? null : value]
      })),
      probability: 0.5,
      scoredAt: now,
      modelVersion: 1,
      tier: 'medium',
      emittedProbability: 0.5
    }])
    const queues = campaignQueues(config)
    closers.push(async () => { await queues.close() })

    app = await buildApp({ logger, config, models, store, checks: { redis: redisCheck(redis) }, queues: Object.values(queues.queues) })
    base = await app.listen({ host: '127.0.0.1', port: 0 })
  })

  after(async () => {
    await app?.close()
    for (const close of closers.reverse()) await close()
    await cleanup?.()
  })

  const fuzz = async (name: string, args: readonly string[]): Promise<Outcome> => {
    // Run in the test's folder: schemathesis keeps state in ./.schemathesis, which must not land in the checkout.
    const result = await run(schemathesis, [
      'run', `${base}/docs/json`,
      '--checks', 'not_a_server_error,response_schema_conformance',
      '--max-examples', String(MAX_EXAMPLES),
      '--seed', '20240601',
      '--workers', '4',
      '--generation-database', 'none',
      '--no-color',
      '--report', 'ndjson', '--report-ndjson-path', path.join(reports, `${name}.ndjson`),
      ...args
    ], { cwd: workDir, env: pythonEnvironment(process.env), maxBuffer: 64 * 1024 * 1024, timeout: 170_000 }).then(
      ({ stdout }) => ({ code: 0, output: stdout }),
      (error: { code?: number, stdout?: string, stderr?: string }) => ({ code: error.code ?? -1, output: `${error.stdout ?? ''}\n${error.stderr ?? ''}` })
    )
    return result
  }

  it('finds no 5xx and no answer outside its schema, with a key', { timeout: 180_000 }, async t => {
    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json<{ paths: Record<string, unknown> }>()
    assert.ok(Object.keys(doc.paths).length >= 3, 'the document lists the routes')
    const outcome = await fuzz('keyed', ['--header', `x-api-key: ${API_KEY}`])
    assert.equal(outcome.code, 0, outcome.output)
    // Its summary: operations and cases per phase, the seed.
    t.diagnostic(outcome.output.trim().split('\n').filter(line => line.trim() !== '').slice(-14).join('\n'))
  })

  it('answers every keyed operation with 401 without a key, never a 5xx', { timeout: 180_000 }, async () => {
    // Public operations (probes, metrics) declare `security: []`; every other one needs the key.
    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json<{ paths: Record<string, Record<string, { security?: unknown[] }>> }>()
    const open = Object.entries(doc.paths).filter(([, operations]) => Object.values(operations).some(op => op.security?.length === 0)).map(([p]) => p)
    assert.ok(open.includes('/api/v1/health'))
    const outcome = await fuzz('anonymous', [...open.flatMap(p => ['--exclude-path', p]), '--max-examples', '5'])
    assert.equal(outcome.code, 0, outcome.output)
    const statuses = await responseStatuses(path.join(reports, 'anonymous.ndjson'))
    assert.ok(statuses.size > 0, 'schemathesis sent requests')
    assert.deepEqual([...statuses.keys()], [401], JSON.stringify(Object.fromEntries(statuses)))
  })
})

/** Status codes of the responses an ndjson report records, with their counts. */
async function responseStatuses (file: string): Promise<Map<number, number>> {
  const statuses = new Map<number, number>()
  const visit = (value: unknown): void => {
    if (typeof value !== 'object' || value === null) return
    if (Array.isArray(value)) { value.forEach(visit); return }
    const record = value as Record<string, unknown>
    const response = record.response
    if (typeof response === 'object' && response !== null && typeof (response as { status_code?: unknown }).status_code === 'number') {
      const code = (response as { status_code: number }).status_code
      statuses.set(code, (statuses.get(code) ?? 0) + 1)
    }
    for (const [key, child] of Object.entries(record)) if (key !== 'response') visit(child)
  }
  for (const line of (await readFile(file, 'utf8')).split('\n')) if (line.trim() !== '') visit(JSON.parse(line))
  return statuses
}
