import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createAdapter, outboxAdapter, webhookAdapter, webhookSignature } from '../../../scoring/channels.ts'
import type { OutboxLine } from '../../../scoring/channels.ts'
import { answer, campaignJob, webhookReceiver } from '../../helpers/campaign.ts'
import { config } from '../../helpers/context.ts'

const SECRET = 'channel-test-secret-0123456789'

/** A loopback port nothing listens on (bound, then released). */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>(resolve => server.close(() => { resolve() }))
  return port
}

describe('webhookAdapter', () => {
  it('POSTs the job as JSON with its id as idempotency key and a verifiable signature', async t => {
    const receiver = await webhookReceiver((_request, _n, response) => { answer(response, 202) })
    t.after(receiver.close)
    const data = campaignJob('crm')
    await webhookAdapter({ channel: 'crm', url: receiver.url, secret: SECRET, timeoutMs: 2000 }).send(data, { jobId: 'crm.high.42.7590-VHVEG', attempt: 1 })

    const [request] = receiver.received
    assert.ok(request !== undefined)
    assert.equal(request.method, 'POST')
    assert.equal(request.headers['content-type'], 'application/json')
    assert.equal(request.headers['idempotency-key'], 'crm.high.42.7590-VHVEG')
    const timestamp = String(request.headers['x-churn-timestamp'])
    assert.match(timestamp, /^\d{13}$/)
    assert.equal(request.headers['x-churn-signature'], webhookSignature(SECRET, timestamp, request.body))
    assert.notEqual(request.headers['x-churn-signature'], webhookSignature('another-secret-0123456789', timestamp, request.body))
    assert.deepEqual(JSON.parse(request.body), data)
  })

  for (const status of [408, 425, 429, 500, 503]) {
    it(`treats ${status} as transient`, async t => {
      const receiver = await webhookReceiver((_request, _n, response) => { answer(response, status) })
      t.after(receiver.close)
      const adapter = webhookAdapter({ channel: 'sms', url: receiver.url, secret: SECRET, timeoutMs: 2000 })
      await assert.rejects(adapter.send(campaignJob('sms'), { jobId: 'j', attempt: 1 }), { code: 'CHURN_CAMPAIGN_DELIVERY_FAILED', retriable: true, status })
    })
  }

  for (const status of [400, 401, 404, 410, 422, 301]) {
    it(`treats ${status} as permanent`, async t => {
      const receiver = await webhookReceiver((_request, _n, response) => {
        if (status === 301) response.writeHead(301, { location: '/elsewhere' }).end()
        else answer(response, status)
      })
      t.after(receiver.close)
      const adapter = webhookAdapter({ channel: 'sms', url: receiver.url, secret: SECRET, timeoutMs: 2000 })
      await assert.rejects(adapter.send(campaignJob('sms'), { jobId: 'j', attempt: 1 }), { code: 'CHURN_CAMPAIGN_PERMANENT', retriable: false, status, message: new RegExp(`answered ${status}`) })
      assert.equal(receiver.received.length, 1, 'a redirect is not followed')
    })
  }

  it('treats an unreachable receiver as transient', async () => {
    const adapter = webhookAdapter({ channel: 'crm', url: `http://127.0.0.1:${await closedPort()}/hook`, secret: SECRET, timeoutMs: 2000 })
    await assert.rejects(adapter.send(campaignJob('crm'), { jobId: 'j', attempt: 1 }), { code: 'CHURN_CAMPAIGN_DELIVERY_FAILED', retriable: true, message: /unreachable/ })
  })

  it('treats a receiver slower than the timeout as transient', async t => {
    const receiver = await webhookReceiver(async (_request, _n, response) => {
      await new Promise(resolve => setTimeout(resolve, 1000))
      answer(response, 200)
    })
    t.after(receiver.close)
    const adapter = webhookAdapter({ channel: 'crm', url: receiver.url, secret: SECRET, timeoutMs: 100 })
    await assert.rejects(adapter.send(campaignJob('crm'), { jobId: 'j', attempt: 1 }), { code: 'CHURN_CAMPAIGN_DELIVERY_FAILED', retriable: true, message: /did not answer within 100 ms/ })
  })
})

describe('outboxAdapter', () => {
  it('appends one whole JSON line per delivery, concurrent ones included', async t => {
    const dir = await mkdtemp(path.join(tmpdir(), 'churn-outbox-'))
    t.after(async () => { await rm(dir, { recursive: true, force: true }) })
    const outbox = path.join(dir, 'not-yet-created')
    const adapter = outboxAdapter({ channel: 'sms', dir: outbox })
    // Large events, so a line spans several filesystem blocks and interleaving would show.
    const reasons = Array.from({ length: 200 }, (_, i) => ({ feature: `feature_${i}`, value: i, contribution: 0.001 }))
    const ids = Array.from({ length: 50 }, (_, i) => `sms.medium.1.SUB-${i}`)
    await Promise.all(ids.map(async (jobId, i) => { await adapter.send(campaignJob('sms', { subscriberId: `SUB-${i}`, reasons }), { jobId, attempt: 1 }) }))
    await adapter.close?.()

    const lines = (await readFile(path.join(outbox, 'sms.jsonl'), 'utf8')).split('\n')
    assert.equal(lines.pop(), '', 'the file ends with a newline')
    const records = lines.map(line => JSON.parse(line) as OutboxLine)
    assert.deepEqual(records.map(r => r.jobId).sort(), [...ids].sort())
    for (const record of records) {
      assert.equal(record.channel, 'sms')
      assert.equal(record.event.reasons.length, 200)
      assert.equal(typeof record.deliveredAt, 'number')
    }
  })
})

describe('createAdapter', () => {
  it('picks each channel\'s configured adapter', () => {
    const campaign = {
      ...config.campaign,
      webhook: { ...config.campaign.webhook, secret: SECRET },
      channels: {
        crm: { ...config.campaign.channels.crm, adapter: 'webhook' as const, url: 'http://127.0.0.1:9/crm' },
        sms: { ...config.campaign.channels.sms, adapter: 'outbox' as const }
      }
    }
    assert.equal(createAdapter('crm', campaign).name, 'webhook')
    assert.equal(createAdapter('sms', campaign).name, 'outbox')
  })

  describe('when a webhook channel has no secret', () => {
    it('refuses the configuration', () => {
      const campaign = {
        ...config.campaign,
        webhook: { ...config.campaign.webhook, secret: undefined },
        channels: { ...config.campaign.channels, crm: { ...config.campaign.channels.crm, adapter: 'webhook' as const, url: 'http://127.0.0.1:9/crm' } }
      }
      assert.throws(() => createAdapter('crm', campaign), { code: 'CHURN_CONFIG_INVALID', message: /WEBHOOK_SECRET/ })
    })
  })
})
