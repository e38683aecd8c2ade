/**
 * Every environment variable the project reads, with its default, its parser and what it is for.
 * This table is the single source: `loadConfig` validates against it, the configuration type is
 * inferred from it, and the README's configuration table is generated from it (a unit test keeps
 * the README current).
 */
import { decimal, filePath, heapSize, hostPortList, integer, list, oneOf, port, text, topicName, url } from './parsers.ts'
import type { Parser } from './parsers.ts'

export interface Variable<T> {
  /** What the value is for, one sentence; shown in the README table. */
  doc: string
  /** The raw default, as it would be written in the environment; `undefined` means optional. */
  default: string | undefined
  parse: Parser<T>
  /** Printed masked (`churn config`, error messages). */
  secret?: boolean
}

const variable = <T, D extends string | undefined>(v: Variable<T> & { default: D }): Variable<T> & { default: D } => v

export const VARIABLES = {
  KAFKA_BROKERS: variable({ doc: 'Kafka bootstrap servers, host:port[,host:port...]. The local stack starts its broker on the first one.', default: '127.0.0.1:9092', parse: hostPortList }),
  KAFKA_SESSION_TIMEOUT_MS: variable({ doc: 'Consumer group session timeout: how long a crashed consumer keeps its partitions before the group hands them on (the broker allows 6000-300000 by default).', default: '30000', parse: integer(1000, 3_600_000) }),
  KAFKA_CLIENT_ID: variable({ doc: 'Kafka client id prefix; each role appends its name.', default: 'churn-scorer', parse: text({ pattern: /^[A-Za-z0-9._-]{1,100}$/, expected: '1-100 of A-Z a-z 0-9 . _ -' }) }),
  SCHEMA_REGISTRY_URL: variable({ doc: 'Base URL of a Confluent-compatible schema registry API (Apicurio: `/apis/ccompat/v7`).', default: 'http://127.0.0.1:8081/apis/ccompat/v7', parse: url(['http:', 'https:']) }),
  REDIS_URL: variable({ doc: 'Redis for the online feature store and the BullMQ queues.', default: 'redis://127.0.0.1:6379', parse: url(['redis:', 'rediss:']), secret: true }),
  STARTUP_BACKOFF_MAX_MS: variable({ doc: 'Longest pause between attempts while a role waits at start-up for Kafka, the schema registry or Redis (exponential from 250 ms, with jitter). It retries until they answer, reporting not ready with the reason meanwhile; only an unreachable or unavailable dependency is waited for, a refusal exits at once.', default: '10000', parse: integer(250, 600_000) }),
  DUCKDB_PATH: variable({ doc: 'The lakehouse file; only the ingest role opens it for writing.', default: 'data/lakehouse.duckdb', parse: filePath }),
  DUCKDB_MEMORY_LIMIT: variable({ doc: 'Memory DuckDB may use for its buffers and operators (it spills to disk past it); its own default is 80% of the machine. 512 MB holds a micro-batch\'s work with room to spare. In a long-running ingest DuckDB\'s cache of the blocks it wrote fills towards this limit, so size the pod for it plus some 600 MB (the V8 heap, code, jemalloc; RELIABILITY.md, "Soak").', default: '512m', parse: heapSize }),
  MODEL_DIR: variable({ doc: 'Folder of versioned model artifacts and the promoted-model pointer.', default: 'data/models', parse: filePath }),
  MODEL_GATE_TOLERANCE: variable({ doc: 'The promotion gate keeps the current model when a new one\'s ROC AUC, on the same hold-out rows, is lower by more than this.', default: '0.005', parse: decimal(0, 1) }),
  MODEL_MIN_AUC: variable({ doc: 'The first model of a name is promoted only with a hold-out ROC AUC of at least this.', default: '0.6', parse: decimal(0, 1) }),
  RISK_HIGH_THRESHOLD: variable({ doc: 'Churn probability from which a subscriber is high risk (CRM retention).', default: '0.65', parse: decimal(0, 1) }),
  RISK_MEDIUM_THRESHOLD: variable({ doc: 'Churn probability from which a subscriber is medium risk (SMS win-back); below it, low.', default: '0.35', parse: decimal(0, 1) }),
  RISK_HYSTERESIS: variable({ doc: 'A subscriber leaves a tier only when the probability falls this far below its threshold, so a score hovering at a threshold does not flap.', default: '0.03', parse: decimal(0, 0.5) }),
  RISK_EMIT_MARGIN: variable({ doc: 'Within a tier, a new churn-risk event is emitted only when the probability moved more than this since the last one.', default: '0.1', parse: decimal(0, 1) }),
  MODEL_NAME: variable({ doc: 'The model the scorer and the HTTP API serve (its promoted version, picked up without a restart).', default: 'churn', parse: text({ pattern: /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, expected: 'a DNS label: 1-63 of a-z 0-9 -' }) }),
  MODEL_POLL_MS: variable({ doc: 'How often the scorer and the API look for a newly promoted model.', default: '5000', parse: integer(100, 3_600_000) }),
  SCORER_GROUP_ID: variable({ doc: 'Consumer group of the scorer on the feature changelog (its lag drives the scorer\'s autoscaling).', default: 'churn-scorer', parse: text({ pattern: /^[A-Za-z0-9._-]{1,200}$/, expected: '1-200 of A-Z a-z 0-9 . _ -' }) }),
  FEATURE_STALE_MS: variable({ doc: 'Features whose latest event is older than this when scored are marked stale in the churn-risk event.', default: '172800000', parse: integer(1000, 365 * 86_400_000) }),
  DRIFT_WINDOW: variable({ doc: 'Scored rows in the rolling window the drift monitor compares with the training distributions.', default: '10000', parse: integer(100, 10_000_000) }),
  DRIFT_PSI_ALERT: variable({ doc: 'Population stability index above which a feature or the score counts as drifted (logged and flagged in the metrics).', default: '0.2', parse: decimal(0, 100) }),
  REDIS_KEY_PREFIX: variable({ doc: 'Prefix of every Redis key the project writes: the online store, the opt-out list, drift, and (with `:bull`) the BullMQ queues.', default: 'churn', parse: text({ pattern: /^[A-Za-z0-9._-]{1,64}$/, expected: '1-64 of A-Z a-z 0-9 . _ -' }) }),
  CAMPAIGN_COOLDOWN_MS: variable({ doc: 'A subscriber gets at most one campaign job per channel and tier within this window, whatever is replayed or rescored.', default: '604800000', parse: integer(1000, 365 * 86_400_000) }),
  CAMPAIGN_ATTEMPTS: variable({ doc: 'Attempts of a campaign job whose channel fails transiently (a permanent failure is not retried).', default: '5', parse: integer(1, 100) }),
  CAMPAIGN_BACKOFF_MS: variable({ doc: 'First retry delay of a campaign job; it doubles on each attempt.', default: '1000', parse: integer(1, 3_600_000) }),
  CAMPAIGN_LOCK_MS: variable({ doc: 'How long a campaign worker holds a job it is delivering without renewing its lock (it renews at half this). A job whose worker died is handed back by the stalled-job check, which runs this often, and delivered again within about twice this.', default: '30000', parse: integer(1000, 3_600_000) }),
  CAMPAIGN_MAX_STALLS: variable({ doc: 'Times a campaign job is handed back after its worker died delivering it before it is failed for good (so a job that kills every worker cannot crash-loop them); each hand-back may deliver it once more.', default: '5', parse: integer(0, 1000) }),
  CHANNEL_CRM_ADAPTER: variable({ doc: 'How CRM retention jobs (high risk) are delivered: `outbox` (a local file of what would be sent) or `webhook`.', default: 'outbox', parse: oneOf(['outbox', 'webhook'] as const) }),
  CHANNEL_CRM_WEBHOOK_URL: variable({ doc: 'The CRM service\'s endpoint when CHANNEL_CRM_ADAPTER is `webhook`.', default: undefined, parse: url(['http:', 'https:']), secret: true }),
  CHANNEL_CRM_RATE_PER_SECOND: variable({ doc: 'Most CRM jobs sent per second, across all workers.', default: '50', parse: integer(1, 100_000) }),
  CHANNEL_SMS_ADAPTER: variable({ doc: 'How SMS win-back jobs (medium risk) are delivered: `outbox` or `webhook`.', default: 'outbox', parse: oneOf(['outbox', 'webhook'] as const) }),
  CHANNEL_SMS_WEBHOOK_URL: variable({ doc: 'The SMS gateway\'s endpoint when CHANNEL_SMS_ADAPTER is `webhook`.', default: undefined, parse: url(['http:', 'https:']), secret: true }),
  CHANNEL_SMS_RATE_PER_SECOND: variable({ doc: 'Most SMS jobs sent per second, across all workers.', default: '20', parse: integer(1, 100_000) }),
  WEBHOOK_SECRET: variable({ doc: 'Key of the HMAC-SHA256 signature on every webhook delivery (required when a channel uses `webhook`).', default: undefined, parse: text({ pattern: /^.{16,}$/, expected: 'at least 16 characters' }), secret: true }),
  WEBHOOK_TIMEOUT_MS: variable({ doc: 'A webhook delivery that has not answered after this long counts as a transient failure.', default: '5000', parse: integer(100, 600_000) }),
  OUTBOX_DIR: variable({ doc: 'Where the outbox adapter records, one JSON line per job, what a channel would have sent.', default: 'data/outbox', parse: filePath }),
  HTTP_HOST: variable({ doc: 'Address the HTTP API listens on.', default: '127.0.0.1', parse: text({ pattern: /^[A-Za-z0-9.:-]{1,255}$/, expected: 'a host name or IP address' }) }),
  HTTP_PORT: variable({ doc: 'Port the HTTP API listens on.', default: '8080', parse: port }),
  ROLE_HTTP_PORT: variable({ doc: 'Port on HTTP_HOST where `churn ingest`, `churn score` and `churn work` serve `/health`, `/ready` and `/metrics` (probes and Prometheus); unset, those roles listen on nothing.', default: undefined, parse: port }),
  API_KEYS: variable({ doc: 'Comma-separated API keys (16+ characters each) accepted in the `x-api-key` header or as `Authorization: Bearer <key>`; every route but health, readiness and metrics needs one. Unset: the API refuses every keyed route (503), never serves it open.', default: undefined, parse: list(text({ pattern: /^[\x21-\x7e]{16,200}$/, expected: '16-200 printable characters without spaces' })), secret: true }),
  API_RATE_LIMIT_PER_MINUTE: variable({ doc: 'Requests per minute each API key may make (429 beyond it).', default: '6000', parse: integer(1, 10_000_000) }),
  API_MAX_BATCH: variable({ doc: 'Most instances or profiles in one prediction request.', default: '1000', parse: integer(1, 100_000) }),
  API_BODY_LIMIT_BYTES: variable({ doc: 'Largest request body the API reads (413 beyond it).', default: '1048576', parse: integer(1024, 1_073_741_824) }),
  MLFLOW_TRACKING_URI: variable({ doc: 'MLflow tracking server each training run is also logged to (params, metrics, the model artifact) through its REST API; unset, runs are recorded locally only. The local stack serves one on STACK_MLFLOW_PORT. user:password in it is sent as basic auth.', default: undefined, parse: url(['http:', 'https:']), secret: true }),
  MLFLOW_EXPERIMENT: variable({ doc: 'MLflow experiment the training runs are logged under; created on first use.', default: 'churn-scorer', parse: text({ pattern: /^.{1,500}$/, expected: '1-500 characters on one line' }) }),
  TOPIC_BILLING: variable({ doc: 'Billing (BSS) events topic.', default: 'telco.billing.events', parse: topicName }),
  TOPIC_NETWORK: variable({ doc: 'Network (OSS) events topic.', default: 'telco.network.events', parse: topicName }),
  TOPIC_DEVICE: variable({ doc: 'Device (IoT) events topic.', default: 'telco.device.events', parse: topicName }),
  TOPIC_CRM_OUTCOMES: variable({ doc: 'CRM churn outcomes topic (the labels).', default: 'telco.crm.outcomes', parse: topicName }),
  TOPIC_FEATURES: variable({ doc: 'Compacted feature changelog topic, written by ingest, read by the scorer.', default: 'churn.features.changelog', parse: topicName }),
  TOPIC_CHURN_RISK: variable({ doc: 'Churn-risk events topic, read by SMS and CRM services.', default: 'churn.risk.events', parse: topicName }),
  TOPIC_DLQ_SUFFIX: variable({ doc: 'Appended to a consumed topic\'s name to name its dead-letter topic.', default: '.dlq', parse: text({ pattern: /^[A-Za-z0-9._-]{1,20}$/, expected: '1-20 of A-Z a-z 0-9 . _ -' }) }),
  TOPIC_PARTITIONS: variable({ doc: 'Partitions per topic when the project creates it; the ceiling for consumer replicas.', default: '6', parse: integer(1, 10000) }),
  TOPIC_REPLICATION_FACTOR: variable({ doc: 'Replication factor when the project creates a topic (1 on the local single broker).', default: '1', parse: integer(1, 16) }),
  INGEST_GROUP_ID: variable({ doc: 'Consumer group of the ingest role (its lag is what autoscaling and the init container watch).', default: 'churn-ingest', parse: text({ pattern: /^[A-Za-z0-9._-]{1,200}$/, expected: '1-200 of A-Z a-z 0-9 . _ -' }) }),
  INGEST_BATCH_MESSAGES: variable({ doc: 'A micro-batch closes at this many messages...', default: '20000', parse: integer(1, 1_000_000) }),
  INGEST_BATCH_WAIT_MS: variable({ doc: '...or this many milliseconds after its first message.', default: '250', parse: integer(1, 600_000) }),
  LAKEHOUSE_EXPORT_DIR: variable({ doc: 'Where `churn lakehouse export` writes Silver and Gold as Parquet for training and analysts.', default: 'data/export', parse: filePath }),
  LOG_LEVEL: variable({ doc: 'pino log level.', default: 'info', parse: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const) }),
  LOG_FORMAT: variable({ doc: '`json`, `pretty`, or `auto` (pretty on a terminal, JSON otherwise).', default: 'auto', parse: oneOf(['auto', 'json', 'pretty'] as const) }),
  STACK_DIR: variable({ doc: 'Local stack folder: download cache, service data, logs, pid files (git-ignored).', default: '.stack', parse: filePath }),
  STACK_KAFKA_CONTROLLER_PORT: variable({ doc: 'Port of the local KRaft controller listener.', default: '9093', parse: port }),
  STACK_KAFKA_HEAP: variable({ doc: 'Heap of the local Kafka broker (-Xmx).', default: '512m', parse: heapSize }),
  STACK_REGISTRY_HEAP: variable({ doc: 'Heap of the local Apicurio Registry (-Xmx).', default: '512m', parse: heapSize }),
  STACK_MLFLOW_PORT: variable({ doc: 'Port of the local MLflow tracking server (on 127.0.0.1).', default: '5000', parse: port }),
  STACK_JAVA_HOME: variable({ doc: 'A JDK to run the local Kafka (17+) and Apicurio (21+); by default the newest suitable one on PATH, JAVA_HOME or /usr/lib/jvm.', default: undefined, parse: filePath }),
  STACK_START_TIMEOUT_MS: variable({ doc: 'How long `stack up` waits for each service to answer its health check.', default: '180000', parse: integer(1000, 3_600_000) }),
  JAVA_HOME: variable({ doc: 'Standard JDK location; one of the places the local stack looks for Java.', default: undefined, parse: filePath })
} as const

export type VariableName = keyof typeof VARIABLES

/** The parsed value of each variable, inferred from its parser; optional ones may be undefined. */
export type Values = {
  [K in VariableName]: (typeof VARIABLES)[K] extends Variable<infer T>
    ? ((typeof VARIABLES)[K]['default'] extends string ? T : T | undefined)
    : never
}
