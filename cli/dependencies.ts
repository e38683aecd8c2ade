/**
 * What a role needs before it starts, waited for at start-up instead of exiting when it is not
 * there yet (pods start before Strimzi's Kafka or the registry is ready; an exit would be a crash
 * loop): the schema registry holds the subjects, Kafka the topics, Redis answers a PING. Each is
 * tried with capped exponential backoff (`core/wait-for.ts`, `STARTUP_BACKOFF_MAX_MS`), in that
 * order, until it answers or the role is stopped; a refusal (bad configuration) is thrown at once.
 * Each attempt is the real start-up step, so nothing has to be done twice once it succeeds.
 */
import { pingRedis } from '../core/redis.ts'
import { waitFor } from '../core/wait-for.ts'
import type { WaitingListener } from '../core/wait-for.ts'
import { registerDerivedSchemas, registerSourceSchemas } from '../schemas/register.ts'
import { createSchemaRegistry } from '../schemas/registry.ts'
import { createKafka } from '../streams/kafka.ts'
import { ensureProjectTopics } from '../streams/topics.ts'
import type { CommandContext } from './context.ts'

export interface Dependencies {
  /** The subjects to register (the schema registry): the source streams', the derived streams', or both. */
  schemas?: 'source' | 'derived' | 'all'
  /** The project's topics, created where missing (Kafka). */
  topics?: boolean
  /** Redis answering a PING. */
  redis?: boolean
}

export interface AwaitOptions {
  /** The role's name, for the Kafka client id and logs. */
  role: string
  /** Stops the wait at once; `awaitDependencies` then resolves to false. */
  signal?: AbortSignal | undefined
  /** Told `waiting for kafka: <reason> (attempt n)` while waiting, `undefined` once done (the role server's /ready). */
  onWaiting?: WaitingListener | undefined
}

/**
 * Waits until every dependency in `needs` answers; true then, false when `signal` aborted first.
 * @throws what a dependency answered that is not "unavailable": a refused registration, an
 *   incompatible schema, a topic Kafka will not create, a refused Redis password.
 */
export async function awaitDependencies (context: Pick<CommandContext, 'config' | 'logger'>, needs: Dependencies, options: AwaitOptions): Promise<boolean> {
  const { config } = context
  const logger = context.logger.child({ component: 'startup' })
  const common = { logger, signal: options.signal, onWaiting: options.onWaiting, backoff: { maxMs: config.startup.backoffMaxMs } }
  const stopped = (): boolean => options.signal?.aborted === true

  if (needs.schemas !== undefined) {
    // No client retries: the wait is the retry, and a stop need not sit through the client's.
    const registry = createSchemaRegistry({ url: config.registry.url, retries: 0 })
    const schemaOptions = { registry, url: config.registry.url, topics: config.topics }
    const schemas = needs.schemas
    await waitFor({
      ...common,
      what: 'the schema registry',
      attempt: async () => {
        if (schemas !== 'derived') await registerSourceSchemas(schemaOptions)
        if (schemas !== 'source') await registerDerivedSchemas(schemaOptions)
      }
    })
    if (stopped()) return false
  }

  if (needs.topics === true) {
    // Its own client: no retries (the wait retries) and kafkajs's per-attempt connection errors
    // silenced (the wait logs the reason once, not every attempt).
    const kafka = createKafka({
      brokers: config.kafka.brokers,
      clientId: `${config.kafka.clientId}-${options.role}-startup`,
      logger: context.logger.child({ component: 'startup' }, { level: 'silent' }),
      retry: { retries: 0 }
    })
    await waitFor({ ...common, what: 'kafka', attempt: async () => await ensureProjectTopics(kafka, config.topics) })
    if (stopped()) return false
  }

  if (needs.redis === true) {
    await waitFor({ ...common, what: 'redis', attempt: async () => { await pingRedis(config.redis.url) } })
    if (stopped()) return false
  }
  return true
}
