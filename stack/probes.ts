/**
 * Health checks that prove a service is the service: a Kafka metadata request, the registry's
 * `GET /subjects`, a Redis `PING`, MLflow's `GET /health`. Each answers within its timeout and
 * never throws.
 */
import net from 'node:net'
import { describeError } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { createRedis } from '../core/redis.ts'
import { createKafka } from '../streams/kafka.ts'
import type { BrokerAddress } from '../streams/kafka.ts'

export type ProbeResult = { ok: true, detail: string } | { ok: false, reason: string }

/**
 * Bounds a probe by a hard deadline on top of its clients' own timeouts: a peer that accepts the
 * connection and then speaks another protocol must not leave a health check waiting.
 */
async function bounded (probe: Promise<ProbeResult>, timeoutMs: number): Promise<ProbeResult> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<ProbeResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, reason: `no answer within ${timeoutMs} ms` }), timeoutMs)
  })
  try {
    return await Promise.race([probe, late])
  } finally {
    clearTimeout(timer)
  }
}

export async function probeKafka (brokers: readonly BrokerAddress[], logger: Logger, timeoutMs = 3000): Promise<ProbeResult> {
  return await bounded(kafkaMetadata(brokers, logger, timeoutMs), timeoutMs * 2)
}

async function kafkaMetadata (brokers: readonly BrokerAddress[], logger: Logger, timeoutMs: number): Promise<ProbeResult> {
  const kafka = createKafka({
    brokers,
    clientId: 'churn-stack-probe',
    logger: logger.child({}, { level: 'silent' }),
    connectionTimeoutMs: timeoutMs,
    requestTimeoutMs: timeoutMs,
    retry: { retries: 0 }
  })
  const admin = kafka.admin()
  try {
    await admin.connect()
    const cluster = await admin.describeCluster()
    return { ok: true, detail: `cluster ${cluster.clusterId}, ${cluster.brokers.length} broker(s), controller ${String(cluster.controller)}` }
  } catch (error) {
    return { ok: false, reason: `metadata request failed: ${describeError(error)}` }
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

export async function probeRegistry (url: string, timeoutMs = 3000): Promise<ProbeResult> {
  return await bounded(registrySubjects(url, timeoutMs), timeoutMs * 2)
}

async function registrySubjects (url: string, timeoutMs: number): Promise<ProbeResult> {
  try {
    const response = await fetch(`${url}/subjects`, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } })
    const body = await response.text()
    if (response.status !== 200) return { ok: false, reason: `GET /subjects answered ${response.status}` }
    const subjects: unknown = JSON.parse(body)
    if (!Array.isArray(subjects)) return { ok: false, reason: 'GET /subjects did not answer a JSON array' }
    return { ok: true, detail: `${subjects.length} subject(s)` }
  } catch (error) {
    return { ok: false, reason: `GET /subjects failed: ${describeError(error)}` }
  }
}

export async function probeRedis (url: string, timeoutMs = 3000): Promise<ProbeResult> {
  return await bounded(redisPing(url, timeoutMs), timeoutMs * 2)
}

async function redisPing (url: string, timeoutMs: number): Promise<ProbeResult> {
  const redis = createRedis({ url, maxRetriesPerRequest: 0, connectTimeoutMs: timeoutMs, noReconnect: true, lazyConnect: true })
  redis.on('error', () => {})
  try {
    await redis.connect()
    const pong: string = await redis.ping()
    if (pong !== 'PONG') return { ok: false, reason: `PING answered ${pong}` }
    const info = await redis.info('server')
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown'
    return { ok: true, detail: `redis ${version}` }
  } catch (error) {
    return { ok: false, reason: `PING failed: ${describeError(error)}` }
  } finally {
    redis.disconnect()
  }
}

export async function probeMlflow (url: string, timeoutMs = 3000): Promise<ProbeResult> {
  return await bounded(mlflowHealth(url, timeoutMs), timeoutMs * 2)
}

/** `GET /health` answers a bare OK; `GET /version` then says it is MLflow, and which. */
async function mlflowHealth (url: string, timeoutMs: number): Promise<ProbeResult> {
  try {
    const health = await fetch(`${url}/health`, { signal: AbortSignal.timeout(timeoutMs) })
    const body = (await health.text()).trim()
    if (health.status !== 200 || body !== 'OK') return { ok: false, reason: `GET /health answered ${health.status} ${body.slice(0, 80)}` }
    const version = await fetch(`${url}/version`, { signal: AbortSignal.timeout(timeoutMs) })
    const text = (await version.text()).trim()
    if (version.status !== 200 || !/^\d+\.\d+\.\d+\S*$/.test(text)) return { ok: false, reason: `GET /version answered ${version.status}, not an MLflow version` }
    return { ok: true, detail: `mlflow ${text}` }
  } catch (error) {
    return { ok: false, reason: `GET /health failed: ${describeError(error)}` }
  }
}

/** Whether anything accepts TCP connections on host:port. */
export async function portInUse (host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect({ host: host.replace(/^\[|\]$/g, ''), port })
    const done = (inUse: boolean): void => {
      socket.destroy()
      resolve(inUse)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

export function isLoopback (host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase()
  return bare === 'localhost' || bare === '::1' || /^127(\.\d{1,3}){3}$/.test(bare)
}
