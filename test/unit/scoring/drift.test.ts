import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DriftMonitor } from '../../../scoring/drift.ts'
import type { ModelArtifact } from '../../../training/artifact.ts'
import { featureDistribution, scoreDistribution } from '../../../training/drift.ts'
import { seededRandom } from '../../helpers/random.ts'

function artifactWith (train: Float64Array, scores: Float64Array): ModelArtifact {
  return {
    version: 4,
    features: { kind: 'lakehouse', names: ['latency'], definition: '', hash: 'sha256:x' },
    distributions: { features: [featureDistribution(train)], score: scoreDistribution(scores) }
  } as unknown as ModelArtifact
}

describe('drift monitor', () => {
  const random = seededRandom(5)
  const train = Float64Array.from({ length: 5000 }, () => 40 + random.next() * 20)
  const scores = Float64Array.from({ length: 5000 }, () => random.next() * 0.5)

  it('reports a small PSI for traffic like the training set and flags a shifted feature', () => {
    const monitor = new DriftMonitor(artifactWith(train, scores), { window: 2000, threshold: 0.2 })
    const same = Float64Array.from({ length: 2000 }, () => 40 + random.next() * 20)
    monitor.add(same, same.length, Float64Array.from({ length: 2000 }, () => random.next() * 0.5))
    let report = monitor.report()
    assert.equal(report.rows, 2000)
    assert.ok((report.features[0]?.psi ?? 1) < 0.05, `PSI ${report.features[0]?.psi}`)
    assert.deepEqual(report.drifted, [])

    // The window rolls: 2000 shifted rows replace the old ones entirely.
    const shifted = Float64Array.from({ length: 2000 }, () => 55 + random.next() * 20)
    monitor.add(shifted, shifted.length, Float64Array.from({ length: 2000 }, () => 0.5 + random.next() * 0.5))
    report = monitor.report()
    assert.equal(report.rows, 2000)
    assert.ok((report.features[0]?.psi ?? 0) > 0.2, `PSI ${report.features[0]?.psi}`)
    assert.deepEqual(report.drifted, ['latency', 'score'])
  })

  it('counts missing values in their own bin', () => {
    const monitor = new DriftMonitor(artifactWith(train, scores), { window: 100, threshold: 0.2 })
    monitor.add(new Float64Array(100).fill(Number.NaN), 100, new Float64Array(100).fill(0.1))
    assert.ok((monitor.report().features[0]?.psi ?? 0) > 1, 'all-missing traffic against a training set with none')
  })
})
