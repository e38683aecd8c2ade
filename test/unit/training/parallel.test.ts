import assert from 'node:assert/strict'
import diagnostics from 'node:diagnostics_channel'
import { availableParallelism } from 'node:os'
import { describe, it } from 'node:test'
import type { Worker } from 'node:worker_threads'
import { seededRandom } from '../../../core/random.ts'
import { trainForest } from '../../../training/forest.ts'
import type { ForestOptions, TrainingMatrix } from '../../../training/forest.ts'
import { trainForestParallel } from '../../../training/parallel.ts'

function synthetic (rows: number, seed: number, columns = 8): TrainingMatrix {
  const random = seededRandom(seed)
  const x = new Float64Array(rows * columns)
  const y = new Uint8Array(rows)
  for (let i = 0; i < rows; i++) {
    for (let f = 0; f < columns; f++) x[i * columns + f] = f === 3 ? random.int(0, 4) : random.normal(0, 1)
    y[i] = x[i * columns]! - 0.7 * x[i * columns + 1]! + random.normal(0, 1) > 0.6 ? 1 : 0
  }
  return { x, y, rows, columns }
}

/**
 * Runs `action` while recording every worker thread the process starts (Node publishes each new
 * one on the `worker_threads` diagnostics channel); `onStart` may act on each as it starts.
 */
async function recordingWorkers (action: () => Promise<unknown>, onStart: (worker: Worker) => void = () => {}): Promise<Worker[]> {
  const started: Worker[] = []
  const listener = (message: unknown): void => {
    const { worker } = message as { worker: Worker }
    started.push(worker)
    onStart(worker)
  }
  diagnostics.subscribe('worker_threads', listener)
  try {
    await action()
  } finally {
    diagnostics.unsubscribe('worker_threads', listener)
  }
  return started
}

describe('trainForestParallel', () => {
  const matrix = synthetic(3000, 4)
  const options: ForestOptions = { nEstimators: 13, maxDepth: 5, seed: 7 }
  const sequential = trainForest(matrix, options)

  for (const threads of [1, 2, 3]) {
    it(`grows the same model as trainForest on ${threads} thread(s)`, async () => {
      const started = await recordingWorkers(async () => {
        assert.deepEqual(await trainForestParallel(matrix, options, { threads }), sequential)
      })
      assert.equal(started.length, threads === 1 ? 0 : threads)
      assert.ok(started.every(worker => worker.threadId === -1), 'every worker has exited')
    })
  }

  it('uses at most one thread per tree, and every core by default', async () => {
    const few = { nEstimators: 2, maxDepth: 3, seed: 1 }
    const started = await recordingWorkers(async () => {
      assert.deepEqual(await trainForestParallel(matrix, few, { threads: 5 }), trainForest(matrix, few))
    })
    assert.equal(started.length, 2)
    const byDefault = await recordingWorkers(async () => {
      assert.deepEqual(await trainForestParallel(matrix, options), sequential)
    })
    const threads = Math.min(availableParallelism(), options.nEstimators as number)
    assert.equal(byDefault.length, threads === 1 ? 0 : threads)
  })

  describe('when a worker fails', () => {
    it('rejects with the error the worker threw, as trainForest throws it, and leaves no worker running', async () => {
      // growTrees, in the workers, is what refuses a bad maxFeatures.
      const bad: ForestOptions = { ...options, maxFeatures: -1 }
      const refusal = { name: 'TrainingError', code: 'CHURN_TRAIN_BAD_OPTIONS', message: /^maxFeatures must be .* got -1$/ }
      assert.throws(() => trainForest(matrix, bad), refusal)
      const started = await recordingWorkers(async () => {
        await assert.rejects(trainForestParallel(matrix, bad, { threads: 2 }), refusal)
      })
      assert.equal(started.length, 2)
      assert.ok(started.every(worker => worker.threadId === -1), 'every worker has exited')
    })

    it('rejects when a worker exits without its trees, and stops the others', async () => {
      const busy: ForestOptions = { nEstimators: 60, maxDepth: 6, seed: 3 }
      let stopped = false
      const started = await recordingWorkers(async () => {
        await assert.rejects(trainForestParallel(synthetic(6000, 5), busy, { threads: 3 }), /exited with code \d+ before posting its trees/)
      }, worker => {
        // The first worker is stopped from outside as it starts, as a crash would stop it.
        if (stopped) return
        stopped = true
        void worker.terminate()
      })
      assert.equal(started.length, 3)
      assert.ok(started.every(worker => worker.threadId === -1), 'every worker has exited')
    })
  })

  it('refuses a thread count that is not a positive integer', async () => {
    await assert.rejects(trainForestParallel(matrix, options, { threads: 0 }), { code: 'CHURN_TRAIN_BAD_OPTIONS', message: /threads/ })
    await assert.rejects(trainForestParallel(matrix, options, { threads: 1.5 }), { code: 'CHURN_TRAIN_BAD_OPTIONS' })
  })
})
