import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { RandomForestClassifier } from 'ml-random-forest'
import { seededRandom } from '../../helpers/random.ts'
import { CompiledForest } from '../../../training/compiled.ts'
import type { ForestModel, TrainingMatrix } from '../../../training/forest.ts'
import { rocAuc } from '../../../training/metrics.ts'
import { convertMlRandomForest, fitMlRandomForest, largestBelow, trainMlRandomForest } from '../../../training/ml-random-forest.ts'

/** An ml-cart tree node as the package leaves it (ml-cart src/TreeNode.js). */
interface PackageNode {
  splitColumn?: number
  splitValue?: number
  left?: PackageNode
  right?: PackageNode
  distribution?: { columns: number, get: (row: number, column: number) => number }
  classify: (row: number[]) => unknown
}

/** A noisy rule on two features and an interaction, one integer-valued feature, the rest noise. */
function synthetic (rows: number, seed: number, columns = 8): TrainingMatrix {
  const random = seededRandom(seed)
  const x = new Float64Array(rows * columns)
  const y = new Uint8Array(rows)
  for (let i = 0; i < rows; i++) {
    for (let f = 0; f < columns; f++) x[i * columns + f] = f === 4 ? random.int(0, 3) : random.normal(0, 1)
    const z = 1.2 * x[i * columns]! - 0.8 * x[i * columns + 1]! + 0.6 * x[i * columns + 2]! * x[i * columns + 3]! + random.normal(0, 1)
    y[i] = z > 0.8 ? 1 : 0
  }
  return { x, y, rows, columns }
}

function rowsOf (m: TrainingMatrix, from: number, to: number): TrainingMatrix {
  return { x: m.x.slice(from * m.columns, to * m.columns), y: m.y.slice(from, to), rows: to - from, columns: m.columns }
}

function packageTree (forest: RandomForestClassifier): { root: PackageNode, columns: number[] } {
  return { root: (forest.estimators?.[0] as { root: PackageNode }).root, columns: forest.indexes?.[0] as number[] }
}

/** Tree `t` alone, each node valued by its own index: CompiledForest then returns the leaf reached. */
function leafFinder (model: ForestModel, t: number): CompiledForest {
  return new CompiledForest({ ...model, roots: Int32Array.of(model.roots[t] as number), value: Float64Array.from(model.value, (_, i) => i) })
}

/**
 * Walks a package tree and its conversion side by side, checking they have the same shape and
 * splits; returns which converted node each package leaf became.
 */
function matchLeaves (root: PackageNode, columns: readonly number[], model: ForestModel, ours: number): Map<unknown, number> {
  const leaves = new Map<unknown, number>()
  const pending: Array<[PackageNode, number]> = [[root, ours]]
  while (pending.length > 0) {
    const [node, index] = pending.pop() as [PackageNode, number]
    if (node.left !== undefined && node.right !== undefined) {
      assert.equal(model.feature[index], columns[node.splitColumn as number])
      assert.ok((model.threshold[index] as number) < (node.splitValue as number))
      pending.push([node.left, model.left[index] as number], [node.right, model.right[index] as number])
    } else {
      assert.equal(model.feature[index], -1)
      leaves.set(node.distribution, index)
    }
  }
  return leaves
}

/** Every split value of a tree, with the feature it splits (in training-matrix columns). */
function splitsOf (root: PackageNode, columns: readonly number[]): Array<[number, number]> {
  const splits: Array<[number, number]> = []
  const pending = [root]
  while (pending.length > 0) {
    const node = pending.pop() as PackageNode
    if (node.left === undefined || node.right === undefined) continue
    splits.push([columns[node.splitColumn as number] as number, node.splitValue as number])
    pending.push(node.left, node.right)
  }
  return splits
}

describe('ml-random-forest engine', () => {
  const data = synthetic(500, 1)
  const train = rowsOf(data, 0, 300)
  const test = rowsOf(data, 300, 500)
  const options = { nEstimators: 12, maxDepth: 5, maxFeatures: 0.5, seed: 4 } as const

  describe('when classes are not weighted', () => {
    const fit = fitMlRandomForest(train, { ...options, classWeight: 'none' })
    const model = convertMlRandomForest(train, fit)

    it('routes every row, including rows exactly on a split value, to the leaf the package does', () => {
      assert.equal(model.roots.length, options.nEstimators)
      for (let t = 0; t < options.nEstimators; t++) {
        const { root, columns } = packageTree(fit.forests[t] as RandomForestClassifier)
        // Features are drawn once per tree: four distinct columns of eight.
        assert.equal(new Set(columns).size, 4)
        const leaves = matchLeaves(root, columns, model, model.roots[t] as number)
        const finder = leafFinder(model, t)
        const probes: Float64Array[] = []
        for (const m of [train, test]) for (let r = 0; r < m.rows; r++) probes.push(m.x.slice(r * m.columns, (r + 1) * m.columns))
        // Package splits send x < value left; a threshold equal to the value would send these left too.
        for (const [f, value] of splitsOf(root, columns)) {
          for (const v of [value, largestBelow(value)]) {
            const row = test.x.slice(0, test.columns)
            row[f] = v
            probes.push(row)
          }
        }
        assert.ok(probes.length > test.rows + train.rows + 10)
        for (const row of probes) {
          const reached = root.classify(columns.map(c => row[c] as number))
          assert.equal(finder.predictOne(row), leaves.get(reached), `tree ${t}, row ${Array.from(row).join(',')}`)
        }
      }
    })

    it('values a leaf at the class-1 fraction of its training rows, as the package has it', () => {
      let checked = 0
      for (let t = 0; t < options.nEstimators; t++) {
        const { root, columns } = packageTree(fit.forests[t] as RandomForestClassifier)
        for (const [distribution, leaf] of matchLeaves(root, columns, model, model.roots[t] as number)) {
          const d = distribution as NonNullable<PackageNode['distribution']>
          const fraction = d.columns > 1 ? d.get(0, 1) : 0
          assert.ok(Math.abs((model.value[leaf] as number) - fraction) < 1e-12, `tree ${t} leaf ${leaf}: ${model.value[leaf]} vs ${fraction}`)
          checked++
        }
      }
      assert.ok(checked > options.nEstimators * 4)
    })

    it('values every node and credits every split from the rows drawn for its tree', () => {
      const importances = new Float64Array(train.columns)
      for (let t = 0; t < options.nEstimators; t++) {
        const draws = fit.draws[t] as Uint32Array
        const counts = new Map<number, [number, number]>()
        for (let r = 0; r < train.rows; r++) {
          let node = model.roots[t] as number
          for (;;) {
            const c = counts.get(node) ?? [0, 0]
            c[train.y[r] as number]! += draws[r] as number
            counts.set(node, c)
            const f = model.feature[node] as number
            if (f < 0) break
            node = (train.x[r * train.columns + f] as number) <= (model.threshold[node] as number) ? model.left[node] as number : model.right[node] as number
          }
        }
        const impurity = ([c0, c1]: [number, number]): number => c0 + c1 - (c0 * c0 + c1 * c1) / (c0 + c1)
        const tree = new Float64Array(train.columns)
        for (const [node, c] of counts) {
          assert.ok(Math.abs((model.value[node] as number) - c[1] / (c[0] + c[1])) < 1e-12)
          const f = model.feature[node] as number
          if (f >= 0) tree[f]! += impurity(c) - impurity(counts.get(model.left[node] as number)!) - impurity(counts.get(model.right[node] as number)!)
        }
        const sum = tree.reduce((s, v) => s + v, 0)
        for (let f = 0; f < train.columns; f++) importances[f]! += (tree[f] as number) / sum
      }
      const sum = importances.reduce((s, v) => s + v, 0)
      for (let f = 0; f < train.columns; f++) assert.ok(Math.abs((model.importances[f] as number) - (importances[f] as number) / sum) < 1e-9)
    })

    it('scores soft probabilities that rank held-out rows well, not vote counts', () => {
      const p = new CompiledForest(model).predictBatch(test.x, test.rows)
      assert.ok(p.every(v => v >= 0 && v <= 1))
      const auc = rocAuc(test.y, p)
      assert.ok(auc > 0.75, `test AUC ${auc}`)
      const trees = options.nEstimators
      const offGrid = Array.from(p).filter(v => Math.abs(v * trees - Math.round(v * trees)) > 1e-9)
      assert.ok(offGrid.length > test.rows / 2, `${offGrid.length} of ${test.rows} probabilities are not multiples of 1/${trees}`)
      assert.ok(new Set(p).size > trees * 3)
    })

    it('ranks the informative features first, with importances summing to 1', () => {
      const ranked = Array.from(model.importances).map((v, f) => ({ v, f })).sort((a, b) => b.v - a.v)
      assert.ok(ranked.slice(0, 3).some(r => r.f === 0), `ranking ${ranked.map(r => r.f).join(',')}`)
      assert.ok(Math.abs(model.importances.reduce((s, v) => s + v, 0) - 1) < 1e-9)
    })
  })

  describe('when classes are balanced', () => {
    it('grows the package trees on class-weighted copies, so their leaves agree with the weighted values', () => {
      const fit = fitMlRandomForest(train, { ...options, classWeight: 'balanced' })
      const model = convertMlRandomForest(train, fit)
      let difference = 0
      let leaves = 0
      for (let t = 0; t < options.nEstimators; t++) {
        const { root, columns } = packageTree(fit.forests[t] as RandomForestClassifier)
        for (const [distribution, leaf] of matchLeaves(root, columns, model, model.roots[t] as number)) {
          const d = distribution as NonNullable<PackageNode['distribution']>
          difference += Math.abs((d.columns > 1 ? d.get(0, 1) : 0) - (model.value[leaf] as number))
          leaves++
        }
      }
      // Copies are drawn at random around the exact weight ratio; without them the mean gap is about 0.05.
      assert.ok(difference / leaves < 0.015, `mean gap ${difference / leaves} over ${leaves} leaves`)
    })

    it('weighs every node value by class, so an unbootstrapped root is at 0.5', () => {
      const model = trainMlRandomForest(train, { ...options, nEstimators: 4, bootstrap: false, classWeight: 'balanced' })
      for (const root of model.roots) assert.ok(Math.abs((model.value[root] as number) - 0.5) < 1e-12)
      const none = trainMlRandomForest(train, { ...options, nEstimators: 4, bootstrap: false, classWeight: 'none' })
      const positives = train.y.reduce((s, v) => s + v, 0)
      for (const root of none.roots) assert.ok(Math.abs((none.value[root] as number) - positives / train.rows) < 1e-12)
      const mean = (m: ForestModel): number => new CompiledForest(m).predictBatch(test.x, test.rows).reduce((s, v) => s + v, 0) / test.rows
      assert.ok(mean(model) > mean(none) + 0.05, `${mean(model)} vs ${mean(none)}`)
    })
  })

  it('grows the same forest from the same seed, and another from another seed', () => {
    const a = trainMlRandomForest(train, { ...options, nEstimators: 3 })
    const b = trainMlRandomForest(train, { ...options, nEstimators: 3 })
    const c = trainMlRandomForest(train, { ...options, nEstimators: 3, seed: 5 })
    assert.deepEqual(a, b)
    assert.notDeepEqual(a.threshold, c.threshold)
  })

  it('asks the package for one feature per tree when maxFeatures is 1', () => {
    const fit = fitMlRandomForest(train, { ...options, nEstimators: 3, maxFeatures: 1 })
    for (const forest of fit.forests) assert.equal(forest.indexes?.[0]?.length, 1)
  })

  it('refuses bad options, one class and missing values with coded errors', () => {
    for (const bad of [{ maxDepth: 0 }, { maxFeatures: -1 }, { minSamplesLeaf: 0 }, { nEstimators: 1.5 }, { seed: 0.5 }, { classWeight: 'inverse' as unknown as 'none' }]) {
      assert.throws(() => trainMlRandomForest(train, bad), { code: 'CHURN_TRAIN_BAD_OPTIONS' }, JSON.stringify(bad))
    }
    assert.throws(() => trainMlRandomForest({ ...train, y: new Uint8Array(train.rows) }), { code: 'CHURN_TRAIN_ONE_CLASS' })
    const withNaN = { ...train, x: train.x.slice() }
    withNaN.x[9] = Number.NaN
    assert.throws(() => trainMlRandomForest(withNaN), { code: 'CHURN_TRAIN_BAD_INPUT' })
  })
})

describe('largestBelow', () => {
  it('turns a strict bound into an inclusive one for every double, zeros, subnormals and infinities included', () => {
    const random = seededRandom(3)
    const bounds = [0, -0, 1, -1, 0.5, -2.5, 3.0000000000000004, Number.MIN_VALUE, -Number.MIN_VALUE, 1e-310, Number.MAX_VALUE, -Number.MAX_VALUE, Infinity, ...Array.from({ length: 50 }, () => random.normal(0, 100))]
    for (const bound of bounds) {
      const below = largestBelow(bound)
      assert.ok(below < bound, `${below} < ${bound}`)
      const probes = [bound, below, largestBelow(below), -0, 0, Infinity, -Infinity, Number.NaN, (bound + below) / 2]
      for (const x of probes) assert.equal(x <= below, x < bound, `x = ${x}, bound = ${bound}`)
    }
  })
})
