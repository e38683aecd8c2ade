import { describe, it } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { CAMPAIGN_JOB, campaignJobOptions } from '../../../scoring/campaign.ts'
import type { CampaignJobData, CampaignSettings } from '../../../scoring/campaign.ts'
import { campaignQueues } from '../../../scoring/queues.ts'
import { campaignJob, waitFor } from '../../helpers/campaign.ts'
import { isolatedConfig } from '../../helpers/context.ts'

/** The crm queue on a prefix of its own, with no worker: jobs stay where they were added. */
async function setup (t: TestContext, cooldownMs: number) {
  const isolated = await isolatedConfig({}, 'campaign')
  const queues = campaignQueues(isolated.config)
  t.after(async () => {
    await queues.queues.crm.obliterate({ force: true })
    await queues.close()
    await isolated.cleanup()
  })
  const settings: CampaignSettings = { prefix: isolated.config.redis.prefix, cooldownMs, attempts: 3, backoffMs: 100 }
  const add = async (data: CampaignJobData) => await queues.queues.crm.add(CAMPAIGN_JOB, data, campaignJobOptions('crm', data.event, settings))
  const jobIds = async () => (await queues.queues.crm.getJobs(['waiting'])).map(job => job.id).sort()
  return { queue: queues.queues.crm, settings, add, jobIds }
}

describe('campaign jobs', () => {
  describe('when the same trigger is added twice', () => {
    it('keeps one job', async t => {
      const { add, jobIds } = await setup(t, 60_000)
      const data = campaignJob('crm')
      const first = await add(data)
      const second = await add(data)
      assert.equal(second.id, first.id)
      assert.deepEqual(await jobIds(), [first.id])
    })
  })

  describe('when another feature version for the same subscriber and tier comes within the cooldown', () => {
    it('is deduplicated', async t => {
      const { add, jobIds } = await setup(t, 60_000)
      const first = await add(campaignJob('crm', { featureVersion: 1 }))
      await add(campaignJob('crm', { featureVersion: 2 }))
      assert.deepEqual(await jobIds(), [first.id])
    })

    it('is still accepted for another subscriber', async t => {
      const { add, jobIds } = await setup(t, 60_000)
      const first = await add(campaignJob('crm', { subscriberId: 'A-1' }))
      const second = await add(campaignJob('crm', { subscriberId: 'A-2' }))
      assert.deepEqual(await jobIds(), [first.id, second.id].sort())
    })
  })

  describe('when the cooldown has passed', () => {
    it('accepts a new job for the same subscriber and tier', async t => {
      const { queue, settings, add, jobIds } = await setup(t, 1000)
      const data = campaignJob('crm', { featureVersion: 1 })
      const first = await add(data)
      const dedupId = campaignJobOptions('crm', data.event, settings).deduplication?.id ?? ''
      await waitFor(async () => await queue.getDeduplicationJobId(dedupId) === null, { what: 'the deduplication key to expire' })

      const second = await add(campaignJob('crm', { featureVersion: 2 }))
      assert.notEqual(second.id, first.id)
      assert.deepEqual(await jobIds(), [first.id, second.id].sort())
    })
  })
})
