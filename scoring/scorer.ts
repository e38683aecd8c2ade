/**
 * The scorer: a consumer group on the feature changelog that keeps the online store current,
 * scores each changed subscriber with the promoted model, emits churn-risk events and enqueues
 * campaign jobs.
 *
 * Per fetched batch (one partition), in this order:
 *   1. decode (undecodable records to the changelog's dead-letter topic), newest version per
 *      subscriber; records with a bad subscriber id or another feature definition are counted
 *      and not scored;
 *   2. read each subscriber's stored version, last announced tier and pending event; drop
 *      versions already held;
 *   3. score the rest in one batch, tier with hysteresis, decide which deserve an event;
 *   4. record those events as pending in the store, publish them (acks from all replicas) and
 *      enqueue their campaign jobs;
 *   5. write the store (only where the version is newer; this settles the pending events), then
 *      commit the offsets.
 * A crash anywhere before 5 replays from the committed offsets, and the replay may see newer
 * records than the batch that died. So it does not trust the store's announced tier alone: it
 * takes the pending events as announced, publishes them again (same eventId) and re-adds their
 * jobs (refused as duplicates), and only then compares the newest features with them. Every tier
 * change therefore reaches the topic at least once, the topic's last event per subscriber is
 * right, and no subscriber gets a second job. A crash after 5 replays nothing the store does not
 * already hold. Redis or Kafka failing in 2-5 pauses the partition: the batch is retried with
 * backoff (heartbeating) and the scorer reports itself not ready until it goes through.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Type } from 'avsc'
import type { Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage, Producer } from 'kafkajs'
import type { Config } from '../config/index.ts'
import { settlesWithin } from '../core/deadline.ts'
import { describeError, errorCode } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { DAYS_SINCE_LAST_ACTIVITY, daysSinceLastActivity } from '../lakehouse/features.ts'
import { latestSchema } from '../schemas/catalog.ts'
import { avroType, encodeFramed } from '../schemas/codec.ts'
import type { AvroCodec } from '../schemas/codec.ts'
import type { ChurnRiskEvent, FeatureChange } from '../schemas/types.generated.ts'
import { POISON_CODES, deadLetterHeaders } from '../streams/ingest.ts'
import { ConsumerContact } from '../streams/consumer-contact.ts'
import { consumerGroupLag } from '../streams/lag.ts'
import { CachedKeyPartitioner } from '../streams/partitioner.ts'
import type { ChurnModel } from '../training/model.ts'
import type { CampaignJobData, CampaignSettings, Channel } from './campaign.ts'
import { CAMPAIGN_JOB, TIER_CHANNELS, campaignJobOptions } from './campaign.ts'
import { DriftMonitor } from './drift.ts'
import type { DriftReport } from './drift.ts'
import { ScoringError } from './errors.ts'
import type { ScorerMetrics } from './metrics.ts'
import type { ModelHolder } from './model-holder.ts'
import type { OnlineEntry, OnlineStore, StoredState } from './store.ts'
import { isSubscriberId } from './store.ts'
import type { TierPolicy } from './tiers.ts'
import { RECOMMENDED_ACTIONS, nextTier, shouldEmit } from './tiers.ts'

/** How long `stop` waits for each Kafka client to disconnect. */
const STOP_CLIENT_MS = 15_000

/** What the scorer needs of a BullMQ queue (a `Queue` fits). */
export interface JobQueue {
  addBulk: (jobs: Array<{ name: string, data: CampaignJobData, opts: ReturnType<typeof campaignJobOptions> }>) => Promise<Array<{ id?: string | undefined }>>
}

export interface ScorerOptions {
  kafka: Kafka
  codec: AvroCodec
  store: OnlineStore
  models: ModelHolder
  queues: Readonly<Record<Channel, JobQueue>>
  topics: Config['topics']
  groupId: string
  /** Schema id the churn-risk events are written with (registered by the caller). */
  riskSchemaId: number
  policy: TierPolicy
  /** Features older than this when scored are marked stale. */
  staleMs: number
  campaign: CampaignSettings
  drift: { window: number, psiAlert: number }
  logger: Logger
  metrics?: ScorerMetrics
  /** @defaultValue 30000 */
  sessionTimeoutMs?: number
  /** Longest pause between retries of a failing batch. @defaultValue 10000 */
  maxRetryDelayMs?: number
  /** Reasons per event. @defaultValue 3 */
  reasons?: number
  /** The clock (tests and the benchmark replace it). @defaultValue Date.now */
  now?: () => number
  /** Called after each committed batch. */
  onBatch?: (stats: ScorerStats) => void
  /** Called with each drift report (every `driftEveryMs`). */
  onDrift?: (report: DriftReport) => void
  /** @defaultValue 10000 */
  driftEveryMs?: number
}

export interface ScorerStats {
  batches: number
  records: number
  scored: number
  /** Versions the store already held (redeliveries, replays, older updates). */
  older: number
  /** Records whose features were computed under another definition than the model's. */
  hashMismatch: number
  invalid: number
  deadLettered: number
  events: { low: number, medium: number, high: number }
  /** Events of a batch that did not finish (a crash), published again: same ids, so harmless downstream. */
  republished: number
  jobs: { added: number, deduplicated: number }
  /** Consecutive failed attempts of the current batch (0 when healthy). */
  failing: number
  lastError: string | undefined
}

interface Update {
  change: FeatureChange
}

export class ScorerService {
  readonly #options: ScorerOptions
  readonly #logger: Logger
  readonly #now: () => number
  #reader: Type | undefined
  #riskType: Type | undefined
  #consumer: Consumer | undefined
  #producer: Producer | undefined
  #drift: DriftMonitor | undefined
  #driftTimer: NodeJS.Timeout | undefined
  /** Model versions whose feature-hash mismatches were already logged. */
  readonly #mismatchLogged = new Set<number>()
  #running = false
  #contact: ConsumerContact | undefined
  #stopping = false
  readonly #stats: ScorerStats = {
    batches: 0, records: 0, scored: 0, older: 0, hashMismatch: 0, invalid: 0, deadLettered: 0, events: { low: 0, medium: 0, high: 0 }, republished: 0, jobs: { added: 0, deduplicated: 0 }, failing: 0, lastError: undefined
  }

  constructor (options: ScorerOptions) {
    this.#options = options
    this.#logger = options.logger.child({ component: 'scorer' })
    this.#now = options.now ?? Date.now
  }

  get stats (): Readonly<ScorerStats> {
    return { ...this.#stats, events: { ...this.#stats.events }, jobs: { ...this.#stats.jobs } }
  }

  /** Ready when consuming with a model, the last batch went through, and no mismatch is pending. */
  get readiness (): { ready: boolean, problems: string[] } {
    const problems: string[] = []
    if (!this.#running) problems.push('scorer not running')
    const consumer = this.#running ? this.#contact?.problem : undefined
    if (consumer !== undefined) problems.push(consumer)
    const status = this.#options.models.status
    if (this.#options.models.current === undefined) problems.push(`no model: ${status.problem ?? 'not loaded'}`)
    if (this.#stats.failing > 0) problems.push(`batch failing (${this.#stats.failing} attempts): ${this.#stats.lastError ?? ''}`)
    if (this.#stats.hashMismatch > 0 && this.#mismatchLogged.has(this.#options.models.current?.version ?? -1)) problems.push(`${this.#stats.hashMismatch} changelog record(s) computed under another feature definition than model v${this.#options.models.current?.version ?? '?'}`)
    return { ready: problems.length === 0, problems }
  }

  get ready (): boolean {
    return this.readiness.ready
  }

  /** The drift report of the serving model's window, if any row was scored. */
  driftReport (): DriftReport | undefined {
    return this.#drift?.report()
  }

  /**
   * Joins the group and starts scoring. Waits for a promoted model first: scoring without one
   * would lose the tier changes of everything consumed meanwhile.
   */
  async start (signal?: AbortSignal): Promise<void> {
    const { kafka, topics, groupId, models } = this.#options
    this.#reader = avroType((await latestSchema('feature-changelog')).schema)
    this.#riskType = avroType((await latestSchema('churn-risk')).schema)
    while (models.current === undefined) {
      if (signal?.aborted === true) return
      this.#logger.warn({ problem: models.status.problem }, 'waiting for a promoted model before consuming')
      await sleep(Math.min(5000, 500), undefined, { signal }).catch(() => {})
      await models.refresh()
    }
    this.#producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: CachedKeyPartitioner })
    const sessionTimeout = this.#options.sessionTimeoutMs ?? 30_000
    this.#consumer = kafka.consumer({ groupId, sessionTimeout, heartbeatInterval: Math.min(3000, Math.floor(sessionTimeout / 3)), maxWaitTimeInMs: 100, allowAutoTopicCreation: false })
    await this.#producer.connect()
    await this.#consumer.connect()
    // Ready only while the consumer is in touch with Kafka: kafkajs keeps it alive through an outage.
    this.#contact = new ConsumerContact(sessionTimeout)
    this.#contact.watch(this.#consumer, this.#logger)
    await this.#consumer.subscribe({ topics: [topics.features], fromBeginning: true })
    // Partitions in parallel: a batch is mostly Redis and Kafka round trips, and ordering only
    // matters within a partition (one subscriber's records never leave theirs).
    await this.#consumer.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: Math.min(4, topics.partitions), eachBatch: async payload => { await this.#onBatch(payload) } })
    this.#contact.running()
    this.#running = true
    const every = this.#options.driftEveryMs ?? 10_000
    this.#driftTimer = setInterval(() => { this.#reportDrift() }, every)
    this.#driftTimer.unref()
    this.#logger.info({ groupId, topic: topics.features, model: models.status }, 'scorer started')
  }

  /**
   * Scores every subscriber in the online store with the serving model, under the same rules as
   * a feature update (events on tier changes and moves beyond the margin, campaign jobs
   * deduplicated), writing back only where no newer update arrived meanwhile. A newly promoted
   * model changes nobody's score until this runs: rescoring everyone is a decision, not a side
   * effect of a deploy.
   */
  async rescoreAll (pageSize = 1000): Promise<{ subscribers: number, events: number }> {
    const model = this.#options.models.current
    if (model === undefined) throw new ScoringError('CHURN_SCORE_NO_MODEL', `no promoted model is loaded: ${this.#options.models.status.problem ?? ''}`)
    this.#riskType ??= avroType((await latestSchema('churn-risk')).schema)
    let producer = this.#producer
    const own = producer === undefined
    if (producer === undefined) {
      producer = this.#options.kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: CachedKeyPartitioner })
      await producer.connect()
      this.#producer = producer
    }
    let subscribers = 0
    let events = 0
    try {
      for await (const page of this.#options.store.scan(pageSize)) {
        const states: StoredState[] = page.map(entry => ({ version: entry.version, tier: entry.tier, emittedProbability: entry.emittedProbability, pending: entry.pending ?? null }))
        const replayed = settlePending(states)
        const fresh = page.map((entry, i) => ({
          update: { change: { subscriberId: entry.subscriberId, version: entry.version, featureTime: entry.featureTime, firstEventTime: entry.featureTime, updatedAt: entry.updatedAt, features: entry.features as unknown as FeatureChange['features'], featureHash: model.featureHash } },
          state: states[i] as StoredState
        }))
        const scored = this.#score(model, fresh, this.#now())
        await this.#options.store.markPending(scored.events)
        await this.#publish(replayed, true)
        await this.#publish(scored.events)
        await this.#enqueue([...replayed, ...scored.events])
        await this.#options.store.write(scored.entries, 'same')
        subscribers += page.length
        events += scored.events.length
      }
    } finally {
      if (own) {
        await producer.disconnect().catch(() => {})
        this.#producer = undefined
      }
    }
    this.#logger.info({ model: model.version, subscribers, events }, 'rescored every subscriber')
    return { subscribers, events }
  }

  /**
   * Stops consuming and disconnects, each client within `STOP_CLIENT_MS`. A kafkajs consumer
   * stopped in the middle of a group rebalance can wait for the join to finish, or longer; past
   * the bound it is left behind (logged with CHURN_SCORE_STOP_TIMEOUT) rather than holding the
   * shutdown. Nothing is lost by it: no batch is processed once stopping, and what was not
   * committed goes to the next owner of the partition.
   */
  async stop (): Promise<void> {
    this.#stopping = true
    if (this.#driftTimer !== undefined) clearInterval(this.#driftTimer)
    // In turn: a batch finishing during the consumer's stop still publishes with the producer.
    for (const [client, connection] of [['consumer', this.#consumer], ['producer', this.#producer]] as const) {
      if (connection !== undefined && !await settlesWithin(connection.disconnect(), STOP_CLIENT_MS)) {
        this.#logger.warn({ code: 'CHURN_SCORE_STOP_TIMEOUT', client, waitedMs: STOP_CLIENT_MS }, `the Kafka ${client} did not disconnect within ${STOP_CLIENT_MS} ms; leaving it`)
      }
    }
    this.#running = false
  }

  /** Consumer lag of the group on the changelog (messages not yet committed). */
  async lag (): Promise<number> {
    const { kafka, topics, groupId } = this.#options
    const admin = kafka.admin()
    await admin.connect()
    try {
      return await consumerGroupLag(admin, groupId, [topics.features])
    } finally {
      await admin.disconnect()
    }
  }

  async #onBatch (payload: EachBatchPayload): Promise<void> {
    const { batch } = payload
    if (batch.messages.length === 0) return
    for (let attempt = 0; ; attempt++) {
      if (!payload.isRunning() || payload.isStale() || this.#stopping) return
      const started = performance.now()
      try {
        await this.#process(batch.topic, batch.partition, batch.messages)
        const last = batch.messages[batch.messages.length - 1] as KafkaMessage
        payload.resolveOffset(last.offset)
        await this.#consumer?.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }])
        this.#stats.batches++
        this.#stats.failing = 0
        this.#stats.lastError = undefined
        this.#options.metrics?.batchSeconds.observe((performance.now() - started) / 1000)
        this.#options.metrics?.ready.set(this.ready ? 1 : 0)
        this.#options.onBatch?.(this.stats)
        return
      } catch (error) {
        this.#stats.failing = attempt + 1
        this.#stats.lastError = describeError(error)
        this.#options.metrics?.ready.set(0)
        const delay = Math.min(this.#options.maxRetryDelayMs ?? 10_000, 200 * 2 ** attempt)
        // Once per failure streak at warn, then at debug: an outage must not flood the log.
        const level = attempt === 0 || attempt % 20 === 0 ? 'warn' : 'debug'
        this.#logger[level]({ err: error, code: errorCode(error), topic: batch.topic, partition: batch.partition, offset: batch.messages[0]?.offset, attempt, retryInMs: delay }, 'scoring batch failed; retrying')
        const until = Date.now() + delay
        while (Date.now() < until && payload.isRunning() && !this.#stopping) {
          await sleep(Math.min(1000, until - Date.now()))
          await payload.heartbeat().catch(() => {})
        }
      }
    }
  }

  async #process (topic: string, partition: number, messages: KafkaMessage[]): Promise<void> {
    const { codec, store, topics } = this.#options
    const model = this.#options.models.current
    if (model === undefined) throw new ScoringError('CHURN_SCORE_NO_MODEL', 'no promoted model is loaded')
    const ids: number[] = []
    for (const m of messages) if (m.value !== null && m.value.length >= 5 && m.value[0] === 0) ids.push(m.value.readInt32BE(1))
    await codec.loadWriters(ids)

    // 1. Decode; newest version per subscriber.
    const newest = new Map<string, Update>()
    const dead: Array<{ key: Buffer | null, value: Buffer | null, headers: IHeaders }> = []
    let invalid = 0
    let mismatch = 0
    for (const message of messages) {
      let change: FeatureChange
      try {
        change = codec.decode<FeatureChange>(message.value, this.#reader as Type).value
      } catch (error) {
        const code = errorCode(error)
        if (code === undefined || !POISON_CODES.has(code)) throw error
        dead.push({ key: message.key, value: message.value, headers: deadLetterHeaders({ topic, partition, message }, code, describeError(error)) })
        continue
      }
      if (!isSubscriberId(change.subscriberId)) {
        invalid++
        continue
      }
      if (change.featureHash !== model.featureHash) {
        mismatch++
        continue
      }
      const held = newest.get(change.subscriberId)
      if (held === undefined || held.change.version < change.version) newest.set(change.subscriberId, { change })
    }
    if (dead.length > 0) {
      await (this.#producer as Producer).send({ topic: topics.deadLetter(topic), acks: -1, messages: dead })
      this.#logger.warn({ topic, partition, offset: messages[0]?.offset, count: dead.length }, 'dead-lettered undecodable changelog records')
    }
    if (mismatch > 0 && !this.#mismatchLogged.has(model.version)) {
      this.#mismatchLogged.add(model.version)
      this.#logger.error({ topic, partition, offset: messages[0]?.offset, model: model.name, version: model.version, modelFeatureHash: model.featureHash }, 'changelog records computed under another feature definition than the model: not scored (retrain, or deploy matching ingest)')
    }

    // 2. What the store holds; events of an unfinished batch count as announced and go out again.
    const updates = [...newest.values()]
    const states = await store.states(updates.map(u => u.change.subscriberId))
    const replayed = settlePending(states)
    const fresh: Array<{ update: Update, state: StoredState | null }> = []
    let older = 0
    for (const [i, update] of updates.entries()) {
      const state = states[i] ?? null
      if (state !== null && state.version >= update.change.version) older++
      else fresh.push({ update, state })
    }

    // 3. Score.
    const now = this.#now()
    const scored = this.#score(model, fresh, now)

    // 4. Record the new events as pending, then publish and enqueue (the replayed ones first).
    await store.markPending(scored.events)
    await this.#publish(replayed, true)
    await this.#publish(scored.events)
    await this.#enqueue([...replayed, ...scored.events])

    // 5. The store, then (by the caller) the offsets.
    await store.write(scored.entries)

    const s = this.#stats
    s.records += messages.length
    s.scored += fresh.length
    s.older += older + (messages.length - dead.length - invalid - mismatch - updates.length)
    s.invalid += invalid
    s.hashMismatch += mismatch
    s.deadLettered += dead.length
    const m = this.#options.metrics
    if (m !== undefined) {
      m.updates.inc({ result: 'scored' }, fresh.length)
      m.updates.inc({ result: 'older' }, older)
      m.updates.inc({ result: 'invalid' }, invalid)
      m.updates.inc({ result: 'hash_mismatch' }, mismatch)
      m.updates.inc({ result: 'dead_lettered' }, dead.length)
    }
  }

  #score (model: ChurnModel, fresh: ReadonlyArray<{ update: Update, state: StoredState | null }>, now: number): { entries: OnlineEntry[], events: ChurnRiskEvent[] } {
    const { policy, staleMs } = this.#options
    const columns = model.names.length
    const raw = new Float64Array(fresh.length * columns)
    const x = new Float64Array(fresh.length * columns)
    const features: Array<Record<string, number | null>> = []
    for (const [r, { update }] of fresh.entries()) {
      const named: Record<string, number | null> = { ...(update.change.features as unknown as Record<string, number | null>), [DAYS_SINCE_LAST_ACTIVITY]: daysSinceLastActivity(Math.max(now, update.change.featureTime), update.change.featureTime) }
      features.push(named)
      const row = x.subarray(r * columns, (r + 1) * columns)
      for (let c = 0; c < columns; c++) {
        const v = named[model.names[c] as string]
        raw[r * columns + c] = v === null || v === undefined ? Number.NaN : v
      }
      row.set(raw.subarray(r * columns, (r + 1) * columns))
      model.vector(row, row)
    }
    const probabilities = model.predictBatch(x, fresh.length)
    this.#observeDrift(model, raw, fresh.length, probabilities)

    const entries: OnlineEntry[] = []
    const events: ChurnRiskEvent[] = []
    for (const [r, { update, state }] of fresh.entries()) {
      const change = update.change
      const probability = probabilities[r] as number
      const tier = nextTier(probability, state?.tier ?? null, policy)
      // A subscriber never announced gets a first event only when not low risk.
      const announced = state !== null && state.emittedProbability !== null
      const emit = announced
        ? shouldEmit(tier, probability, { tier: state.tier, probability: state.emittedProbability as number }, policy)
        : tier !== 'low'
      entries.push({
        subscriberId: change.subscriberId,
        version: change.version,
        featureTime: change.featureTime,
        updatedAt: change.updatedAt,
        features: features[r] as Record<string, number | null>,
        probability,
        scoredAt: now,
        modelVersion: model.version,
        tier: emit ? tier : (state?.tier ?? 'low'),
        emittedProbability: emit ? probability : (state?.emittedProbability ?? null)
      })
      if (!emit) continue
      const age = Math.max(0, now - change.featureTime)
      events.push({
        eventId: `${change.subscriberId}/${change.version}/${model.version}`,
        subscriberId: change.subscriberId,
        probability,
        tier,
        previousTier: announced ? state.tier : null,
        recommendedAction: RECOMMENDED_ACTIONS[tier],
        reasons: model.reasons(x.subarray(r * columns, (r + 1) * columns), this.#options.reasons ?? 3).map(reason => {
          const value = raw[r * columns + model.names.indexOf(reason.feature)] as number
          return { feature: reason.feature, value: Number.isNaN(value) ? null : value, contribution: reason.contribution }
        }),
        modelName: model.name,
        modelVersion: model.version,
        featureVersion: change.version,
        featureTime: change.featureTime,
        featureAgeMs: age,
        stale: age > staleMs,
        scoredAt: now
      })
    }
    return { entries, events }
  }

  /** Publishes events; `replayed` ones (of an unfinished batch) are counted apart. */
  async #publish (events: readonly ChurnRiskEvent[], replayed = false): Promise<void> {
    if (events.length === 0) return
    const { topics, riskSchemaId } = this.#options
    try {
      await (this.#producer as Producer).send({
        topic: topics.churnRisk,
        acks: -1,
        messages: events.map(e => ({ key: e.subscriberId, value: encodeFramed(riskSchemaId, this.#riskType as Type, e), headers: { 'churn.event-id': e.eventId } }))
      })
    } catch (error) {
      throw new ScoringError('CHURN_SCORE_PUBLISH_FAILED', `could not publish ${events.length} churn-risk event(s): ${describeError(error)}`, { cause: error, retriable: true })
    }
    if (replayed) {
      this.#stats.republished += events.length
      return
    }
    for (const e of events) {
      this.#stats.events[e.tier]++
      this.#options.metrics?.riskEvents.inc({ tier: e.tier })
    }
  }

  async #enqueue (events: readonly ChurnRiskEvent[]): Promise<void> {
    const { queues, campaign } = this.#options
    // One round trip per channel (BullMQ adds a bulk in one pipeline, deduplication included).
    const byChannel = new Map<Channel, Array<{ name: string, data: CampaignJobData, opts: ReturnType<typeof campaignJobOptions> }>>()
    for (const event of events) {
      for (const channel of TIER_CHANNELS[event.tier]) {
        let jobs = byChannel.get(channel)
        if (jobs === undefined) byChannel.set(channel, jobs = [])
        jobs.push({ name: CAMPAIGN_JOB, data: { channel, event }, opts: campaignJobOptions(channel, event, campaign) })
      }
    }
    try {
      await Promise.all([...byChannel].map(async ([channel, jobs]) => {
        const added = await queues[channel].addBulk(jobs)
        for (const [i, job] of added.entries()) {
          // A refused duplicate comes back as the job that holds its deduplication key.
          const result = job.id === jobs[i]?.opts.jobId ? 'added' : 'deduplicated'
          this.#stats.jobs[result]++
          this.#options.metrics?.jobs.inc({ channel, result })
        }
      }))
    } catch (error) {
      throw new ScoringError('CHURN_SCORE_REDIS', `could not enqueue campaign jobs: ${describeError(error)}`, { cause: error, retriable: true })
    }
  }

  #observeDrift (model: ChurnModel, raw: Float64Array, rows: number, scores: Float64Array): void {
    if (this.#drift?.modelVersion !== model.version) this.#drift = new DriftMonitor(model.artifact, { window: this.#options.drift.window, threshold: this.#options.drift.psiAlert })
    this.#drift.add(raw, rows, scores)
  }

  #driftAlerted = ''

  #reportDrift (): void {
    const report = this.#drift?.report()
    if (report === undefined || report.rows === 0) return
    const m = this.#options.metrics
    if (m !== undefined) {
      for (const f of report.features) m.featurePsi.set({ feature: f.name }, f.psi)
      m.scorePsi.set(report.score)
      m.drifted.set(report.drifted.length)
      m.modelVersion.set(report.modelVersion)
    }
    const alerted = report.drifted.join(',')
    if (alerted !== this.#driftAlerted) {
      this.#driftAlerted = alerted
      if (alerted !== '') this.#logger.warn({ model: report.modelVersion, drifted: report.drifted, threshold: report.threshold, rows: report.rows }, 'drift above the alert threshold')
      else this.#logger.info({ model: report.modelVersion }, 'drift back under the alert threshold')
    }
    this.#options.onDrift?.(report)
  }
}

/**
 * Takes the pending events out of `states` (to publish again) and makes each of those states
 * read as if its event was announced: the replay compares with what the topic already says.
 */
function settlePending (states: ReadonlyArray<StoredState | null>): ChurnRiskEvent[] {
  const replayed: ChurnRiskEvent[] = []
  for (const state of states) {
    const pending = state?.pending
    if (state === null || state === undefined || pending === null || pending === undefined) continue
    replayed.push(pending)
    state.tier = pending.tier
    state.emittedProbability = pending.probability
    state.pending = null
  }
  return replayed
}
