/**
 * The scorer and the API pick up a promoted model without a restart, and refuse one trained on
 * other features: a models folder on disk, versions promoted, rolled back and refused while a
 * ModelHolder polls it.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ModelHolder } from '../../../scoring/model-holder.ts'
import { fitWith } from '../../../training/engines.ts'
import { runTraining } from '../../../training/pipeline.ts'
import type { RunSettings } from '../../../training/pipeline.ts'
import { ModelRegistry } from '../../../training/registry.ts'
import { csvTrainingSet, lakehouseFeatureHash } from '../../../training/sets.ts'
import { syntheticTrainingSet } from '../../../training/synthetic.ts'
import type { TrainingSet } from '../../../training/train.ts'
import { logger } from '../../helpers/context.ts'
import { TELCO } from '../../helpers/telco.ts'

describe('model holder', () => {
  let dir: string
  let registry: ModelRegistry
  let gold: TrainingSet
  const settings = (seed: number): RunSettings => ({
    name: 'churn',
    registry,
    train: { engine: 'forest', fit: fitWith('forest'), forest: { nEstimators: 20, seed }, folds: 0, tiers: { high: 0.65, medium: 0.35 } },
    gate: { tolerance: 1, minAuc: 0 },
    logger
  })
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'churn-model-holder-'))
    registry = new ModelRegistry(dir)
    gold = await syntheticTrainingSet({ subscribers: 600 })
  })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('serves the promoted version, swaps to a newly promoted one, and refuses one of other features', async () => {
    const swaps: Array<[number, number | undefined]> = []
    const holder = new ModelHolder({ registry, name: 'churn', pollMs: 60_000, logger, expectedFeatureHash: lakehouseFeatureHash(), onSwap: (m, p) => { swaps.push([m.version, p?.version]) } })
    // Read through a function: an assertion on the getter would narrow its type for good.
    const serving = (): number | undefined => holder.current?.version
    await holder.start()
    try {
      assert.equal(serving(), undefined)
      assert.match(holder.status.problem ?? '', /no version of model churn is promoted/)

      await runTraining(gold, settings(1))
      await holder.refresh()
      assert.equal(serving(), 1)
      const first = holder.current

      await runTraining(gold, settings(2))
      assert.equal(holder.current, first, 'nothing changes until the holder looks')
      await holder.refresh()
      assert.equal(serving(), 2)
      assert.equal(holder.status.problem, undefined)

      // A tabular model promoted under the same name: other features, refused; v2 keeps serving.
      const telco = await csvTrainingSet(TELCO, { target: 'Churn', positive: 'Yes' })
      const outcome = await runTraining(telco, { ...settings(3), promote: false })
      await registry.promote('churn', outcome.artifact.version, 'by hand, wrongly')
      await holder.refresh()
      assert.equal(serving(), 2)
      assert.match(holder.status.problem ?? '', /v3 refused .*trained on features sha256:.*still serving v2/)

      await registry.rollback('churn')
      await holder.refresh()
      assert.equal(serving(), 2)
      await registry.promote('churn', 1, 'back to the first')
      await holder.refresh()
      assert.equal(serving(), 1)
      assert.deepEqual(swaps, [[1, undefined], [2, 1], [1, 2]])
    } finally {
      holder.stop()
    }
  })
})
