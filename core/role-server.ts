/**
 * The small HTTP server of a role that serves no API (`churn ingest`, `churn score`, `churn work`),
 * started when ROLE_HTTP_PORT is set: what Kubernetes probes and Prometheus scrape, and nothing
 * else. Plain `node:http`, no authentication (like the API's health, readiness and metrics).
 *
 * - `GET /health`: 200 `{status:'ok'}` while the process runs (liveness).
 * - `GET /ready`: 200 `{status:'ready'}` or 503 `{status:'not ready', problems}` from `readiness`.
 * - `GET /metrics`: the registry in the Prometheus text format.
 *
 * Anything else is 404 (405 for another method on a known path).
 */
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import { describeError } from './errors.ts'
import type { Logger } from './logger.ts'

/** The paths the role server answers GET on (the k8s validator checks probes against them). */
export const ROLE_SERVER_ROUTES = ['/health', '/ready', '/metrics'] as const
export type RoleServerRoute = typeof ROLE_SERVER_ROUTES[number]

export interface RoleReadiness {
  ready: boolean
  problems: string[]
}

export interface RoleServerOptions {
  port: number
  host: string
  registry: Registry
  readiness: () => RoleReadiness
  logger: Logger
}

export interface RoleServer {
  /** The port listened on (the one chosen by the system when `port` was 0). */
  readonly port: number
  close: () => Promise<void>
}

function send (response: ServerResponse, status: number, body: string, contentType = 'application/json; charset=utf-8'): void {
  response.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) })
  response.end(body)
}

/** Listens on `host:port`; resolves once listening. */
export async function startRoleServer (options: RoleServerOptions): Promise<RoleServer> {
  const { registry, readiness, logger } = options
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = (request.url ?? '/').split('?')[0] as string
    if (!(ROLE_SERVER_ROUTES as readonly string[]).includes(path)) {
      send(response, 404, JSON.stringify({ error: 'not found' }))
      return
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('allow', 'GET, HEAD')
      send(response, 405, JSON.stringify({ error: 'method not allowed' }))
      return
    }
    switch (path as RoleServerRoute) {
      case '/health':
        send(response, 200, JSON.stringify({ status: 'ok' }))
        return
      case '/ready': {
        const state = readiness()
        send(response, state.ready ? 200 : 503, JSON.stringify(state.ready ? { status: 'ready' } : { status: 'not ready', problems: state.problems }))
        return
      }
      case '/metrics':
        send(response, 200, await registry.metrics(), registry.contentType)
    }
  }
  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      logger.warn({ err: error }, `role server: ${request.url ?? ''} failed: ${describeError(error)}`)
      if (!response.headersSent) send(response, 500, JSON.stringify({ error: 'internal error' }))
      else response.destroy()
    })
  })
  // Probes and scrapes only: short keep-alive so close() is not held up by idle sockets.
  server.keepAliveTimeout = 5000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  logger.info({ host: options.host, port }, 'role server listening (/health, /ready, /metrics)')
  return {
    port,
    close: async () => {
      await new Promise<void>(resolve => {
        server.close(() => { resolve() })
        server.closeAllConnections()
      })
    }
  }
}
