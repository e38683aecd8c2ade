/**
 * Logs a training run to an MLflow tracking server through its REST API: the experiment (found
 * or created by name), the run, its params, metrics and tags in batches within MLflow's limits,
 * each artifact through the server's proxied artifact API, then the run's end state.
 *
 * The REST API is the contract, not MLflow's Python client: the trainer stays in Node, and any
 * MLflow 2.x/3.x server started with `--serve-artifacts` (the local stack's is) accepts it.
 * A run is refused before the first request when MLflow would refuse part of it (a non-finite
 * metric, a value over its limits, a missing artifact file), so a bad run never leaves a
 * half-logged one behind; a failure after the run exists marks it FAILED.
 */
import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { describeError } from '../core/errors.ts'
import { TrainingError } from './errors.ts'

export interface MlflowRun {
  experimentName: string
  runName: string
  params: Record<string, string | number | boolean>
  metrics: Record<string, number>
  tags?: Record<string, string>
  /** Files to upload; `name` is the path inside the run's artifacts (default: the file's name). */
  artifacts?: Array<{ file: string, name?: string }>
}

export interface MlflowClientOptions {
  /** The tracking server's base URL (`MLFLOW_TRACKING_URI`); user:password in it becomes basic auth. */
  trackingUri: string
  /** Deadline of each request, an artifact upload included. @defaultValue 10000 */
  timeoutMs?: number
  /** @defaultValue the global `fetch` */
  fetch?: typeof fetch
}

export interface LoggedRun { experimentId: string, runId: string, url: string }

/** MLflow's own limits (`mlflow/utils/validation.py`); the server refuses a batch past any. */
export const MLFLOW_LIMITS = {
  paramsPerBatch: 100,
  tagsPerBatch: 100,
  metricsPerBatch: 1000,
  entitiesPerBatch: 1000,
  /** The server refuses a log-batch body over 1 MB; this leaves room for the envelope. */
  batchBytes: 900_000,
  keyLength: 250,
  paramValueLength: 6000,
  tagValueLength: 8000,
  experimentNameLength: 500
} as const

interface KeyValue { key: string, value: string }
interface MetricValue { key: string, value: number, timestamp: number, step: number }
export interface LogBatch { params: KeyValue[], tags: KeyValue[], metrics: MetricValue[] }

function refuse (message: string, context: Record<string, unknown> = {}): TrainingError {
  return new TrainingError('CHURN_TRAIN_MLFLOW', message, { context })
}

/** Code points, as MLflow's Python limits count them. */
function codePoints (text: string): number {
  let count = 0
  for (const _ of text) count++
  return count
}

/** Throws, before any request, for what MLflow would refuse or what cannot be sent. */
export function checkRun (run: MlflowRun): void {
  const name = run.experimentName.trim()
  if (name === '' || codePoints(name) > MLFLOW_LIMITS.experimentNameLength) throw refuse(`An MLflow experiment name needs 1 to ${MLFLOW_LIMITS.experimentNameLength} characters; got ${JSON.stringify(run.experimentName.slice(0, 40))}.`)
  const checkKey = (kind: string, key: string): void => {
    if (key === '' || codePoints(key) > MLFLOW_LIMITS.keyLength) throw refuse(`MLflow ${kind} keys need 1 to ${MLFLOW_LIMITS.keyLength} characters; got ${JSON.stringify(key.slice(0, 40))}.`, { key })
  }
  for (const [key, value] of Object.entries(run.metrics)) {
    checkKey('metric', key)
    if (typeof value !== 'number' || !Number.isFinite(value)) throw refuse(`Metric ${key} is ${String(value)}; MLflow runs log finite numbers only, so the run was not logged.`, { key })
  }
  for (const [key, value] of Object.entries(run.params)) {
    checkKey('param', key)
    if (codePoints(String(value)) > MLFLOW_LIMITS.paramValueLength) throw refuse(`Param ${key} is ${codePoints(String(value))} characters long; MLflow keeps at most ${MLFLOW_LIMITS.paramValueLength}. Log it as an artifact instead.`, { key })
  }
  for (const [key, value] of Object.entries(run.tags ?? {})) {
    checkKey('tag', key)
    if (codePoints(value) > MLFLOW_LIMITS.tagValueLength) throw refuse(`Tag ${key} is ${codePoints(value)} characters long; MLflow keeps at most ${MLFLOW_LIMITS.tagValueLength}.`, { key })
  }
  for (const artifact of run.artifacts ?? []) artifactName(artifact)
}

/** The artifact's path inside the run: relative, `/`-separated, never climbing out. */
function artifactName (artifact: { file: string, name?: string }): string {
  const name = artifact.name ?? path.basename(artifact.file)
  const segments = name.split('/')
  if (name.startsWith('/') || name.includes('\\') || segments.some(s => s === '' || s === '.' || s === '..')) {
    throw refuse(`Artifact name ${JSON.stringify(name)} must be a relative path of plain segments (a/b.json).`, { artifact: name })
  }
  return name
}

/**
 * Splits params, tags and metrics into log-batch requests that each stay within every one of
 * MLflow's per-request limits (counts per kind, entities in all, body size).
 */
export function splitIntoBatches (run: Pick<MlflowRun, 'params' | 'metrics' | 'tags'>, timestamp: number): LogBatch[] {
  const batches: LogBatch[] = []
  let current: LogBatch = { params: [], tags: [], metrics: [] }
  let bytes = 0
  /** Closes the current batch first when `entity` would take it past a limit. */
  const room = (entity: KeyValue | MetricValue, ofKind: number, limit: number): void => {
    const size = Buffer.byteLength(JSON.stringify(entity)) + 1
    const entities = current.params.length + current.tags.length + current.metrics.length
    if (ofKind >= limit || entities >= MLFLOW_LIMITS.entitiesPerBatch || bytes + size > MLFLOW_LIMITS.batchBytes) {
      batches.push(current)
      current = { params: [], tags: [], metrics: [] }
      bytes = 0
    }
    bytes += size
  }
  for (const [key, value] of Object.entries(run.params)) {
    const param = { key, value: String(value) }
    room(param, current.params.length, MLFLOW_LIMITS.paramsPerBatch)
    current.params.push(param)
  }
  for (const [key, value] of Object.entries(run.tags ?? {})) {
    const tag = { key, value }
    room(tag, current.tags.length, MLFLOW_LIMITS.tagsPerBatch)
    current.tags.push(tag)
  }
  for (const [key, value] of Object.entries(run.metrics)) {
    const metric = { key, value, timestamp, step: 0 }
    room(metric, current.metrics.length, MLFLOW_LIMITS.metricsPerBatch)
    current.metrics.push(metric)
  }
  if (current.params.length + current.tags.length + current.metrics.length > 0) batches.push(current)
  return batches
}

/** The status and MLflow error code an error from this client carries, if any. */
export function mlflowFailure (error: unknown): { status: number | undefined, mlflowErrorCode: string | undefined } {
  const fields = (typeof error === 'object' && error !== null ? error : {}) as { status?: unknown, mlflowErrorCode?: unknown }
  return {
    status: typeof fields.status === 'number' ? fields.status : undefined,
    mlflowErrorCode: typeof fields.mlflowErrorCode === 'string' ? fields.mlflowErrorCode : undefined
  }
}

type Method = 'GET' | 'POST' | 'PUT'

export class MlflowClient {
  readonly #base: string
  readonly #authorization: string | undefined
  readonly #timeoutMs: number
  readonly #fetch: typeof fetch

  constructor (options: MlflowClientOptions) {
    let url: URL
    try {
      url = new URL(options.trackingUri)
    } catch {
      throw refuse(`MLflow tracking URI ${JSON.stringify(options.trackingUri)} is not a URL.`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw refuse(`MLflow's REST API is served over http(s); the tracking URI is ${url.protocol}.`)
    // fetch refuses URLs with credentials in them; MLflow's basic-auth app reads the header.
    this.#authorization = url.username === '' ? undefined : `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`
    url.username = ''
    url.password = ''
    this.#base = url.toString().replace(/\/+$/, '')
    this.#timeoutMs = options.timeoutMs ?? 10_000
    this.#fetch = options.fetch ?? globalThis.fetch
  }

  /** Logs one complete run and returns where it is; throws `CHURN_TRAIN_MLFLOW`. */
  async logRun (run: MlflowRun): Promise<LoggedRun> {
    checkRun(run)
    for (const artifact of run.artifacts ?? []) {
      const info = await stat(artifact.file).catch(() => undefined)
      if (info?.isFile() !== true) throw refuse(`Artifact ${artifact.file} is not a readable file; the run was not logged.`, { artifact: artifact.file })
    }
    const started = Date.now()
    const experimentId = await this.#experimentId(run.experimentName.trim())
    const created = await this.#call<{ run: { info: { run_id: string, artifact_uri: string } } }>('POST', '/api/2.0/mlflow/runs/create', { experiment_id: experimentId, run_name: run.runName, start_time: started })
    const { run_id: runId, artifact_uri: artifactUri } = created.run.info
    try {
      for (const batch of splitIntoBatches(run, started)) {
        await this.#call('POST', '/api/2.0/mlflow/runs/log-batch', { run_id: runId, ...batch })
      }
      for (const artifact of run.artifacts ?? []) {
        const target = `${artifactRoot(artifactUri)}/${artifactName(artifact)}`
        await this.#call('PUT', `/api/2.0/mlflow-artifacts/artifacts/${target.split('/').map(encodeURIComponent).join('/')}`, await readFile(artifact.file))
      }
      await this.#call('POST', '/api/2.0/mlflow/runs/update', { run_id: runId, status: 'FINISHED', end_time: Date.now() })
    } catch (error) {
      await this.#call('POST', '/api/2.0/mlflow/runs/update', { run_id: runId, status: 'FAILED', end_time: Date.now() }).catch(() => {})
      throw error
    }
    return { experimentId, runId, url: `${this.#base}/#/experiments/${experimentId}/runs/${runId}` }
  }

  /** The experiment's id, created when missing; a concurrent creator is not an error. */
  async #experimentId (name: string): Promise<string> {
    const existing = await this.#findExperiment(name)
    if (existing !== undefined) return existing
    try {
      return (await this.#call<{ experiment_id: string }>('POST', '/api/2.0/mlflow/experiments/create', { name })).experiment_id
    } catch (error) {
      if (mlflowFailure(error).mlflowErrorCode !== 'RESOURCE_ALREADY_EXISTS') throw error
      const raced = await this.#findExperiment(name)
      if (raced === undefined) throw error
      return raced
    }
  }

  async #findExperiment (name: string): Promise<string | undefined> {
    try {
      const { experiment } = await this.#call<{ experiment: { experiment_id: string, lifecycle_stage: string } }>('GET', `/api/2.0/mlflow/experiments/get-by-name?experiment_name=${encodeURIComponent(name)}`)
      if (experiment.lifecycle_stage === 'deleted') {
        throw refuse(`MLflow experiment ${JSON.stringify(name)} (id ${experiment.experiment_id}) is deleted, and a deleted experiment takes no runs; restore it or log under another name.`, { experimentId: experiment.experiment_id })
      }
      return experiment.experiment_id
    } catch (error) {
      if (mlflowFailure(error).mlflowErrorCode === 'RESOURCE_DOES_NOT_EXIST') return undefined
      throw error
    }
  }

  async #call<T = unknown> (method: Method, endpoint: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.#authorization !== undefined) headers.authorization = this.#authorization
    let payload: RequestInit['body']
    if (body instanceof Uint8Array) {
      headers['content-type'] = 'application/octet-stream'
      payload = body
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json'
      payload = JSON.stringify(body)
    }
    const where = `${method} ${endpoint.split('?')[0] ?? endpoint}`
    let response: Response
    let text: string
    try {
      response = await this.#fetch(`${this.#base}${endpoint}`, { method, headers, body: payload, signal: AbortSignal.timeout(this.#timeoutMs) })
      text = await response.text()
    } catch (error) {
      const reason = (error as Error).name === 'TimeoutError' ? `no answer within ${this.#timeoutMs} ms` : describeError((error as Error).cause ?? error)
      throw new TrainingError('CHURN_TRAIN_MLFLOW', `MLflow at ${this.#base} did not answer ${where}: ${reason}`, { cause: error, retriable: true, context: { endpoint: where } })
    }
    if (!response.ok) {
      const answer = parseJson(text) as { error_code?: unknown, message?: unknown } | undefined
      const mlflowErrorCode = typeof answer?.error_code === 'string' ? answer.error_code : undefined
      const message = typeof answer?.message === 'string' ? answer.message : text.trim().slice(0, 300)
      throw new TrainingError('CHURN_TRAIN_MLFLOW', `MLflow answered ${where} with ${response.status}${mlflowErrorCode === undefined ? '' : ` ${mlflowErrorCode}`}: ${message}`, {
        retriable: response.status === 429 || response.status >= 500,
        context: { status: response.status, mlflowErrorCode, endpoint: where }
      })
    }
    return (parseJson(text) ?? {}) as T
  }
}

function parseJson (text: string): unknown {
  try {
    return text.trim() === '' ? undefined : JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * Where a run's artifacts live on the server's artifact proxy. With `--serve-artifacts` a run's
 * artifact URI is `mlflow-artifacts:/<experiment>/<run>/artifacts` (or with a host after `//`),
 * and the proxy serves that path under `/api/2.0/mlflow-artifacts/artifacts/`.
 */
function artifactRoot (artifactUri: string): string {
  if (!artifactUri.startsWith('mlflow-artifacts:')) {
    throw refuse(`The run's artifact location is ${artifactUri}, which the tracking server does not proxy; start it with --serve-artifacts and use an experiment created since (its artifact location must be mlflow-artifacts:/...).`, { artifactUri })
  }
  return decodeURIComponent(new URL(artifactUri).pathname).replace(/^\/+|\/+$/g, '')
}
