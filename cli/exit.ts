/**
 * The last step of every command: a finished command exits even when a library left something
 * open.
 */
import type { Logger } from '../core/logger.ts'

/** How long a finished command may take to drain before it exits anyway. */
export const DRAIN_MS = 10_000

/**
 * The command has finished: its work is done and its clients closed. Were a handle a library left
 * open (a reconnect timer, a socket) to keep the event loop alive, a stopped role would wait for
 * the orchestrator's SIGKILL; so after `drainMs` it logs what held it (CHURN_EXIT_LINGERING) and
 * exits with `code`. The timer is unref'd: it never holds the process itself.
 */
export function exitIfHeld (logger: Logger, code: number, drainMs = DRAIN_MS): void {
  setTimeout(() => {
    logger.warn({ code: 'CHURN_EXIT_LINGERING', exitCode: code, resources: process.getActiveResourcesInfo() }, `still running ${drainMs} ms after the command finished; exiting`)
    logger.flush(() => process.exit(code))
  }, drainMs).unref()
}
