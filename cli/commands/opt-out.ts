import { errorCode, describeError } from '../../core/errors.ts'
import { createRedis } from '../../core/redis.ts'
import { OptOutList } from '../../scoring/opt-out.ts'
import type { Command } from '../context.ts'
import { UsageError } from '../errors.ts'
import { parseOptions } from '../options.ts'

const ACTIONS = ['add', 'remove', 'list'] as const

export const optOutCommand: Command = {
  name: 'opt-out',
  summary: 'the campaign opt-out list: add or remove subscriber ids (no campaign reaches them, queued jobs included), or list them',
  usage: 'opt-out add <subscriberId>... | remove <subscriberId>... | list',
  run: async (args, context) => {
    const { positionals } = parseOptions({ args: [...args], allowPositionals: true, options: {} })
    const [action, ...ids] = positionals
    if (!(ACTIONS as readonly string[]).includes(action ?? '')) throw new UsageError(`opt-out takes one of ${ACTIONS.join(', ')}; got ${action ?? 'nothing'}`)
    if (action === 'list' && ids.length > 0) throw new UsageError('opt-out list takes no subscriber ids')
    if (action !== 'list' && ids.length === 0) throw new UsageError(`opt-out ${action} needs at least one subscriber id`)
    const redis = createRedis({ url: context.config.redis.url, maxRetriesPerRequest: 1 })
    redis.on('error', (error: unknown) => { context.logger.debug({ err: error }, 'redis connection error') })
    const list = new OptOutList({ redis, prefix: context.config.redis.prefix })
    try {
      switch (action) {
        case 'add': {
          const added = await list.add(...ids)
          context.out.write(`opted out ${added} subscriber${added === 1 ? '' : 's'} (${ids.length - added} already were)\n`)
          break
        }
        case 'remove': {
          const removed = await list.remove(...ids)
          context.out.write(`opted back in ${removed} subscriber${removed === 1 ? '' : 's'} (${ids.length - removed} had not opted out)\n`)
          break
        }
        default:
          for (const id of await list.list()) context.out.write(`${id}\n`)
      }
      return 0
    } catch (error) {
      // A malformed id is a command-line mistake: exit 2 with the usage line.
      if (errorCode(error) === 'CHURN_SCORE_BAD_SUBSCRIBER') throw new UsageError(describeError(error))
      throw error
    } finally {
      redis.disconnect()
    }
  }
}
