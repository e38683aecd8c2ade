/**
 * The promoted model of one name, kept current without a restart: the registry's pointer is read
 * every `pollMs`, and a new version is loaded and compiled in full before it replaces the old one
 * (one reference swap), so a batch or a request scores with one model or the other, never half of
 * one. A model whose features are not the ones this process is given (`expectedFeatureHash`) is
 * refused: logged once per version, reported by `status`, and the previous model kept.
 */
import { describeError } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import type { ModelArtifact } from '../training/artifact.ts'
import { ChurnModel } from '../training/model.ts'
import type { ModelRegistry } from '../training/registry.ts'

export interface ModelHolderOptions {
  registry: ModelRegistry
  name: string
  pollMs: number
  logger: Logger
  /**
   * The feature hash the caller computes features with; unset accepts any. A function decides
   * per artifact: the API computes lakehouse features but scores a tabular model's raw profiles
   * as they come, so it returns the lakehouse hash for a lakehouse model and undefined otherwise.
   */
  expectedFeatureHash?: string | ((artifact: ModelArtifact) => string | undefined)
  /** Called after a new model replaced the current one. */
  onSwap?: (model: ChurnModel, previous: ChurnModel | undefined) => void
}

export interface ModelStatus {
  name: string
  /** The serving version, if any. */
  version: number | undefined
  /** Why the promoted version is not serving (none promoted, feature mismatch, unreadable). */
  problem: string | undefined
}

export class ModelHolder {
  readonly #options: ModelHolderOptions
  readonly #logger: Logger
  #model: ChurnModel | undefined
  #problem: string | undefined = 'not loaded yet'
  /** The pointer version last acted on (loaded or refused), so a refusal is logged once. */
  #seen: number | undefined
  #lastRefusal: string | undefined
  #timer: NodeJS.Timeout | undefined
  #refreshing: Promise<void> | undefined

  constructor (options: ModelHolderOptions) {
    this.#options = options
    this.#logger = options.logger.child({ component: 'model-holder', model: options.name })
  }

  /** The serving model, or undefined before one was loaded. */
  get current (): ChurnModel | undefined {
    return this.#model
  }

  get status (): ModelStatus {
    return { name: this.#options.name, version: this.#model?.version, problem: this.#problem }
  }

  /** Loads the promoted model now, then keeps polling. */
  async start (): Promise<void> {
    await this.refresh()
    this.#timer = setInterval(() => { void this.refresh() }, this.#options.pollMs)
    this.#timer.unref()
  }

  stop (): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Reads the pointer once and swaps in a newly promoted version (concurrent calls share one read). */
  async refresh (): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => { this.#refreshing = undefined })
    await this.#refreshing
  }

  async #refresh (): Promise<void> {
    const { registry, name, expectedFeatureHash } = this.#options
    let version: number | undefined
    try {
      version = (await registry.pointer(name))?.version
    } catch (error) {
      this.#refuse(undefined, `the pointer of model ${name} is unreadable: ${describeError(error)}`)
      return
    }
    if (version === undefined) {
      if (this.#model === undefined) this.#problem = `no version of model ${name} is promoted in ${registry.dir}`
      return
    }
    if (version === this.#seen) return
    this.#seen = version
    if (version === this.#model?.version) {
      // Back to the version already serving (a rollback past a refused one): nothing to load.
      this.#problem = undefined
      return
    }
    let model: ChurnModel
    try {
      model = new ChurnModel(await registry.load(name, version))
      const expected = typeof expectedFeatureHash === 'function' ? expectedFeatureHash(model.artifact) : expectedFeatureHash
      if (expected !== undefined) model.assertFeatureHash(expected)
    } catch (error) {
      this.#refuse(version, describeError(error))
      return
    }
    const previous = this.#model
    this.#model = model
    this.#problem = undefined
    this.#logger.info({ version, previous: previous?.version, testAuc: model.artifact.metrics.test.rocAuc }, 'serving model')
    this.#options.onSwap?.(model, previous)
  }

  #refuse (version: number | undefined, reason: string): void {
    this.#problem = this.#model === undefined ? reason : `v${version ?? '?'} refused (${reason}); still serving v${this.#model.version}`
    if (reason === this.#lastRefusal) return
    this.#lastRefusal = reason
    this.#logger.error({ version, reason }, 'promoted model not loaded')
  }
}
