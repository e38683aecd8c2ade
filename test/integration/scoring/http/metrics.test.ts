import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Admin } from 'kafkajs'
import { Registry } from 'prom-client'
import { recordPrediction, registerIngestMetrics, kafkaFigures } from '../../../../scoring/http/metrics.ts'
import { createKafka } from '../../../../streams/kafka.ts'
import { ensureProjectTopics } from '../../../../streams/topics.ts'
import { logger } from '../../../helpers/context.ts'
import { API_KEY, httpApp } from '../../../helpers/http.ts'

function echo (app: FastifyInstance): void {
  app.post('/api/v1/test-echo/:id', { schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[a-z0-9]+$' } } }, body: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } } } }, request => ({ got: request.body }))
}

async function scrape (app: FastifyInstance): Promise<string> {
  const response = await app.inject({ method: 'GET', url: '/metrics' })
  assert.equal(response.statusCode, 200)
  assert.match(String(response.headers['content-type']), /^text\/plain; version=0\.0\.4/)
  return response.body
}

/** The value of one sample line, or undefined when absent. */
function sample (text: string, series: string): number | undefined {
  const line = text.split('\n').find(l => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('/metrics', () => {
  it('times requests by route pattern, not raw URL', async t => {
    const { app } = await httpApp(t, { extend: echo })
    const headers = { 'x-api-key': API_KEY }
    for (const id of ['abc', 'def', 'ghi']) {
      assert.equal((await app.inject({ method: 'POST', url: `/api/v1/test-echo/${id}?x=1`, headers, payload: { n: 1 } })).statusCode, 200)
    }
    const text = await scrape(app)
    assert.equal(sample(text, 'http_request_duration_seconds_count{method="POST",route="/api/v1/test-echo/:id",status_code="200"}'), 3)
    assert.doesNotMatch(text, /test-echo\/abc/)
  })

  it('counts each kind of rejected request by cause', async t => {
    const { app } = await httpApp(t, { extend: echo, env: { API_BODY_LIMIT_BYTES: '1024' } })
    const headers = { 'x-api-key': API_KEY, 'content-type': 'application/json' }
    const statuses = [
      (await app.inject({ method: 'POST', url: '/api/v1/test-echo/abc', payload: '{}' })).statusCode,
      (await app.inject({ method: 'POST', url: '/api/v1/test-echo/abc', headers: { ...headers, 'x-api-key': 'wrong-key-0123456789' }, payload: '{}' })).statusCode,
      (await app.inject({ method: 'POST', url: '/api/v1/test-echo/abc', headers, payload: '{"n": "one"}' })).statusCode,
      (await app.inject({ method: 'POST', url: '/api/v1/test-echo/abc', headers, payload: '{"n": 1' })).statusCode,
      (await app.inject({ method: 'POST', url: '/api/v1/test-echo/abc', headers, payload: JSON.stringify({ n: 1, pad: 'x'.repeat(2000) }) })).statusCode,
      (await app.inject({ method: 'POST', url: '/api/v1/test-echo/abc', headers: { ...headers, 'content-type': 'application/xml' }, payload: '<n>1</n>' })).statusCode,
      (await app.inject({ method: 'GET', url: '/api/v1/nowhere', headers })).statusCode
    ]
    assert.deepEqual(statuses, [401, 401, 400, 400, 413, 415, 404])
    const text = await scrape(app)
    for (const [reason, count] of [['auth', 2], ['validation', 1], ['malformed', 1], ['too_large', 1], ['unsupported_media_type', 1], ['not_found', 1]] as const) {
      assert.equal(sample(text, `churn_api_requests_rejected_total{reason="${reason}"}`), count, reason)
    }
    assert.equal(sample(text, 'http_request_duration_seconds_count{method="GET",route="not_found",status_code="404"}'), 1)
  })

  it('shows predictions by tier, the model version and the campaign queue depths', async t => {
    const { app } = await httpApp(t)
    recordPrediction(app, 'high', 3)
    recordPrediction(app, 'low')
    const text = await scrape(app)
    assert.equal(sample(text, 'churn_api_predictions_total{tier="high"}'), 3)
    assert.equal(sample(text, 'churn_api_predictions_total{tier="low"}'), 1)
    assert.equal(sample(text, 'churn_api_model_version'), 0)
    assert.equal(sample(text, 'churn_campaign_queue_jobs{queue="campaign-crm",state="waiting"}'), 0)
    assert.equal(sample(text, 'churn_campaign_queue_jobs{queue="campaign-sms",state="failed"}'), 0)
  })

  describe('when Kafka answers', () => {
    it('shows consumer-group lag and dead-letter topic sizes', async t => {
      // The admin needs the test's configuration, which exists once the app does.
      const client: { admin?: Admin } = {}
      const { app, config } = await httpApp(t, {
        deps: {
          kafka: async () => {
            if (client.admin === undefined) throw new Error('not connected yet')
            return await kafkaFigures(client.admin, config)()
          }
        }
      })
      const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'metrics-test', logger })
      await ensureProjectTopics(kafka, config.topics)
      const admin = kafka.admin()
      await admin.connect()
      client.admin = admin
      t.after(async () => { await admin.disconnect() })
      const text = await scrape(app)
      assert.equal(sample(text, `churn_consumer_group_lag{group="${config.ingest.groupId}"}`), 0)
      assert.equal(sample(text, `churn_consumer_group_lag{group="${config.scorer.groupId}"}`), 0)
      assert.equal(sample(text, `churn_dead_letter_messages{topic="${config.topics.deadLetter(config.topics.features)}"}`), 0)
    })
  })

  describe('when Kafka does not answer', () => {
    it('answers within the collect timeout without those series and counts the failure', async t => {
      const { app } = await httpApp(t, { deps: { kafka: async () => await new Promise(() => {}), collectTimeoutMs: 200 } })
      const started = Date.now()
      const text = await scrape(app)
      assert.ok(Date.now() - started < 2000)
      assert.doesNotMatch(text, /^churn_consumer_group_lag\{/m)
      // The failure is counted as the scrape ends, so the next scrape shows it.
      assert.equal(sample(await scrape(app), 'churn_api_scrape_errors_total{source="kafka"}'), 1)
    })
  })

  describe('when ingest runs in the process', () => {
    it('shows its counters and batch durations', async t => {
      const registry = new Registry()
      const ingest = registerIngestMetrics(registry, () => ({ batches: 2, messages: 50, bronze: 50, silver: 45, quarantined: 4, deadLettered: 1, changelogPublished: 30, skippedRedelivered: 0, failing: 0, lastError: undefined, lastBatchAtMs: Date.now() }))
      ingest.observeBatch({ batchId: 1, bronze: 50, silver: 45, quarantined: 4, deadLettered: 1, touched: 30, changed: [], ms: { bronze: 12, silver: 8, gold: 20, snapshot: 0, commit: 3 } })
      const { app } = await httpApp(t, { deps: { metrics: registry } })
      const text = await scrape(app)
      assert.equal(sample(text, 'churn_ingest_quarantined_total'), 4)
      assert.equal(sample(text, 'churn_ingest_dead_lettered_total'), 1)
      assert.equal(sample(text, 'churn_ingest_batches_total'), 2)
      assert.equal(sample(text, 'churn_ingest_batch_seconds_count{stage="gold"}'), 1)
    })
  })
})
