import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { CAMPAIGN_JOB, bullPrefix, campaignJobOptions, queueName } from '../../../scoring/campaign.ts'
import { campaignQueues } from '../../../scoring/queues.ts'
import { campaignJob } from '../../helpers/campaign.ts'
import { isolatedConfig } from '../../helpers/context.ts'

describe('campaignQueues', () => {
  it('opens one queue per channel under the project prefix', async t => {
    const isolated = await isolatedConfig({}, 'campaign')
    const queues = campaignQueues(isolated.config)
    t.after(async () => { await queues.close(); await isolated.cleanup() })
    assert.deepEqual(Object.keys(queues.queues).sort(), ['crm', 'sms'])
    assert.equal(queues.queues.sms.name, queueName('sms'))
    assert.equal(queues.queues.sms.opts.prefix, bullPrefix(isolated.config.redis.prefix))
  })

  describe('counts', () => {
    it('counts jobs by state, per channel', async t => {
      const isolated = await isolatedConfig({}, 'campaign')
      const queues = campaignQueues(isolated.config)
      t.after(async () => {
        for (const queue of Object.values(queues.queues)) await queue.obliterate({ force: true })
        await queues.close()
        await isolated.cleanup()
      })
      const settings = { prefix: isolated.config.redis.prefix, ...isolated.config.campaign }
      for (const subscriberId of ['C-1', 'C-2']) {
        const data = campaignJob('crm', { subscriberId })
        await queues.queues.crm.add(CAMPAIGN_JOB, data, campaignJobOptions('crm', data.event, settings))
      }
      const data = campaignJob('sms', { subscriberId: 'S-1' })
      await queues.queues.sms.add(CAMPAIGN_JOB, data, { ...campaignJobOptions('sms', data.event, settings), delay: 60_000 })

      assert.deepEqual(await queues.counts(), {
        crm: { waiting: 2, active: 0, delayed: 0, completed: 0, failed: 0 },
        sms: { waiting: 0, active: 0, delayed: 1, completed: 0, failed: 0 }
      })
    })
  })
})
