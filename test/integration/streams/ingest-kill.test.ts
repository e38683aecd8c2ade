/**
 * The kill test: the ingest process is SIGKILLed at random moments while events flow in, and
 * restarted each time; the kills are spread over the run (the i-th once the producer has sent its
 * share of the events) and each lands after 1-4 micro-batches of its run, 0-400 ms into the next.
 * The short run is a burst at 12,000 events/s whose last kills may land on its backlog; the long
 * run is a steady stream that flows until the last kill.
 * Afterwards Bronze holds every produced message exactly once (compared id by id, and offset by
 * offset, with what the source topics hold), Gold equals its recompute, every changed Gold row was
 * published to the changelog, and Bronze = Silver + quarantine (test/helpers/lakehouse.ts).
 *
 * Short by default (3 kills over 100,000+ events); with CHURN_LONG=1, 10 kills over 200,000+.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Config } from '../../../config/index.ts'
import { describeError } from '../../../core/errors.ts'
import { produceTraffic } from '../../../streams/producer.ts'
import { waitFor } from '../../helpers/campaign.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'
import { assertBronzeEqualsTopics, assertLakehouseConsistent } from '../../helpers/lakehouse.ts'
import { startRole } from '../../helpers/private-services.ts'
import type { RoleProcess } from '../../helpers/private-services.ts'
import { seededRandom } from '../../helpers/random.ts'

const LONG = process.env.CHURN_LONG === '1'
const KILLS = LONG ? 10 : 3
/** The producer stops once it has sent this many events (in the long run, not before the last kill). */
const EVENTS = LONG ? 200_000 : 100_000
const EVENTS_PER_SECOND = LONG ? 1_300 : 12_000

let config: Config
let env: Record<string, string | undefined>
let cleanup: () => Promise<void>

/** `churn ingest` as its own process, logging JSON at debug level (one line per batch). */
function startIngest (args: string[] = []): RoleProcess {
  return startRole(['ingest', ...args], { ...env, LOG_LEVEL: 'debug', INGEST_BATCH_MESSAGES: '2000', KAFKA_SESSION_TIMEOUT_MS: '6000' })
}

describe('ingest under SIGKILL', () => {
  before(async () => { ({ config, env, cleanup } = await isolatedConfig()) }, { timeout: 60_000 })
  after(async () => { await cleanup() }, { timeout: 120_000 })

  it(`lands every event exactly once and keeps Gold equal to its recompute through ${KILLS} kills`, { timeout: LONG ? 3_600_000 : 600_000 }, async () => {
    const random = seededRandom(31337)
    // The traffic flows while ingest is killed and restarted.
    const traffic = new AbortController()
    let sent = 0
    let killed = 0
    let producerError: unknown
    const producing = produceTraffic({
      config, logger, subscribers: 5000, rate: EVENTS_PER_SECOND, horizonMs: 4000, seed: 8, signal: traffic.signal,
      onProgress: p => {
        sent = p.sent
        if (sent >= EVENTS && (!LONG || killed === KILLS)) traffic.abort()
      }
    })
    void producing.catch((error: unknown) => { producerError = error })
    const flowing = (): void => { if (producerError !== undefined) throw new Error(`the traffic producer failed: ${describeError(producerError)}`) }
    const runs: Array<{ batches: number, sent: number, whileProducing: boolean, killedAfterMs: number }> = []
    const children: RoleProcess[] = []
    try {
      for (let kill = 0; kill < KILLS; kill++) {
        const ingest = startIngest()
        children.push(ingest)
        const before = random.int(1, 4)
        const share = Math.floor(EVENTS * (kill + 1) / (KILLS + 1))
        await waitFor(() => { flowing(); return (ingest.count('"micro-batch landed"') >= before && sent >= share) || !ingest.alive() }, { timeoutMs: 180_000, what: `batch ${before} of run ${kill + 1} and ${share} events sent` })
        assert.ok(ingest.alive(), `ingest exited by itself: ${ingest.tail()}`)
        // Somewhere inside the next batch: decoding, appending, gating, refreshing Gold or committing.
        const killedAfterMs = random.int(0, 400)
        await sleep(killedAfterMs)
        const whileProducing = !traffic.signal.aborted
        ingest.child.kill('SIGKILL')
        killed++
        assert.equal(await ingest.exited, null, 'killed, not exited')
        assert.equal(ingest.child.signalCode, 'SIGKILL')
        runs.push({ batches: ingest.count('"micro-batch landed"'), sent, whileProducing, killedAfterMs })
      }
      await waitFor(() => { flowing(); return traffic.signal.aborted }, { timeoutMs: 600_000, what: `${EVENTS} events sent` })
    } finally {
      traffic.abort()
      for (const c of children) if (c.alive()) c.child.kill('SIGKILL')
    }
    const produced = await producing
    assert.ok(produced.sent >= EVENTS, `${produced.sent} events produced`)

    const final = startIngest(['--until-caught-up'])
    assert.equal(await final.exited, 0, `the final run catches up and exits cleanly: ${final.tail()}`)

    // What the source topics hold, message by message, against what Bronze holds.
    assert.equal(await assertBronzeEqualsTopics(config, logger, 300_000), produced.sent)
    await assertLakehouseConsistent(config)
    if (LONG) assert.ok(runs.every(r => r.whileProducing), 'every kill while the producer was sending')
    process.stderr.write(`# ingest kill test${LONG ? ' (long)' : ''}: ${produced.sent} events, ${KILLS} SIGKILLs survived (${runs.filter(r => r.whileProducing).length} while the producer was sending); runs ${JSON.stringify(runs)}\n`)
  })
})
