/** A small seeded PRNG (mulberry32) for tests that draw random cases reproducibly. */
export interface Random {
  /** Uniform in [0, 1). */
  next: () => number
  int: (low: number, high: number) => number
  pick: <T>(items: readonly T[]) => T
  chance: (p: number) => boolean
}

export function seededRandom (seed: number): Random {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (low: number, high: number): number => low + Math.floor(next() * (high - low + 1))
  return {
    next,
    int,
    pick: <T>(items: readonly T[]): T => items[int(0, items.length - 1)] as T,
    chance: (p: number) => next() < p
  }
}
