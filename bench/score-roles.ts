/**
 * The scoring benchmark's roles on worker threads: the traffic producer, ingest and the scorer
 * each run in a thread of their own (as in pods of their own in production), so one role's
 * synchronous work (Avro encoding and decoding, scoring) delays no other role's callbacks. The
 * main thread starts them with {@link startRole}, which reports progress, the summary, a profile
 * of where the role's time went, and its event-loop utilization.
 */
import type { EventLoopUtilization } from 'node:perf_hooks'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import type { Histogram } from 'prom-client'
import { loadConfig } from '../config/index.ts'
import { routeProcessWarnings } from '../core/warnings.ts'
import { runScorer } from '../scoring/scorer-role.ts'
import type { ScorerRunSummary } from '../scoring/scorer-role.ts'
import { runIngest } from '../streams/ingest-role.ts'
import type { IngestRunSummary } from '../streams/ingest-role.ts'
import { produceTraffic } from '../streams/producer.ts'
import type { ProduceSummary } from '../streams/producer.ts'

/** What a role's worker thread is asked to run. */
export type RoleData =
  | { role: 'ingest' | 'score', env: Record<string, string | undefined>, level: string }
  | { role: 'produce', env: Record<string, string | undefined>, level: string, rate: number, durationMs: number, subscribers: number, horizonMs: number }
type RoleSummary = ProduceSummary | IngestRunSummary | ScorerRunSummary
/** What a role's worker reports: `count` is events sent (producer), landed (ingest) or consumed (scorer). */
type RoleMessage =
  | { type: 'started' }
  | { type: 'progress', at: number, count: number }
  | { type: 'done', summary: RoleSummary, profile: Profile }
  | { type: 'failed', error: string }

/** Where a role's time went: its batches and the milliseconds spent in them, by phase where known. */
export interface Profile { batches: number, busyMs: number, phases: Record<string, number> }

/** The scorer's own batch histogram (fetch to committed offsets) read back as a profile. */
export async function scorerProfile (registry: Registry): Promise<Profile> {
  const metric = await (registry.getSingleMetric('churn_scorer_batch_seconds') as Histogram | undefined)?.get()
  const value = (name: string): number => metric?.values.find(v => v.metricName === name)?.value ?? 0
  return { batches: value('churn_scorer_batch_seconds_count'), busyMs: 1000 * value('churn_scorer_batch_seconds_sum'), phases: {} }
}

async function runRole (data: RoleData): Promise<void> {
  const port = parentPort as NonNullable<typeof parentPort>
  const post = (message: RoleMessage): void => { port.postMessage(message) }
  const config = loadConfig(data.env, { cwd: process.cwd() })
  const logger = pino({ level: data.level }, pino.destination(2)).child({ role: data.role })
  routeProcessWarnings(logger)
  const abort = new AbortController()
  port.on('message', (message: unknown) => { if (message === 'stop') abort.abort() })
  const signal = abort.signal
  const progress = (count: number): void => { post({ type: 'progress', at: Date.now(), count }) }
  const profile: Profile = { batches: 0, busyMs: 0, phases: {} }
  try {
    let summary: RoleSummary
    switch (data.role) {
      case 'produce':
        // No late events: one would carry an event time hours back (clamped to the cohort's start),
        // a latency the chain did not cause.
        summary = await produceTraffic({ config, logger, subscribers: data.subscribers, seed: 20_261_122, rate: data.rate, durationMs: data.durationMs, horizonMs: data.horizonMs, dirty: { lateFraction: 0 }, signal, onProgress: p => { progress(p.sent) } })
        break
      case 'ingest':
        summary = await runIngest({
          config,
          logger,
          signal,
          onBatch: (result, stats) => {
            profile.batches++
            for (const [phase, ms] of Object.entries(result.ms)) {
              profile.phases[phase] = (profile.phases[phase] ?? 0) + ms
              profile.busyMs += ms
            }
            progress(stats.messages)
          }
        })
        break
      case 'score': {
        const metricsRegistry = new Registry()
        summary = await runScorer({ config, logger, signal, metricsRegistry, onStarted: () => { post({ type: 'started' }) }, onBatch: stats => { progress(stats.records) } })
        Object.assign(profile, await scorerProfile(metricsRegistry))
        break
      }
    }
    post({ type: 'done', summary, profile })
  } catch (error) {
    post({ type: 'failed', error: error instanceof Error ? (error.stack ?? error.message) : String(error) })
  }
}

export interface Role {
  started: Promise<void>
  done: Promise<RoleSummary>
  profile: Profile
  /** The latest progress report. */
  last: { at: number, count: number }
  stop: () => void
  terminate: () => Promise<void>
  /** The worker's event-loop utilization (since `since`): how busy its JavaScript thread was. */
  elu: (since?: EventLoopUtilization) => EventLoopUtilization
}

/** Starts `data.role` on a worker thread of its own. */
export function startRole (data: RoleData): Role {
  const worker = new Worker(new URL(import.meta.url), { workerData: data })
  const last = { at: 0, count: 0 }
  const profile: Profile = { batches: 0, busyMs: 0, phases: {} }
  let markStarted: () => void = () => {}
  let failStart: (error: Error) => void = () => {}
  const started = new Promise<void>((resolve, reject) => { markStarted = resolve; failStart = reject })
  const done = new Promise<RoleSummary>((resolve, reject) => {
    const fail = (error: Error): void => { failStart(error); reject(error) }
    worker.on('message', (message: RoleMessage) => {
      if (message.type === 'started') markStarted()
      else if (message.type === 'progress') Object.assign(last, { at: message.at, count: message.count })
      else if (message.type === 'done') {
        Object.assign(profile, message.profile)
        resolve(message.summary)
      }
      else fail(new Error(`${data.role} failed: ${message.error}`))
    })
    worker.on('error', fail)
    worker.on('exit', code => { fail(new Error(`the ${data.role} worker exited (${code}) before it reported`)) })
  })
  done.catch(() => {})
  started.catch(() => {})
  return { started, done, last, profile, stop: () => { worker.postMessage('stop') }, terminate: async () => { await worker.terminate() }, elu: since => worker.performance.eventLoopUtilization(since) }
}

if (!isMainThread) await runRole(workerData as RoleData)
