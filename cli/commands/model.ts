import { ModelRegistry } from '../../training/registry.ts'
import { TrainingError } from '../../training/errors.ts'
import type { Command } from '../context.ts'
import { UsageError } from '../errors.ts'
import { parseOptions, positiveInteger } from '../options.ts'
import { renderTable } from '../table.ts'

const ACTIONS = ['list', 'show', 'promote', 'rollback'] as const

/** The artifact for people: everything but the forest's arrays. */
function card (artifact: Awaited<ReturnType<ModelRegistry['load']>>): Record<string, unknown> {
  const { forest, features, ...rest } = artifact
  const importances = features.names.map((name, i) => ({ feature: name, importance: forest.importances[i] as number })).sort((a, b) => b.importance - a.importance)
  return { ...rest, features: { kind: features.kind, hash: features.hash, names: features.names }, forest: { trees: forest.roots.length, nodes: forest.value.length }, importances }
}

export const modelCommand: Command = {
  name: 'model',
  summary: 'list stored model versions, show one (metrics, importances, window), promote a version, or roll back to the previous one',
  usage: 'model list [<name>] | show <name> [<version>] | promote <name> <version> | rollback <name>',
  run: async (args, context) => {
    const { positionals } = parseOptions({ args: [...args], allowPositionals: true, options: {} })
    const [action, name, versionText] = positionals
    if (!(ACTIONS as readonly string[]).includes(action ?? '')) throw new UsageError(`model takes one of ${ACTIONS.join(', ')}; got ${action ?? 'nothing'}`)
    const registry = new ModelRegistry(context.config.model.dir)
    const needName = (): string => {
      if (name === undefined) throw new UsageError(`model ${action} needs a model name`)
      return name
    }
    switch (action) {
      case 'list': {
        const rows = await registry.list(name)
        if (rows.length === 0) {
          context.out.write(`no models in ${registry.dir}\n`)
          return 0
        }
        context.out.write(renderTable(
          ['name', 'version', 'current', 'created', 'engine', 'labels', 'rows', 'cv AUC', 'test AUC'],
          rows.map(r => [r.name, String(r.version), r.current ? '*' : '', r.createdAt, r.engine, r.labels, String(r.rows), r.cvAuc === null ? '-' : r.cvAuc.toFixed(4), r.testAuc.toFixed(4)])
        ))
        return 0
      }
      case 'show': {
        const model = needName()
        const version = positiveInteger(versionText, 'version', undefined) ?? (await registry.pointer(model))?.version
        if (version === undefined) throw new TrainingError('CHURN_MODEL_NOT_FOUND', `model ${model} has no promoted version; name one: model show ${model} <version>`)
        context.out.write(`${JSON.stringify(card(await registry.load(model, version)), null, 2)}\n`)
        return 0
      }
      case 'promote': {
        const model = needName()
        const version = positiveInteger(versionText, 'version', undefined)
        if (version === undefined) throw new UsageError('model promote needs a version')
        const pointer = await registry.promote(model, version, 'promoted by hand (model promote)')
        context.logger.info({ model, version, previous: pointer.history.at(-1) }, 'model promoted by hand')
        context.out.write(`${model} v${pointer.version} is current (was ${pointer.history.at(-1) === undefined ? 'none' : `v${pointer.history.at(-1)}`})\n`)
        return 0
      }
      default: {
        const model = needName()
        const pointer = await registry.rollback(model)
        context.logger.info({ model, version: pointer.version }, 'model rolled back')
        context.out.write(`${model} v${pointer.version} is current again (${pointer.reason})\n`)
        return 0
      }
    }
  }
}
