/**
 * Private instances of the stack's services for outage tests: a Kafka broker (KRaft), an Apicurio
 * registry or a redis-server on free loopback ports, with data folders of their own, launched
 * exactly as `churn stack up` launches them (the stack's own service definitions, the shared
 * download cache under STACK_DIR/cache, the JDK the stack would pick) but as children of the test,
 * so a test can stop and restart them without touching the shared stack.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { defineServices, stackPaths } from '../../stack/services.ts'
import type { Service, StackContext } from '../../stack/services.ts'
import { waitFor } from './campaign.ts'
import { config, tools } from './context.ts'

export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

export type PrivateServiceName = 'kafka' | 'registry' | 'redis'

export interface PrivateService {
  /** What clients are configured with: KAFKA_BROKERS, SCHEMA_REGISTRY_URL or REDIS_URL. */
  env: Record<string, string>
  /** Starts it (again, on the same data) and waits until it answers its health check. */
  start: (timeoutMs?: number) => Promise<void>
  /** SIGTERM, and waits until the process has exited (SIGKILL after the stack's grace period). */
  stop: () => Promise<void>
  running: () => boolean
  /** Stops it and deletes its folder. */
  dispose: () => Promise<void>
  /** Its log file (stdout and stderr of every start). */
  log: string
}

/** A private instance of `name` on free ports; not started yet. */
export async function privateService (name: PrivateServiceName): Promise<PrivateService> {
  const root = await mkdtemp(path.join(tmpdir(), `churn-private-${name}-`))
  const port = await freePort()
  const env: Record<string, string> = name === 'kafka'
    ? { KAFKA_BROKERS: `127.0.0.1:${port}` }
    : name === 'registry'
      ? { SCHEMA_REGISTRY_URL: `http://127.0.0.1:${port}/apis/ccompat/v7` }
      : { REDIS_URL: `redis://127.0.0.1:${port}` }
  const context: StackContext = {
    config: {
      kafka: { ...config.kafka, brokers: [{ host: '127.0.0.1', port }] },
      registry: { ...config.registry, url: env.SCHEMA_REGISTRY_URL ?? config.registry.url },
      redis: { ...config.redis, url: env.REDIS_URL ?? config.redis.url },
      stack: { ...config.stack, dir: root, kafkaControllerPort: name === 'kafka' ? await freePort() : config.stack.kafkaControllerPort }
    },
    // Data, configuration and logs of its own; the distributions from the shared download cache.
    paths: { ...stackPaths(root), cache: stackPaths(config.stack.dir).cache },
    tools
  }
  const service: Service = (await defineServices(context))[name]
  const log = context.paths.log(name)
  let child: ChildProcess | undefined

  const running = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null
  const stop = async (): Promise<void> => {
    const current = child
    if (current === undefined || !running()) return
    const exited = once(current, 'exit')
    current.kill('SIGTERM')
    const killer = setTimeout(() => { current.kill('SIGKILL') }, service.stopGraceMs)
    await exited
    clearTimeout(killer)
    child = undefined
  }
  const start = async (timeoutMs = 60_000): Promise<void> => {
    if (running()) return
    const launch = await service.prepare()
    await mkdir(path.dirname(log), { recursive: true })
    const file = await open(log, 'a')
    try {
      child = spawn(launch.command, [...launch.args], { cwd: launch.cwd, env: launch.env, stdio: ['ignore', file.fd, file.fd] })
      await once(child, 'spawn')
    } finally {
      await file.close()
    }
    const deadline = Date.now() + timeoutMs
    let last = 'no answer yet'
    for (;;) {
      if (!running()) throw new Error(`${service.label} exited while starting; see ${log}`)
      const probe = await service.probe(2000)
      if (probe.ok) return
      last = probe.reason
      if (Date.now() > deadline) {
        await stop()
        throw new Error(`${service.label} did not answer within ${timeoutMs} ms (${last}); see ${log}`)
      }
      await sleep(200)
    }
  }
  return {
    env,
    start,
    stop,
    running,
    log,
    dispose: async () => {
      await stop()
      await rm(root, { recursive: true, force: true })
    }
  }
}

/** GETs `url`; its status, or 0 when nothing answers. */
export async function httpStatus (url: string): Promise<number> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(3000) })
    await response.body?.cancel()
    return response.status
  } catch {
    return 0
  }
}

/** GETs `url` as JSON; undefined when nothing answers. */
export async function httpJson (url: string): Promise<{ status: number, body: unknown } | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(3000) })
    return { status: response.status, body: await response.json() }
  } catch {
    return undefined
  }
}

const CLI = path.resolve(import.meta.dirname, '../../cli/main.ts')

export interface RoleProcess {
  child: ChildProcess
  /** Resolves to the exit code (null when killed by a signal). */
  exited: Promise<number | null>
  alive: () => boolean
  /** The last lines of its log (JSON at `info` and above), for failure messages. */
  tail: () => string
  /** Log lines containing `text`. */
  count: (text: string) => number
  /**
   * SIGTERM, and waits for the exit code; SIGKILL after `graceMs` (null then), so a role that
   * cannot shut down fails the test's clean-exit assertion instead of hanging the run.
   */
  stop: (graceMs?: number) => Promise<number | null>
}

/** Runs `churn <args>` as its own process with `env`, logging JSON to a buffer the test reads. */
export function startRole (args: readonly string[], env: Record<string, string | undefined>): RoleProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...env, LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let partial = ''
  child.stdout?.resume()
  child.stderr?.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString('utf8')
    const split = text.split('\n')
    partial = split.pop() ?? ''
    for (const line of split) {
      lines.push(line)
      if (lines.length > 400) lines.shift()
    }
  })
  const all: string[] = []
  child.stderr?.on('data', (chunk: Buffer) => { all.push(chunk.toString('utf8')) })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
  const alive = (): boolean => child.exitCode === null && child.signalCode === null
  return {
    child,
    exited,
    alive,
    tail: () => lines.slice(-40).join('\n'),
    count: text => all.join('').split(text).length - 1,
    stop: async (graceMs = 30_000) => {
      if (!alive()) return await exited
      child.kill('SIGTERM')
      const killer = setTimeout(() => { lines.push(`(test) no exit ${graceMs} ms after SIGTERM: SIGKILL`); child.kill('SIGKILL') }, graceMs)
      try {
        return await exited
      } finally {
        clearTimeout(killer)
      }
    }
  }
}

/** Polls `url` until it answers `status`; `role` must stay up meanwhile (its log tail if not). */
export async function roleAnswers (role: RoleProcess, url: string, status: number, what: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(async () => {
    assert.ok(role.alive(), `the process exited (${String(role.child.exitCode)}) while waiting for ${what}:\n${role.tail()}`)
    return await httpStatus(url) === status
  }, { timeoutMs, what })
}

/** SIGTERM, and asserts a clean exit (code 0) within the grace period. */
export async function stopCleanly (role: RoleProcess | undefined): Promise<void> {
  if (role === undefined) return
  const code = await role.stop()
  // Not a failure (the process exits with its own code), but worth seeing: what a library left open.
  const lingering = role.tail().split('\n').find(line => line.includes('CHURN_EXIT_LINGERING'))
  if (lingering !== undefined) process.stderr.write(`# exited only after the drain timeout: ${lingering}\n`)
  assert.equal(code, 0, `clean exit:\n${role.tail()}`)
}

/**
 * A counter on the /metrics of the role server on `port`, summed over the series whose labels
 * contain `labels`; undefined when nothing answers or no series matches.
 */
export async function roleMetric (port: number, name: string, labels = ''): Promise<number | undefined> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(3000) }).then(async r => await r.text(), () => '')
  let sum: number | undefined
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\d+(?:\\.\\d+)?)$`, 'gm'))) {
    if ((m[1] ?? '').includes(labels)) sum = (sum ?? 0) + Number(m[2])
  }
  return sum
}
