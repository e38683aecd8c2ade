/**
 * The role server of `churn ingest`, `churn score` and `churn work` when ROLE_HTTP_PORT is set:
 * a registry with the process's default metrics for the role to add its own to, and the server on
 * HTTP_HOST:ROLE_HTTP_PORT for the role's lifetime.
 */
import { Registry, collectDefaultMetrics } from 'prom-client'
import { startRoleServer } from '../core/role-server.ts'
import type { RoleReadiness } from '../core/role-server.ts'
import type { CommandContext } from './context.ts'

export interface RoleHttp {
  registry: Registry
  /** Where `/ready` reads from; until set, not ready with `problem`. */
  setReadiness: (readiness: () => RoleReadiness) => void
}

/**
 * Runs `work` with a role server when ROLE_HTTP_PORT is set (`http` undefined otherwise), closing
 * it when `work` ends. The server listens before `work` starts, so liveness holds while the role
 * waits for Kafka or Redis; `/ready` answers 503 with `starting` until `setReadiness` is called.
 */
export async function withRoleHttp<T> (context: Pick<CommandContext, 'config' | 'logger'>, role: string, work: (http: RoleHttp | undefined) => Promise<T>): Promise<T> {
  const port = context.config.http.rolePort
  if (port === undefined) return await work(undefined)
  const registry = new Registry()
  registry.setDefaultLabels({ role })
  collectDefaultMetrics({ register: registry })
  let readiness: () => RoleReadiness = () => ({ ready: false, problems: [`${role} is starting`] })
  const server = await startRoleServer({ port, host: context.config.http.host, registry, readiness: () => readiness(), logger: context.logger.child({ component: 'role-server' }) })
  try {
    return await work({ registry, setReadiness: r => { readiness = r } })
  } finally {
    await server.close()
  }
}
