/**
 * Synthetic telecom traffic for one cohort of subscribers over one observation window, drawn from a
 * seed so a run can be reproduced event for event (ids included).
 *
 * Each subscriber has a hidden churn propensity p ~ Beta(2, 5). As the window runs, p drives its
 * events: the signal weakens, latency and packet loss rise and calls drop (network), bills go
 * unpaid and overdue (billing), and use of the device and the operator's app fades (device). The
 * outcome is drawn from p too, but separately and with noise: a subscriber churns with probability
 * sigmoid(10 (p - 0.42)), about 28% of them, on a day in the second half of the window, after
 * which it sends nothing; the CRM records the churn a day or two later, and records everyone else
 * as retained at the end of the window. Churn is therefore predictable from the features without
 * being a rule of them: a model that scores an AUC near 1 on this data has found a leak.
 *
 * The generator is pure: the caller supplies the event times (spread over the window for a given
 * count, or the wall clock for a rate), so the same code serves both modes and unit tests.
 * A small share of events is dirty on purpose: low quality scores, impossible values, and events
 * that arrive hours after their event time, as real platforms send them.
 */
import { seededRandom } from '../core/random.ts'
import type { Random } from '../core/random.ts'
import { DAY_MS } from '../lakehouse/features.ts'
import type { BillingEvent, CrmOutcome, DeviceEvent, NetworkEvent, PaymentStatus, RadioTechnology } from '../schemas/index.ts'
import type { SourceStream } from '../schemas/catalog.ts'

export interface GeneratorOptions {
  /** Subscribers in the cohort. */
  subscribers: number
  seed: number
  /** Start of the observation window, epoch ms. */
  startMs: number
  /** End of the window: retained outcomes are dated here, and no event is later. */
  endMs: number
  /** Prefix of the subscriber ids (`<prefix><index>`). @defaultValue 'SUB-' */
  idPrefix?: string
  /** Share of events with a quality score below the gate's 45. @defaultValue 0.02 */
  lowQualityFraction?: number
  /** Share of events with an impossible value (positive dBm, negative bill...). @defaultValue 0.005 */
  impossibleFraction?: number
  /** Share of events whose event time lies 1-36 hours before they are sent. @defaultValue 0.01 */
  lateFraction?: number
}

export type SourceValue = BillingEvent | NetworkEvent | DeviceEvent | CrmOutcome

export interface GeneratedEvent {
  stream: SourceStream
  /** The Kafka key: the subscriber id. */
  key: string
  value: SourceValue
}

/** What the generator knows and the model must not: each subscriber's hidden state. */
export interface SubscriberProfile {
  id: string
  propensity: number
  churns: boolean
  /** The day the outcome takes effect (churn date, or the window's end when retained), epoch ms. */
  effectiveMs: number
  /** Relative activity: how often this subscriber appears in the traffic. */
  activity: number
  baseSignalDbm: number
  baseLatencyMs: number
  plan: Plan
  paymentMethod: string
  deviceModel: string
  osVersion: string
  deviceId: string
  radio: RadioTechnology
  baseActiveMinutes: number
}

interface Plan { code: string, fee: number, dataMb: number, prepaid: boolean }

const PLANS: readonly Plan[] = [
  { code: 'PRE-DAILY', fee: 35, dataMb: 1_500, prepaid: true },
  { code: 'PRE-5GB', fee: 90, dataMb: 5_000, prepaid: true },
  { code: 'POST-20GB', fee: 180, dataMb: 20_000, prepaid: false },
  { code: 'POST-UNL', fee: 320, dataMb: 60_000, prepaid: false }
]
const PAYMENT_METHODS = ['direct-debit', 'card', 'mobile-money', 'cash'] as const
const DEVICES = [
  ['Tecno Spark 20', 'Android 14'], ['Samsung A15', 'Android 15'], ['iPhone 13', 'iOS 18.4'],
  ['Nokia G22', 'Android 13'], ['Huawei P30', 'Android 10'], ['Router 4G-CPE', 'OpenWrt 23.05']
] as const
const RADIOS: readonly RadioTechnology[] = ['LTE_4G', 'LTE_4G', 'LTE_4G', 'NR_5G', 'UMTS_3G', 'GSM_2G']
const CHURN_REASONS = ['port-out', 'non-payment', 'cancellation', 'lapsed'] as const
/** Shares of the source streams in the traffic: network measurements dominate, bills are rarer. */
const STREAM_SHARES = { network: 0.6, device: 0.28, billing: 0.12 } as const

/** The probability a subscriber of propensity `p` churns within the window. */
export function churnProbability (p: number): number {
  return 1 / (1 + Math.exp(-10 * (p - 0.42)))
}

const clamp = (x: number, low: number, high: number): number => Math.min(high, Math.max(low, x))
const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits

export class TrafficGenerator {
  readonly profiles: readonly SubscriberProfile[]
  readonly #random: Random
  readonly #options: Required<GeneratorOptions>
  /** Walker's alias table over activity, for O(1) draws of who sends the next event. */
  readonly #aliasProbability: Float64Array
  readonly #alias: Int32Array
  /** Churners by effective date, and how many of them have had their outcome emitted. */
  readonly #churners: SubscriberProfile[]
  #churnOutcomesEmitted = 0
  #retainedEmitted = false
  #invoice = 0

  constructor (options: GeneratorOptions) {
    if (!(options.subscribers >= 1)) throw new RangeError('at least one subscriber is needed')
    if (!(options.endMs > options.startMs)) throw new RangeError('the window must end after it starts')
    this.#options = { idPrefix: 'SUB-', lowQualityFraction: 0.02, impossibleFraction: 0.005, lateFraction: 0.01, ...options }
    this.#random = seededRandom(options.seed)
    const width = String(options.subscribers - 1).length
    const profiles: SubscriberProfile[] = []
    for (let i = 0; i < options.subscribers; i++) profiles.push(this.#profile(`${this.#options.idPrefix}${String(i).padStart(Math.max(6, width), '0')}`))
    this.profiles = profiles
    this.#churners = profiles.filter(p => p.churns).sort((a, b) => a.effectiveMs - b.effectiveMs)
    ;[this.#aliasProbability, this.#alias] = aliasTable(profiles.map(p => p.activity))
  }

  #profile (id: string): SubscriberProfile {
    const r = this.#random
    const { startMs, endMs } = this.#options
    const propensity = r.beta(2, 5)
    const churns = r.chance(churnProbability(propensity))
    const span = endMs - startMs
    // Churn takes effect on a day in the second half of the window.
    const effectiveMs = churns ? Math.floor((startMs + span * (0.5 + 0.45 * r.next())) / DAY_MS) * DAY_MS : endMs
    const [deviceModel, osVersion] = r.pick(DEVICES)
    return {
      id,
      propensity,
      churns,
      effectiveMs: Math.max(startMs, effectiveMs),
      activity: Math.exp(r.normal(0, 0.5)),
      baseSignalDbm: clamp(r.normal(-85, 8), -115, -55),
      baseLatencyMs: 20 + 40 * r.next(),
      plan: r.pick(PLANS),
      paymentMethod: r.pick(PAYMENT_METHODS),
      deviceModel,
      osVersion,
      deviceId: `DEV-${r.uuid().slice(0, 18)}`,
      radio: r.pick(RADIOS),
      baseActiveMinutes: 30 + 90 * r.next()
    }
  }

  /**
   * How far the subscriber's decline has gone at `timeMs`: 0 at the window's start, up to its
   * propensity at its effective date, growing faster towards the end.
   */
  #decline (profile: SubscriberProfile, timeMs: number): number {
    const { startMs } = this.#options
    const progress = clamp((timeMs - startMs) / Math.max(1, profile.effectiveMs - startMs), 0, 1)
    return profile.propensity * progress ** 1.5
  }

  /** Draws a subscriber still active at `timeMs`, weighted by activity. */
  #subscriberAt (timeMs: number): SubscriberProfile {
    const r = this.#random
    for (;;) {
      const i = Math.floor(r.next() * this.profiles.length)
      const profile = this.profiles[r.next() < (this.#aliasProbability[i] ?? 1) ? i : (this.#alias[i] ?? i)] as SubscriberProfile
      if (!profile.churns || timeMs < profile.effectiveMs) return profile
      // Everyone has churned: nobody is left to send anything.
      if (this.#churners.length === this.profiles.length && timeMs >= (this.#churners[this.#churners.length - 1]?.effectiveMs ?? 0)) return profile
    }
  }

  /** One source event (billing, network or device) at `timeMs`. */
  eventAt (timeMs: number): GeneratedEvent {
    const r = this.#random
    const profile = this.#subscriberAt(timeMs)
    const d = this.#decline(profile, timeMs)
    const late = r.chance(this.#options.lateFraction)
    const eventTime = Math.max(this.#options.startMs, Math.min(this.#options.endMs, late ? timeMs - r.int(1, 36) * 3_600_000 : timeMs))
    const qualityScore = r.chance(this.#options.lowQualityFraction) ? r.int(5, 44) : round(clamp(r.normal(88, 8), 45, 100), 1)
    const impossible = r.chance(this.#options.impossibleFraction)
    const envelope = { eventId: r.uuid(), subscriberId: profile.id, eventTime, qualityScore }
    const pick = r.next()
    if (pick < STREAM_SHARES.network) return { stream: 'network', key: profile.id, value: this.#network(envelope, profile, d, impossible) }
    if (pick < STREAM_SHARES.network + STREAM_SHARES.device) return { stream: 'device', key: profile.id, value: this.#device(envelope, profile, d, impossible) }
    return { stream: 'billing', key: profile.id, value: this.#billing(envelope, profile, d, impossible) }
  }

  #network (envelope: Envelope, profile: SubscriberProfile, d: number, impossible: boolean): NetworkEvent {
    const r = this.#random
    const signal = clamp(r.normal(profile.baseSignalDbm - 30 * d, 4), -140, -44)
    return {
      ...envelope,
      cellId: `CELL-${(hashId(profile.id) + r.int(0, 2)) % 4096}`,
      radioTechnology: profile.radio,
      signalDbm: impossible ? r.int(1, 20) : round(signal, 1),
      latencyMs: round(Math.max(1, profile.baseLatencyMs * (1 + 3 * d) * Math.exp(r.normal(0, 0.25))), 1),
      packetLossPct: round(clamp(0.3 + 8 * d + r.normal(0, 0.6), 0, 100), 2),
      throughputMbps: round(Math.max(0.05, (profile.radio === 'NR_5G' ? 120 : profile.radio === 'LTE_4G' ? 35 : 4) * (1 - 0.7 * d) * Math.exp(r.normal(0, 0.3))), 2),
      droppedCalls: r.poisson(0.05 + 1.2 * d),
      sessionMinutes: r.int(0, 15)
    }
  }

  #device (envelope: Envelope, profile: SubscriberProfile, d: number, impossible: boolean): DeviceEvent {
    const r = this.#random
    return {
      ...envelope,
      deviceId: profile.deviceId,
      deviceModel: profile.deviceModel,
      osVersion: profile.osVersion,
      batteryPct: impossible ? r.int(101, 250) : r.int(3, 100),
      appSessions: r.poisson(Math.max(0.05, 3 * (1 - 0.9 * d))),
      activeMinutes: round(Math.max(0, profile.baseActiveMinutes * (1 - 0.9 * d) * Math.exp(r.normal(0, 0.3))), 1),
      storageFreePct: r.int(2, 80)
    }
  }

  #billing (envelope: Envelope, profile: SubscriberProfile, d: number, impossible: boolean): BillingEvent {
    const r = this.#random
    const overdue = r.chance(0.04 + 0.8 * d)
    const failed = !overdue && r.chance(0.01 + 0.25 * d)
    const status: PaymentStatus = overdue ? 'OVERDUE' : failed ? 'FAILED' : r.chance(0.1) ? 'PENDING' : 'PAID'
    const amount = round(profile.plan.fee * Math.exp(r.normal(0, 0.15)), 2)
    const cycle = new Date(envelope.eventTime).toISOString().slice(0, 7)
    return {
      ...envelope,
      invoiceId: `INV-${cycle.replace('-', '')}-${String(++this.#invoice).padStart(8, '0')}`,
      billingCycle: cycle,
      planCode: profile.plan.code,
      currency: 'ZMW',
      billAmount: impossible ? -amount : amount,
      dataUsedMb: round(profile.plan.dataMb * (1 - 0.6 * d) * Math.exp(r.normal(-0.3, 0.4)), 1),
      voiceMinutes: r.int(0, 600),
      smsCount: r.int(0, 60),
      daysOverdue: overdue ? 1 + Math.floor(90 * d * r.next()) : 0,
      paymentStatus: status,
      paymentMethod: profile.paymentMethod,
      topUpAmount: profile.plan.prepaid ? round(profile.plan.fee * r.int(1, 3), 2) : null
    }
  }

  /**
   * The CRM outcomes due by `timeMs`: churns recorded a day or two after they took effect (never
   * after the window's end), and, once `timeMs` reaches the end, everyone else as retained.
   */
  outcomesDue (timeMs: number): GeneratedEvent[] {
    const { endMs } = this.#options
    const due: GeneratedEvent[] = []
    while (this.#churnOutcomesEmitted < this.#churners.length) {
      const profile = this.#churners[this.#churnOutcomesEmitted] as SubscriberProfile
      const recordedMs = Math.min(endMs, profile.effectiveMs + DAY_MS + (hashId(profile.id) % DAY_MS))
      if (recordedMs > timeMs) break
      this.#churnOutcomesEmitted++
      due.push(this.#outcome(profile, 'CHURNED', recordedMs, CHURN_REASONS[hashId(profile.id) % CHURN_REASONS.length] ?? null))
    }
    if (timeMs >= endMs && !this.#retainedEmitted) {
      this.#retainedEmitted = true
      for (const profile of this.profiles) if (!profile.churns) due.push(this.#outcome(profile, 'RETAINED', endMs, null))
    }
    return due
  }

  #outcome (profile: SubscriberProfile, outcome: CrmOutcome['outcome'], recordedMs: number, reason: string | null): GeneratedEvent {
    const value: CrmOutcome = {
      eventId: this.#random.uuid(),
      subscriberId: profile.id,
      eventTime: recordedMs,
      qualityScore: 99,
      outcome,
      effectiveDate: Math.floor(profile.effectiveMs / DAY_MS),
      reason
    }
    return { stream: 'crm', key: profile.id, value }
  }
}

type Envelope = Pick<NetworkEvent, 'eventId' | 'subscriberId' | 'eventTime' | 'qualityScore'>

/** A stable small hash of an id (FNV-1a), for per-subscriber choices that need no random draw. */
function hashId (id: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** Walker's alias method: O(n) to build, O(1) per weighted draw. */
function aliasTable (weights: readonly number[]): [Float64Array, Int32Array] {
  const n = weights.length
  const total = weights.reduce((a, b) => a + b, 0)
  const probability = new Float64Array(n)
  const alias = new Int32Array(n)
  const scaled = weights.map(w => (w * n) / total)
  const small: number[] = []
  const large: number[] = []
  scaled.forEach((w, i) => (w < 1 ? small : large).push(i))
  while (small.length > 0 && large.length > 0) {
    const s = small.pop() as number
    const l = large.pop() as number
    probability[s] = scaled[s] as number
    alias[s] = l
    scaled[l] = (scaled[l] as number) + (scaled[s] as number) - 1
    ;((scaled[l]) < 1 ? small : large).push(l)
  }
  for (const i of [...small, ...large]) {
    probability[i] = 1
    alias[i] = i
  }
  return [probability, alias]
}
