import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { SseClient, sseFrame } from '../../../../../scoring/http/routes/events.ts'

/** A socket that takes `capacity` writes, then reports itself full until `drain()` is called. */
function socket (capacity: number): { sink: Writable, written: string[], drain: () => void } {
  const written: string[] = []
  let room = capacity
  const sink = new Writable({ write (chunk: Buffer, _encoding, done) { written.push(chunk.toString()); done() } })
  const write = sink.write.bind(sink)
  sink.write = ((chunk: string) => {
    write(chunk)
    room--
    return room > 0
  }) as Writable['write']
  return { sink, written, drain: () => { room = capacity; sink.emit('drain') } }
}

describe('sseFrame', () => {
  it('writes one event line and one data line of JSON, then a blank line', () => {
    assert.equal(sseFrame('risk', { subscriberId: 'S\n1', probability: 0.5 }), 'event: risk\ndata: {"subscriberId":"S\\n1","probability":0.5}\n\n')
  })
})

describe('SseClient', () => {
  describe('when the socket keeps up', () => {
    it('writes every frame in order', async () => {
      const { sink, written } = socket(100)
      const client = new SseClient(sink, 2)
      for (const n of [1, 2, 3]) client.send(sseFrame('risk', n))
      await new Promise(resolve => setImmediate(resolve))
      assert.deepEqual(written, [1, 2, 3].map(n => sseFrame('risk', n)))
    })
  })

  describe('when the socket is full', () => {
    it('keeps the newest frames up to its limit, then tells the client how many it dropped', async () => {
      const { sink, written, drain } = socket(1)
      const client = new SseClient(sink, 2)
      for (const n of [1, 2, 3, 4, 5]) client.send(sseFrame('risk', n))
      await new Promise(resolve => setImmediate(resolve))
      assert.deepEqual(written, [sseFrame('risk', 1)], 'only what the socket took')
      drain()
      drain()
      drain()
      await new Promise(resolve => setImmediate(resolve))
      assert.deepEqual(written, [sseFrame('risk', 1), sseFrame('dropped', { dropped: 2 }), sseFrame('risk', 4), sseFrame('risk', 5)])
    })
  })

  describe('when the connection has ended', () => {
    it('writes nothing more', () => {
      const { sink, written } = socket(10)
      const client = new SseClient(sink, 2)
      client.end()
      client.send(sseFrame('risk', 1))
      assert.deepEqual(written, [])
    })
  })
})
