import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Partitioners } from 'kafkajs'
import type { PartitionMetadata } from 'kafkajs'
import { CachedKeyPartitioner } from '../../../streams/partitioner.ts'

const metadata = (count: number): PartitionMetadata[] =>
  Array.from({ length: count }, (_, partitionId) => ({ partitionId, leader: 1, replicas: [1], isr: [1], partitionErrorCode: 0, offlineReplicas: [] }))

describe('CachedKeyPartitioner', () => {
  it('places every key where the default (Java-compatible murmur2) partitioner does, asked once or many times', () => {
    const cached = CachedKeyPartitioner()
    const reference = Partitioners.DefaultPartitioner()
    for (const partitions of [6, 7, 6]) {
      const partitionMetadata = metadata(partitions)
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 2000; i++) {
          const message = { key: `SUB-${String(i).padStart(6, '0')}`, value: null }
          assert.equal(cached({ topic: 't', partitionMetadata, message }), reference({ topic: 't', partitionMetadata, message }))
        }
      }
    }
  })

  it('keeps an explicit partition, and hashes Buffer keys without remembering them', () => {
    const cached = CachedKeyPartitioner()
    const reference = Partitioners.DefaultPartitioner()
    const partitionMetadata = metadata(6)
    assert.equal(cached({ topic: 't', partitionMetadata, message: { key: 'SUB-1', value: null, partition: 4 } }), 4)
    const message = { key: Buffer.from('SUB-000042'), value: null }
    assert.equal(cached({ topic: 't', partitionMetadata, message }), reference({ topic: 't', partitionMetadata, message }))
  })
})
