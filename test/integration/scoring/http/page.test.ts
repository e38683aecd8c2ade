/**
 * The web page and its routes over a real server: a Telco model trained from the CSV, the online
 * store in Redis, the quality report published by a real ingest run, and the live feed reading
 * churn-risk events produced through the registry. The last test drives the page in headless
 * Chromium (Debian's `chromium`, through playwright-core) and saves a screenshot.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { access, copyFile, mkdir } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { chromium } from 'playwright-core'
import type { Config } from '../../../../config/index.ts'
import { createRedis } from '../../../../core/redis.ts'
import { avroType, encodeFramed, latestSchema } from '../../../../schemas/index.ts'
import { registerDerivedSchemas } from '../../../../schemas/register.ts'
import { createSchemaRegistry } from '../../../../schemas/registry.ts'
import type { ChurnRiskEvent } from '../../../../schemas/types.generated.ts'
import { buildApp } from '../../../../scoring/http/app.ts'
import { redisCheck } from '../../../../scoring/http/checks.ts'
import { KafkaRiskFeed } from '../../../../scoring/http/risk-feed.ts'
import { servedFeatureHash } from '../../../../scoring/http/server.ts'
import { ModelHolder } from '../../../../scoring/model-holder.ts'
import { campaignQueues } from '../../../../scoring/queues.ts'
import { OnlineStore } from '../../../../scoring/store.ts'
import { runIngest } from '../../../../streams/ingest-role.ts'
import { createKafka } from '../../../../streams/kafka.ts'
import { produceTraffic } from '../../../../streams/producer.ts'
import { readQuality } from '../../../../streams/quality-publisher.ts'
import { ensureProjectTopics } from '../../../../streams/topics.ts'
import { ModelRegistry } from '../../../../training/registry.ts'
import { logger } from '../../../helpers/context.ts'
import { API_KEY, keyed, servingConfig, trainTelco } from '../../../helpers/serving.ts'

const CHROMIUM = '/usr/bin/chromium'
const SCREENSHOT = path.resolve(import.meta.dirname, '../../../../test-output/page.png')

/** A churn-risk event as the scorer emits it. */
function riskEvent (subscriberId: string, probability = 0.81): ChurnRiskEvent {
  const now = Date.now()
  return {
    eventId: `${subscriberId}/1/1`,
    subscriberId,
    probability,
    tier: 'high',
    previousTier: 'medium',
    recommendedAction: 'Assign retention manager & offer loyalty bundle immediately.',
    reasons: [{ feature: 'max_days_overdue', value: 41, contribution: 0.18 }],
    modelName: 'churn',
    modelVersion: 1,
    featureVersion: 1,
    featureTime: now - 60_000,
    featureAgeMs: 60_000,
    stale: false,
    scoredAt: now
  }
}

/** The server-sent events of a fetch body, parsed: `next(until)` reads until a frame satisfies `until` and returns it. */
function sseReader (body: ReadableStream<Uint8Array>): { next: (until: (event: string, data: unknown) => boolean) => Promise<{ event: string, data: unknown }> } {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  return {
    async next (until) {
      for (;;) {
        let end: number
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const event = /^event: (.*)$/m.exec(frame)?.[1]
          const data = /^data: (.*)$/m.exec(frame)?.[1]
          if (event !== undefined && data !== undefined) {
            const parsed: unknown = JSON.parse(data)
            if (until(event, parsed)) return { event, data: parsed }
          }
        }
        const { value, done } = await reader.read()
        assert.ok(!done, 'the stream ended before the expected frame')
        buffer += value
      }
    }
  }
}

describe('the web page', () => {
  let config: Config
  let cleanup: () => Promise<void>
  let app: FastifyInstance
  let base: string
  let store: OnlineStore
  let riskSchemaId: number
  let dir: string
  const closers: Array<() => Promise<void> | void> = []

  /** Produces framed churn-risk events to the isolated topic. */
  const produce = async (events: readonly ChurnRiskEvent[]): Promise<void> => {
    const type = avroType((await latestSchema('churn-risk')).schema)
    const producer = createKafka({ brokers: config.kafka.brokers, clientId: 'test-page-risk', logger }).producer()
    await producer.connect()
    try {
      await producer.send({ topic: config.topics.churnRisk, acks: -1, messages: events.map(e => ({ key: e.subscriberId, value: encodeFramed(riskSchemaId, type, e) })) })
    } finally {
      await producer.disconnect()
    }
  }

  before(async () => {
    const isolated = await servingConfig()
    config = isolated.config
    cleanup = isolated.cleanup
    dir = path.dirname(config.model.dir)
    await trainTelco(config)
    const derived = await registerDerivedSchemas({ registry: createSchemaRegistry({ url: config.registry.url }), url: config.registry.url, topics: config.topics })
    riskSchemaId = derived.find(d => d.name === 'churn-risk')?.latestId ?? -1
    assert.ok(riskSchemaId > 0, 'the churn-risk subject is registered')
    await ensureProjectTopics(createKafka({ brokers: config.kafka.brokers, clientId: 'test-page-topics', logger }), config.topics)

    const models = new ModelHolder({ registry: new ModelRegistry(config.model.dir), name: config.serving.modelName, pollMs: 60_000, logger, expectedFeatureHash: servedFeatureHash })
    await models.start()
    closers.push(() => { models.stop() })
    const redis = createRedis({ url: config.redis.url, maxRetriesPerRequest: 1 })
    closers.push(() => { redis.disconnect() })
    store = new OnlineStore(redis, config.redis.prefix)
    const queues = campaignQueues(config)
    closers.push(async () => { await queues.close() })
    const riskFeed = new KafkaRiskFeed({ kafka: createKafka({ brokers: config.kafka.brokers, clientId: 'test-page-feed', logger }), topic: config.topics.churnRisk, registryUrl: config.registry.url, logger, groupPrefix: 'test-page' })
    app = await buildApp({
      logger,
      config,
      models,
      store,
      checks: { redis: redisCheck(redis) },
      queues: Object.values(queues.queues),
      riskFeed,
      quality: async () => await readQuality(redis, config.redis.prefix)
    })
    base = await app.listen({ host: '127.0.0.1', port: 0 })
  })

  after(async () => {
    await app?.close()
    for (const close of closers.reverse()) await close()
    await cleanup?.()
  })

  describe('GET /', () => {
    it('serves the page without a key, its form and a policy allowing only its own script', async () => {
      const response = await app.inject({ method: 'GET', url: '/' })
      assert.equal(response.statusCode, 200)
      assert.match(response.headers['content-type'] as string, /^text\/html/)
      assert.match(response.body, /<form id="score-form"/)
      assert.match(response.body, /<fieldset id="profile-fieldset">/)
      assert.match(response.body, /aria-live="polite"/)
      assert.doesNotMatch(response.body, /<script src=|<link rel="stylesheet"|https?:\/\/(?!www\.w3\.org)/, 'nothing is loaded from elsewhere')
      const policy = response.headers['content-security-policy'] as string
      assert.match(policy, /script-src 'sha256-[A-Za-z0-9+/=]+'(;|$)/)
      assert.match(policy, /connect-src 'self'/)
    })
  })

  describe('GET /api/v1/model/form', () => {
    it('describes the Telco model\'s columns as number and category fields', async () => {
      const response = await app.inject({ method: 'GET', url: '/api/v1/model/form', headers: keyed() })
      assert.equal(response.statusCode, 200, response.body)
      const form = response.json<{ kind: string, fields: Array<{ name: string, type: string, levels?: string[] }> }>()
      assert.equal(form.kind, 'tabular')
      const field = (name: string): { name: string, type: string, levels?: string[] } | undefined => form.fields.find(f => f.name === name)
      assert.equal(field('tenure')?.type, 'number')
      assert.equal(field('Contract')?.type, 'category')
      assert.ok(field('Contract')?.levels?.includes('Month-to-month'))
      assert.ok(field('PaymentMethod')?.levels?.includes('Electronic check'))
      assert.equal(field('customerID'), undefined, 'the identifier is not an input')
    })

    it('needs the key', async () => {
      const response = await app.inject({ method: 'GET', url: '/api/v1/model/form' })
      assert.equal(response.statusCode, 401)
    })
  })

  describe('GET /api/v1/analytics/tiers', () => {
    it('counts the online store by tier and probability', async () => {
      const now = Date.now()
      const entry = (id: string, tier: 'low' | 'medium' | 'high', probability: number): Parameters<OnlineStore['write']>[0][number] => ({
        subscriberId: id, version: 1, featureTime: now, updatedAt: now, features: {}, probability, scoredAt: now, modelVersion: 1, tier, emittedProbability: probability
      })
      await store.write([entry('SUB-1', 'low', 0.05), entry('SUB-2', 'low', 0.12), entry('SUB-3', 'medium', 0.55), entry('SUB-4', 'high', 0.93)])
      const response = await app.inject({ method: 'GET', url: '/api/v1/analytics/tiers', headers: keyed() })
      assert.equal(response.statusCode, 200, response.body)
      const body = response.json<{ counts: Record<string, number>, subscribers: number, histogram: number[] }>()
      assert.deepEqual(body.counts, { low: 2, medium: 1, high: 1 })
      assert.equal(body.subscribers, 4)
      assert.deepEqual(body.histogram, [1, 1, 0, 0, 0, 1, 0, 0, 0, 1])
    })
  })

  describe('GET /api/v1/analytics/quality', () => {
    it('answers 503 naming the ingest role until ingest publishes, then its report', async () => {
      const before = await app.inject({ method: 'GET', url: '/api/v1/analytics/quality', headers: keyed() })
      assert.equal(before.statusCode, 503, before.body)
      const refusal = before.json<{ code: string, message: string }>()
      assert.equal(refusal.code, 'CHURN_API_QUALITY_UNPUBLISHED')
      assert.match(refusal.message, /ingest role/)

      // A real ingest run over a small generated history (its dirty share is quarantined): it
      // publishes the report at start and at stop.
      const produced = await produceTraffic({ config, logger, subscribers: 100, events: 2000, seed: 3, days: 30 })
      const redis = createRedis({ url: config.redis.url })
      try {
        await runIngest({ config, logger, untilCaughtUp: true, publishQuality: { redis, prefix: config.redis.prefix } })
      } finally {
        redis.disconnect()
      }
      const published = await app.inject({ method: 'GET', url: '/api/v1/analytics/quality', headers: keyed() })
      assert.equal(published.statusCode, 200, published.body)
      const body = published.json<{ published_at: string, age_seconds: number, report: { pipeline: { pass_rate: number, bronze_total: number, silver_total: number, quarantined: number } } }>()
      const { pipeline } = body.report
      assert.equal(pipeline.bronze_total, produced.sent)
      assert.equal(pipeline.bronze_total, pipeline.silver_total + pipeline.quarantined)
      assert.ok(pipeline.pass_rate > 50 && pipeline.pass_rate < 100, `pass rate ${pipeline.pass_rate}`)
      assert.ok(body.age_seconds < 60)
      assert.ok(Date.parse(body.published_at) <= Date.now())
    })
  })

  describe('GET /api/v1/events/stream', () => {
    it('refuses a client without a key', async () => {
      const response = await fetch(`${base}/api/v1/events/stream`)
      assert.equal(response.status, 401)
      await response.body?.cancel()
    })

    it('streams a churn-risk event produced to the topic, decoded through the registry', { timeout: 60_000 }, async () => {
      const abort = new AbortController()
      try {
        const response = await fetch(`${base}/api/v1/events/stream`, { headers: keyed({ accept: 'text/event-stream' }), signal: abort.signal })
        assert.equal(response.status, 200)
        assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/)
        const frames = sseReader(response.body as ReadableStream<Uint8Array>)
        // Produced only once the feed is live: its group starts at the latest offset.
        await frames.next((event, data) => event === 'status' && (data as { live: boolean }).live)
        const subscriber = `SUB-${randomUUID().slice(0, 8)}`
        await produce([riskEvent(subscriber)])
        const { data } = await frames.next((event, d) => event === 'risk' && (d as ChurnRiskEvent).subscriberId === subscriber)
        const event = data as ChurnRiskEvent
        assert.equal(event.tier, 'high')
        assert.equal(event.previousTier, 'medium')
        assert.equal(event.probability, 0.81)
        assert.deepEqual(event.reasons, [{ feature: 'max_days_overdue', value: 41, contribution: 0.18 }])
      } finally {
        abort.abort()
      }
    })
  })

  describe('in headless Chromium', () => {
    it('scores the reference profile, shows the live feed and saves a screenshot', { timeout: 120_000 }, async t => {
      await access(CHROMIUM).catch(() => {
        assert.fail(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium; .ci/run does) to run the page's browser test`)
      })
      // --no-sandbox: Chromium's sandbox refuses to start as root, which CI runs as.
      const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] })
      try {
        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
        const problems: string[] = []
        page.on('pageerror', error => { problems.push(`page error: ${error.message}`) })
        page.on('console', message => { if (message.type() === 'error' && !/status of (401|503)/.test(message.text())) problems.push(`console: ${message.text()}`) })
        await page.goto(base)
        await page.getByLabel('API key').fill(API_KEY)
        await page.getByRole('button', { name: 'Use key' }).click()

        // The form comes from the model; the reference example fills it.
        const tenure = page.locator('#field-tenure')
        await tenure.waitFor()
        assert.equal(await tenure.inputValue(), '1')
        assert.equal(await page.locator('#field-Contract').inputValue(), 'Month-to-month')
        assert.equal(await page.locator('#field-InternetService').inputValue(), 'Fiber optic')
        assert.equal(await page.locator('#field-PaymentMethod').inputValue(), 'Electronic check')
        assert.equal(await page.locator('#field-MonthlyCharges').inputValue(), '95.75')

        await page.getByRole('button', { name: 'Score', exact: true }).click()
        const shown = page.locator('#score-probability')
        await shown.waitFor()
        const probability = Number(await shown.getAttribute('data-probability'))
        assert.ok(probability >= 0 && probability <= 1, `probability ${probability} is in [0, 1]`)
        assert.equal(Number((await shown.textContent()) ?? ''), probability)
        const tier = await page.locator('#score-tier').getAttribute('data-tier')
        assert.ok(['low', 'medium', 'high'].includes(tier ?? ''), `tier ${tier}`)
        assert.match((await page.locator('#score-action').textContent()) ?? '', /Recommended:/)

        // The live feed: produced once the page's stream is live, then shown.
        await page.locator('#feed-status[data-live="true"]').waitFor({ timeout: 30_000 })
        const subscriber = `SUB-${randomUUID().slice(0, 8)}`
        await produce([riskEvent(subscriber, 0.77)])
        await page.locator(`#feed li[data-subscriber="${subscriber}"]`).waitFor({ timeout: 30_000 })

        // The other panels answered.
        await page.locator('#tiers-svg').waitFor()
        await page.locator('#quality-pass-rate').waitFor()
        assert.match((await page.locator('#model-name').textContent()) ?? '', new RegExp(`^${config.serving.modelName} v1`))
        assert.deepEqual(problems, [])

        const own = path.join(dir, 'page.png')
        await page.screenshot({ path: own, fullPage: true })
        await mkdir(path.dirname(SCREENSHOT), { recursive: true })
        await copyFile(own, SCREENSHOT)
        t.diagnostic(`screenshot: ${SCREENSHOT} (and ${own})`)
      } finally {
        await browser.close()
      }
    })
  })
})
