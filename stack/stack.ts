/**
 * `stack up`, `stack down`, `stack status`: the local stack's life cycle.
 *
 * `up` reuses any service already answering its health check on the configured address (the
 * developer's own Kafka, a stack started earlier), starts the rest on loopback, and waits for
 * each with a deadline. `down` stops only what `up` started, as its pid files record.
 */
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describeError } from '../core/errors.ts'
import { StackError } from './errors.ts'
import { tailFile } from './exec.ts'
import { isLoopback, portInUse } from './probes.ts'
import { isRunning, readPidFile, removePidFile, startDetached, stopProcess } from './process.ts'
import { defineServices, SERVICE_NAMES, stackPaths } from './services.ts'
import type { Service, ServiceName, StackContext } from './services.ts'
import type { Config } from '../config/index.ts'
import type { ToolEnvironment } from './tools.ts'

export interface StackOptions {
  config: Pick<Config, 'kafka' | 'registry' | 'redis' | 'stack'>
  tools: ToolEnvironment
  /** Which services; all of them by default. */
  services?: readonly ServiceName[]
}

export type UpOutcome =
  | { service: ServiceName, label: string, address: string, state: 'reused' | 'started', pid: number | undefined, detail: string, ms: number }
  | { service: ServiceName, label: string, address: string, state: 'failed', error: StackError, ms: number }

export interface StatusRow { service: ServiceName, label: string, address: string, state: 'up' | 'down' | 'starting' | 'not answering', owner: string, detail: string }

export interface DownOutcome { service: ServiceName, state: 'stopped' | 'killed' | 'already gone' | 'not ours', pid: number | undefined }

const PROBE_TIMEOUT_MS = 2000

function address (service: Service): string {
  const host = service.host.includes(':') ? `[${service.host}]` : service.host
  return `${host}:${service.ports[0] ?? ''}`
}

async function context (options: StackOptions): Promise<{ context: StackContext, services: Service[] }> {
  const paths = stackPaths(options.config.stack.dir)
  const context: StackContext = { config: options.config, paths, tools: options.tools }
  const all = await defineServices(context)
  return { context, services: (options.services ?? SERVICE_NAMES).map(name => all[name]) }
}

async function waitHealthy (service: Service, context: StackContext, pid: number | undefined, deadline: number): Promise<string> {
  const logFile = context.paths.log(service.name)
  let last = 'no answer yet'
  while (Date.now() < deadline) {
    const result = await service.probe(PROBE_TIMEOUT_MS)
    if (result.ok) return result.detail
    last = result.reason
    if (pid !== undefined) {
      const record = await readPidFile(context.paths.pid(service.name))
      if (record === undefined || !await isRunning(record)) {
        const tail = await tailFile(logFile)
        throw new StackError('CHURN_STACK_START_FAILED', `${service.label} exited while starting; see ${logFile}:\n${tail}`, { context: { service: service.name, logFile } })
      }
    }
    await sleep(500)
  }
  const tail = await tailFile(logFile)
  throw new StackError('CHURN_STACK_START_FAILED', `${service.label} did not become healthy on ${address(service)} within the deadline (${last}); see ${logFile}:\n${tail}`, { context: { service: service.name, logFile } })
}

async function ensureUp (service: Service, context: StackContext, deadline: number): Promise<UpOutcome> {
  const started = Date.now()
  const base = { service: service.name, label: service.label, address: address(service) }
  const pidFile = context.paths.pid(service.name)
  try {
    const record = await readPidFile(pidFile)
    const ours = record !== undefined && await isRunning(record)
    const probe = await service.probe(PROBE_TIMEOUT_MS)
    if (probe.ok) return { ...base, state: 'reused', pid: ours && record.address === base.address ? record.pid : undefined, detail: probe.detail, ms: Date.now() - started }
    if (!isLoopback(service.host)) {
      throw new StackError('CHURN_STACK_NOT_LOCAL', `${service.label} does not answer on ${address(service)} (${probe.reason}), and \`stack up\` only starts services on this machine (127.0.0.1, localhost or ::1). Start it there, or point the configuration at a local address.`)
    }
    if (ours && record.address !== base.address) {
      throw new StackError('CHURN_STACK_PORT_IN_USE', `This stack's ${service.label} already runs on ${record.address} (pid ${record.pid}), not on the configured ${base.address}. Run \`churn stack down --services ${service.name}\` first, or use another STACK_DIR.`, { context: { service: service.name } })
    }
    if (ours) {
      // Started by an earlier `up` that has not finished starting (or a concurrent one).
      const detail = await waitHealthy(service, context, record.pid, deadline)
      return { ...base, state: 'reused', pid: record.pid, detail, ms: Date.now() - started }
    }
    if (record !== undefined) await removePidFile(pidFile)
    for (const port of service.ports) {
      if (await portInUse(service.host, port)) {
        throw new StackError('CHURN_STACK_PORT_IN_USE', `Port ${port} on ${service.host} is held by something that is not ${service.label} (${probe.reason}). Stop that process or configure another port for ${service.name}.`, { context: { service: service.name, port } })
      }
    }
    const launch = await service.prepare()
    await mkdir(path.dirname(context.paths.log(service.name)), { recursive: true })
    await mkdir(path.dirname(pidFile), { recursive: true })
    const child = await startDetached(service.name, base.address, launch, context.paths.log(service.name), pidFile)
    const detail = await waitHealthy(service, context, child.pid, deadline)
    return { ...base, state: 'started', pid: child.pid, detail, ms: Date.now() - started }
  } catch (error) {
    const stackError = error instanceof StackError
      ? error
      : new StackError('CHURN_STACK_START_FAILED', `${service.label}: ${describeError(error)}`, { cause: error })
    return { ...base, state: 'failed', error: stackError, ms: Date.now() - started }
  }
}

/**
 * Brings every requested service up, in parallel, and reports each outcome; it does not throw
 * for a failed service (see `assertUp`), so a caller can still stop what did start.
 */
export async function stackUp (options: StackOptions): Promise<UpOutcome[]> {
  const { context: ctx, services } = await context(options)
  await mkdir(ctx.paths.root, { recursive: true })
  const deadline = Date.now() + options.config.stack.startTimeoutMs
  return await Promise.all(services.map(async service => await ensureUp(service, ctx, deadline)))
}

/** Throws one error naming every service that failed, with the reason and log file of each. */
export function assertUp (outcomes: readonly UpOutcome[]): void {
  const failures = outcomes.filter(o => o.state === 'failed')
  if (failures.length === 0) return
  const first = failures[0]?.error
  const message = failures.map(f => `${f.label} (${f.address}): ${f.error.message}`).join('\n\n')
  throw new StackError(first?.code ?? 'CHURN_STACK_START_FAILED', `The local stack did not come up.\n${message}`, { cause: first })
}

/**
 * Finds runtimes and fetches or installs every service's software, starting nothing: the Maven
 * distributions, and for MLflow the project's Python environment (`<STACK_DIR>/venv`, which the
 * training benchmark's scikit-learn peer shares).
 */
export async function stackInstall (options: StackOptions): Promise<void> {
  const { services } = await context(options)
  await Promise.all(services.map(async service => await service.install()))
}

/** Stops the services this stack started (pid files); a service it did not start is left alone. */
export async function stackDown (options: StackOptions): Promise<DownOutcome[]> {
  const { context: ctx, services } = await context(options)
  return await Promise.all(services.map(async (service): Promise<DownOutcome> => {
    const pidFile = ctx.paths.pid(service.name)
    const record = await readPidFile(pidFile)
    if (record === undefined) return { service: service.name, state: 'not ours', pid: undefined }
    const ended = await stopProcess(record, service.stopGraceMs)
    await removePidFile(pidFile)
    return { service: service.name, state: ended === 'gone' ? 'already gone' : ended, pid: record.pid }
  }))
}

export async function stackStatus (options: StackOptions): Promise<StatusRow[]> {
  const { context: ctx, services } = await context(options)
  return await Promise.all(services.map(async (service): Promise<StatusRow> => {
    const record = await readPidFile(ctx.paths.pid(service.name))
    const ours = record !== undefined && await isRunning(record)
    const probe = await service.probe(PROBE_TIMEOUT_MS)
    const owner = ours ? `stack (pid ${record.pid})` : probe.ok ? 'external' : '-'
    const base = { service: service.name, label: service.label, address: address(service), owner }
    if (probe.ok) return { ...base, state: 'up', detail: probe.detail }
    if (ours) return { ...base, state: 'starting', detail: probe.reason }
    if (await portInUse(service.host, service.ports[0] ?? 0)) return { ...base, state: 'not answering', detail: `port taken by something else: ${probe.reason}` }
    return { ...base, state: 'down', detail: '' }
  }))
}
