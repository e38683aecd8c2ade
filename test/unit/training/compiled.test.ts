import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { seededRandom } from '../../../core/random.ts'
import type { Random } from '../../../core/random.ts'
import { CompiledForest, MAX_COMPLETE_DEPTH } from '../../../training/compiled.ts'
import { trainForest } from '../../../training/forest.ts'
import type { ForestModel } from '../../../training/forest.ts'

/** The plain node walk scoring is checked against: `x <= threshold` left, anything else (NaN) right. */
function walk (model: ForestModel, x: ArrayLike<number>, offset: number): number {
  let sum = 0
  for (let t = 0; t < model.roots.length; t++) {
    let node = model.roots[t] as number
    while ((model.feature[node] as number) >= 0) {
      node = (x[offset + (model.feature[node] as number)] as number) <= (model.threshold[node] as number) ? model.left[node] as number : model.right[node] as number
    }
    sum += model.value[node] as number
  }
  return sum / model.roots.length
}

/** Thresholds drawn from a few values, so rows can sit exactly on one. */
const CUTS = [-1.5, -0.5, 0, 0.25, 0.5, 1, 2]

interface Shape {
  trees: number
  columns: number
  maxDepth: number
  /** Chance that a node above maxDepth is a leaf anyway. */
  leafChance: number
}

/** A forest of random trees (in the flat layout `trainForest` returns), with leaves at any depth. */
function randomForest (random: Random, shape: Shape): ForestModel {
  const feature: number[] = []
  const threshold: number[] = []
  const left: number[] = []
  const right: number[] = []
  const value: number[] = []
  const grow = (depth: number): number => {
    const node = value.length
    value.push(random.next())
    feature.push(-1)
    threshold.push(0)
    left.push(-1)
    right.push(-1)
    if (depth < shape.maxDepth && !random.chance(shape.leafChance)) {
      feature[node] = random.int(0, shape.columns - 1)
      threshold[node] = random.pick(CUTS)
      left[node] = grow(depth + 1)
      right[node] = grow(depth + 1)
    }
    return node
  }
  const roots = Array.from({ length: shape.trees }, () => grow(0))
  return {
    nFeatures: shape.columns,
    roots: Int32Array.from(roots),
    feature: Int32Array.from(feature),
    threshold: Float64Array.from(threshold),
    left: Int32Array.from(left),
    right: Int32Array.from(right),
    value: Float64Array.from(value),
    importances: new Float64Array(shape.columns)
  }
}

/** Rows mixing ordinary values, values exactly on thresholds, NaN and both infinities. */
function randomRows (random: Random, rows: number, columns: number): Float64Array {
  const specials = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]
  return Float64Array.from({ length: rows * columns }, () => {
    const draw = random.next()
    if (draw < 0.1) return random.pick(specials)
    if (draw < 0.3) return random.pick(CUTS)
    return random.normal(0, 1.5)
  })
}

/** Asserts predictBatch and predictOne give exactly the walk's probability for every row. */
function assertSameAsWalk (model: ForestModel, x: Float64Array, rows: number): CompiledForest {
  const forest = new CompiledForest(model)
  const batch = forest.predictBatch(x, rows)
  for (let r = 0; r < rows; r++) {
    const expected = walk(model, x, r * model.nFeatures)
    assert.ok(Object.is(batch[r], expected), `row ${r}: predictBatch ${batch[r]}, walk ${expected}`)
    const one = forest.predictOne(x, r * model.nFeatures)
    assert.ok(Object.is(one, expected), `row ${r}: predictOne ${one}, walk ${expected}`)
  }
  return forest
}

describe('CompiledForest', () => {
  describe('when the forest is shallow enough to pad into complete trees', () => {
    const cases: Array<[string, Shape]> = [
      ['stumps', { trees: 17, columns: 5, maxDepth: 1, leafChance: 0 }],
      ['full trees of depth 6', { trees: 40, columns: 9, maxDepth: 6, leafChance: 0 }],
      ['trees with early leaves', { trees: 40, columns: 9, maxDepth: 7, leafChance: 0.3 }],
      ['an even depth with early leaves', { trees: 25, columns: 4, maxDepth: 4, leafChance: 0.2 }],
      ['the deepest padded trees', { trees: 6, columns: 6, maxDepth: MAX_COMPLETE_DEPTH, leafChance: 0.25 }]
    ]
    for (const [name, shape] of cases) {
      it(`scores ${name} bit-identically to the node walk, NaN and infinities included`, () => {
        const random = seededRandom(shape.maxDepth * 101 + shape.trees)
        const model = randomForest(random, shape)
        // 300 rows: a full block of 256, then eight-row groups, then a ragged tail.
        const x = randomRows(random, 300, shape.columns)
        assert.equal(assertSameAsWalk(model, x, 300).layout, 'complete')
        // Fewer rows than one group of eight.
        assert.equal(assertSameAsWalk(model, x, 5).layout, 'complete')
      })
    }

    it('scores a forest of lone leaves (no tree split) as the mean of its roots', () => {
      const model = randomForest(seededRandom(3), { trees: 7, columns: 3, maxDepth: 0, leafChance: 1 })
      const x = randomRows(seededRandom(4), 20, 3)
      const forest = assertSameAsWalk(model, x, 20)
      assert.equal(forest.layout, 'complete')
      assert.equal(forest.predictOne(x), forest.bias)
    })

    it('scores a trained forest bit-identically, and writes only the rows asked for', () => {
      const random = seededRandom(8)
      const rows = 3000
      const columns = 6
      const x = Float64Array.from({ length: rows * columns }, () => Math.round(random.normal(0, 2) * 4) / 4)
      const y = Uint8Array.from({ length: rows }, (_, r) => (x[r * columns]! + x[r * columns + 1]! * x[r * columns + 2]! + random.normal(0, 1) > 0.5 ? 1 : 0))
      const model = trainForest({ x, y, rows, columns }, { nEstimators: 30, maxDepth: 6, seed: 1 })
      const probe = randomRows(random, 100, columns)
      assert.equal(assertSameAsWalk(model, probe, 100).layout, 'complete')
      assert.equal(assertSameAsWalk(model, x, 1000).layout, 'complete')
      const out = new Float64Array(60).fill(-1)
      new CompiledForest(model).predictBatch(probe, 50, out)
      assert.ok(out.subarray(0, 50).every((p, r) => p === walk(model, probe, r * columns)))
      assert.ok(out.subarray(50).every(p => p === -1))
    })
  })

  describe('when the forest is too deep or too large to pad', () => {
    it(`walks the nodes of trees deeper than ${MAX_COMPLETE_DEPTH}, with the same results`, () => {
      const random = seededRandom(21)
      const shape = { trees: 12, columns: 5, maxDepth: MAX_COMPLETE_DEPTH + 3, leafChance: 0.2 }
      const model = randomForest(random, shape)
      const x = randomRows(random, 40, shape.columns)
      assert.equal(assertSameAsWalk(model, x, 40).layout, 'nodes')
    })

    it('walks the nodes when padding every tree to the deepest one would take too much memory', () => {
      // 600 narrow trees of depth 12 would pad to 600 x 8,191 slots.
      const random = seededRandom(22)
      const model = randomForest(random, { trees: 600, columns: 4, maxDepth: MAX_COMPLETE_DEPTH, leafChance: 0.45 })
      const x = randomRows(random, 30, 4)
      assert.equal(assertSameAsWalk(model, x, 30).layout, 'nodes')
    })
  })
})
