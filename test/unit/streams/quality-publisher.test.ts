import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Redis } from 'ioredis'
import { QualityPublisher, qualityKey } from '../../../streams/quality-publisher.ts'

describe('qualityKey', () => {
  it('is the prefix and quality', () => {
    assert.equal(qualityKey('churn'), 'churn:quality')
  })
})

describe('QualityPublisher', () => {
  const stored: string[] = []
  const redis = { set: async (_key: string, value: string) => { stored.push(value); return await Promise.resolve('OK') } } as unknown as Redis
  const publisher = (): QualityPublisher => new QualityPublisher({ redis, prefix: 'p', everyMs: 10_000 })

  describe('before anything was published', () => {
    it('is due at once', () => {
      assert.equal(publisher().due(0, 1_000), true)
    })
  })

  describe('after a publication', () => {
    it('is due again only once new batches landed and everyMs passed', async () => {
      const p = publisher()
      const failures: unknown[] = []
      // A report that fails to build counts as an attempt too: a Redis or lakehouse outage is retried every everyMs.
      assert.equal(await p.publish(3, async () => await Promise.reject(new Error('down')), error => { failures.push(error) }), false)
      assert.equal(failures.length, 1)
      const at = Date.now()
      assert.equal(p.due(4, at + 1_000), false, 'too soon')
      assert.equal(p.due(4, at + 10_001), true)
    })

    it('is not due without new batches, however long ago it was', async () => {
      const p = publisher()
      assert.equal(await p.publish(3, async () => await Promise.resolve({} as never), () => {}), true)
      assert.equal(p.due(3, Date.now() + 3_600_000), false)
      assert.equal(p.due(4, Date.now() + 3_600_000), true)
      assert.ok(stored.length > 0 && (JSON.parse(stored.at(-1) ?? '{}') as { publishedAt: number }).publishedAt > 0)
    })
  })
})
