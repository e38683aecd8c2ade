import { describe, it } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createRedis } from '../../../core/redis.ts'
import { OptOutList, optOutKey } from '../../../scoring/opt-out.ts'
import { isolatedConfig } from '../../helpers/context.ts'

async function setup (t: TestContext) {
  const isolated = await isolatedConfig({}, 'opt-out')
  const redis = createRedis({ url: isolated.config.redis.url, maxRetriesPerRequest: 1 })
  t.after(async () => { redis.disconnect(); await isolated.cleanup() })
  return { redis, prefix: isolated.config.redis.prefix, list: new OptOutList({ redis, prefix: isolated.config.redis.prefix }) }
}

describe('OptOutList', () => {
  it('adds, lists, checks and removes subscribers in the prefix\'s set', async t => {
    const { redis, prefix, list } = await setup(t)
    assert.equal(await list.add('B-2', 'A-1', 'B-2'), 2)
    assert.equal(await list.add('A-1'), 0)
    assert.deepEqual(await list.list(), ['A-1', 'B-2'])
    assert.deepEqual((await redis.smembers(optOutKey(prefix))).sort(), ['A-1', 'B-2'])
    assert.equal(await list.has('A-1'), true)
    assert.equal(await list.has('C-3'), false)
    assert.equal(await list.remove('A-1', 'C-3'), 1)
    assert.deepEqual(await list.list(), ['B-2'])
  })

  describe('when a subscriber id is malformed', () => {
    it('refuses it before it reaches Redis', async t => {
      const { list } = await setup(t)
      for (const id of ['', 'x'.repeat(65), 'line\nbreak', 'bell\u0007']) {
        await assert.rejects(list.add('OK-1', id), { code: 'CHURN_SCORE_BAD_SUBSCRIBER' })
      }
      assert.deepEqual(await list.list(), [])
    })
  })
})
