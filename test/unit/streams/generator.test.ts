import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DAY_MS } from '../../../lakehouse/features.ts'
import { avroType, latestSchema } from '../../../schemas/index.ts'
import type { BillingEvent, CrmOutcome, DeviceEvent, NetworkEvent } from '../../../schemas/index.ts'
import { TrafficGenerator, churnProbability } from '../../../streams/generator.ts'
import type { GeneratedEvent, GeneratorOptions } from '../../../streams/generator.ts'

const END = Date.UTC(2026, 10, 1)
const START = END - 30 * DAY_MS

function run (options: Partial<GeneratorOptions> & { events: number }): { generator: TrafficGenerator, events: GeneratedEvent[], outcomes: GeneratedEvent[] } {
  const generator = new TrafficGenerator({ subscribers: 500, seed: 11, startMs: START, endMs: END, ...options })
  const events: GeneratedEvent[] = []
  const outcomes: GeneratedEvent[] = []
  const step = (END - START) / options.events
  for (let i = 0; i < options.events; i++) {
    const time = Math.floor(START + step * i)
    events.push(generator.eventAt(time))
    if (i % 500 === 0) outcomes.push(...generator.outcomesDue(time))
  }
  outcomes.push(...generator.outcomesDue(END))
  return { generator, events, outcomes }
}

/** Rank AUC of `score` for the positives. */
function auc (scores: number[], positive: boolean[]): number {
  const order = scores.map((s, i) => [s, i] as const).sort((a, b) => a[0] - b[0])
  let rankSum = 0
  let positives = 0
  order.forEach(([, i], rank) => { if (positive[i] === true) { rankSum += rank + 1; positives++ } })
  const negatives = scores.length - positives
  return (rankSum - positives * (positives + 1) / 2) / (positives * negatives)
}

describe('TrafficGenerator', () => {
  const { generator, events, outcomes } = run({ events: 40_000 })

  it('draws the same traffic, ids included, from the same seed, and other traffic from another', () => {
    const again = run({ events: 2000 })
    const first = run({ events: 2000 })
    assert.deepEqual(again.events, first.events)
    assert.deepEqual(again.outcomes, first.outcomes)
    const other = run({ events: 2000, seed: 12 })
    assert.notDeepEqual(other.events.map(e => e.value.eventId), first.events.map(e => e.value.eventId))
  })

  it('writes events every schema accepts, with unique ids, keyed by subscriber', async () => {
    const types = {
      billing: avroType((await latestSchema('billing')).schema),
      network: avroType((await latestSchema('network')).schema),
      device: avroType((await latestSchema('device')).schema),
      crm: avroType((await latestSchema('crm-outcome')).schema)
    }
    for (const event of [...events, ...outcomes]) {
      assert.ok(types[event.stream].isValid(event.value), `${event.stream} event ${JSON.stringify(event.value)} fits its schema`)
      assert.equal(event.key, event.value.subscriberId)
    }
    const ids = new Set([...events, ...outcomes].map(e => e.value.eventId))
    assert.equal(ids.size, events.length + outcomes.length)
    assert.match(events[0]?.value.eventId ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  })

  it('mixes the streams with network measurements most common', () => {
    const share = (stream: string): number => events.filter(e => e.stream === stream).length / events.length
    assert.ok(share('network') > 0.55 && share('network') < 0.65, `network ${share('network')}`)
    assert.ok(share('device') > 0.24 && share('device') < 0.32, `device ${share('device')}`)
    assert.ok(share('billing') > 0.09 && share('billing') < 0.15, `billing ${share('billing')}`)
  })

  it('keeps every event inside the window and sends nothing from a churner after its churn date', () => {
    const profiles = new Map(generator.profiles.map(p => [p.id, p]))
    for (const { value } of events) {
      assert.ok(value.eventTime >= START && value.eventTime <= END)
      const profile = profiles.get(value.subscriberId)
      assert.ok(profile !== undefined)
      if (profile.churns) assert.ok(value.eventTime < profile.effectiveMs, `${profile.id} sent an event after it churned`)
    }
  })

  it('records one outcome per subscriber: churns after they take effect, the rest retained at the end', () => {
    const profiles = new Map(generator.profiles.map(p => [p.id, p]))
    assert.equal(outcomes.length, generator.profiles.length)
    assert.equal(new Set(outcomes.map(o => o.key)).size, generator.profiles.length)
    for (const { value } of outcomes) {
      const outcome = value as CrmOutcome
      const profile = profiles.get(outcome.subscriberId)
      assert.ok(profile !== undefined)
      assert.equal(outcome.outcome, profile.churns ? 'CHURNED' : 'RETAINED')
      assert.equal(outcome.effectiveDate, Math.floor(profile.effectiveMs / DAY_MS))
      assert.ok(outcome.eventTime >= profile.effectiveMs && outcome.eventTime <= END)
      if (profile.churns) assert.ok(profile.effectiveMs >= START + 15 * DAY_MS - DAY_MS && profile.effectiveMs < END)
    }
    assert.deepEqual(generator.outcomesDue(END), [], 'no outcome is recorded twice')
  })

  it('makes about 28% of a large cohort churn, driven by the hidden propensity but not decided by it', () => {
    const big = new TrafficGenerator({ subscribers: 20_000, seed: 5, startMs: START, endMs: END })
    const churned = big.profiles.filter(p => p.churns).length / big.profiles.length
    assert.ok(churned > 0.24 && churned < 0.32, `churn rate ${churned}`)
    const score = auc(big.profiles.map(p => p.propensity), big.profiles.map(p => p.churns))
    // Knowing the hidden propensity itself predicts churn well but not perfectly: the outcome is noisy.
    assert.ok(score > 0.75 && score < 0.95, `AUC of the propensity ${score}`)
    assert.ok(Math.abs(churnProbability(0.42) - 0.5) < 1e-9)
  })

  it('lets the propensity show in the late part of the window: weaker signal, later bills, fading device use', () => {
    const profiles = new Map(generator.profiles.map(p => [p.id, p]))
    const possible = (e: GeneratedEvent): boolean => e.stream !== 'network' || (e.value as NetworkEvent).signalDbm < 0
    const late = events.filter(e => e.value.eventTime > START + 20 * DAY_MS && e.value.qualityScore >= 45 && possible(e))
    const high = (e: GeneratedEvent): boolean => (profiles.get(e.key)?.propensity ?? 0) > 0.4
    const low = (e: GeneratedEvent): boolean => (profiles.get(e.key)?.propensity ?? 1) < 0.2
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
    const of = <T>(stream: string, keep: (e: GeneratedEvent) => boolean, f: (v: T) => number): number =>
      mean(late.filter(e => e.stream === stream && keep(e)).map(e => f(e.value as T)))
    assert.ok(of<NetworkEvent>('network', high, v => v.signalDbm) < of<NetworkEvent>('network', low, v => v.signalDbm) - 5, 'signal is weaker')
    assert.ok(of<NetworkEvent>('network', high, v => v.latencyMs) > of<NetworkEvent>('network', low, v => v.latencyMs) * 1.3, 'latency is higher')
    assert.ok(of<BillingEvent>('billing', high, v => v.daysOverdue) > of<BillingEvent>('billing', low, v => v.daysOverdue) + 2, 'bills are later')
    assert.ok(of<DeviceEvent>('device', high, v => v.activeMinutes) < of<DeviceEvent>('device', low, v => v.activeMinutes) * 0.85, 'device use fades')
  })

  it('sends a little dirty data: low quality scores, impossible values, late events', () => {
    const lowQuality = events.filter(e => e.value.qualityScore < 45).length / events.length
    assert.ok(lowQuality > 0.012 && lowQuality < 0.03, `low quality ${lowQuality}`)
    const impossible = events.filter(e =>
      (e.stream === 'network' && (e.value as NetworkEvent).signalDbm > 0) ||
      (e.stream === 'billing' && (e.value as BillingEvent).billAmount < 0) ||
      (e.stream === 'device' && (e.value as DeviceEvent).batteryPct > 100)).length / events.length
    assert.ok(impossible > 0.002 && impossible < 0.01, `impossible ${impossible}`)
    const clean = run({ events: 5000, lowQualityFraction: 0, impossibleFraction: 0, lateFraction: 0 })
    assert.ok(clean.events.every(e => e.value.qualityScore >= 45))
    // Without late events, event times follow the clock the caller passes.
    const times = clean.events.map(e => e.value.eventTime)
    assert.ok(times.every((t, i) => i === 0 || t >= (times[i - 1] ?? 0)))
  })

  it('refuses an empty cohort or an empty window', () => {
    assert.throws(() => new TrafficGenerator({ subscribers: 0, seed: 1, startMs: START, endMs: END }), RangeError)
    assert.throws(() => new TrafficGenerator({ subscribers: 5, seed: 1, startMs: END, endMs: END }), RangeError)
  })
})
