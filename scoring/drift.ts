/**
 * Drift watch: the last `window` scored rows, binned as the model's training distributions were
 * (per feature: its training deciles plus a missing bin; the score: tenths), compared with those
 * distributions by the population stability index. A ring of bin indexes per feature keeps the
 * window's counts current in O(features) per row; PSI is computed only when asked.
 */
import type { ModelArtifact } from '../training/artifact.ts'
import { binIndex, populationStabilityIndex } from '../training/drift.ts'
import type { Distribution } from '../training/drift.ts'

export interface DriftReport {
  modelVersion: number
  /** Rows in the window (at most its size). */
  rows: number
  window: number
  threshold: number
  score: number
  features: Array<{ name: string, psi: number }>
  /** Features (and 'score') whose PSI is above the threshold. */
  drifted: string[]
}

class RingBins {
  readonly edges: readonly number[]
  /** Bins 0..edges.length are values; the last one is "missing". */
  readonly counts: Float64Array
  readonly #ring: Uint16Array

  constructor (edges: readonly number[], window: number) {
    this.edges = edges
    this.counts = new Float64Array(edges.length + 2)
    this.#ring = new Uint16Array(window)
  }

  put (slot: number, filled: boolean, value: number): void {
    if (filled) this.counts[this.#ring[slot] as number]!--
    const bin = Number.isNaN(value) ? this.edges.length + 1 : binIndex(this.edges, value)
    this.#ring[slot] = bin
    this.counts[bin]!++
  }

  distribution (rows: number): Distribution {
    const missing = this.counts[this.edges.length + 1] as number
    const present = rows - missing
    return {
      edges: [...this.edges],
      shares: Array.from(this.counts.subarray(0, this.edges.length + 1), c => present === 0 ? 0 : c / present),
      missing: rows === 0 ? 0 : missing / rows
    }
  }
}

export class DriftMonitor {
  readonly #artifact: ModelArtifact
  readonly #window: number
  readonly #threshold: number
  readonly #features: RingBins[]
  readonly #score: RingBins
  #next = 0
  #rows = 0

  constructor (artifact: ModelArtifact, options: { window: number, threshold: number }) {
    this.#artifact = artifact
    this.#window = options.window
    this.#threshold = options.threshold
    this.#features = artifact.distributions.features.map(d => new RingBins(d.edges, options.window))
    this.#score = new RingBins(artifact.distributions.score.edges, options.window)
  }

  get modelVersion (): number {
    return this.#artifact.version
  }

  /** Adds `rows` scored rows: raw feature values (NaN where missing, before imputation) and scores. */
  add (x: Float64Array, rows: number, scores: ArrayLike<number>): void {
    const columns = this.#features.length
    for (let r = 0; r < rows; r++) {
      const slot = this.#next
      const filled = this.#rows === this.#window
      for (let c = 0; c < columns; c++) (this.#features[c] as RingBins).put(slot, filled, x[r * columns + c] as number)
      this.#score.put(slot, filled, scores[r] as number)
      this.#next = (slot + 1) % this.#window
      if (!filled) this.#rows++
    }
  }

  report (): DriftReport {
    const names = this.#artifact.features.names
    const training = this.#artifact.distributions
    const features = this.#features.map((bins, i) => ({
      name: names[i] as string,
      psi: this.#rows === 0 ? 0 : populationStabilityIndex(training.features[i] as Distribution, bins.distribution(this.#rows))
    }))
    const score = this.#rows === 0 ? 0 : populationStabilityIndex(training.score, this.#score.distribution(this.#rows))
    const drifted = features.filter(f => f.psi > this.#threshold).map(f => f.name)
    if (score > this.#threshold) drifted.push('score')
    return { modelVersion: this.#artifact.version, rows: this.#rows, window: this.#window, threshold: this.#threshold, score, features, drifted }
  }
}
