/**
 * HTTP API fixtures: a configuration of its own (models folder, Redis prefix, an API key), models
 * trained quickly into it (lakehouse features from synthetic Gold, or the Telco CSV), and the app
 * built over a real ModelHolder, OnlineStore and campaign queues, closed after the test.
 */
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../config/index.ts'
import { createRedis } from '../../core/redis.ts'
import type { DriftReport } from '../../scoring/drift.ts'
import { buildApp } from '../../scoring/http/app.ts'
import type { AppDeps, ReadinessCheck } from '../../scoring/http/app.ts'
import { redisCheck } from '../../scoring/http/checks.ts'
import { servedFeatureHash } from '../../scoring/http/server.ts'
import { ModelHolder } from '../../scoring/model-holder.ts'
import { campaignQueues } from '../../scoring/queues.ts'
import { OnlineStore } from '../../scoring/store.ts'
import type { ModelArtifact } from '../../training/artifact.ts'
import { ModelRegistry } from '../../training/registry.ts'
import { csvTrainingSet } from '../../training/sets.ts'
import { isolatedConfig, logger } from './context.ts'
import { TELCO } from './telco.ts'
import { trainPromoted } from './scoring.ts'

/** The key every request sends (the app requires one on all but the probes and metrics). */
export const API_KEY = 'test-api-key-0123456789'

/** Headers with the API key. */
export function keyed (headers: Record<string, string> = {}): Record<string, string> {
  return { 'x-api-key': API_KEY, ...headers }
}

/** A configuration of its own with the test key; `cleanup` removes its folder, topics and keys. */
export async function servingConfig (overrides: Record<string, string> = {}): Promise<{ config: Config, cleanup: () => Promise<void> }> {
  const { config, cleanup } = await isolatedConfig({ API_KEYS: API_KEY, ...overrides }, 'http')
  return { config, cleanup }
}

/** Trains and promotes `name` on synthetic lakehouse features (small and quick). */
export async function trainLakehouse (config: Config, name = config.serving.modelName, seed = 1): Promise<ModelArtifact> {
  return (await trainPromoted(config, { name, subscribers: 600, trees: 20, seed, gate: { tolerance: 1, minAuc: 0 } })).outcome.artifact
}

/** Trains and promotes `name` on the Telco CSV (raw profiles). */
export async function trainTelco (config: Config, name = config.serving.modelName): Promise<ModelArtifact> {
  const set = await csvTrainingSet(TELCO, { target: 'Churn', positive: 'Yes' })
  return (await trainPromoted(config, { name, set, trees: 20, seed: 7, gate: { tolerance: 1, minAuc: 0 } })).outcome.artifact
}

export interface ServingApp {
  app: FastifyInstance
  models: ModelHolder
  store: OnlineStore
}

export interface ServingAppOptions {
  drift?: () => DriftReport | undefined
  checks?: Record<string, ReadinessCheck>
  /**
   * How often the model holder reads the registry's pointer.
   * @defaultValue 60000 (a test calls `models.refresh()` when it promotes)
   */
  pollMs?: number
  /** Dependencies the server role also gives the app (the live feed, the quality report). */
  deps?: Pick<AppDeps, 'riskFeed' | 'quality'>
}

/** The app over the configuration's promoted model, a real store and queues; closed after the test. */
export async function servingApp (t: TestContext, config: Config, options: ServingAppOptions = {}): Promise<ServingApp> {
  const models = new ModelHolder({ registry: new ModelRegistry(config.model.dir), name: config.serving.modelName, pollMs: options.pollMs ?? 60_000, logger, expectedFeatureHash: servedFeatureHash })
  await models.start()
  const redis = createRedis({ url: config.redis.url, maxRetriesPerRequest: 1 })
  const store = new OnlineStore(redis, config.redis.prefix)
  const queues = campaignQueues(config)
  const app = await buildApp({
    logger,
    config,
    models,
    store,
    ...(options.drift === undefined ? {} : { drift: options.drift }),
    checks: options.checks ?? { redis: redisCheck(redis) },
    queues: Object.values(queues.queues),
    ...options.deps
  })
  t.after(async () => {
    await app.close()
    models.stop()
    await queues.close()
    redis.disconnect()
  })
  return { app, models, store }
}
