/**
 * Stratified sampling for evaluation: a hold-out split and k folds that keep the churn rate of
 * every part equal to the whole's (within one row), reproducible.
 *
 * The hold-out is chosen by a hash of each row's key (a label id, a customer id), not by the
 * seed: within each class the rows with the lowest hashes are held out. So a row held out by one
 * run is held out by the next one too, whatever its seed, and as the data grows the hold-out only
 * gains rows. That is what makes the promotion gate fair: the current model is compared with the
 * candidate only on rows neither of them learned from (see `pipeline.ts`).
 */
import { createHash } from 'node:crypto'
import { seededRandom } from '../core/random.ts'

/** Fixed, so hold-outs agree across runs; changing it reshuffles every future hold-out. */
export const SPLIT_SALT = 'churn-holdout-1'

/** A row key's position in [0, 1): the first 48 bits of SHA-256(salt + key). */
export function keyHash (key: string, salt = SPLIT_SALT): number {
  return createHash('sha256').update(salt).update(key).digest().readUIntBE(0, 6) / 2 ** 48
}

export interface HashSplit {
  train: Uint32Array
  test: Uint32Array
  /** Per row, its key hash. */
  hashes: Float64Array
  /** Per class, the highest hash held out (-1: none): a row of that class is held out iff its hash is at most this. */
  boundaries: [number, number]
}

/** Holds out `testFraction` of each class, the rows with the lowest key hashes. */
export function hashSplit (keys: readonly string[], y: ArrayLike<number>, testFraction: number, salt = SPLIT_SALT): HashSplit {
  if (!(testFraction > 0 && testFraction < 1)) throw new RangeError(`testFraction must be within (0, 1), got ${testFraction}`)
  const hashes = Float64Array.from(keys, k => keyHash(k, salt))
  const train: number[] = []
  const test: number[] = []
  const boundaries: [number, number] = [-1, -1]
  for (const label of [0, 1] as const) {
    const rows: number[] = []
    for (let i = 0; i < y.length; i++) if ((y[i] === 1 ? 1 : 0) === label) rows.push(i)
    rows.sort((a, b) => (hashes[a] as number) - (hashes[b] as number) || a - b)
    const n = Math.round(rows.length * testFraction)
    test.push(...rows.slice(0, n))
    train.push(...rows.slice(n))
    if (n > 0) boundaries[label] = hashes[rows[n - 1] as number] as number
  }
  return { train: Uint32Array.from(train).sort(), test: Uint32Array.from(test).sort(), hashes, boundaries }
}

function shuffledByClass (y: ArrayLike<number>, seed: number): [number[], number[]] {
  const random = seededRandom(seed)
  const classes: [number[], number[]] = [[], []]
  for (let i = 0; i < y.length; i++) classes[y[i] === 1 ? 1 : 0].push(i)
  for (const rows of classes) {
    for (let i = rows.length - 1; i > 0; i--) {
      const j = Math.floor(random.next() * (i + 1))
      const tmp = rows[i] as number
      rows[i] = rows[j] as number
      rows[j] = tmp
    }
  }
  return classes
}

/** `k` stratified folds: each fold's rows are its validation part, the others its training part. */
export function stratifiedFolds (y: ArrayLike<number>, k: number, seed: number): Uint32Array[] {
  if (!Number.isInteger(k) || k < 2) throw new RangeError(`k must be an integer of at least 2, got ${k}`)
  const folds: number[][] = Array.from({ length: k }, () => [])
  let next = 0
  // Deal each class round-robin, continuing where the previous class stopped, so fold sizes differ by one at most.
  for (const rows of shuffledByClass(y, seed)) {
    for (const r of rows) folds[next++ % k]!.push(r)
  }
  return folds.map(f => Uint32Array.from(f).sort())
}

/** The indices of `0..n-1` not in `excluded` (ascending). */
export function complement (n: number, excluded: Uint32Array): Uint32Array {
  const out = new Uint32Array(n - excluded.length)
  let e = 0
  let o = 0
  for (let i = 0; i < n; i++) {
    if (e < excluded.length && excluded[e] === i) e++
    else out[o++] = i
  }
  return out
}

/** The rows `index` of a row-major matrix, copied. */
export function takeRows (x: Float64Array, columns: number, index: ArrayLike<number>): Float64Array {
  const out = new Float64Array(index.length * columns)
  for (let i = 0; i < index.length; i++) {
    const r = index[i] as number
    out.set(x.subarray(r * columns, (r + 1) * columns), i * columns)
  }
  return out
}

export function takeLabels (y: Uint8Array, index: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(index.length)
  for (let i = 0; i < index.length; i++) out[i] = y[index[i] as number] as number
  return out
}
