import { describe, it } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { createRedis } from '../../../core/redis.ts'
import { CAMPAIGN_JOB, campaignJobOptions } from '../../../scoring/campaign.ts'
import type { CampaignJobData, Channel } from '../../../scoring/campaign.ts'
import { OptOutList } from '../../../scoring/opt-out.ts'
import { campaignQueues } from '../../../scoring/queues.ts'
import { CampaignWorkers } from '../../../scoring/workers.ts'
import { answer, campaignJob, outboxLines, signedWith, waitFor, webhookReceiver } from '../../helpers/campaign.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'

const SECRET = 'campaign-test-secret-0123456789'

/** Workers and queues on a prefix of their own, closed, obliterated and deleted after the test. */
async function setup (t: TestContext, overrides: Record<string, string> = {}) {
  const isolated = await isolatedConfig({ CAMPAIGN_BACKOFF_MS: '200', WEBHOOK_SECRET: SECRET, ...overrides }, 'campaign')
  const { config } = isolated
  const queues = campaignQueues(config)
  const workers = new CampaignWorkers({ config, logger })
  t.after(async () => {
    await workers.close()
    for (const queue of Object.values(queues.queues)) await queue.obliterate({ force: true })
    await queues.close()
    await isolated.cleanup()
  })
  const settings = { prefix: config.redis.prefix, ...config.campaign }
  const add = async (data: CampaignJobData) => await queues.queues[data.channel].add(CAMPAIGN_JOB, data, campaignJobOptions(data.channel, data.event, settings))
  const settled = async (channel: Channel, id: string) => await waitFor(async () => {
    const state = await queues.queues[channel].getJobState(id)
    return state === 'completed' || state === 'failed' ? state : undefined
  }, { what: `job ${id} to finish` })
  const job = async (channel: Channel, id: string) => {
    const found = await queues.queues[channel].getJob(id)
    assert.ok(found !== undefined, `job ${id} exists`)
    return found
  }
  return { config, dir: isolated.dir, queues, workers, add, settled, job }
}

describe('CampaignWorkers', () => {
  describe('when the webhook answers 503 twice, then 200', () => {
    it('retries with exponential backoff and delivers on the third attempt, signed', async t => {
      const arrivals: number[] = []
      const receiver = await webhookReceiver((_request, n, response) => {
        arrivals.push(Date.now())
        answer(response, n < 2 ? 503 : 200)
      })
      t.after(receiver.close)
      const { workers, add, settled, job, config } = await setup(t, { CHANNEL_CRM_ADAPTER: 'webhook', CHANNEL_CRM_WEBHOOK_URL: receiver.url })
      await workers.start()
      const data = campaignJob('crm')
      const added = await add(data)
      assert.equal(await settled('crm', added.id ?? ''), 'completed')

      const finished = await job('crm', added.id ?? '')
      assert.equal(finished.attemptsMade, 3)
      assert.deepEqual(finished.returnvalue, { delivered: true })
      assert.equal(receiver.received.length, 3)
      for (const request of receiver.received) {
        assert.ok(signedWith(SECRET, request), 'the receiver verifies the signature')
        assert.equal(request.headers['idempotency-key'], added.id)
        assert.equal(request.headers['content-type'], 'application/json')
        assert.deepEqual(JSON.parse(request.body), data)
      }
      // Exponential: the n-th retry waits backoff * 2^(n-1) after the failure, which came after the request arrived.
      const [first = 0, second = 0, third = 0] = arrivals
      assert.ok(second - first >= config.campaign.backoffMs, `first retry after ${second - first} ms`)
      assert.ok(third - second >= 2 * config.campaign.backoffMs, `second retry after ${third - second} ms`)
      assert.deepEqual(workers.counters.crm, { sent: 1, skippedOptedOut: 0, failedTransient: 2, failedPermanent: 0 })
    })
  })

  describe('when the webhook answers 400', () => {
    it('fails the job after exactly one attempt', async t => {
      const receiver = await webhookReceiver((_request, _n, response) => { answer(response, 400) })
      t.after(receiver.close)
      const { workers, add, settled, job } = await setup(t, { CHANNEL_CRM_ADAPTER: 'webhook', CHANNEL_CRM_WEBHOOK_URL: receiver.url, CAMPAIGN_ATTEMPTS: '5' })
      await workers.start()
      const added = await add(campaignJob('crm'))
      assert.equal(await settled('crm', added.id ?? ''), 'failed')

      const failed = await job('crm', added.id ?? '')
      assert.equal(failed.attemptsMade, 1)
      assert.match(failed.failedReason, /CHURN_CAMPAIGN_PERMANENT: crm webhook answered 400/)
      assert.equal(receiver.received.length, 1)
      assert.deepEqual(workers.counters.crm, { sent: 0, skippedOptedOut: 0, failedTransient: 0, failedPermanent: 1 })
    })
  })

  describe('when the subscriber opted out', () => {
    it('completes the job without delivering it', async t => {
      const { config, dir, workers, add, settled, job } = await setup(t)
      const redis = createRedis({ url: config.redis.url, maxRetriesPerRequest: 1 })
      t.after(() => { redis.disconnect() })
      await new OptOutList({ redis, prefix: config.redis.prefix }).add('0001-OPTED')
      await workers.start()

      const optedOut = await add(campaignJob('sms', { subscriberId: '0001-OPTED' }))
      const other = await add(campaignJob('sms', { subscriberId: '0002-KEPT' }))
      assert.equal(await settled('sms', optedOut.id ?? ''), 'completed')
      assert.equal(await settled('sms', other.id ?? ''), 'completed')

      assert.deepEqual((await job('sms', optedOut.id ?? '')).returnvalue, { skipped: 'opted-out' })
      assert.deepEqual((await outboxLines(path.join(dir, 'outbox'), 'sms')).map(line => line.event.subscriberId), ['0002-KEPT'])
      assert.deepEqual(workers.counters.sms, { sent: 1, skippedOptedOut: 1, failedTransient: 0, failedPermanent: 0 })
    })
  })

  describe('when closed with a delivery in progress', () => {
    it('lets the delivery finish before close resolves', async t => {
      const receiver = await webhookReceiver(async (_request, _n, response) => {
        await new Promise(resolve => setTimeout(resolve, 300))
        answer(response, 200)
      })
      t.after(receiver.close)
      const { workers, add, queues } = await setup(t, { CHANNEL_CRM_ADAPTER: 'webhook', CHANNEL_CRM_WEBHOOK_URL: receiver.url })
      await workers.start()
      const added = await add(campaignJob('crm'))
      await waitFor(() => receiver.received.length === 1, { what: 'the delivery to start' })

      await workers.close()
      assert.equal(await queues.queues.crm.getJobState(added.id ?? ''), 'completed')
      assert.equal(workers.counters.crm.sent, 1)
    })
  })

  describe('with a channel rate of 2 per second', () => {
    it('holds the channel to its rate', async t => {
      const { dir, workers, add, settled } = await setup(t, { CHANNEL_SMS_RATE_PER_SECOND: '2' })
      await workers.start()
      const started = Date.now()
      const jobs = await Promise.all(Array.from({ length: 6 }, async (_, i) => await add(campaignJob('sms', { subscriberId: `RATE-${i}` }))))
      for (const added of jobs) assert.equal(await settled('sms', added.id ?? ''), 'completed')

      // Two per 1000 ms window: jobs 5 and 6 cannot start before the third window opens.
      const elapsed = Date.now() - started
      assert.ok(elapsed >= 1950, `6 jobs at 2/s took ${elapsed} ms`)
      assert.equal((await outboxLines(path.join(dir, 'outbox'), 'sms')).length, 6)
      assert.equal(workers.counters.sms.sent, 6)
    })
  })
})
