/**
 * Training from the lakehouse's Parquet export (`churn train --from-export`), the path of the
 * retraining CronJob and the API pod's init container, which cannot open the lakehouse file while
 * the ingest role holds it. The export must give the very training set the lakehouse gives, also
 * when it is the exports of several lakehouses (one per partition group) side by side. And the init
 * container's path on the real stack: `ingest --export-every`, then `bootstrap --from-export`.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { DAY_MS } from '../../../lakehouse/features.ts'
import { Lakehouse } from '../../../lakehouse/lakehouse.ts'
import type { LandedEvent } from '../../../lakehouse/lakehouse.ts'
import type { SourceStream } from '../../../schemas/catalog.ts'
import { TrafficGenerator } from '../../../streams/generator.ts'
import { ModelRegistry } from '../../../training/registry.ts'
import { exportCoverage, exportTrainingSet, lakehouseTrainingSet, uncoveredMessages } from '../../../training/sets.ts'
import { isolatedConfig } from '../../helpers/context.ts'
import type { TrainingSet } from '../../../training/train.ts'

const CLI = path.resolve(import.meta.dirname, '../../../cli/main.ts')
const END_MS = Date.UTC(2026, 10, 1)

/**
 * Lands 30 days of synthetic traffic for `subscribers` into in-memory lakehouses: `all` gets every
 * event, and `shards` lakehouses get the events of their subscribers only (by the subscriber id's
 * last character), as lakehouses of partition groups would.
 */
async function landTraffic (subscribers: number, shards: number): Promise<{ all: Lakehouse, parts: Lakehouse[] }> {
  const startMs = END_MS - 30 * DAY_MS
  const generator = new TrafficGenerator({ subscribers, seed: 5, startMs, endMs: END_MS })
  const all = await Lakehouse.open({ path: ':memory:' })
  const parts = await Promise.all(Array.from({ length: shards }, async () => await Lakehouse.open({ path: ':memory:' })))
  const events = subscribers * 12
  const step = (END_MS - startMs) / events
  let offset = 0n
  const batches: Array<Partial<Record<SourceStream, LandedEvent[]>>> = Array.from({ length: shards + 1 }, () => ({}))
  const add = (stream: SourceStream, value: Record<string, unknown>): void => {
    const event: LandedEvent = { topic: `synthetic.${stream}`, partition: 0, offset: offset++, schemaId: 1, value }
    const shard = String(value.subscriberId).charCodeAt(String(value.subscriberId).length - 1) % shards
    for (const i of [0, shard + 1]) ((batches[i] as Partial<Record<SourceStream, LandedEvent[]>>)[stream] ??= []).push(event)
  }
  for (let i = 0; i < events; i++) {
    const time = Math.floor(startMs + step * i)
    const e = generator.eventAt(time)
    add(e.stream, e.value as unknown as Record<string, unknown>)
    if (i % 1000 === 999) for (const o of generator.outcomesDue(time)) add(o.stream, o.value as unknown as Record<string, unknown>)
  }
  for (const o of generator.outcomesDue(END_MS)) add(o.stream, o.value as unknown as Record<string, unknown>)
  const lakehouses = [all, ...parts]
  for (const [i, lakehouse] of lakehouses.entries()) await lakehouse.landBatch({ now: END_MS, events: batches[i] ?? {}, offsets: [] })
  return { all, parts }
}

/** What the model sees, but the feature values: rows, labels and their order, not where they came from. */
function essence (set: TrainingSet): unknown {
  return { rows: set.rows, y: [...set.y], keys: set.keys, schema: set.schema, labels: set.labels, window: set.window }
}

/**
 * Feature values equal up to the last bits: DuckDB sums in parallel, in an order that depends on
 * how the scan is split, so an average over a Parquet file can differ from the same average over
 * the table in the 15th digit.
 */
function assertSameFeatures (actual: TrainingSet, expected: TrainingSet): void {
  assert.equal(actual.x.length, expected.x.length)
  const columns = expected.schema.names.length
  for (let i = 0; i < expected.x.length; i++) {
    const [a, e] = [actual.x[i] as number, expected.x[i] as number]
    const same = Number.isNaN(e) ? Number.isNaN(a) : Math.abs(a - e) <= 1e-9 * Math.max(1, Math.abs(e))
    if (!same) assert.fail(`row ${Math.floor(i / columns)} (${expected.keys[Math.floor(i / columns)]}), ${expected.schema.names[i % columns]}: ${a} from the export, ${e} from the lakehouse`)
  }
}

describe('training from a Parquet export', () => {
  let dir = ''
  let direct: TrainingSet
  let all: Lakehouse
  let parts: Lakehouse[] = []

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'churn-from-export-'))
    ;({ all, parts } = await landTraffic(600, 2))
    direct = await lakehouseTrainingSet(all, { horizonDays: 7, path: ':memory:' })
    await all.exportParquet(path.join(dir, 'single'))
    for (const [i, part] of parts.entries()) await part.exportParquet(path.join(dir, 'sharded', `ingest-${i}`))
  })
  after(async () => {
    all.close()
    for (const part of parts) part.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('gives the training set the lakehouse gives, row for row', async () => {
    assert.ok(direct.rows > 100, `${direct.rows} labelled rows`)
    const fromExport = await exportTrainingSet(path.join(dir, 'single'), { horizonDays: 7 })
    assert.deepEqual(essence(fromExport), essence(direct))
    assertSameFeatures(fromExport, direct)
    assert.deepEqual(fromExport.source, { kind: 'lakehouse', path: path.join(dir, 'single') })
  })

  it('gives the same set from the exports of several lakehouses, one folder each', async () => {
    const fromShards = await exportTrainingSet(path.join(dir, 'sharded'), { horizonDays: 7 })
    assert.deepEqual(essence(fromShards), essence(direct))
    assertSameFeatures(fromShards, direct)
  })

  it('names the missing table when the folder holds no export', async () => {
    await assert.rejects(exportTrainingSet(path.join(dir, 'sharded', 'nothing-here'), { horizonDays: 7 }), { code: 'CHURN_TRAIN_BAD_INPUT', message: /export folder/ })
    const empty = path.join(dir, 'empty')
    await mkdir(empty)
    await assert.rejects(exportTrainingSet(empty, { horizonDays: 7 }), { code: 'CHURN_TRAIN_BAD_INPUT', message: /silver_billing\.parquet/ })
  })

  it('trains, stores and promotes through `churn train --from-export`', async () => {
    const models = path.join(dir, 'models')
    const env = { ...process.env, MODEL_DIR: models, LOG_LEVEL: 'warn', MLFLOW_TRACKING_URI: '', DUCKDB_PATH: path.join(dir, 'never-opened.duckdb') }
    delete (env as Record<string, string | undefined>).MLFLOW_TRACKING_URI
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'train', '--from-export', path.join(dir, 'single'), '--trees', '30', '--folds', '0'], { env })
    assert.match(stdout, new RegExp(`churn\\s+1\\s+forest\\s+crm-outcomes\\s+${direct.rows}\\s`))
    assert.match(stdout, /promoted: first model/)
    const model = await new ModelRegistry(models).current('churn')
    assert.equal(model?.training.source.kind, 'lakehouse')
    assert.equal(model?.training.rows, direct.rows)
  })
})

describe('the export\'s coverage', () => {
  it('counts the messages an export does not hold yet, per partition', () => {
    const high = new Map([['a:0', 10n], ['a:1', 5n], ['b:0', 0n]])
    const low = new Map([['a:0', 2n], ['a:1', 0n], ['b:0', 0n]])
    assert.equal(uncoveredMessages(high, low, new Map()), 13n)
    assert.equal(uncoveredMessages(high, low, new Map([['a:0', 10n]])), 5n)
    assert.equal(uncoveredMessages(high, low, new Map([['a:0', 10n], ['a:1', 5n]])), 0n)
  })
})

describe('churn bootstrap --from-export', () => {
  const cleanups: Array<() => Promise<void>> = []
  after(async () => { for (const cleanup of cleanups) await cleanup() })

  it('waits for the running ingest\'s export to cover the topics, trains from it and promotes', async () => {
    const { config, env, dir, cleanup } = await isolatedConfig()
    cleanups.push(cleanup)
    const run = async (args: string[]): Promise<{ stdout: string, stderr: string }> =>
      await promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...env, LOG_LEVEL: 'warn' }, maxBuffer: 8 * 1024 * 1024 })
    await run(['produce', '--subscribers', '600', '--events', '24000'])
    const exportDir = path.join(dir, 'export', 'ingest-0')
    // The init container starts before ingest has caught up: it must wait, not train on less.
    const waiting = run(['bootstrap', '--from-export', path.join(dir, 'export'), '--wait-timeout', '300', '--trees', '30', '--folds', '0'])
    await run(['ingest', '--until-caught-up', '--export-every', '3600', '--export-dir', exportDir])
    const covered = await exportCoverage(path.join(dir, 'export'))
    assert.ok([...covered.values()].reduce((sum, n) => sum + n, 0n) >= 24_000n, 'export.json names the offsets it covers')
    const { stdout } = await waiting
    assert.match(stdout, /churn\s+1\s+forest\s+crm-outcomes\s+\d+\s/)
    assert.match(stdout, /serving churn v1/)
    const model = await new ModelRegistry(config.model.dir).current('churn')
    assert.equal(model?.training.source.kind, 'lakehouse')
    assert.equal(model?.training.source.path, path.join(dir, 'export'))
  })
})
