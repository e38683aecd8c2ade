/**
 * Channel adapters: how a campaign job leaves the system. `webhook` POSTs it, signed, to the
 * channel's service; `outbox` records it in a local file, the stand-in for a real CRM or SMS
 * gateway. Delivery is at least once: a worker that dies between sending and recording the job
 * as completed sends it again, so receivers deduplicate on the job id (the `idempotency-key`
 * header, the `jobId` of an outbox line).
 */
import { createHmac } from 'node:crypto'
import { mkdir, open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { ConfigError } from '../config/index.ts'
import type { Config } from '../config/index.ts'
import { describeError } from '../core/errors.ts'
import type { CampaignJobData, Channel } from './campaign.ts'
import { CampaignError, PermanentDeliveryError } from './errors.ts'

export { PermanentDeliveryError }

export type CampaignConfig = Config['campaign']

export interface DeliveryContext {
  /** The BullMQ job id: stable across retries, so receivers can drop a repeat. */
  jobId: string
  /** 1 for the first try. */
  attempt: number
}

export interface ChannelAdapter {
  /** `webhook` or `outbox`, for logs and the `work` summary. */
  readonly name: string
  /**
   * Delivers one job. Resolves once the channel has it; rejects with `PermanentDeliveryError`
   * (code `CHURN_CAMPAIGN_PERMANENT`) when retrying cannot help, and with any other error when it can.
   */
  send: (data: CampaignJobData, context: DeliveryContext) => Promise<void>
  /** Releases what the adapter holds (open files); called once, after the last `send`. */
  close?: () => Promise<void>
}

/** `sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>`: what `x-churn-signature` carries. */
export function webhookSignature (secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

/**
 * Whether a non-2xx status may succeed later: timeouts, too early, rate limited, server errors.
 * Everything else (other 4xx, and 3xx, since redirects are not followed) is the request's fault.
 */
export function isTransientStatus (status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500
}

export interface WebhookAdapterOptions {
  channel: Channel
  url: string
  secret: string
  /** A delivery that has not answered within this counts as a transient failure. */
  timeoutMs: number
}

/** How much of a refusing receiver's body goes into the error message. */
const REASON_CHARS = 200

export function webhookAdapter (options: WebhookAdapterOptions): ChannelAdapter {
  const { channel, url, secret, timeoutMs } = options
  return {
    name: 'webhook',
    async send (data, { jobId, attempt }) {
      const body = JSON.stringify(data)
      const timestamp = String(Date.now())
      let response: Response
      try {
        response = await fetch(url, {
          method: 'POST',
          body,
          // A redirected POST would be replayed as a GET by fetch; a moved endpoint is a configuration fault.
          redirect: 'manual',
          signal: AbortSignal.timeout(timeoutMs),
          headers: {
            'content-type': 'application/json',
            'idempotency-key': jobId,
            'x-churn-timestamp': timestamp,
            'x-churn-signature': webhookSignature(secret, timestamp, body)
          }
        })
      } catch (error) {
        const timedOut = error instanceof DOMException && error.name === 'TimeoutError'
        throw new CampaignError('CHURN_CAMPAIGN_DELIVERY_FAILED', timedOut
          ? `${channel} webhook did not answer within ${timeoutMs} ms`
          : `${channel} webhook unreachable: ${describeError(error)}`, { cause: error, retriable: true, context: { channel, jobId, attempt } })
      }
      if (response.ok) {
        await response.body?.cancel()
        return
      }
      const reason = (await response.text().catch(() => '')).slice(0, REASON_CHARS)
      const message = `${channel} webhook answered ${response.status}${reason === '' ? '' : `: ${reason}`}`
      const context = { channel, jobId, attempt, status: response.status }
      if (isTransientStatus(response.status)) throw new CampaignError('CHURN_CAMPAIGN_DELIVERY_FAILED', message, { retriable: true, context })
      throw new PermanentDeliveryError(message, { context })
    }
  }
}

export interface OutboxAdapterOptions {
  channel: Channel
  /** The folder of `<channel>.jsonl` files; created on the first delivery. */
  dir: string
}

/** One line of `<outboxDir>/<channel>.jsonl`. */
export interface OutboxLine extends Pick<CampaignJobData, 'channel' | 'event'> {
  jobId: string
  /** Unix ms. */
  deliveredAt: number
}

/**
 * Appends one JSON line per delivered job to `<dir>/<channel>.jsonl`. Appends are chained, one
 * write each on a file opened for appending, so concurrent jobs of a process never interleave
 * within a line; a failed append is a transient failure (the job is retried).
 */
export function outboxAdapter (options: OutboxAdapterOptions): ChannelAdapter {
  const file = path.join(options.dir, `${options.channel}.jsonl`)
  let handle: Promise<FileHandle> | undefined
  let tail: Promise<unknown> = Promise.resolve()

  const append = async (line: string): Promise<void> => {
    if (handle === undefined) {
      handle = mkdir(options.dir, { recursive: true }).then(async () => await open(file, 'a'))
      // A failed open is not kept: the next delivery tries again.
      handle.catch(() => { handle = undefined })
    }
    await (await handle).appendFile(line)
  }

  return {
    name: 'outbox',
    async send (data, { jobId, attempt }) {
      const line: OutboxLine = { jobId, channel: data.channel, deliveredAt: Date.now(), event: data.event }
      const write = tail.then(async () => { await append(`${JSON.stringify(line)}\n`) })
      tail = write.catch(() => {})
      try {
        await write
      } catch (error) {
        throw new CampaignError('CHURN_CAMPAIGN_DELIVERY_FAILED', `could not append to ${file}: ${describeError(error)}`, { cause: error, retriable: true, context: { channel: options.channel, jobId, attempt } })
      }
    },
    async close () {
      await tail
      const opened = handle
      handle = undefined
      await opened?.then(async h => { await h.close() }, () => {})
    }
  }
}

/** The adapter a channel is configured with (`CHANNEL_<NAME>_ADAPTER`). */
export function createAdapter (channel: Channel, campaign: CampaignConfig): ChannelAdapter {
  const settings = campaign.channels[channel]
  if (settings.adapter === 'outbox') return outboxAdapter({ channel, dir: campaign.outboxDir })
  // Configuration refuses `webhook` without a URL or secret; this guards hand-built configurations.
  const variable = `CHANNEL_${channel.toUpperCase()}_WEBHOOK_URL`
  if (settings.url === undefined) throw new ConfigError([{ variable, value: undefined, expected: 'a URL, because the channel uses the webhook adapter' }])
  if (campaign.webhook.secret === undefined) throw new ConfigError([{ variable: 'WEBHOOK_SECRET', value: undefined, expected: 'a signing key, because a channel uses the webhook adapter' }])
  return webhookAdapter({ channel, url: settings.url, secret: campaign.webhook.secret, timeoutMs: campaign.webhook.timeoutMs })
}
