/**
 * Hostile HTTP input, over a listening server with its real dependencies (a promoted model, the
 * online store and the campaign queues in Redis, the quality report, the live feed on Kafka).
 *
 * Injection strings in every parameter: the routes are read from the app's own router, so a
 * route added later is attacked without anyone editing this test (one documented with a request
 * body fails the test until it gets a baseline body here). Each route gets every hostile string
 * (SQL, Redis globs and protocol, path traversal, NUL and control characters, templates and
 * script, prototype pollution, 100 KB, RTL, emoji and invalid UTF-8, numbers as strings) in
 * each header that means something (the key three ways, content type, host), the query (any
 * parameter, and those each route reads: the OpenAPI document's, bull-board's own specs for the
 * dashboard), each path parameter (percent-encoded and raw) and each value and key of each
 * baseline body, raw JSON number tokens where a body has a number, and whole hostile bodies;
 * then malformed requests no client library would send. Requests go over `node:net` byte for
 * byte, on a lakehouse model's server and, for the scoring bodies, a Telco model's.
 *
 * Each answer is judged against what a harmless value in the same place gets: never a 5xx; a
 * 4xx when the harmless value gets one (a hostile value never gets further than a harmless wrong
 * one), with a reason and no stack, source file or folder of ours; a 2xx only where the harmless
 * value gets the same 2xx and the same body. The one allowance: a number written as text (or an
 * empty value) may be taken where text is parsed into numbers, in a query and in a raw profile's
 * fields (CSV cells). After the barrage nothing changed: the test's Redis
 * keys, a key outside its prefix, the models folder, `Object.prototype`, and the answers to
 * normal predictions.
 *
 * Model swap: thousands of concurrent predictions through every scoring route while the promoted
 * version flips between two different forests; every answer equals, to the last bit, what one
 * version computes offline with the code the server uses, and both versions are seen.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../../../config/index.ts'
import { createRedis } from '../../../../core/redis.ts'
import type { QualityReport } from '../../../../lakehouse/lakehouse.ts'
import { KafkaRiskFeed } from '../../../../scoring/http/risk-feed.ts'
import { publishQuality, readQuality } from '../../../../streams/quality-publisher.ts'
import { createKafka } from '../../../../streams/kafka.ts'
import { ChurnModel } from '../../../../training/model.ts'
import { ModelRegistry } from '../../../../training/registry.ts'
import { logger } from '../../../helpers/context.ts'
import { RAW_NUMBERS, appRoutes, comparablePattern, exchange, hostileStrings, inPool, requestBytes } from '../../../helpers/hostile.ts'
import type { Json, RawResponse, RouteEntry } from '../../../helpers/hostile.ts'
import { attack, comparable, dashboardQuery, locations, probeMalformed, redisKeys, snapshot } from '../../../helpers/hostile-barrage.ts'
import type { Location, Tally, Target } from '../../../helpers/hostile-barrage.ts'
import { swapFixture } from '../../../helpers/model-swap.ts'
import type { SwapRequest } from '../../../helpers/model-swap.ts'
import { trainPromoted } from '../../../helpers/scoring.ts'
import { API_KEY, servingApp, servingConfig, trainTelco } from '../../../helpers/serving.ts'
import type { ServingApp } from '../../../helpers/serving.ts'
import { REFERENCE_PROFILE } from '../../../helpers/telco.ts'

/** Requests in flight during the barrage. */
const BARRAGE_CONCURRENCY = 16
/** The stored subscriber the subscriber route finds. */
const SUBSCRIBER = 'SUB-0001'
/** Generous: thousands of requests on a small machine other tests share. */
const TIMEOUT_MS = 1_800_000

/** Rows per batch request during the swap. */
const SWAP_BATCH = 16
/** Requests per round of traffic, and in flight at once. */
const SWAP_REQUESTS = 3000
const SWAP_CONCURRENCY = 48
/** Rounds of traffic go on until the version flipped this often and both versions answered, or this many ran. */
const SWAP_MIN_FLIPS = 20
const SWAP_MAX_ROUNDS = 10
/** How often the server's model holder reads the registry's pointer. */
const SWAP_POLL_MS = 5

/** The app as the server role builds it (store, queues, the quality report, the live feed), listening. */
async function listeningServer (t: TestContext, config: Config, pollMs?: number): Promise<ServingApp & { port: number }> {
  const redis = createRedis({ url: config.redis.url, maxRetriesPerRequest: 1 })
  t.after(() => { redis.disconnect() })
  const riskFeed = new KafkaRiskFeed({ kafka: createKafka({ brokers: config.kafka.brokers, clientId: 'test-hostile-feed', logger }), topic: config.topics.churnRisk, registryUrl: config.registry.url, logger, groupPrefix: 'test-hostile' })
  const serving = await servingApp(t, config, { ...(pollMs === undefined ? {} : { pollMs }), deps: { riskFeed, quality: async () => await readQuality(redis, config.redis.prefix) } })
  await serving.app.listen({ host: '127.0.0.1', port: 0 })
  return { ...serving, port: (serving.app.server.address() as AddressInfo).port }
}

const QUALITY: QualityReport = {
  pipeline: { bronze_total: 10, silver_total: 9, quarantined: 1, dead_lettered: 0, pass_rate: 90 },
  quality_scores: { avg_bronze: 80, excellent_gte80: 9, good_60_79: 1, fair_45_59: 0, poor_lt45: 0 },
  quarantine_reasons: { invalid_subscriber_id: 1 },
  by_source: { billing: { bronze: 10, silver: 9, quarantined: 1 } },
  gold: { subscribers: 1, freshest_feature_ms: null, last_batch_committed_ms: null }
}

/**
 * Two servers over real dependencies: one serving a lakehouse model, with a stored subscriber and
 * a published quality report (every route can answer 200), one serving a Telco model (raw profiles).
 */
async function barrageTargets (t: TestContext): Promise<{ lakehouse: Target, telco: Target, app: FastifyInstance, vector: number[], encoded: number[] }> {
  const env = { API_RATE_LIMIT_PER_MINUTE: '10000000', API_MAX_BATCH: '20' }
  const lakehouse = await servingConfig(env)
  t.after(lakehouse.cleanup)
  const telco = await servingConfig({ ...env, MODEL_NAME: 'telco' })
  t.after(telco.cleanup)
  const { config } = lakehouse
  const { outcome, set } = await trainPromoted(config, { subscribers: 600, trees: 20, seed: 1, gate: { tolerance: 1, minAuc: 0 } })
  const names = outcome.artifact.features.names
  const vector = Array.from(outcome.artifact.imputation)
  const [n0 = '', n1 = ''] = names
  const v0 = vector[0] ?? 0
  const encoded = Array.from(new ChurnModel(await trainTelco(telco.config)).fromProfile(REFERENCE_PROFILE))

  const server = await listeningServer(t, config)
  const telcoServer = await listeningServer(t, telco.config)
  const now = Date.now()
  const features = Object.fromEntries(names.map((n, c) => [n, Number.isNaN(set.x[c] as number) ? null : set.x[c] as number]))
  await server.store.write([{ subscriberId: SUBSCRIBER, version: 1, featureTime: now, updatedAt: now, features, probability: 0.5, scoredAt: now, modelVersion: outcome.artifact.version, tier: 'low', emittedProbability: null }])
  const redis = createRedis({ url: config.redis.url, maxRetriesPerRequest: 1 })
  try {
    await publishQuality(redis, config.redis.prefix, QUALITY)
  } finally {
    redis.disconnect()
  }

  const params = { name: config.serving.modelName, id: SUBSCRIBER, queueName: 'campaign-crm', jobId: 'no-such-job', queueStatus: 'failed', schedulerId: 'no-such-scheduler', '*': 'index.html' }
  const v1Predict = 'POST /v1/models/:name(^[^:/]+)::predict'
  const v2Infer = 'POST /v2/models/:name/infer'
  return {
    app: server.app,
    vector,
    encoded,
    lakehouse: {
      port: server.port,
      config,
      params,
      baselines: new Map<string, Json[]>([
        ['POST /api/v1/predict', [{ features: { [n0]: v0, [n1]: null } }, { instances: [vector] }, { instances: [{ [n0]: v0 }] }]],
        [v1Predict, [{ instances: [vector] }, { instances: [{ [n0]: v0 }] }]],
        [v2Infer, [
          { id: 'request-1', inputs: [{ name: 'input-0', shape: [1, names.length], datatype: 'FP64', data: vector, parameters: {} }], outputs: [{ name: 'probability' }], parameters: {} },
          { inputs: [{ name: n0, shape: [1], datatype: 'FP64', data: [v0] }, { name: n1, shape: [1, 1], datatype: 'INT64', data: [[1]] }] }
        ]]
      ]),
      query: new Map()
    },
    telco: {
      port: telcoServer.port,
      config: telco.config,
      params: { ...params, name: telco.config.serving.modelName },
      baselines: new Map<string, Json[]>([
        ['POST /api/v1/predict', [{ profile: REFERENCE_PROFILE }, { profiles: [REFERENCE_PROFILE] }]],
        [v1Predict, [{ instances: [REFERENCE_PROFILE, encoded] }]],
        [v2Infer, [{ inputs: [{ name: 'input-0', shape: [1, encoded.length], datatype: 'FP32', data: encoded }] }]]
      ]),
      query: new Map(),
      takesText: where => /^body #\d+ \/(profile|profiles\/0|instances\/0)\/(?!<key )/.test(where)
    }
  }
}

interface OpenApiDocument { paths: Record<string, Record<string, { parameters?: Array<{ in: string, name: string }>, requestBody?: unknown }>> }

/**
 * The routes, from the router, and the query parameters each reads. The OpenAPI document's
 * operations must be among the routes (else the router's listing was misread), and each one that
 * takes a body must have a baseline body in `target` (else its fields would go untried).
 */
async function routeInventory (app: FastifyInstance, target: Target): Promise<{ routes: RouteEntry[], query: Map<string, string[]> }> {
  const routes = appRoutes(app)
  const byKey = new Map(routes.map(r => [`${r.method} ${comparablePattern(r.pattern)}`, r]))
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json<OpenApiDocument>()
  const query = new Map<string, string[]>()
  for (const [docPath, operations] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const route = byKey.get(`${method.toUpperCase()} ${comparablePattern(docPath, true)}`)
      assert.ok(route !== undefined, `the router lists ${method.toUpperCase()} ${docPath}`)
      const key = `${route.method} ${route.pattern}`
      if (operation.requestBody !== undefined) assert.ok(target.baselines.has(key), `${key} takes a body: give it a baseline body in this test`)
      const names = (operation.parameters ?? []).filter(p => p.in === 'query').map(p => p.name)
      if (names.length > 0) query.set(key, names)
    }
  }
  for (const [key, names] of dashboardQuery()) query.set(key, names)
  assert.ok(routes.length >= 40, `the router lists the API, the docs and the dashboard (${routes.length} routes)`)
  return { routes, query }
}

/** Normal requests, whose answers must be the same before and after the barrage. */
function normalRequests (lakehouse: Target, vector: readonly number[], telco: Target, encoded: readonly number[]): Array<{ port: number, bytes: Buffer }> {
  const post = (target: Target, url: string, body: Json): { port: number, bytes: Buffer } => ({
    port: target.port,
    bytes: requestBytes({ method: 'POST', target: url, headers: [['x-api-key', API_KEY], ['content-type', 'application/json']], body: Buffer.from(JSON.stringify(body)) })
  })
  const name = lakehouse.config.serving.modelName
  return [
    post(lakehouse, '/api/v1/predict', { instances: [[...vector]] }),
    post(lakehouse, `/v1/models/${name}:predict`, { instances: [[...vector]] }),
    post(lakehouse, `/v2/models/${name}/infer`, { inputs: [{ name: 'input-0', shape: [1, vector.length], datatype: 'FP64', data: [...vector] }] }),
    { port: lakehouse.port, bytes: requestBytes({ method: 'GET', target: `/api/v1/subscribers/${SUBSCRIBER}/predict`, headers: [['x-api-key', API_KEY]] }) },
    post(telco, `/v1/models/${telco.config.serving.modelName}:predict`, { instances: [REFERENCE_PROFILE, [...encoded]] })
  ]
}

/** Each answer's status and body (without clock fields). */
async function answers (requests: ReadonlyArray<{ port: number, bytes: Buffer }>): Promise<string[]> {
  return await Promise.all(requests.map(async ({ port, bytes }) => {
    const [response] = await exchange(port, bytes) as [RawResponse]
    return `${response.status} ${comparable(response)}`
  }))
}

/** Waits until `condition` holds, looking every few milliseconds (the test's timeout bounds it). */
async function until (condition: () => boolean): Promise<void> {
  while (!condition()) await sleep(2)
}

describe('the API under hostile input', () => {
  describe('when every parameter of every route carries injection strings', () => {
    it('answers each with a 4xx giving a reason, or what a harmless value gets, and changes nothing', { timeout: TIMEOUT_MS }, async t => {
      const { lakehouse, telco, app, vector, encoded } = await barrageTargets(t)
      const { routes, query } = await routeInventory(app, lakehouse)
      lakehouse.query = query
      const redis = createRedis({ url: lakehouse.config.redis.url, maxRetriesPerRequest: 1 })
      const sentinel = `hostile-sentinel-${randomUUID()}`
      t.after(async () => { await redis.del(sentinel); redis.disconnect() })
      await redis.set(sentinel, 'untouched')

      const folders = [process.cwd(), path.dirname(lakehouse.config.model.dir), path.dirname(telco.config.model.dir)]
      const strings = hostileStrings(lakehouse.config.redis.prefix)
      const normal = normalRequests(lakehouse, vector, telco, encoded)
      const before = {
        keys: await redisKeys(lakehouse.config),
        models: await snapshot(lakehouse.config.model.dir),
        telcoModels: await snapshot(telco.config.model.dir),
        answers: await answers(normal)
      }
      assert.ok(before.keys.length > 0, 'the store and the quality report have keys under the prefix')
      for (const answer of before.answers) assert.match(answer, /^200 \{/)

      // Every place of every route on the lakehouse server; the body places of the scoring
      // routes again on the Telco server, where objects are raw profiles.
      const tally: Tally = { requests: 0, statuses: new Map(), failures: [] }
      const places: Array<{ target: Target, location: Location }> = [
        ...routes.flatMap(r => locations(lakehouse, r.method, r.pattern, false).map(location => ({ target: lakehouse, location }))),
        ...routes.filter(r => telco.baselines.has(`${r.method} ${r.pattern}`)).flatMap(r => locations(telco, r.method, r.pattern, true).map(location => ({ target: telco, location })))
      ]
      await inPool(places, BARRAGE_CONCURRENCY, async ({ target, location }) => { await attack(target, location, strings, folders, tally) })
      const malformedCount = await probeMalformed(lakehouse, folders, tally)

      const kinds = new Set(places.map(p => p.location.where.replace(/ #\d+ .*/, ' (baseline body)'))).size
      const statuses = JSON.stringify(Object.fromEntries([...tally.statuses].sort((a, b) => a[0] - b[0])))
      process.stderr.write(`# hostile HTTP input: ${routes.length} routes (method × pattern), ${places.length} places (${kinds} kinds), ${strings.length} hostile strings, ${RAW_NUMBERS.length} raw numbers, ${malformedCount} malformed requests; ${tally.requests} requests, answers ${statuses}\n`)
      assert.deepEqual(tally.failures.slice(0, 40), [], `${tally.failures.length} of ${tally.requests} answers were wrong`)

      // Nothing changed.
      assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined, 'Object.prototype is not polluted')
      assert.equal(({} as Record<string, unknown>).polluted, undefined)
      assert.deepEqual(await redisKeys(lakehouse.config), before.keys, 'the same Redis keys under the test\'s prefix')
      assert.equal(await redis.get(sentinel), 'untouched', 'a key outside the prefix is still there')
      assert.deepEqual(await snapshot(lakehouse.config.model.dir), before.models, 'the models folder is unchanged')
      assert.deepEqual(await snapshot(telco.config.model.dir), before.telcoModels, 'the Telco models folder is unchanged')
      assert.deepEqual(await answers(normal), before.answers, 'normal predictions are answered as before')
    })
  })

  describe('when requests arrive while the promoted version flips between two', () => {
    it('answers every one wholly from one version, bit for bit, and serves both', { timeout: TIMEOUT_MS }, async t => {
      const { config, cleanup } = await servingConfig({ API_RATE_LIMIT_PER_MINUTE: '10000000', API_MAX_BATCH: String(SWAP_BATCH) })
      t.after(cleanup)
      const name = config.serving.modelName
      const gate = { tolerance: 1, minAuc: 0 }
      const first = await trainPromoted(config, { subscribers: 600, trees: 20, seed: 1, gate })
      const second = await trainPromoted(config, { set: first.set, trees: 20, seed: 2, gate })
      const registry = new ModelRegistry(config.model.dir)
      const versions = [first.outcome.artifact.version, second.outcome.artifact.version] as const
      // Read from the models folder and scored with the server's own code, offline.
      const offline = new Map(await Promise.all(versions.map(async v => [v, new ChurnModel(await registry.load(name, v))] as const)))
      const swap = swapFixture(first.set, offline, config, SWAP_BATCH)
      const server = await listeningServer(t, config, SWAP_POLL_MS)
      await server.store.write([swap.stored])
      const base = `http://127.0.0.1:${server.port}`
      const serving = (): number | undefined => server.models.current?.version
      let promoted: number = versions[1]

      const seen = new Map<number, number>(versions.map(v => [v, 0]))
      const failures: string[] = []
      let answered = 0
      let swaps = 0
      let rounds = 0
      const ask = async (request: SwapRequest): Promise<void> => {
        try {
          const response = await fetch(`${base}${request.path}`, { method: request.body === undefined ? 'GET' : 'POST', headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' }, ...(request.body === undefined ? {} : { body: request.body }) })
          const text = await response.text()
          if (response.status !== 200) { failures.push(`${request.kind}: answered ${response.status}: ${text.slice(0, 300)}`); return }
          const verdict = swap.judge(request, JSON.parse(text) as unknown)
          if (typeof verdict === 'string') failures.push(`${request.kind}: ${verdict}`)
          else seen.set(verdict, (seen.get(verdict) ?? 0) + 1)
        } catch (error) {
          failures.push(`${request.kind}: no answer: ${(error as Error).message}`)
        } finally {
          answered++
        }
      }
      while (rounds < SWAP_MAX_ROUNDS && (swaps < SWAP_MIN_FLIPS || [...seen.values()].some(n => n === 0))) {
        rounds++
        await until(() => serving() === promoted)
        let done = false
        const traffic = inPool(Array.from({ length: SWAP_REQUESTS }, (_, i) => swap.requests[i % swap.requests.length] as SwapRequest), SWAP_CONCURRENCY, ask)
          .finally(() => { done = true })
        // Flip while the traffic runs (promote, then roll back): each flip waits until the
        // server serves the other version, then until a window of answers came back under it.
        while (!done) {
          promoted = promoted === versions[1] ? versions[0] : versions[1]
          if (promoted === versions[1]) await registry.promote(name, promoted, 'hostile test: flip')
          else await registry.rollback(name)
          await until(() => serving() === promoted || done)
          if (serving() === promoted) swaps++
          const mark = answered
          await until(() => answered >= mark + SWAP_CONCURRENCY || done)
        }
        await traffic
      }
      process.stderr.write(`# model swap under load: ${answered} requests (${SWAP_CONCURRENCY} in flight, ${swap.requests.length} kinds through 5 routes, batches of ${SWAP_BATCH}) in ${rounds} round(s), ${swaps} swaps; answers by version ${JSON.stringify(Object.fromEntries(seen))}; ${failures.length} wrong\n`)
      assert.deepEqual(failures.slice(0, 20), [], `${failures.length} of ${answered} answers were wrong`)
      assert.ok([...seen.values()].every(n => n > 0), `both versions answered: ${JSON.stringify(Object.fromEntries(seen))}`)
      assert.ok(swaps >= SWAP_MIN_FLIPS, `${swaps} swaps happened under traffic`)
    })
  })
})
