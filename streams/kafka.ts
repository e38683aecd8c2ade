/**
 * The one place Kafka clients are built: brokers and client id from configuration, kafkajs logs
 * routed into the process's pino logger (kafkajs otherwise prints its own JSON to the console).
 */
import { Kafka, logLevel as KafkaLogLevel } from 'kafkajs'
import type { KafkaConfig, LogEntry, RetryOptions } from 'kafkajs'
import type { Logger } from '../core/logger.ts'

export interface BrokerAddress { host: string, port: number }

export interface KafkaClientOptions {
  brokers: readonly BrokerAddress[]
  clientId: string
  logger: Logger
  /** @defaultValue 3000 */
  connectionTimeoutMs?: number
  /** @defaultValue 30000 */
  requestTimeoutMs?: number
  /** kafkajs retry policy; the default retries with backoff for about a minute. */
  retry?: RetryOptions
}

export function brokerList (brokers: readonly BrokerAddress[]): string[] {
  return brokers.map(b => `${b.host}:${b.port}`)
}

const PINO_METHOD: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [KafkaLogLevel.ERROR]: 'error',
  [KafkaLogLevel.WARN]: 'warn',
  [KafkaLogLevel.INFO]: 'info',
  [KafkaLogLevel.DEBUG]: 'debug'
}

/** kafkajs's own level for a pino level: its DEBUG logs every request, so only pino's trace gets it. */
function kafkaLevelFor (level: string): KafkaLogLevel {
  switch (level) {
    case 'silent': return KafkaLogLevel.NOTHING
    case 'fatal':
    case 'error': return KafkaLogLevel.ERROR
    case 'warn': return KafkaLogLevel.WARN
    case 'trace': return KafkaLogLevel.DEBUG
    default: return KafkaLogLevel.INFO
  }
}

export function createKafka (options: KafkaClientOptions): Kafka {
  const logger = options.logger.child({ component: 'kafkajs' })
  const config: KafkaConfig = {
    clientId: options.clientId,
    brokers: brokerList(options.brokers),
    connectionTimeout: options.connectionTimeoutMs ?? 3000,
    requestTimeout: options.requestTimeoutMs ?? 30000,
    logLevel: kafkaLevelFor(options.logger.level),
    logCreator: () => ({ namespace, level, log }: LogEntry) => {
      const { message, timestamp: _timestamp, logger: _name, ...context } = log
      logger[PINO_METHOD[level] ?? 'info']({ ...context, namespace }, message)
    }
  }
  if (options.retry !== undefined) config.retry = options.retry
  return new Kafka(config)
}
