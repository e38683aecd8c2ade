/**
 * A small seeded pseudo-random generator (mulberry32) with the draws the synthetic traffic and the
 * tests need. Reproducible from the seed on every platform; not for anything secret.
 */
export interface Random {
  /** Uniform in [0, 1). */
  next: () => number
  /** Uniform integer in [low, high]. */
  int: (low: number, high: number) => number
  pick: <T>(items: readonly T[]) => T
  chance: (p: number) => boolean
  /** Normal with the given mean and standard deviation (Box-Muller). */
  normal: (mean: number, sd: number) => number
  /** Beta(a, b) for integer a and b, as a ratio of gamma draws. */
  beta: (a: number, b: number) => number
  /** Poisson with mean `lambda` (Knuth's method; meant for small means). */
  poisson: (lambda: number) => number
  /** A version-4-shaped UUID drawn from the generator, so ids repeat with the seed. */
  uuid: () => string
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

export function seededRandom (seed: number): Random {
  let state = seed >>> 0
  const uint32 = (): number => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
  const next = (): number => uint32() / 4294967296
  const int = (low: number, high: number): number => low + Math.floor(next() * (high - low + 1))
  // Gamma(k, 1) for integer k is a sum of k exponentials.
  const gammaInt = (k: number): number => {
    let sum = 0
    for (let i = 0; i < k; i++) sum -= Math.log(1 - next())
    return sum
  }
  const bytes = (word: number): string => (HEX[word >>> 24] ?? '') + (HEX[(word >>> 16) & 255] ?? '') + (HEX[(word >>> 8) & 255] ?? '') + (HEX[word & 255] ?? '')
  return {
    next,
    int,
    pick: <T>(items: readonly T[]): T => items[int(0, items.length - 1)] as T,
    chance: (p: number) => next() < p,
    normal: (mean: number, sd: number) => mean + sd * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()),
    beta: (a: number, b: number) => {
      const x = gammaInt(a)
      return x / (x + gammaInt(b))
    },
    poisson: (lambda: number) => {
      const limit = Math.exp(-lambda)
      let k = 0
      let p = next()
      while (p > limit) {
        k++
        p *= next()
      }
      return k
    },
    uuid: () => {
      const a = bytes(uint32())
      const b = bytes(uint32())
      const c = bytes(((uint32() & 0x3fffffff) | 0x80000000) >>> 0)
      const d = bytes(uint32())
      return `${a}-${b.slice(0, 4)}-4${b.slice(5, 8)}-${c.slice(0, 4)}-${c.slice(4)}${d}`
    }
  }
}
