/**
 * The campaign workers under SIGKILL: `churn work` runs as its own process, CRM jobs going to the
 * outbox file and SMS jobs to a webhook receiver run by the test (the honest way to hold a
 * delivery open: the receiver answers when the test lets it). Jobs are enqueued in waves exactly
 * as the scorer adds them (`addBulk` with `campaignJobOptions`: the stable job id, deduplication
 * per channel, subscriber and tier over the cooldown), each wave with new triggers, new versions
 * of triggers that already have a job (deduplicated) and verbatim replays (the same job id).
 *
 * The workers are killed, alternately:
 * - at a random moment of a wave: after a random number of SMS deliveries the receiver stops
 *   answering, so SMS deliveries are held open, and the kill comes once CRM has got through a random
 *   share of what it had waiting (the next wave arriving first should it have none), while it is
 *   taking jobs: jobs of both channels are in flight;
 * - while delivering again a job that was in flight at the kill before (recovered by BullMQ's
 *   stalled-job check), so that job is in flight at two deaths, as in a crash loop.
 * A wave is enqueued while the workers are down; then they are restarted.
 *
 * Afterwards: every job that was added is completed (none failed, none left waiting, active or
 * delayed: the stalled-job check brought back what the dead workers held); every job was delivered
 * at least once with its own event; a job was delivered more than once only if it was in flight at
 * a kill, at most once more per such kill (at least once, never more), and every SMS delivery held
 * open at a kill was made again; no subscriber got two jobs (nor deliveries of two jobs) for one
 * channel and tier within the cooldown. Short by default (3 kills, about 1,500 jobs); with
 * CHURN_LONG=1, 12 kills over about 20,000 jobs.
 */
import assert from 'node:assert/strict'
import type { ServerResponse } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Config } from '../../../config/index.ts'
import type { ChurnRiskEvent } from '../../../schemas/types.generated.ts'
import { CAMPAIGN_JOB, CHANNELS, TIER_CHANNELS, campaignJobId, campaignJobOptions } from '../../../scoring/campaign.ts'
import type { CampaignJobData, Channel } from '../../../scoring/campaign.ts'
import { campaignQueues } from '../../../scoring/queues.ts'
import type { CampaignQueues } from '../../../scoring/queues.ts'
import { answer, churnRiskEvent, outboxLines, signedWith, waitFor, webhookReceiver } from '../../helpers/campaign.ts'
import type { ReceivedRequest, WebhookReceiver } from '../../helpers/campaign.ts'
import { isolatedConfig } from '../../helpers/context.ts'
import { startRole } from '../../helpers/private-services.ts'
import type { RoleProcess } from '../../helpers/private-services.ts'
import { seededRandom } from '../../helpers/random.ts'

const LONG = process.env.CHURN_LONG === '1'
const KILLS = LONG ? 12 : 3
/** Waves enqueued after the last restart, with the workers running. */
const TRAILING_WAVES = 2
/** Per wave: subscribers seen for the first time (each a new job)... */
const NEW_PER_WAVE = LONG ? 600 : 150
/** ...earlier ones moving to the other campaign tier (a new job on the other channel)... */
const MOVES_PER_WAVE = LONG ? 100 : 25
/** ...earlier ones with a new version in a tier they have a job for (deduplicated)... */
const REPEATS_PER_WAVE = LONG ? 100 : 25
/** ...and earlier triggers added again verbatim (the same job id). */
const REPLAYS_PER_WAVE = LONG ? 50 : 20
const SECRET = 'workers-kill-test-secret-0123456789'
/** Workers' lock on an active job, and how often they look for jobs whose worker died. */
const LOCK_MS = 5000

type CampaignTier = 'high' | 'medium'

interface Subscriber { id: string, version: number, tiers: Set<CampaignTier> }

interface Kill {
  kind: 'random' | 'redelivery'
  /** Jobs the dead workers had taken: in Redis's active lists (what the stalled-job check hands back). */
  inFlight: Record<Channel, number>
  /** Jobs still in the active lists from an earlier kill, not handed back yet. */
  stale: number
  /** SMS deliveries the receiver held open at the kill. */
  held: number
}

let config: Config
let env: Record<string, string | undefined>
let cleanup: () => Promise<void>

function idempotencyKey (request: ReceivedRequest): string {
  return String(request.headers['idempotency-key'] ?? '')
}

/**
 * The SMS gateway of the test: answers 200 after 0-10 ms while the tap is open; holds a request
 * open (unanswered) while the tap is closed, or when `holdIf` says so.
 */
class SmsGateway {
  receiver: WebhookReceiver | undefined
  tapOpen = true
  holdIf: (request: ReceivedRequest) => boolean = () => false
  /** Requests held open, unanswered. */
  readonly held = new Map<ServerResponse, ReceivedRequest>()
  readonly #random = seededRandom(77)

  async start (): Promise<string> {
    this.receiver = await webhookReceiver(async (request, _n, response) => {
      if (!this.tapOpen || this.holdIf(request)) {
        this.held.set(response, request)
        response.once('close', () => { this.held.delete(response) })
        return
      }
      await sleep(this.#random.int(0, 10))
      answer(response, 200)
    })
    return this.receiver.url
  }

  get received (): ReceivedRequest[] {
    return this.receiver?.received ?? []
  }

  /** Drops the held requests (their sender is dead) and answers again. */
  release (): void {
    for (const response of this.held.keys()) response.destroy()
    this.held.clear()
    this.holdIf = () => false
    this.tapOpen = true
  }

  async close (): Promise<void> {
    this.release()
    await this.receiver?.close()
  }
}

describe('campaign workers under SIGKILL', () => {
  const gateway = new SmsGateway()
  before(async () => {
    const url = await gateway.start()
    ;({ config, env, cleanup } = await isolatedConfig({
      CHANNEL_CRM_ADAPTER: 'outbox',
      CHANNEL_SMS_ADAPTER: 'webhook',
      CHANNEL_SMS_WEBHOOK_URL: url,
      WEBHOOK_SECRET: SECRET,
      // A held delivery must end only with its worker: a timeout would be retried, a delivery
      // again that no kill caused.
      WEBHOOK_TIMEOUT_MS: '600000',
      // Eight jobs at once per channel, with no rate-limit pauses.
      CHANNEL_CRM_RATE_PER_SECOND: '1000',
      CHANNEL_SMS_RATE_PER_SECOND: '1000',
      CAMPAIGN_LOCK_MS: String(LOCK_MS)
    }, 'workers-kill'))
  }, { timeout: 60_000 })
  after(async () => {
    await gateway.close()
    await cleanup()
  }, { timeout: 120_000 })

  it(`delivers every job at least once, and again only if it was in flight, through ${KILLS} SIGKILLs`, { timeout: LONG ? 3_600_000 : 600_000 }, async () => {
    const random = seededRandom(9090)
    const campaign: CampaignQueues = campaignQueues(config)
    const settings = { prefix: config.redis.prefix, ...config.campaign }
    const children: RoleProcess[] = []
    const subscribers: Subscriber[] = []
    /** Every job that should exist, by id, with the event it was added for. */
    const jobs = new Map<string, CampaignJobData>()
    /** Job id per channel, subscriber and tier: the one job the cooldown allows. */
    const jobOf = new Map<string, string>()
    const adds = { added: 0, deduplicated: 0, replayed: 0 }
    /** Per job id: at how many kills it was in flight. */
    const inFlightAt = new Map<string, number>()
    /** Per job id: at how many kills its SMS delivery was held open. */
    const heldAt = new Map<string, number>()
    /** `<job id>#<attempts started>` of every job active at a kill: one take of a job by a worker. */
    const takes = new Set<string>()
    const kills: Kill[] = []
    let waves = 0

    const startWorkers = (): RoleProcess => {
      const workers = startRole(['work'], { ...env, LOG_LEVEL: 'info' })
      children.push(workers)
      return workers
    }

    /** One wave of triggers, added per channel in one bulk as the scorer adds them; returns the new jobs per channel. */
    const enqueueWave = async (): Promise<Record<Channel, number>> => {
      const earlier = subscribers.slice()
      const events: ChurnRiskEvent[] = []
      const replays: ChurnRiskEvent[] = []
      const trigger = (s: Subscriber, tier: CampaignTier): ChurnRiskEvent => {
        s.version += random.int(1, 3)
        s.tiers.add(tier)
        return churnRiskEvent({ subscriberId: s.id, featureVersion: s.version, modelVersion: 1, tier, previousTier: null, probability: tier === 'high' ? 0.8 : 0.5 })
      }
      for (let i = 0; i < NEW_PER_WAVE; i++) {
        const n = subscribers.length
        // Some ids carry ':' (escaped in job ids, which BullMQ forbids it in).
        const s: Subscriber = { id: n % 40 === 7 ? `SUB:W${n}` : `SUB-W${String(n).padStart(6, '0')}`, version: 0, tiers: new Set() }
        subscribers.push(s)
        events.push(trigger(s, random.chance(0.5) ? 'high' : 'medium'))
      }
      // Each earlier subscriber at most once per wave, so no bulk holds two triggers of one key.
      const picked = new Set<Subscriber>()
      const pick = (): Subscriber | undefined => {
        for (let tries = 0; tries < 20 && earlier.length > 0; tries++) {
          const s = random.pick(earlier)
          if (!picked.has(s)) { picked.add(s); return s }
        }
        return undefined
      }
      for (let i = 0; i < MOVES_PER_WAVE; i++) {
        const s = pick()
        const other = s === undefined ? undefined : (['high', 'medium'] as const).find(t => !s.tiers.has(t))
        if (s !== undefined && other !== undefined) events.push(trigger(s, other))
      }
      for (let i = 0; i < REPEATS_PER_WAVE; i++) {
        const s = pick()
        if (s !== undefined) events.push(trigger(s, random.pick([...s.tiers])))
      }
      const added = [...jobs.values()]
      for (let i = 0; i < REPLAYS_PER_WAVE && added.length > 0; i++) replays.push(random.pick(added).event)

      const fresh: Record<Channel, number> = { crm: 0, sms: 0 }
      const byChannel = new Map<Channel, Array<{ event: ChurnRiskEvent, expected: string, replay: boolean }>>()
      for (const [replay, triggers] of [[false, events], [true, replays]] as const) {
        for (const event of triggers) {
          const channel = TIER_CHANNELS[event.tier][0] as Channel
          const key = `${channel}/${event.subscriberId}/${event.tier}`
          let expected = jobOf.get(key)
          if (expected === undefined) {
            expected = campaignJobId(channel, event)
            jobOf.set(key, expected)
            jobs.set(expected, { channel, event })
            adds.added++
            fresh[channel]++
          } else if (replay) {
            adds.replayed++
          } else {
            adds.deduplicated++
          }
          const list = byChannel.get(channel) ?? []
          list.push({ event, expected, replay })
          byChannel.set(channel, list)
        }
      }
      for (const [channel, list] of byChannel) {
        const result = await campaign.queues[channel].addBulk(list.map(({ event }) => ({ name: CAMPAIGN_JOB, data: { channel, event }, opts: campaignJobOptions(channel, event, settings) })))
        // A refused duplicate comes back as the job that holds its deduplication key.
        for (const [i, job] of result.entries()) assert.equal(job.id, list[i]?.expected, `${channel}: adding ${list[i]?.event.eventId}${list[i]?.replay === true ? ' again' : ''}`)
      }
      waves++
      return fresh
    }

    const counts = async (channel: Channel): Promise<Record<string, number>> =>
      await campaign.queues[channel].getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed')

    /** SIGKILL, then what the dead workers held: the jobs in the active lists, the SMS deliveries held open. */
    const kill = async (workers: RoleProcess, kind: Kill['kind']): Promise<void> => {
      const held = [...gateway.held.values()].map(idempotencyKey)
      assert.ok(workers.alive(), `the workers run until killed: ${workers.tail()}`)
      workers.child.kill('SIGKILL')
      assert.equal(await workers.exited, null, 'killed, not exited')
      assert.equal(workers.child.signalCode, 'SIGKILL')
      const inFlight: Record<Channel, number> = { crm: 0, sms: 0 }
      let stale = 0
      for (const channel of CHANNELS) {
        for (const job of await campaign.queues[channel].getJobs(['active'], 0, -1)) {
          if (job.id === undefined) continue
          // Taken by the workers just killed, unless it is still the take of an earlier kill.
          const take = `${job.id}#${job.attemptsStarted}`
          if (takes.has(take)) {
            stale++
            continue
          }
          takes.add(take)
          inFlight[channel]++
          inFlightAt.set(job.id, (inFlightAt.get(job.id) ?? 0) + 1)
        }
      }
      for (const id of held) {
        assert.ok((inFlightAt.get(id) ?? 0) > (heldAt.get(id) ?? 0), `${id}: its delivery was held open, so the job was active at the kill`)
        heldAt.set(id, (heldAt.get(id) ?? 0) + 1)
      }
      assert.ok(inFlight.sms >= 1, `SMS jobs were in flight at the ${kind} kill`)
      kills.push({ kind, inFlight, stale, held: held.length })
      gateway.release()
    }

    try {
      let workers = startWorkers()
      await enqueueWave()
      for (let k = 0; k < KILLS; k++) {
        if (k % 2 === 0) {
          // Once what the last deaths left behind has been handed back and delivered (kills faster
          // than the hand-backs would hit the same handed-back jobs at every death, a tight crash
          // loop, and BullMQ fails a job for good once it has been handed back more than
          // CAMPAIGN_MAX_STALLS times: the guard against a job that kills every worker)...
          const unfinished = new Set([...inFlightAt.keys()])
          await waitFor(async () => {
            if (!workers.alive()) throw new Error(`the workers exited: ${workers.tail()}`)
            for (const id of unfinished) {
              const state = await campaign.queues[(jobs.get(id) as CampaignJobData).channel].getJobState(id)
              if (state === 'failed') throw new Error(`${id} failed: ${(await campaign.queues[(jobs.get(id) as CampaignJobData).channel].getJob(id))?.failedReason ?? ''}`)
              if (state !== 'completed') return false
              unfinished.delete(id)
            }
            return true
          }, { timeoutMs: 120_000 + 4 * LOCK_MS, what: 'the jobs in flight at the last kill to be delivered again' })
          // ...at a random moment of a wave: after a random number of SMS deliveries the receiver
          // holds them open; the kill comes once CRM got through a random share of its backlog,
          // while it is taking jobs (or, should it be idle, right away).
          const fresh = await enqueueWave()
          const base = gateway.received.length
          const deliveries = random.int(0, Math.floor(fresh.sms / 4))
          await waitFor(() => { if (!workers.alive()) throw new Error(`the workers exited: ${workers.tail()}`); return gateway.received.length - base >= deliveries }, { timeoutMs: 120_000, what: `${deliveries} SMS deliveries` })
          gateway.tapOpen = false
          await waitFor(() => gateway.held.size > 0, { timeoutMs: 120_000, what: 'an SMS delivery held open' })
          // Should CRM have got through its backlog meanwhile, the next wave arrives now.
          let crm = await counts('crm')
          if ((crm.waiting ?? 0) === 0) {
            await enqueueWave()
            crm = await counts('crm')
          }
          const target = (crm.completed ?? 0) + Math.floor(random.next() * 0.6 * (crm.waiting ?? 0))
          // Polled without pause, so the kill lands while CRM still has 40% of that backlog.
          const deadline = Date.now() + 120_000
          for (;;) {
            const now = await counts('crm')
            if (((now.completed ?? 0) >= target && (now.active ?? 0) > 0) || ((now.waiting ?? 0) === 0 && (now.active ?? 0) === 0)) break
            if (!workers.alive()) throw new Error(`the workers exited: ${workers.tail()}`)
            if (Date.now() > deadline) throw new Error(`CRM did not get through ${target - (crm.completed ?? 0)} jobs within 120 s`)
            await sleep(1)
          }
          await kill(workers, 'random')
        } else {
          // While delivering again a job that was in flight at the kill before: the restarted
          // workers' stalled-job check has handed it back, and the receiver holds it open.
          const received = new Map<string, number>()
          for (const r of gateway.received) received.set(idempotencyKey(r), (received.get(idempotencyKey(r)) ?? 0) + 1)
          // Held open at the last kill and not delivered since.
          const awaited = new Set([...heldAt].filter(([id, n]) => received.get(id) === n).map(([id]) => id))
          assert.ok(awaited.size > 0, 'deliveries held open at the last kill')
          gateway.holdIf = request => awaited.has(idempotencyKey(request))
          await waitFor(() => { if (!workers.alive()) throw new Error(`the workers exited: ${workers.tail()}`); return gateway.held.size > 0 }, { timeoutMs: 120_000 + 4 * LOCK_MS, what: 'a job recovered from the last kill being delivered again' })
          await kill(workers, 'redelivery')
        }
        // A wave arrives while the workers are down.
        await enqueueWave()
        workers = startWorkers()
      }
      for (let w = 0; w < TRAILING_WAVES; w++) await enqueueWave()

      // Everything completes: what the dead workers held comes back through the stalled-job check.
      const expected: Record<Channel, number> = { crm: 0, sms: 0 }
      for (const data of jobs.values()) expected[data.channel]++
      await waitFor(async () => {
        if (!workers.alive()) throw new Error(`the workers exited: ${workers.tail()}`)
        for (const channel of CHANNELS) {
          const c = await counts(channel)
          if ((c.completed ?? 0) + (c.failed ?? 0) < expected[channel]) return false
        }
        return true
      }, { timeoutMs: LONG ? 1_200_000 : 300_000, what: 'every job to finish' })
      assert.equal(await workers.stop(), 0, `the workers stop on SIGTERM: ${workers.tail()}`)
    } finally {
      for (const c of children) if (c.alive()) c.child.kill('SIGKILL')
      gateway.release()
    }

    try {
      // Every job added is completed, delivered; none failed, none left behind.
      for (const channel of CHANNELS) {
        const c = await counts(channel)
        const failed = (await campaign.queues[channel].getJobs(['failed'], 0, 9)).map(j => `${j.id ?? ''}: ${j.failedReason} (handed back ${j.stalledCounter} times; in flight at ${inFlightAt.get(j.id ?? '') ?? 0} kills, held open at ${heldAt.get(j.id ?? '') ?? 0})`)
        assert.deepEqual(c, { waiting: 0, active: 0, delayed: 0, prioritized: 0, completed: [...jobs.values()].filter(d => d.channel === channel).length, failed: 0 }, `${channel}: every job completed, none failed or left behind; failed: ${JSON.stringify(failed)}`)
        const all = await campaign.queues[channel].getJobs(['completed'], 0, -1)
        assert.equal(new Set(all.map(j => j.id)).size, all.length, `${channel}: no job id twice`)
        const keys = new Set<string>()
        for (const job of all) {
          const data = jobs.get(job.id ?? '')
          assert.ok(data !== undefined, `${channel}: ${job.id ?? ''} is a job the test added`)
          assert.deepEqual(job.data, data, `${job.id ?? ''}: its data`)
          assert.deepEqual(job.returnvalue, { delivered: true }, `${job.id ?? ''}: delivered`)
          const key = `${data.event.subscriberId}/${data.event.tier}`
          assert.ok(!keys.has(key), `${channel}: a second job for ${key}`)
          keys.add(key)
        }
      }
    } finally {
      await campaign.close()
    }

    // What reached the channels: the outbox file (CRM) and the gateway (SMS).
    const outbox = await outboxLines(config.campaign.outboxDir, 'crm')
    const deliveries: Record<Channel, Array<{ jobId: string, data: CampaignJobData }>> = {
      crm: outbox.map(line => ({ jobId: line.jobId, data: { channel: line.channel, event: line.event } })),
      sms: gateway.received.map(request => {
        assert.ok(signedWith(SECRET, request), `${idempotencyKey(request)}: signed`)
        return { jobId: idempotencyKey(request), data: JSON.parse(request.body) as CampaignJobData }
      })
    }
    const duplicates: Record<Channel, number> = { crm: 0, sms: 0 }
    let most = 1
    for (const channel of CHANNELS) {
      const times = new Map<string, number>()
      const perKey = new Map<string, Set<string>>()
      for (const { jobId, data } of deliveries[channel]) {
        assert.deepEqual(data, jobs.get(jobId), `${channel}: a delivery of ${jobId} carries its job's event`)
        times.set(jobId, (times.get(jobId) ?? 0) + 1)
        const key = `${data.event.subscriberId}/${data.event.tier}`
        perKey.set(key, (perKey.get(key) ?? new Set()).add(jobId))
      }
      for (const [key, ids] of perKey) assert.equal(ids.size, 1, `${channel}: deliveries of two jobs for ${key}: ${[...ids].join(', ')}`)
      for (const [id, data] of jobs) {
        if (data.channel !== channel) continue
        const n = times.get(id) ?? 0
        const flights = inFlightAt.get(id) ?? 0
        assert.ok(n >= 1, `${id}: delivered`)
        assert.ok(n <= 1 + flights, `${id}: delivered ${n} times, in flight at ${flights} kill(s)`)
        // A delivery held open when its worker died was not acknowledged: it is made again.
        assert.ok(n >= 1 + (heldAt.get(id) ?? 0), `${id}: held open at ${heldAt.get(id) ?? 0} kill(s), delivered ${n} times`)
        duplicates[channel] += n - 1
        most = Math.max(most, n)
      }
    }
    assert.equal(kills.length, KILLS)
    assert.ok(kills.some(k => k.inFlight.crm > 0), `some kill landed with CRM jobs in flight: ${JSON.stringify(kills)}`)
    const twice = [...inFlightAt.values()].filter(n => n >= 2).length
    process.stderr.write(`# workers kill test${LONG ? ' (long)' : ''}: ${KILLS} SIGKILLs survived, ${waves} waves, ${jobs.size} jobs (crm ${[...jobs.values()].filter(d => d.channel === 'crm').length}, sms ${[...jobs.values()].filter(d => d.channel === 'sms').length}), adds ${JSON.stringify(adds)}; ` +
      `duplicate deliveries crm ${duplicates.crm} (outbox), sms ${duplicates.sms} (gateway), at most ${most} deliveries of one job, ${twice} job(s) in flight at two kills or more; kills ${JSON.stringify(kills)}\n`)
  })
})
