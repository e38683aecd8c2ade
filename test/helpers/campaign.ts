/**
 * Campaign test fixtures: realistic churn-risk events and job data, a local HTTP server standing
 * in for a channel's webhook receiver, and polling for a condition instead of sleeping.
 */
import { timingSafeEqual } from 'node:crypto'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { CampaignJobData, Channel } from '../../scoring/campaign.ts'
import { webhookSignature } from '../../scoring/channels.ts'
import type { OutboxLine } from '../../scoring/channels.ts'
import { RECOMMENDED_ACTIONS } from '../../scoring/tiers.ts'
import type { ChurnRiskEvent } from '../../schemas/types.generated.ts'

/** A high-risk event as the scorer emits it, for a subscriber of the Telco dataset's id form. */
export function churnRiskEvent (overrides: Partial<ChurnRiskEvent> = {}): ChurnRiskEvent {
  const subscriberId = overrides.subscriberId ?? '7590-VHVEG'
  const featureVersion = overrides.featureVersion ?? 42
  const modelVersion = overrides.modelVersion ?? 3
  const tier = overrides.tier ?? 'high'
  const featureTime = 1_767_225_600_000
  const scoredAt = featureTime + 90_000
  return {
    eventId: `${subscriberId}/${featureVersion}/${modelVersion}`,
    subscriberId,
    probability: 0.81,
    tier,
    previousTier: 'medium',
    recommendedAction: RECOMMENDED_ACTIONS[tier],
    reasons: [
      { feature: 'contract_month_to_month', value: 1, contribution: 0.19 },
      { feature: 'dropped_call_rate_30d', value: 0.07, contribution: 0.11 },
      { feature: 'days_since_last_activity', value: null, contribution: 0.04 }
    ],
    modelName: 'churn',
    modelVersion,
    featureVersion,
    featureTime,
    featureAgeMs: scoredAt - featureTime,
    stale: false,
    scoredAt,
    ...overrides
  }
}

export function campaignJob (channel: Channel, overrides: Partial<ChurnRiskEvent> = {}): CampaignJobData {
  return { channel, event: churnRiskEvent({ tier: channel === 'crm' ? 'high' : 'medium', ...overrides }) }
}

/** Resolves with `check`'s value once it is truthy; rejects after `timeoutMs`. */
export async function waitFor<T> (check: () => T | Promise<T>, { timeoutMs = 10_000, what = 'condition' } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    // A check that never settles (a client stuck on a dead connection) fails at the deadline too.
    let timer: NodeJS.Timeout | undefined
    const stuck = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (the check itself did not return)`)) }, Math.max(deadline - Date.now(), 0) + 1000)
    })
    const checked = Promise.resolve(check())
    checked.catch(() => {}) // settled after the deadline: nobody awaits it any more
    let value: T
    try {
      value = await Promise.race([checked, stuck])
    } finally {
      clearTimeout(timer)
    }
    if (value !== undefined && value !== null && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(25)
  }
}

export interface ReceivedRequest {
  method: string
  headers: IncomingHttpHeaders
  body: string
}

export interface WebhookReceiver {
  url: string
  received: ReceivedRequest[]
  close: () => Promise<void>
}

/**
 * A webhook receiver on a free loopback port. `respond` answers each request (the n-th, from 0)
 * and may take its time; what arrived is recorded before it is answered.
 */
export async function webhookReceiver (respond: (request: ReceivedRequest, n: number, response: ServerResponse) => void | Promise<void>): Promise<WebhookReceiver> {
  const received: ReceivedRequest[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => { chunks.push(chunk) })
    req.on('end', () => {
      const request = { method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
      received.push(request)
      Promise.resolve(respond(request, received.length - 1, res)).catch(() => { res.destroy() })
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/hooks/churn`,
    received,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
  }
}

/** Answers with `status` and a short JSON body. */
export function answer (response: ServerResponse, status: number): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ status }))
}

/** Whether `request` carries `x-churn-signature` by `secret` over its `x-churn-timestamp` and body. */
export function signedWith (secret: string, request: ReceivedRequest): boolean {
  const timestamp = request.headers['x-churn-timestamp']
  const signature = request.headers['x-churn-signature']
  if (typeof timestamp !== 'string' || typeof signature !== 'string') return false
  const expected = Buffer.from(webhookSignature(secret, timestamp, request.body))
  const given = Buffer.from(signature)
  return expected.length === given.length && timingSafeEqual(expected, given)
}

/** The lines of `<outboxDir>/<channel>.jsonl`, each parsed (none before the first delivery). */
export async function outboxLines (outboxDir: string, channel: Channel): Promise<OutboxLine[]> {
  const text = await readFile(path.join(outboxDir, `${channel}.jsonl`), 'utf8').catch(() => '')
  return text.split('\n').filter(line => line !== '').map(line => JSON.parse(line) as OutboxLine)
}
