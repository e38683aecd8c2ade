/**
 * The training engines behind one interface: the project's own forest (the default; on worker
 * threads when more than one is allowed, the same trees either way) and `ml-random-forest`, whose
 * trees convert into the same arrays. Whichever fits, the artifact and the scoring path are the
 * same.
 */
import { trainMlRandomForest } from './ml-random-forest.ts'
import { trainForestParallel } from './parallel.ts'
import type { Engine, FitForest } from './train.ts'

/** Rows times trees under which one thread is faster than several. */
const SMALL_WORK = 2_000_000

export const ENGINES: readonly Engine[] = ['forest', 'ml-random-forest']

export function fitWith (engine: Engine, parallel: { threads?: number } = {}): FitForest {
  switch (engine) {
    case 'forest':
      // Starting workers costs more than a small forest takes to grow (the Telco set: 5k rows).
      return async (matrix, options) => await trainForestParallel(matrix, options, {
        threads: parallel.threads ?? (matrix.rows * (options.nEstimators ?? 200) < SMALL_WORK ? 1 : undefined)
      })
    case 'ml-random-forest':
      // The package is synchronous and single-threaded.
      return async (matrix, options) => await Promise.resolve(trainMlRandomForest(matrix, options))
  }
}
