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
  /**
   * While the role waits at start-up for a dependency: not ready with `problem` (`waiting for
   * kafka: <reason>`); `undefined` when it no longer waits (back to starting, until `setReadiness`).
   */
  waiting: (problem: string | undefined) => void
}

/**
 * Runs `work` with a role server when ROLE_HTTP_PORT is set (`http` undefined otherwise), closing
 * it when `work` ends. The server listens before `work` starts, so liveness holds while the role
 * waits for Kafka, the registry or Redis; `/ready` answers 503 with `starting`, or with what it
 * waits for (`waiting`), until `setReadiness` is called.
 */
export async function withRoleHttp<T> (context: Pick<CommandContext, 'config' | 'logger'>, role: string, work: (http: RoleHttp | undefined) => Promise<T>): Promise<T> {
  const port = context.config.http.rolePort
  if (port === undefined) return await work(undefined)
  const registry = new Registry()
  registry.setDefaultLabels({ role })
  collectDefaultMetrics({ register: registry })
  const starting = (): RoleReadiness => ({ ready: false, problems: [`${role} is starting`] })
  let readiness: () => RoleReadiness = starting
  const server = await startRoleServer({ port, host: context.config.http.host, registry, readiness: () => readiness(), logger: context.logger.child({ component: 'role-server' }) })
  try {
    return await work({
      registry,
      setReadiness: r => { readiness = r },
      waiting: problem => { readiness = problem === undefined ? starting : () => ({ ready: false, problems: [problem] }) }
    })
  } finally {
    await server.close()
  }
}
