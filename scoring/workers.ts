/**
 * The campaign workers: one BullMQ `Worker` per channel, rate-limited per channel across every
 * worker process (BullMQ's limiter lives in Redis), that skip opted-out subscribers and hand the
 * rest to the channel's adapter. Attempts and exponential backoff come from the job options the
 * scorer adds (`campaignJobOptions`); a permanent refusal becomes BullMQ's `UnrecoverableError`,
 * so the job goes to the failed set without waiting through its retries.
 *
 * A worker that dies mid-delivery (SIGKILL, OOM, a lost node) leaves its jobs active under a lock
 * it no longer renews; BullMQ's stalled-job check hands them back once the lock has expired
 * (`CAMPAIGN_LOCK_MS`, also how often the check runs), and they are delivered again: at least once.
 * BullMQ fails a job for good after its first hand-back by default, which loses any job that is in
 * flight at two deaths in a row (a crash loop); `CAMPAIGN_MAX_STALLS` sets how many are allowed.
 */
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { UnrecoverableError, Worker } from 'bullmq'
import type { Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../config/index.ts'
import { settlesWithin } from '../core/deadline.ts'
import { describeError, errorCode } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { createRedis } from '../core/redis.ts'
import { CHANNELS, bullPrefix, queueName } from './campaign.ts'
import type { CampaignJobData, Channel } from './campaign.ts'
import { createAdapter } from './channels.ts'
import type { ChannelAdapter } from './channels.ts'
import { OptOutList } from './opt-out.ts'

/** What a campaign job's processor returns (its BullMQ return value). */
export type CampaignResult = { delivered: true } | { skipped: 'opted-out' }

/** Per channel, since the workers started. */
export interface CampaignCounters {
  /** Jobs the adapter delivered. */
  sent: number
  /** Jobs completed without sending because the subscriber opted out. */
  skippedOptedOut: number
  /** Attempts that failed transiently; each is retried with backoff until attempts run out. */
  failedTransient: number
  /** Jobs the channel refused for good, failed without retrying. */
  failedPermanent: number
}

export interface CampaignWorkersOptions {
  config: Pick<Config, 'redis' | 'campaign'>
  logger: Logger
  /**
   * Jobs each channel's worker runs at once; never more than the channel's rate per second.
   * @defaultValue 8
   */
  concurrency?: number
  /**
   * How long `close` lets BullMQ finish closing once no job of ours is active any more, before it
   * gives up on it and drops the connections (see `close`).
   * @defaultValue 10000
   */
  closeGraceMs?: number
}

export class CampaignWorkers {
  readonly #options: CampaignWorkersOptions
  readonly #logger: Logger
  readonly #counters = Object.fromEntries(CHANNELS.map(c => [c, { sent: 0, skippedOptedOut: 0, failedTransient: 0, failedPermanent: 0 }])) as Record<Channel, CampaignCounters>
  #connection: Redis | undefined
  #workers: Worker<CampaignJobData, CampaignResult>[] = []
  #adapters: ChannelAdapter[] = []
  #closing: Promise<void> | undefined
  /** Processor calls under way, and who waits for them to reach zero. */
  #active = 0
  #idle: Array<() => void> = []

  constructor (options: CampaignWorkersOptions) {
    this.#options = options
    this.#logger = options.logger.child({ component: 'campaign-workers' })
  }

  /** Live counters per channel. */
  get counters (): Readonly<Record<Channel, Readonly<CampaignCounters>>> {
    return this.#counters
  }

  /**
   * Ready while the workers' Redis connection is up; while it is down (reconnecting with backoff)
   * no job can be taken or completed, and the role says so instead of claiming readiness.
   */
  get readiness (): { ready: boolean, problems: string[] } {
    const status = this.#connection?.status
    if (status === 'ready' && this.#closing === undefined) return { ready: true, problems: [] }
    return { ready: false, problems: [this.#closing !== undefined ? 'campaign workers are closing' : `redis connection ${status ?? 'not opened'}; reconnecting with backoff`] }
  }

  /** The adapter each channel delivers through (`outbox` or `webhook`). */
  get adapters (): Record<Channel, string> {
    const { channels } = this.#options.config.campaign
    return { crm: channels.crm.adapter, sms: channels.sms.adapter }
  }

  /** Starts one worker per channel (once); resolves when all are connected and taking jobs. */
  async start (): Promise<void> {
    if (this.#connection !== undefined) return
    const { config, concurrency = 8 } = this.#options
    const connection = createRedis({ url: config.redis.url, logger: this.#logger, name: 'campaign-workers' })
    this.#connection = connection
    const optOuts = new OptOutList({ redis: connection, prefix: config.redis.prefix })
    for (const channel of CHANNELS) {
      const adapter = createAdapter(channel, config.campaign)
      this.#adapters.push(adapter)
      const { ratePerSecond } = config.campaign.channels[channel]
      const { lockMs, maxStalls } = config.campaign
      const worker = new Worker<CampaignJobData, CampaignResult>(queueName(channel), async job => await this.#process(channel, adapter, optOuts, job), {
        connection,
        prefix: bullPrefix(config.redis.prefix),
        concurrency: Math.min(concurrency, ratePerSecond),
        limiter: { max: ratePerSecond, duration: 1000 },
        lockDuration: lockMs,
        stalledInterval: lockMs,
        maxStalledCount: maxStalls,
        autorun: false
      })
      worker.on('stalled', jobId => { this.#logger.warn({ channel, jobId }, 'campaign job handed back from a worker that died; delivering it again') })
      worker.on('failed', (job, error) => { this.#onFailed(channel, job, error) })
      worker.on('error', error => {
        // While Redis is away each reconnect attempt of each worker fails here; the connection
        // logs the outage once (createRedis), so these go to debug until it is back.
        const level = connection.status === 'ready' ? 'error' : 'debug'
        this.#logger[level]({ err: error, channel }, 'campaign worker error')
      })
      this.#workers.push(worker)
    }
    for (const worker of this.#workers) {
      // run() resolves only when the worker closes; its failures surface as 'error' events.
      worker.run().catch((error: unknown) => { this.#logger.error({ err: error }, 'campaign worker stopped') })
    }
    await Promise.all(this.#workers.map(async worker => { await worker.waitUntilReady() }))
  }

  /**
   * Stops taking jobs, lets the active ones finish (no forced close: a job cut short would be
   * sent again after its lock expires), then closes the adapters and the connection.
   */
  async close (): Promise<void> {
    this.#closing ??= (async () => {
      // BullMQ's graceful close interrupts each worker's blocking connection and waits for its
      // 'end', which a connection still reconnecting never emits (taskforcesh/bullmq#4656): a
      // stop during an outage, or just after Redis came back, would hang there. So: with Redis
      // answering, let the blocking connections come back first and close gracefully; without
      // it no job can be completed anyway, so let ours finish and close by force (a job whose
      // completion was not recorded is taken again once its lock expires: at least once).
      await this.#blockingConnectionsBack(5000)
      const graceMs = this.#options.closeGraceMs ?? 10_000
      const graceful = this.#connection?.status === 'ready' && (await this.#blockingStatuses()).every(status => status === 'ready')
      if (!graceful) await this.#whenIdle(graceMs)
      const closed = Promise.all(this.#workers.map(async worker => { await worker.close(!graceful) }))
      closed.catch(() => {})
      const timedOut = await Promise.race([closed.then(() => false), (async () => {
        await this.#whenIdle(Number.POSITIVE_INFINITY)
        await sleep(graceMs, undefined, { ref: false })
        return true
      })()])
      if (timedOut) this.#logger.warn({ code: 'CHURN_CAMPAIGN_CLOSE_TIMEOUT', graceful, blocking: await this.#blockingStatuses() }, 'campaign workers did not finish closing after their last job; leaving them')
      await Promise.all(this.#adapters.map(async adapter => { await adapter.close?.() }))
      this.#connection?.disconnect()
    })()
    await this.#closing
  }

  /** Each worker's blocking connection's ioredis status. */
  async #blockingStatuses (): Promise<string[]> {
    return await Promise.all(this.#workers.map(async worker => (await worker.backend.blockingClient?.catch(() => undefined))?.status ?? 'none'))
  }

  /** Waits up to `timeoutMs` for blocking connections still reconnecting while the shared one is ready. */
  async #blockingConnectionsBack (timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline && this.#connection?.status === 'ready') {
      if (!(await this.#blockingStatuses()).some(status => status === 'reconnecting' || status === 'connecting' || status === 'connect')) return
      await sleep(100)
    }
  }

  /** Resolves once no processor call is under way, or after `timeoutMs`. */
  async #whenIdle (timeoutMs: number): Promise<void> {
    if (this.#active === 0) return
    const idle = new Promise<void>(resolve => { this.#idle.push(resolve) })
    if (timeoutMs === Number.POSITIVE_INFINITY) return await idle
    await settlesWithin(idle, timeoutMs)
  }

  async #process (channel: Channel, adapter: ChannelAdapter, optOuts: OptOutList, job: Job<CampaignJobData, CampaignResult>): Promise<CampaignResult> {
    this.#active++
    try {
      return await this.#deliver(channel, adapter, optOuts, job)
    } finally {
      if (--this.#active === 0) for (const resolve of this.#idle.splice(0)) resolve()
    }
  }

  async #deliver (channel: Channel, adapter: ChannelAdapter, optOuts: OptOutList, job: Job<CampaignJobData, CampaignResult>): Promise<CampaignResult> {
    const counters = this.#counters[channel]
    if (await optOuts.has(job.data.event.subscriberId)) {
      counters.skippedOptedOut++
      return { skipped: 'opted-out' }
    }
    const jobId = job.id ?? ''
    try {
      await adapter.send(job.data, { jobId, attempt: job.attemptsMade + 1 })
    } catch (error) {
      if (errorCode(error) === 'CHURN_CAMPAIGN_PERMANENT') {
        counters.failedPermanent++
        throw new UnrecoverableError(`CHURN_CAMPAIGN_PERMANENT: ${describeError(error)}`)
      }
      counters.failedTransient++
      throw error
    }
    counters.sent++
    return { delivered: true }
  }

  #onFailed (channel: Channel, job: Job<CampaignJobData> | undefined, error: Error): void {
    const attempts = job?.opts.attempts ?? 1
    const final = job === undefined || error.name === 'UnrecoverableError' || job.attemptsMade >= attempts
    const fields = { err: error, channel, jobId: job?.id, attemptsMade: job?.attemptsMade, attempts }
    // Retried attempts are routine (a receiver briefly down); only a job given up on is worth a line.
    if (final) this.#logger.warn(fields, 'campaign job failed for good')
    else this.#logger.debug(fields, 'campaign job attempt failed; retrying with backoff')
  }
}

export interface RunCampaignWorkersOptions extends CampaignWorkersOptions {
  /** Aborting it stops the workers gracefully. */
  signal: AbortSignal
  /** Called once every channel's worker runs, with the workers (live `counters`). */
  onStarted?: (workers: CampaignWorkers) => void
}

/** The `work` role: starts the workers, runs until `signal` aborts, closes them, returns the counters. */
export async function runCampaignWorkers (options: RunCampaignWorkersOptions): Promise<Readonly<Record<Channel, Readonly<CampaignCounters>>>> {
  const workers = new CampaignWorkers(options)
  const stopped = options.signal.aborted ? Promise.resolve() : once(options.signal, 'abort')
  try {
    // A stop while Redis is still unreachable must not wait for it.
    await Promise.race([workers.start(), stopped])
    if (!options.signal.aborted) {
      options.logger.info({ channels: CHANNELS, adapters: workers.adapters }, 'campaign workers started')
      options.onStarted?.(workers)
      await stopped
    }
    options.logger.info('campaign workers stopping: finishing active jobs')
  } finally {
    await workers.close()
  }
  return workers.counters
}
