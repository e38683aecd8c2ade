import type { Logger } from './logger.ts'

/**
 * Routes Node's process warnings into the process logger instead of bare stderr lines, and drops
 * one known-benign warning: kafkajs's request queue computes `throttledUntil - Date.now()` with
 * `throttledUntil` at -1 when never throttled (kafkajs/src/network/requestQueue/index.js,
 * `scheduleCheckPendingRequests`); Node clamps the negative delay to 1 ms, which is what kafkajs
 * intends, and warns once per process since Node 23.
 */
export function routeProcessWarnings (logger: Logger): void {
  process.removeAllListeners('warning')
  process.on('warning', (warning) => {
    if (warning.name === 'TimeoutNegativeWarning' && warning.stack?.includes('kafkajs') !== false) return
    logger.warn({ warning: { name: warning.name, message: warning.message } }, 'process warning')
  })
}
