/** Tests draw random cases reproducibly with the product's own seeded generator. */
import type { Random } from '../../core/random.ts'

export { seededRandom } from '../../core/random.ts'
export type { Random } from '../../core/random.ts'

/**
 * `count` distinct integers from [low, high], sorted, each at least `gap` above the one before,
 * drawn uniformly among all such choices (the moments of a test's kills, say, never back to back).
 */
export function spacedDraws (random: Random, count: number, low: number, high: number, gap: number): number[] {
  // Choosing sorted distinct c_i from a range shortened by (count - 1) * (gap - 1) and adding
  // i * (gap - 1) to the i-th spreads them exactly `gap` apart at the least.
  const span = high - low + 1 - (count - 1) * (gap - 1)
  if (count < 0 || span < count) throw new RangeError(`cannot draw ${count} integers ${gap} apart from [${low}, ${high}]`)
  const chosen = new Set<number>()
  while (chosen.size < count) chosen.add(random.int(0, span - 1))
  return [...chosen].sort((a, b) => a - b).map((c, i) => low + c + i * (gap - 1))
}
