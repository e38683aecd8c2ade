import { describe, it } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createRedis } from '../../../../core/redis.ts'
import { buildApp } from '../../../../scoring/http/app.ts'
import type { ReadinessCheck } from '../../../../scoring/http/app.ts'
import { redisCheck } from '../../../../scoring/http/checks.ts'
import { campaignQueues } from '../../../../scoring/queues.ts'
import { isolatedConfig, logger } from '../../../helpers/context.ts'
import { API_KEY } from '../../../helpers/http.ts'

/** The app over real campaign queues and a real Redis client, closed after the test. */
async function setup (t: TestContext, checks?: Record<string, ReadinessCheck>, checkTimeoutMs?: number) {
  const isolated = await isolatedConfig({ API_KEYS: API_KEY }, 'http')
  const redis = createRedis({ url: isolated.config.redis.url, maxRetriesPerRequest: 1 })
  const queues = campaignQueues(isolated.config)
  const app = await buildApp({ logger, config: isolated.config, checks: checks ?? { redis: redisCheck(redis) }, queues: Object.values(queues.queues), checkTimeoutMs })
  t.after(async () => {
    await app.close()
    await queues.close()
    redis.disconnect()
    await isolated.cleanup()
  })
  return app
}

describe('buildApp', () => {
  describe('GET /api/v1/health', () => {
    it('answers ok', async t => {
      const app = await setup(t)
      const response = await app.inject({ method: 'GET', url: '/api/v1/health' })
      assert.equal(response.statusCode, 200)
      assert.deepEqual(response.json(), { status: 'ok' })
    })
  })

  describe('GET /api/v1/ready', () => {
    describe('when Redis answers', () => {
      it('answers 200 with each check ok', async t => {
        const app = await setup(t)
        const response = await app.inject({ method: 'GET', url: '/api/v1/ready' })
        assert.equal(response.statusCode, 200)
        assert.deepEqual(response.json(), { ready: true, checks: { redis: 'ok' } })
      })
    })

    describe('when Redis does not answer', () => {
      it('answers 503 naming the failed check', async t => {
        const down = createRedis({ url: 'redis://127.0.0.1:1', maxRetriesPerRequest: 0, noReconnect: true, lazyConnect: true })
        down.on('error', () => {})
        t.after(() => { down.disconnect() })
        const app = await setup(t, { redis: redisCheck(down), alwaysOk: async () => {} })
        const response = await app.inject({ method: 'GET', url: '/api/v1/ready' })
        assert.equal(response.statusCode, 503)
        const body = response.json<{ problems: Record<string, string> }>()
        assert.deepEqual({ ...body, problems: Object.keys(body.problems) }, { ready: false, checks: { redis: 'failed', alwaysOk: 'ok' }, problems: ['redis'] })
      })
    })

    describe('when a check hangs', () => {
      it('fails it after the check timeout', async t => {
        const app = await setup(t, { hangs: async () => { await new Promise(() => {}) } }, 100)
        const response = await app.inject({ method: 'GET', url: '/api/v1/ready' })
        assert.equal(response.statusCode, 503)
        assert.deepEqual(response.json(), { ready: false, checks: { hangs: 'failed' }, problems: { hangs: 'no answer within 100 ms' } })
      })
    })
  })

  describe('the dashboard at /queues', () => {
    it('serves its page and lists the campaign queues, read-only', async t => {
      const app = await setup(t)
      const page = await app.inject({ method: 'GET', url: '/queues', headers: { 'x-api-key': API_KEY } })
      assert.equal(page.statusCode, 200)
      assert.match(String(page.headers['content-type']), /^text\/html/)
      assert.match(page.body, /<html/i)

      const api = await app.inject({ method: 'GET', url: '/queues/api/queues', headers: { 'x-api-key': API_KEY } })
      assert.equal(api.statusCode, 200)
      const { queues } = api.json<{ queues: Array<{ name: string, readOnlyMode: boolean }> }>()
      assert.deepEqual(queues.map(q => [q.name, q.readOnlyMode]).sort(), [['campaign-crm', true], ['campaign-sms', true]])
    })
  })
})
