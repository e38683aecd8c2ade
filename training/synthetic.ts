/**
 * A training set from synthetic traffic, without Kafka: the product's traffic generator landed in
 * an in-memory lakehouse and labelled exactly as `churn train` labels the real one (CRM outcomes,
 * features `horizonDays` before each). The training benchmark and the scoring tests use it.
 */
import { DAY_MS } from '../lakehouse/features.ts'
import { Lakehouse } from '../lakehouse/lakehouse.ts'
import type { LandedEvent } from '../lakehouse/lakehouse.ts'
import type { SourceStream } from '../schemas/catalog.ts'
import { TrafficGenerator } from '../streams/generator.ts'
import { lakehouseTrainingSet } from './sets.ts'
import type { TrainingSet } from './train.ts'

export interface SyntheticOptions {
  subscribers: number
  /** Events per subscriber over the 30 days. @defaultValue 12 */
  eventsPerSubscriber?: number
  /** @defaultValue 7 */
  seed?: number
  /** End of the observed 30 days. @defaultValue 2026-11-01 */
  endMs?: number
  /** @defaultValue 7 */
  horizonDays?: number
  /** DuckDB settings. */
  settings?: Record<string, string>
}

export async function syntheticTrainingSet (options: SyntheticOptions): Promise<TrainingSet> {
  const endMs = Math.floor((options.endMs ?? Date.UTC(2026, 10, 1)) / DAY_MS) * DAY_MS
  const startMs = endMs - 30 * DAY_MS
  const generator = new TrafficGenerator({ subscribers: options.subscribers, seed: options.seed ?? 7, startMs, endMs })
  const lakehouse = await Lakehouse.open({ path: ':memory:', ...(options.settings === undefined ? {} : { settings: options.settings }) })
  try {
    const events = options.subscribers * (options.eventsPerSubscriber ?? 12)
    const step = (endMs - startMs) / events
    let offset = 0n
    let batch: Partial<Record<SourceStream, LandedEvent[]>> = {}
    let size = 0
    const add = (stream: SourceStream, value: unknown): void => {
      (batch[stream] ??= []).push({ topic: `synthetic.${stream}`, partition: 0, offset: offset++, schemaId: 1, value: value as Record<string, unknown> })
      size++
    }
    const flush = async (): Promise<void> => {
      if (size === 0) return
      await lakehouse.landBatch({ now: endMs, events: batch, offsets: [] })
      batch = {}
      size = 0
    }
    for (let i = 0; i < events; i++) {
      const time = Math.floor(startMs + step * i)
      const e = generator.eventAt(time)
      add(e.stream, e.value)
      if (i % 1000 === 999) for (const o of generator.outcomesDue(time)) add(o.stream, o.value)
      if (size >= 20_000) await flush()
    }
    for (const o of generator.outcomesDue(endMs)) add(o.stream, o.value)
    await flush()
    return await lakehouseTrainingSet(lakehouse, { horizonDays: options.horizonDays ?? 7, path: ':memory:' })
  } finally {
    lakehouse.close()
  }
}
