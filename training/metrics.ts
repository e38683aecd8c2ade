/**
 * Binary classification metrics over probabilities: ROC AUC (ties counted half, as the
 * Mann-Whitney statistic), PR AUC as average precision (scikit-learn's definition), the Brier
 * score, and a confusion matrix at a threshold.
 */

/**
 * Indices of `scores` sorted by descending score. A NaN score is refused: it equals nothing, so
 * the tie groups below would never advance past it (and a model that outputs NaN is broken).
 */
function descending (scores: ArrayLike<number>): Uint32Array {
  for (let i = 0; i < scores.length; i++) {
    if (Number.isNaN(scores[i])) throw new RangeError(`score ${i} is NaN; metrics need a number for every row`)
  }
  const order = Uint32Array.from({ length: scores.length }, (_, i) => i)
  return order.sort((a, b) => (scores[b] as number) - (scores[a] as number))
}

export function rocAuc (labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  const n = labels.length
  const order = descending(scores)
  let positives = 0
  for (let i = 0; i < n; i++) positives += labels[i] === 1 ? 1 : 0
  const negatives = n - positives
  if (positives === 0 || negatives === 0) return Number.NaN
  // Walk groups of tied scores from the top: each negative ranks below the positives seen so far.
  let seenPositives = 0
  let area = 0
  for (let i = 0; i < n;) {
    const score = scores[order[i] as number] as number
    let groupPositives = 0
    let groupNegatives = 0
    while (i < n && scores[order[i] as number] === score) {
      if (labels[order[i] as number] === 1) groupPositives++
      else groupNegatives++
      i++
    }
    area += groupNegatives * (seenPositives + groupPositives / 2)
    seenPositives += groupPositives
  }
  return area / (positives * negatives)
}

/** Average precision: sum over thresholds of (recall step) x precision. */
export function averagePrecision (labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  const n = labels.length
  const order = descending(scores)
  let positives = 0
  for (let i = 0; i < n; i++) positives += labels[i] === 1 ? 1 : 0
  if (positives === 0) return Number.NaN
  let truePositives = 0
  let seen = 0
  let ap = 0
  for (let i = 0; i < n;) {
    const score = scores[order[i] as number] as number
    let groupPositives = 0
    while (i < n && scores[order[i] as number] === score) {
      if (labels[order[i] as number] === 1) groupPositives++
      seen++
      i++
    }
    if (groupPositives > 0) {
      truePositives += groupPositives
      ap += (groupPositives / positives) * (truePositives / seen)
    }
  }
  return ap
}

export function brierScore (labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  let sum = 0
  for (let i = 0; i < labels.length; i++) {
    const d = (scores[i] as number) - (labels[i] as number)
    sum += d * d
  }
  return sum / labels.length
}

export interface Confusion {
  threshold: number
  truePositives: number
  falsePositives: number
  trueNegatives: number
  falseNegatives: number
  precision: number
  recall: number
}

/** Confusion counts when a score at or above `threshold` predicts class 1. */
export function confusionAt (labels: ArrayLike<number>, scores: ArrayLike<number>, threshold: number): Confusion {
  let tp = 0
  let fp = 0
  let tn = 0
  let fn = 0
  for (let i = 0; i < labels.length; i++) {
    const predicted = (scores[i] as number) >= threshold
    const actual = labels[i] === 1
    if (predicted && actual) tp++
    else if (predicted) fp++
    else if (actual) fn++
    else tn++
  }
  return { threshold, truePositives: tp, falsePositives: fp, trueNegatives: tn, falseNegatives: fn, precision: tp + fp === 0 ? 0 : tp / (tp + fp), recall: tp + fn === 0 ? 0 : tp / (tp + fn) }
}
