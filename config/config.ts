/**
 * Reads the environment once, validates every variable, reports every problem at once, and
 * returns a frozen, typed configuration. Only entry points call `loadConfig`; everything below
 * them receives the parts of the result it needs.
 */
import { ConfigError } from './errors.ts'
import type { ConfigProblem } from './errors.ts'
import { VARIABLES } from './variables.ts'
import type { Values, VariableName, Variable } from './variables.ts'

export interface LoadConfigOptions {
  /** Relative paths resolve against it. @defaultValue process.cwd() at the entry point */
  cwd: string
}

/** Masks the password of a URL-shaped secret and anything else wholesale. */
export function maskSecret (raw: string): string {
  try {
    const parsed = new URL(raw)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString().replace(/\/$/, '')
  } catch {
    return '***'
  }
}

function parseAll (env: Readonly<Record<string, string | undefined>>, cwd: string): { values: Partial<Values>, problems: ConfigProblem[] } {
  const values: Record<string, unknown> = {}
  const problems: ConfigProblem[] = []
  for (const [name, spec] of Object.entries(VARIABLES) as Array<[VariableName, Variable<unknown>]>) {
    const given = env[name]
    const raw = given === undefined || given.trim() === '' ? spec.default : given
    if (raw === undefined) continue
    const parsed = spec.parse(raw, { cwd })
    if (parsed.ok) values[name] = parsed.value
    else problems.push({ variable: name, value: spec.secret === true ? maskSecret(raw) : raw, expected: parsed.expected })
  }
  return { values: values, problems }
}

/** Rules that involve more than one variable; each is checked when its inputs parsed. */
function crossCheck (values: Partial<Values>): ConfigProblem[] {
  const problems: ConfigProblem[] = []
  const topicVariables = ['TOPIC_BILLING', 'TOPIC_NETWORK', 'TOPIC_DEVICE', 'TOPIC_CRM_OUTCOMES', 'TOPIC_FEATURES', 'TOPIC_CHURN_RISK'] as const
  const seen = new Map<string, VariableName>()
  for (const name of topicVariables) {
    const topic = values[name]
    if (topic === undefined) continue
    const other = seen.get(topic)
    if (other !== undefined) problems.push({ variable: name, value: topic, expected: `a topic name different from ${other}` })
    seen.set(topic, name)
    if (values.TOPIC_DLQ_SUFFIX !== undefined && topic.endsWith(values.TOPIC_DLQ_SUFFIX)) {
      problems.push({ variable: name, value: topic, expected: `a name not ending in the dead-letter suffix ${values.TOPIC_DLQ_SUFFIX}` })
    }
  }
  const broker = values.KAFKA_BROKERS?.[0]
  if (broker !== undefined && broker.port === values.STACK_KAFKA_CONTROLLER_PORT) {
    problems.push({ variable: 'STACK_KAFKA_CONTROLLER_PORT', value: String(values.STACK_KAFKA_CONTROLLER_PORT), expected: `a port other than the broker's (${broker.port} in KAFKA_BROKERS)` })
  }
  for (const channel of ['CRM', 'SMS'] as const) {
    if (values[`CHANNEL_${channel}_ADAPTER`] !== 'webhook') continue
    if (values[`CHANNEL_${channel}_WEBHOOK_URL`] === undefined) problems.push({ variable: `CHANNEL_${channel}_WEBHOOK_URL`, value: '', expected: `a URL, because CHANNEL_${channel}_ADAPTER is webhook` })
    if (values.WEBHOOK_SECRET === undefined) problems.push({ variable: 'WEBHOOK_SECRET', value: '', expected: `a signing key, because CHANNEL_${channel}_ADAPTER is webhook` })
  }
  if (values.RISK_HIGH_THRESHOLD !== undefined && values.RISK_MEDIUM_THRESHOLD !== undefined && values.RISK_MEDIUM_THRESHOLD >= values.RISK_HIGH_THRESHOLD) {
    problems.push({ variable: 'RISK_MEDIUM_THRESHOLD', value: String(values.RISK_MEDIUM_THRESHOLD), expected: `a probability below RISK_HIGH_THRESHOLD (${values.RISK_HIGH_THRESHOLD})` })
  }
  return problems
}

/** `512m` or `2g` as DuckDB writes a size. */
function megabytes (size: string): string {
  const amount = Number(size.slice(0, -1))
  return `${size.endsWith('g') ? amount * 1024 : amount}MB`
}

function build (values: Values) {
  const dlq = (topic: string): string => `${topic}${values.TOPIC_DLQ_SUFFIX}`
  return {
    kafka: { brokers: values.KAFKA_BROKERS, clientId: values.KAFKA_CLIENT_ID, sessionTimeoutMs: values.KAFKA_SESSION_TIMEOUT_MS },
    registry: { url: values.SCHEMA_REGISTRY_URL },
    redis: { url: values.REDIS_URL, prefix: values.REDIS_KEY_PREFIX },
    startup: { backoffMaxMs: values.STARTUP_BACKOFF_MAX_MS },
    lakehouse: { path: values.DUCKDB_PATH, exportDir: values.LAKEHOUSE_EXPORT_DIR, settings: { memory_limit: megabytes(values.DUCKDB_MEMORY_LIMIT) } },
    ingest: { groupId: values.INGEST_GROUP_ID, batchMessages: values.INGEST_BATCH_MESSAGES, batchWaitMs: values.INGEST_BATCH_WAIT_MS },
    model: { dir: values.MODEL_DIR, gate: { tolerance: values.MODEL_GATE_TOLERANCE, minAuc: values.MODEL_MIN_AUC } },
    risk: { high: values.RISK_HIGH_THRESHOLD, medium: values.RISK_MEDIUM_THRESHOLD, hysteresis: values.RISK_HYSTERESIS, emitMargin: values.RISK_EMIT_MARGIN },
    serving: { modelName: values.MODEL_NAME, modelPollMs: values.MODEL_POLL_MS },
    scorer: { groupId: values.SCORER_GROUP_ID, staleMs: values.FEATURE_STALE_MS, drift: { window: values.DRIFT_WINDOW, psiAlert: values.DRIFT_PSI_ALERT } },
    campaign: {
      cooldownMs: values.CAMPAIGN_COOLDOWN_MS,
      attempts: values.CAMPAIGN_ATTEMPTS,
      backoffMs: values.CAMPAIGN_BACKOFF_MS,
      lockMs: values.CAMPAIGN_LOCK_MS,
      maxStalls: values.CAMPAIGN_MAX_STALLS,
      outboxDir: values.OUTBOX_DIR,
      webhook: { secret: values.WEBHOOK_SECRET, timeoutMs: values.WEBHOOK_TIMEOUT_MS },
      channels: {
        crm: { adapter: values.CHANNEL_CRM_ADAPTER, url: values.CHANNEL_CRM_WEBHOOK_URL, ratePerSecond: values.CHANNEL_CRM_RATE_PER_SECOND },
        sms: { adapter: values.CHANNEL_SMS_ADAPTER, url: values.CHANNEL_SMS_WEBHOOK_URL, ratePerSecond: values.CHANNEL_SMS_RATE_PER_SECOND }
      }
    },
    http: { host: values.HTTP_HOST, port: values.HTTP_PORT, rolePort: values.ROLE_HTTP_PORT },
    api: { keys: values.API_KEYS ?? [], rateLimitPerMinute: values.API_RATE_LIMIT_PER_MINUTE, maxBatch: values.API_MAX_BATCH, bodyLimitBytes: values.API_BODY_LIMIT_BYTES },
    topics: {
      billing: values.TOPIC_BILLING,
      network: values.TOPIC_NETWORK,
      device: values.TOPIC_DEVICE,
      crmOutcomes: values.TOPIC_CRM_OUTCOMES,
      features: values.TOPIC_FEATURES,
      churnRisk: values.TOPIC_CHURN_RISK,
      deadLetter: dlq,
      partitions: values.TOPIC_PARTITIONS,
      replicationFactor: values.TOPIC_REPLICATION_FACTOR
    },
    mlflow: { trackingUri: values.MLFLOW_TRACKING_URI, experiment: values.MLFLOW_EXPERIMENT },
    log: { level: values.LOG_LEVEL, format: values.LOG_FORMAT },
    stack: {
      dir: values.STACK_DIR,
      kafkaControllerPort: values.STACK_KAFKA_CONTROLLER_PORT,
      kafkaHeap: values.STACK_KAFKA_HEAP,
      registryHeap: values.STACK_REGISTRY_HEAP,
      mlflowPort: values.STACK_MLFLOW_PORT,
      javaHome: values.STACK_JAVA_HOME ?? values.JAVA_HOME,
      /** Whether the JDK was chosen explicitly (then it must be suitable) or is only a hint. */
      javaHomeExplicit: values.STACK_JAVA_HOME !== undefined,
      startTimeoutMs: values.STACK_START_TIMEOUT_MS
    }
  }
}

type DeepReadonly<T> = T extends (...args: never[]) => unknown ? T
  : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T

/** The validated configuration; its shape is inferred from the variables' parsers. */
export type Config = DeepReadonly<ReturnType<typeof build>>

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const inner of Object.values(value)) deepFreeze(inner)
  }
  return value
}

/**
 * Validates `env` against every known variable and returns the frozen configuration.
 * @throws ConfigError (`CHURN_CONFIG_INVALID`) listing every problem, not just the first.
 */
export function loadConfig (env: Readonly<Record<string, string | undefined>>, options: LoadConfigOptions): Config {
  const { values, problems } = parseAll(env, options.cwd)
  problems.push(...crossCheck(values))
  if (problems.length > 0) throw new ConfigError(problems)
  // Every variable without a default is optional in `Values`, so a clean parse is complete.
  return deepFreeze(build(values as Values))
}

/** The README's configuration table, generated from the variables (kept current by a test). */
export function renderConfigTable (): string {
  const rows = (Object.entries(VARIABLES) as Array<[string, Variable<unknown>]>).map(([name, spec]) =>
    `| \`${name}\` | ${spec.default === undefined ? '(unset)' : `\`${spec.default}\``} | ${spec.doc} |`)
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n')
}
