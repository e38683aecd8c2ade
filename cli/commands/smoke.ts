import { runSmokeChain } from '../../stack/smoke.ts'
import type { SmokeReport } from '../../stack/smoke.ts'
import type { Command, CommandContext } from '../context.ts'

export function describeSmoke (report: SmokeReport): string {
  return [
    `registry  schema ${report.schemaId} registered under ${report.subject} (BACKWARD)  ${report.ms.register} ms`,
    `kafka     Avro event ${report.sent.id} sent and read back from ${report.topic} p${report.received.partition}@${report.received.offset}  ${report.ms.kafka} ms`,
    `bullmq    job ${report.job.id} on ${report.job.queue} completed with ${JSON.stringify(report.job.result)}  ${report.ms.queue} ms`,
    ''
  ].join('\n')
}

export async function smoke (context: CommandContext): Promise<SmokeReport> {
  const report = await runSmokeChain({ config: context.config, logger: context.logger })
  context.out.write(describeSmoke(report))
  return report
}

export const smokeCommand: Command = {
  name: 'smoke',
  summary: 'prove the running stack: Avro schema via the registry, a Kafka round trip, a BullMQ job',
  usage: 'smoke',
  run: async (_args, context) => {
    await smoke(context)
    return 0
  }
}
