#!/usr/bin/env node
/**
 * `npm run bench:score [-- --quick] [-- --rate 10000 --seconds 60 --subscribers 100000]`: the
 * scoring benchmark, on the running local stack, in one run:
 *  (a) the chain: live traffic at a steady rate (10k events/s for 60 s; `--quick`: 2k/s for 8 s)
 *      through ingest, the feature changelog and the scorer. Printed: each component's rate; the
 *      share of the run ingest spent landing and the scorer in batches; the machine's CPU and each
 *      role's event-loop utilization while traffic ran; the lag of the ingest and scorer groups
 *      (sampled every second); how long each took to drain once traffic stopped; and the latency
 *      from event production to the churn-risk event as an independent consumer receives it
 *      (p50, p95, p99), split into its ingest, scorer and delivery legs;
 *  (b) the scorer alone: a changelog preloaded with feature changes (200k; quick 20k), consumed
 *      from start to caught up by a fresh group: its capacity in feature updates per second;
 *  (c) the compiled forest: `predictBatch` rows per second over the training matrix.
 * Goals (the issue's): p99 latency at most 1 s, and the scorer never the bottleneck of the chain
 * (its capacity above the changelog rate the chain fed it, its lag under a second of changelog).
 *
 * The producer, ingest and the scorer each run on a worker thread of this process
 * (`score-roles.ts`), as they run in pods of their own in production: a role's synchronous work
 * then delays no other role's callbacks, and the traffic source is not part of the chain it
 * measures. The main thread only reads the changelog and churn-risk topics and samples lag. On a
 * small machine they all share its cores with the stack: the CPU line says how much was left.
 * Latency uses one clock: live events carry the wall clock as event time, the changelog and
 * churn-risk records carry their producers' send time (Kafka CreateTime), the reader its receive
 * time. A figure, not a test: the test suite runs `--quick` and checks only that it completes.
 */
import { randomUUID } from 'node:crypto'
import { availableParallelism, cpus, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import type { Admin, Kafka } from 'kafkajs'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import type { Config } from '../config/index.ts'
import { routeProcessWarnings } from '../core/warnings.ts'
import { DAY_MS, DAYS_SINCE_LAST_ACTIVITY } from '../lakehouse/features.ts'
import { AvroCodec, avroType, encodeFramed, latestSchema } from '../schemas/index.ts'
import { registerDerivedSchemas } from '../schemas/register.ts'
import { createSchemaRegistry } from '../schemas/registry.ts'
import type { ChurnRiskEvent, FeatureChange } from '../schemas/types.generated.ts'
import { runScorer } from '../scoring/scorer-role.ts'
import type { ScorerRunSummary } from '../scoring/scorer-role.ts'
import type { IngestRunSummary } from '../streams/ingest-role.ts'
import { createKafka } from '../streams/kafka.ts'
import { CachedKeyPartitioner } from '../streams/partitioner.ts'
import type { ProduceSummary } from '../streams/producer.ts'
import { ensureProjectTopics, sourceTopics } from '../streams/topics.ts'
import { fitWith } from '../training/engines.ts'
import { ChurnModel } from '../training/model.ts'
import { runTraining } from '../training/pipeline.ts'
import { ModelRegistry } from '../training/registry.ts'
import { lakehouseFeatureHash } from '../training/sets.ts'
import { syntheticTrainingSet } from '../training/synthetic.ts'
import type { TrainingSet } from '../training/train.ts'
import { isolatedConfig } from '../test/helpers/context.ts'
import { scorerProfile, startRole } from './score-roles.ts'
import type { Profile, Role } from './score-roles.ts'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rate: { type: 'string' },
    seconds: { type: 'string' },
    subscribers: { type: 'string' },
    changes: { type: 'string' },
    keep: { type: 'boolean', default: false }
  }
})
const quick = values.quick
const rate = Number(values.rate ?? (quick ? 2_000 : 10_000))
const seconds = Number(values.seconds ?? (quick ? 8 : 60))
// About six events per subscriber over the run: new subscribers keep appearing until its end,
// and the cohort window equals the run, so their decline (and their tiers) moves while it lasts.
const subscribers = Number(values.subscribers ?? Math.round(rate * seconds / 6))
const changes = Number(values.changes ?? (quick ? 20_000 : 200_000))
const forestRows = quick ? 20_000 : 200_000
const TRAINING_SUBSCRIBERS = 2000
const level = process.env.BENCH_LOG_LEVEL ?? 'warn'
// Logs go to stderr, so stdout carries the figures alone.
const logger = pino({ level }, pino.destination(2))
/**
 * For the benchmark's own Kafka clients (readers, lag sampling, preloading): kafkajs logs each
 * retried request on a topic just created at error level; a failure still surfaces as an error.
 */
const quiet = process.env.BENCH_LOG_LEVEL === undefined ? pino({ level: 'fatal' }) : logger

const int = (n: number): string => Math.round(n).toLocaleString('en-US')
const perSecond = (n: number, ms: number): string => `${int(n / (ms / 1000))} /s`
function line (label: string, value: string, note = ''): void {
  process.stdout.write(`${label.padEnd(62)} ${value.padStart(16)}  ${note}\n`)
}

/** Nearest-rank percentile of sorted values. */
function percentile (sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number
}

/** Trains a model on synthetic Gold as `churn train` would (200 trees, depth 6) and promotes it. */
async function trainAndPromote (config: Config): Promise<{ set: TrainingSet, model: ChurnModel, seconds: number }> {
  const started = performance.now()
  const set = await syntheticTrainingSet({ subscribers: TRAINING_SUBSCRIBERS, settings: config.lakehouse.settings })
  // No cross-validation: it measures the model, and this benchmark measures serving it.
  const outcome = await runTraining(set, {
    name: config.serving.modelName,
    registry: new ModelRegistry(config.model.dir),
    train: { engine: 'forest', fit: fitWith('forest'), forest: { nEstimators: 200, maxDepth: 6, seed: 42 }, folds: 0, tiers: config.risk },
    gate: config.model.gate,
    logger
  })
  if (!outcome.promoted) throw new Error(`the benchmark's model was not promoted: ${outcome.decision.reason}`)
  return { set, model: new ChurnModel(outcome.artifact), seconds: (performance.now() - started) / 1000 }
}

/** Training rows imputed as the scorer imputes them. */
function imputedRows (set: TrainingSet, model: ChurnModel, rows: number): Float64Array {
  const columns = set.schema.names.length
  const x = new Float64Array(rows * columns)
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * columns, (r + 1) * columns)
    row.set(set.x.subarray((r % set.rows) * columns, (r % set.rows + 1) * columns))
    model.vector(row, row)
  }
  return x
}

/** (c) */
function forestRate (set: TrainingSet, model: ChurnModel): number {
  const x = imputedRows(set, model, forestRows)
  const out = new Float64Array(forestRows)
  model.predictBatch(x, Math.min(forestRows, 5000), out)
  // Best of three: another process on the machine should not be what is measured.
  let best = Number.POSITIVE_INFINITY
  for (let i = 0; i < 3; i++) {
    const started = performance.now()
    model.predictBatch(x, forestRows, out)
    best = Math.min(best, performance.now() - started)
  }
  return forestRows / (best / 1000)
}

/**
 * The project's topics made, and answering offset requests, before anything uses them: on a topic
 * just created, ingest's seek to the lakehouse offsets on joining (and a first produce) can meet a
 * partition whose leader is not known yet.
 */
async function topicsReady (kafka: Kafka, admin: Admin, config: Config): Promise<void> {
  await ensureProjectTopics(kafka, config.topics)
  for (let attempt = 0; ; attempt++) {
    try {
      for (const topic of [...sourceTopics(config.topics), config.topics.features, config.topics.churnRisk]) await admin.fetchTopicOffsets(topic)
      return
    } catch (error) {
      if (attempt >= 50) throw error
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  }
}

/** Busy share of every core since `since` (or the raw counters, to start from). */
function machineCpu (): { busy: number, total: number }
function machineCpu (since: { busy: number, total: number }): number
function machineCpu (since?: { busy: number, total: number }): { busy: number, total: number } | number {
  let busy = 0
  let total = 0
  for (const { times } of cpus()) {
    busy += times.user + times.nice + times.sys + times.irq
    total += times.user + times.nice + times.sys + times.irq + times.idle
  }
  return since === undefined ? { busy, total } : (busy - since.busy) / Math.max(1, total - since.total)
}

/** Sum over partitions of high watermark minus the group's committed offset (the low one when none). */
async function groupLag (admin: Admin, groupId: string, topics: readonly string[]): Promise<number> {
  let lag = 0
  for (const topic of topics) {
    const high = await admin.fetchTopicOffsets(topic)
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] })
    for (const p of high) {
      const c = Number(committed?.partitions.find(x => x.partition === p.partition)?.offset ?? '-1')
      lag += Math.max(0, Number(p.high) - (c < 0 ? Number(p.low) : c))
    }
  }
  return lag
}

async function topicSize (admin: Admin, topic: string): Promise<number> {
  return (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0)
}

/** A fresh consumer group reading `topic` from the start, joined before this resolves. */
async function reader (kafka: Kafka, topic: string, onBatch: (messages: ReadonlyArray<{ key: Buffer | null, value: Buffer | null, timestamp: string }>, receivedAt: number) => Promise<void>): Promise<() => Promise<void>> {
  const consumer = kafka.consumer({ groupId: `bench-read-${randomUUID()}`, maxWaitTimeInMs: 100 })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  // run() resolves once the member has joined and synced, so nothing produced after is missed.
  await consumer.run({ eachBatch: async ({ batch }) => { await onBatch(batch.messages, Date.now()) } })
  return async () => { await consumer.disconnect() }
}

interface Legs { total: number[], ingest: number[], scorer: number[], delivery: number[] }

/** (a) */
async function chain (config: Config, env: Record<string, string | undefined>): Promise<{ legs: Legs, events: number, firstScores: number, ok: boolean, changelogRate: number, maxScorerLagSeconds: number }> {
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'bench-score-chain', logger: quiet })
  const admin = kafka.admin()
  await admin.connect()
  const codec = new AvroCodec({ registryUrl: config.registry.url })
  const riskType = avroType((await latestSchema('churn-risk')).schema)
  // Only the key fields of a changelog record: the reader resolves the rest away unread.
  const changeKey = avroType({ type: 'record', name: 'FeatureChange', namespace: 'dev.churnscorer.features', fields: [{ name: 'subscriberId', type: 'string' }, { name: 'version', type: 'long' }] })
  const published = new Map<string, number>()
  let changelogRecords = 0
  let lastChangelogAt = 0
  const legs: Legs = { total: [], ingest: [], scorer: [], delivery: [] }
  let firstScores = 0
  const roles: Role[] = []
  const stops: Array<() => Promise<void>> = []
  try {
    await topicsReady(kafka, admin, config)
    const ingest = startRole({ role: 'ingest', env, level })
    const scorer = startRole({ role: 'score', env, level })
    roles.push(ingest, scorer)
    await scorer.started
    stops.push(await reader(kafka, config.topics.features, async messages => {
      await codec.loadWriters(messages.map(m => (m.value as Buffer).readInt32BE(1)))
      for (const m of messages) {
        const { subscriberId, version } = codec.decode<{ subscriberId: string, version: number }>(m.value, changeKey).value
        published.set(`${subscriberId}/${version}`, Number(m.timestamp))
        lastChangelogAt = Math.max(lastChangelogAt, Number(m.timestamp))
      }
      changelogRecords += messages.length
    }))
    stops.push(await reader(kafka, config.topics.churnRisk, async (messages, receivedAt) => {
      await codec.loadWriters(messages.map(m => (m.value as Buffer).readInt32BE(1)))
      for (const m of messages) {
        const event = codec.decode<ChurnRiskEvent>(m.value, riskType).value
        const sent = Number(m.timestamp)
        const change = published.get(`${event.subscriberId}/${event.featureVersion}`)
        legs.total.push(receivedAt - event.featureTime)
        legs.delivery.push(receivedAt - sent)
        if (change !== undefined) {
          legs.ingest.push(change - event.featureTime)
          legs.scorer.push(sent - change)
        }
        if (event.previousTier === null) firstScores++
      }
    }))
    for (;;) {
      const [group] = (await admin.describeGroups([config.ingest.groupId])).groups
      if (group?.state === 'Stable' && group.members.length > 0) break
      await new Promise(resolve => setTimeout(resolve, 100))
    }

    const sources = sourceTopics(config.topics)
    const producer = startRole({ role: 'produce', env, level, rate, durationMs: seconds * 1000, subscribers, horizonMs: seconds * 1000 })
    roles.push(producer)
    const trafficStart = Date.now()
    const cpuStart = machineCpu()
    const eluStart = { main: performance.eventLoopUtilization(), ingest: ingest.elu(), scorer: scorer.elu(), producer: producer.elu() }
    const lags: Array<{ at: number, ingest: number, scorer: number }> = []
    let producing = true
    const sampling = (async () => {
      while (producing) {
        const at = Date.now()
        lags.push({ at, ingest: await groupLag(admin, config.ingest.groupId, sources), scorer: await groupLag(admin, config.scorer.groupId, [config.topics.features]) })
        await new Promise(resolve => setTimeout(resolve, Math.max(0, 1000 - (Date.now() - at))))
      }
    })()
    const produced = await producer.done as ProduceSummary
    const trafficEnd = Date.now()
    const cpuBusy = machineCpu(cpuStart)
    const busy = {
      producer: producer.elu(eluStart.producer).utilization,
      ingest: ingest.elu(eluStart.ingest).utilization,
      scorer: scorer.elu(eluStart.scorer).utilization,
      main: performance.eventLoopUtilization(eluStart.main).utilization
    }
    producing = false
    await sampling

    // Drained: both groups without lag, the changelog quiet for a second, every churn-risk event read.
    let ingestDrained: number | undefined
    let scorerDrained: number | undefined
    let quietSince = Date.now()
    let lastHigh = -1
    let drained = false
    while (Date.now() - trafficEnd < 60_000) {
      const now = Date.now()
      const ingestLag = await groupLag(admin, config.ingest.groupId, sources)
      const scorerLag = await groupLag(admin, config.scorer.groupId, [config.topics.features])
      const high = await topicSize(admin, config.topics.features)
      if (high !== lastHigh) { lastHigh = high; quietSince = now }
      if (ingestLag === 0) ingestDrained ??= now
      if (ingestLag === 0 && scorerLag === 0) scorerDrained ??= now
      else scorerDrained = undefined
      if (ingestLag === 0 && scorerLag === 0 && now - quietSince >= 1000 && legs.total.length >= await topicSize(admin, config.topics.churnRisk)) { drained = true; break }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    ingest.stop()
    scorer.stop()
    const ingested = await ingest.done as IngestRunSummary
    const scored = await scorer.done as ScorerRunSummary

    const span = (at: number): number => Math.max(1, at - trafficStart)
    const maxOf = (key: 'ingest' | 'scorer'): number => Math.max(0, ...lags.map(l => l[key]))
    const changelogRate = changelogRecords / (span(lastChangelogAt) / 1000)
    const maxScorerLagSeconds = maxOf('scorer') / changelogRate
    process.stdout.write(`(a) the chain: ${int(rate)} events/s for ${seconds} s, ${int(subscribers)} subscribers (cohort window ${seconds} s); rates from the start of traffic to each one's last record\n`)
    const sourceEvents = produced.sent - produced.byStream.crm
    line('    produced: billing, network and device events', perSecond(sourceEvents, produced.ms), `${int(sourceEvents)} in ${(produced.ms / 1000).toFixed(1)} s, and ${int(produced.byStream.crm)} CRM outcomes at the window's end`)
    line('    ingest landed in Gold (Bronze, Silver, Gold, offsets)', perSecond(ingest.last.count, span(ingest.last.at)), `${int(ingested.messages)} in ${ingested.batches} micro-batches, ${ingested.quarantined} quarantined`)
    line('    feature changelog records published', `${int(changelogRate)} /s`, `${int(changelogRecords)}`)
    line('    scorer feature updates consumed', perSecond(scorer.last.count, span(scorer.last.at)), `${int(scored.records)}: ${int(scored.scored)} scored, ${int(scored.older)} superseded; ${int(scored.events.low + scored.events.medium + scored.events.high)} events, ${int(scored.jobs.added)} jobs`)
    const window = Date.now() - trafficStart
    const ms = (n: number): string => `${n.toFixed(0)} ms`
    const ip = ingest.profile
    const perBatch = (n: number): number => n / Math.max(1, ip.batches)
    line('    ingest busy landing micro-batches (share of the run)', `${(100 * ip.busyMs / window).toFixed(0)} %`, `per micro-batch: ${int(perBatch(ingested.messages))} events, ${Object.entries(ip.phases).map(([phase, v]) => `${phase} ${ms(perBatch(v))}`).join(', ')}`)
    const sp = scorer.profile
    line('    scorer busy in batches (share of the run)', `${(100 * sp.busyMs / window).toFixed(0)} %`, `${int(sp.batches)} batches, ${int(scored.records / Math.max(1, sp.batches))} records and ${ms(sp.busyMs / Math.max(1, sp.batches))} each (fetch to commit)`)
    const pct = (v: number): string => `${(100 * v).toFixed(0)} %`
    line('    CPU while traffic ran: the machine, all cores', pct(cpuBusy), `JS threads busy: producer ${pct(busy.producer)}, ingest ${pct(busy.ingest)}, scorer ${pct(busy.scorer)}, readers ${pct(busy.main)}`)
    line('    ingest group lag, max over 1 s samples (source events)', int(maxOf('ingest')), `${(maxOf('ingest') / rate).toFixed(2)} s of traffic`)
    line('    scorer group lag, max over 1 s samples (changelog records)', int(maxOf('scorer')), `${maxScorerLagSeconds.toFixed(2)} s of changelog; ${lags.length} samples`)
    const every5 = (key: 'ingest' | 'scorer'): string => lags.filter((_, i) => i % 5 === 4).map(l => `${(l[key] / 1000).toFixed(1)}k`).join(' ')
    process.stdout.write(`    lag every 5 s, ingest (events):     ${every5('ingest')}\n    lag every 5 s, scorer (changelog):  ${every5('scorer')}\n`)
    line('    drained after traffic stopped: ingest / scorer', ingestDrained === undefined || scorerDrained === undefined ? 'NO (60 s)' : `${((ingestDrained - trafficEnd) / 1000).toFixed(1)} s / ${((scorerDrained - trafficEnd) / 1000).toFixed(1)} s`)
    return { legs, events: legs.total.length, firstScores, ok: drained, changelogRate, maxScorerLagSeconds }
  } finally {
    for (const stop of stops) await stop().catch(() => {})
    await admin.disconnect()
    for (const role of roles) {
      role.stop()
      await Promise.race([role.done.catch(() => {}), new Promise(resolve => setTimeout(resolve, 10_000))])
      await role.terminate()
    }
  }
}

/**
 * (b) The scorer alone on a preloaded changelog, in two passes of `changes / 2` records: first
 * scores of subscribers the store does not know, then a second version of each (another training
 * row, so some change tier). Apart, so no fetched batch holds both versions of one subscriber and
 * drops the older unscored. Each pass is timed from the group's first fetch to its last batch.
 */
async function scorerAlone (modelDir: string, set: TrainingSet): Promise<{ rate: number, passes: Array<{ summary: ScorerRunSummary, consumeMs: number, totalMs: number, profile: Profile }> }> {
  const { config, cleanup } = await isolatedConfig({ MODEL_DIR: modelDir }, 'bench')
  try {
    const derived = await registerDerivedSchemas({ registry: createSchemaRegistry({ url: config.registry.url }), url: config.registry.url, topics: config.topics })
    const changelogId = derived.find(d => d.name === 'feature-changelog')?.latestId ?? -1
    const type = avroType((await latestSchema('feature-changelog')).schema)
    const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'bench-score-changes', logger: quiet })
    const admin = kafka.admin()
    await admin.connect()
    await topicsReady(kafka, admin, config).finally(async () => { await admin.disconnect() })
    const columns = set.schema.names.length
    const days = set.schema.names.indexOf(DAYS_SINCE_LAST_ACTIVITY)
    const hash = lakehouseFeatureHash()
    const now = Date.now()
    // Named features of each training row, as ingest publishes them (days since last activity is
    // not in Gold: it becomes the feature time, and the scorer computes it back).
    const rows = Array.from({ length: set.rows }, (_, r) => {
      const features: Record<string, number | null> = {}
      for (const [c, name] of set.schema.names.entries()) {
        const v = set.x[r * columns + c] as number
        if (c !== days) features[name] = Number.isNaN(v) ? null : v
      }
      const idle = days < 0 ? Number.NaN : set.x[r * columns + days] as number
      return { features: features as unknown as FeatureChange['features'], featureTime: now - (Number.isNaN(idle) ? 0 : idle) * DAY_MS }
    })
    const people = Math.ceil(changes / 2)
    const passes: Array<{ summary: ScorerRunSummary, consumeMs: number, totalMs: number, profile: Profile }> = []
    for (const version of [1, 2]) {
      // Idempotent: a retried request must not add records the pass would then count.
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: CachedKeyPartitioner })
      await producer.connect()
      for (let start = 0; start < people; start += 2000) {
        const messages: Array<{ key: string, value: Buffer }> = []
        for (let i = start; i < Math.min(people, start + 2000); i++) {
          const row = rows[(version === 1 ? i : i * 7 + 13) % rows.length] as (typeof rows)[number]
          const subscriberId = `SUB-B${String(i).padStart(7, '0')}`
          messages.push({ key: subscriberId, value: encodeFramed(changelogId, type, { subscriberId, version, featureTime: row.featureTime, firstEventTime: row.featureTime - 20 * DAY_MS, updatedAt: now, features: row.features, featureHash: hash } satisfies FeatureChange) })
        }
        await producer.send({ topic: config.topics.features, acks: -1, messages })
      }
      await producer.disconnect()
      const started = performance.now()
      let consuming = started
      let last = started
      const metricsRegistry = new Registry()
      const summary = await runScorer({ config, logger, untilCaughtUp: true, metricsRegistry, onStarted: () => { consuming = performance.now() }, onBatch: () => { last = performance.now() } })
      if (summary.records !== people) throw new Error(`pass ${version}: the scorer consumed ${summary.records} of ${people} feature changes`)
      passes.push({ summary, consumeMs: last - consuming, totalMs: performance.now() - started, profile: await scorerProfile(metricsRegistry) })
    }
    return { rate: (2 * people) / (passes.reduce((sum, p) => sum + p.consumeMs, 0) / 1000), passes }
  } finally {
    if (!values.keep) await cleanup()
  }
}

async function main (): Promise<void> {
  routeProcessWarnings(logger)
  // The scorer's producer is created without a partitioner, so kafkajs warns at every start that
  // its default changed in 2.0; the churn-risk topic's placement does not matter here.
  process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1'
  const { config, env, cleanup } = await isolatedConfig({}, 'bench')
  const goals: string[] = []
  try {
    process.stdout.write(`score benchmark${quick ? ' (quick)' : ''}: ${availableParallelism()} cores; local stack at ${config.kafka.brokers.map(b => `${b.host}:${b.port}`).join(',')}; producer, ingest and scorer on worker threads; load average ${loadavg()[0]?.toFixed(2)} at start\n`)
    const trained = await trainAndPromote(config)
    process.stdout.write(`model: 200 trees, depth 6, trained on synthetic Gold of ${int(TRAINING_SUBSCRIBERS)} subscribers (${int(trained.set.rows)} rows x ${trained.set.schema.names.length}) in ${trained.seconds.toFixed(1)} s, promoted\n\n`)

    const forest = forestRate(trained.set, trained.model)
    const alone = await scorerAlone(config.model.dir, trained.set)
    const a = await chain(config, env)
    const legs = Object.fromEntries(Object.entries(a.legs).map(([k, v]) => [k, Float64Array.from(v as number[]).sort()])) as unknown as Record<keyof Legs, Float64Array>
    process.stdout.write(`\n    latency, event production -> churn-risk event (ms): ${int(a.events)} events, ${int(a.firstScores)} first announcements\n`)
    process.stdout.write(`    ${''.padEnd(58)} ${'p50'.padStart(7)} ${'p95'.padStart(7)} ${'p99'.padStart(7)} ${'max'.padStart(7)}\n`)
    const legLine = (label: string, values: Float64Array): void => {
      process.stdout.write(`    ${label.padEnd(58)} ${[50, 95, 99, 100].map(p => int(percentile(values, p)).padStart(7)).join(' ')}\n`)
    }
    legLine('end to end: event time -> received by a consumer', legs.total)
    legLine('  ingest: event time -> changelog record sent', legs.ingest)
    legLine('  scorer: changelog record sent -> churn-risk event sent', legs.scorer)
    legLine('  delivery: churn-risk event sent -> received', legs.delivery)

    process.stdout.write('\n')
    const events = (summary: ScorerRunSummary): number => summary.events.low + summary.events.medium + summary.events.high
    line(`(b) scorer alone: ${int(changes)} feature changes, fresh group`, `${int(alone.rate)} /s`, 'consuming, both passes')
    for (const [i, pass] of alone.passes.entries()) {
      line(`    pass ${i + 1}: ${i === 0 ? 'first scores (store empty)' : 'second versions (store holds the first)'}`, perSecond(pass.summary.records, pass.consumeMs), `${(pass.consumeMs / 1000).toFixed(1)} s (${(pass.totalMs / 1000).toFixed(1)} s with start-up), ${int(pass.summary.scored)} scored, ${int(events(pass.summary))} events; ${int(pass.profile.batches)} batches of ${int(pass.summary.records / Math.max(1, pass.profile.batches))}, ${(pass.profile.busyMs / Math.max(1, pass.profile.batches)).toFixed(0)} ms each`)
    }
    line(`(c) compiled forest predictBatch, ${int(forestRows)} rows, one thread`, `${int(forest)} rows/s`, `${(100 * alone.rate / forest).toFixed(1)}% of the scorer's time at its capacity`)

    const p99 = percentile(legs.total, 99)
    if (a.events === 0) process.exitCode = 1
    goals.push(`p99 latency event -> churn-risk event ${int(p99)} ms (goal <= 1000 ms)  ${p99 <= 1000 ? 'met' : 'NOT MET'}`)
    const headroom = alone.rate / a.changelogRate
    const notBottleneck = headroom >= 1 && a.maxScorerLagSeconds <= 1 && a.ok
    goals.push(`scorer never the bottleneck: capacity ${headroom.toFixed(1)}x the chain's changelog rate, max lag ${a.maxScorerLagSeconds.toFixed(2)} s of changelog, drained: ${a.ok ? 'yes' : 'NO'} (goal >= 1x, <= 1 s, yes)  ${notBottleneck ? 'met' : 'NOT MET'}`)
    process.stdout.write(`\nload average ${loadavg()[0]?.toFixed(2)} at the end (1 min; ${availableParallelism()} cores, shared with the stack and whatever else runs)\n`)
    process.stdout.write(`\ngoals\n${goals.map(g => `  ${g}`).join('\n')}\n`)
  } finally {
    if (!values.keep) await cleanup()
  }
}

await main()
