/**
 * The kill test: the ingest process is SIGKILLed at random moments while 100k+ events flow in,
 * and restarted each time. Afterwards Bronze holds every produced message exactly once (compared
 * id by id, and offset by offset, with what the source topics hold) and Gold equals its recompute.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../../config/index.ts'
import { Lakehouse } from '../../../lakehouse/lakehouse.ts'
import { SOURCE_STREAMS } from '../../../schemas/index.ts'
import { produceTraffic } from '../../../streams/producer.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'
import { seededRandom } from '../../helpers/random.ts'
import { readSourceEvents } from '../../helpers/topics.ts'

const CLI = path.resolve(import.meta.dirname, '../../../cli/main.ts')
const KILLS = 3
const EVENTS_PER_SECOND = 12_000
const PRODUCE_MS = 10_000

let config: Config
let env: Record<string, string | undefined>
let cleanup: () => Promise<void>

/** Starts `churn ingest` as its own process, logging JSON at debug level (one line per batch). */
function startIngest (args: string[] = []): { child: ChildProcess, batches: () => number, exited: Promise<number | null>, stderr: string[] } {
  const child = spawn(process.execPath, [CLI, 'ingest', ...args], {
    env: { ...env, LOG_LEVEL: 'debug', LOG_FORMAT: 'json', INGEST_BATCH_MESSAGES: '2000', KAFKA_SESSION_TIMEOUT_MS: '6000' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let landed = 0
  const stderr: string[] = []
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', line => {
    if (line.includes('"micro-batch landed"')) landed++
    else if (stderr.length < 50 && !line.includes('"level":20')) stderr.push(line)
  })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
  return { child, batches: () => landed, exited, stderr }
}

async function waitFor (condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

describe('ingest under SIGKILL', () => {
  before(async () => { ({ config, env, cleanup } = await isolatedConfig()) })
  after(async () => { await cleanup() })

  it(`lands every event exactly once and keeps Gold equal to its recompute through ${KILLS} kills`, async () => {
    const random = seededRandom(31337)
    // The traffic flows for ten seconds while ingest is killed and restarted.
    const producing = produceTraffic({ config, logger, subscribers: 5000, rate: EVENTS_PER_SECOND, durationMs: PRODUCE_MS, horizonMs: 4000, seed: 8 })
    let killedWhileProducing = 0
    let producerDone = false
    void producing.then(() => { producerDone = true }, () => { producerDone = true })
    for (let kill = 0; kill < KILLS; kill++) {
      const ingest = startIngest()
      const before = random.int(1, 4)
      await waitFor(() => ingest.batches() >= before || ingest.child.exitCode !== null, `batch ${before} of run ${kill + 1}`, 120_000)
      assert.equal(ingest.child.exitCode, null, `ingest exited by itself: ${ingest.stderr.join('\n')}`)
      // Somewhere inside the next batch: decoding, appending, gating, refreshing Gold or committing.
      await new Promise(resolve => setTimeout(resolve, random.int(0, 400)))
      if (!producerDone) killedWhileProducing++
      ingest.child.kill('SIGKILL')
      assert.equal(await ingest.exited, null, 'killed, not exited')
    }
    const produced = await producing
    assert.ok(produced.sent >= 100_000, `${produced.sent} events produced`)

    const final = startIngest(['--until-caught-up'])
    const code = await final.exited
    assert.equal(code, 0, `the final run catches up and exits cleanly: ${final.stderr.join('\n')}`)

    // What the source topics hold, message by message...
    const inTopics = new Map<string, string>()
    const decoded = await readSourceEvents(config, logger, 120_000)
    for (const source of SOURCE_STREAMS) {
      for (const m of decoded.get(source.stream) ?? []) inTopics.set(`${config.topics[source.topicKey]}/${m.partition}/${m.offset}`, String(m.value.eventId))
    }
    assert.equal(inTopics.size, produced.sent)

    // ...against what Bronze holds.
    const lakehouse = await Lakehouse.open({ path: config.lakehouse.path })
    try {
      const bronze = await lakehouse.connection.runAndReadAll(SOURCE_STREAMS.map(s => `SELECT kafka_topic, kafka_partition, kafka_offset, event_id FROM bronze_${s.stream}`).join(' UNION ALL '))
      const landed = new Map<string, string>()
      for (const [topic, partition, offset, id] of bronze.getRows()) {
        const at = `${String(topic)}/${String(partition)}/${String(offset)}`
        assert.ok(!landed.has(at), `${at} landed twice`)
        landed.set(at, String(id))
      }
      assert.equal(landed.size, inTopics.size, 'Bronze holds as many messages as the topics')
      for (const [at, id] of inTopics) assert.equal(landed.get(at), id, `${at} is in Bronze with its event id`)
      const ids = [...landed.values()]
      assert.equal(new Set(ids).size, ids.length, 'no event id twice')

      assert.deepEqual(await lakehouse.goldDifferences(), [], 'Gold equals its recompute')
      assert.equal((await lakehouse.counts()).changelog_pending, 0, 'every changed Gold row was published')
      const report = await lakehouse.qualityReport()
      assert.equal(report.pipeline.bronze_total, report.pipeline.silver_total + report.pipeline.quarantined)
    } finally {
      lakehouse.close()
    }
    process.stderr.write(`# kill test: ${produced.sent} events, ${KILLS} SIGKILLs (${killedWhileProducing} while the producer was sending)\n`)
  })
})
