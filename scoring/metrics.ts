/**
 * Prometheus metrics of the scoring roles, registered on the registry a process passes in (one
 * per process, served by the HTTP role's `/metrics`).
 */
import { Counter, Gauge, Histogram } from 'prom-client'
import type { Registry } from 'prom-client'

export class ScorerMetrics {
  readonly updates: Counter<'result'>
  readonly riskEvents: Counter<'tier'>
  readonly jobs: Counter<'channel' | 'result'>
  readonly batchSeconds: Histogram
  readonly modelVersion: Gauge
  readonly featurePsi: Gauge<'feature'>
  readonly scorePsi: Gauge
  readonly drifted: Gauge
  readonly ready: Gauge

  constructor (registry: Registry) {
    const registers = [registry]
    this.updates = new Counter({ name: 'churn_scorer_updates_total', help: 'Feature changelog records by outcome: scored, older (a version already held), hash_mismatch (features of another definition), invalid (bad subscriber id), dead_lettered (undecodable).', labelNames: ['result'], registers })
    this.riskEvents = new Counter({ name: 'churn_risk_events_total', help: 'Churn-risk events emitted, by tier.', labelNames: ['tier'], registers })
    this.jobs = new Counter({ name: 'churn_campaign_jobs_total', help: 'Campaign jobs the scorer asked for, by channel and result (added, deduplicated).', labelNames: ['channel', 'result'], registers })
    this.batchSeconds = new Histogram({ name: 'churn_scorer_batch_seconds', help: 'Time to score one changelog batch, from fetch to committed offsets.', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers })
    this.modelVersion = new Gauge({ name: 'churn_scorer_model_version', help: 'Version of the model the scorer serves (0: none).', registers })
    this.featurePsi = new Gauge({ name: 'churn_feature_psi', help: 'Population stability index of each feature over the drift window against the training set.', labelNames: ['feature'], registers })
    this.scorePsi = new Gauge({ name: 'churn_score_psi', help: 'Population stability index of the score over the drift window against the training set.', registers })
    this.drifted = new Gauge({ name: 'churn_drift_alerts', help: 'Features (and the score) whose PSI is above DRIFT_PSI_ALERT.', registers })
    this.ready = new Gauge({ name: 'churn_scorer_ready', help: '1 when the scorer is consuming with a model and Redis, else 0.', registers })
  }
}

/** What `registerWorkerMetrics` reads: per channel, the `CampaignWorkers.counters` shape. */
export type WorkerCounterSource = () => Readonly<Record<string, Readonly<{ sent: number, skippedOptedOut: number, failedTransient: number, failedPermanent: number }>>> | undefined

/**
 * The campaign workers' counters on `registry`, read at scrape time (undefined: not started yet,
 * no series): `churn_campaign_deliveries_total{channel,result}` with result sent,
 * skipped_opted_out, failed_permanent, and `churn_campaign_attempts_failed_total{channel}` for the
 * transient failures that are retried. Counts since this process started its workers.
 */
export function registerWorkerMetrics (registry: Registry, counters: WorkerCounterSource): void {
  const registers = [registry]
  for (const name of ['churn_campaign_deliveries_total', 'churn_campaign_attempts_failed_total', 'churn_campaign_workers_running']) registry.removeSingleMetric(name)
  new Counter({
    name: 'churn_campaign_deliveries_total',
    help: 'Campaign jobs the workers finished, by channel and result: sent, skipped_opted_out, failed_permanent.',
    labelNames: ['channel', 'result'],
    registers,
    collect () {
      this.reset()
      for (const [channel, c] of Object.entries(counters() ?? {})) {
        this.inc({ channel, result: 'sent' }, c.sent)
        this.inc({ channel, result: 'skipped_opted_out' }, c.skippedOptedOut)
        this.inc({ channel, result: 'failed_permanent' }, c.failedPermanent)
      }
    }
  })
  new Counter({
    name: 'churn_campaign_attempts_failed_total',
    help: 'Delivery attempts that failed transiently (retried with backoff), by channel.',
    labelNames: ['channel'],
    registers,
    collect () {
      this.reset()
      for (const [channel, c] of Object.entries(counters() ?? {})) this.inc({ channel }, c.failedTransient)
    }
  })
  new Gauge({
    name: 'churn_campaign_workers_running',
    help: '1 once this process\'s campaign workers run, else 0.',
    registers,
    collect () { this.set(counters() === undefined ? 0 : 1) }
  })
}
