import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DuckDBInstance } from '@duckdb/node-api'
import { ENVELOPE_COLUMNS, snakeCase, sourceTables } from '../../../lakehouse/columns.ts'
import { DAY_MS, FEATURES, MEASURES, MODEL_FEATURES, daysSinceLastActivity, daysSinceLastActivitySql } from '../../../lakehouse/features.ts'
import { MAX_TEXT_CHARS, gateRules, reasonsExpression } from '../../../lakehouse/gate.ts'

describe('lakehouse columns', () => {
  it('are derived from the newest schemas, envelope first', async () => {
    const tables = await sourceTables()
    assert.deepEqual(tables.map(t => t.stream), ['billing', 'network', 'device', 'crm'])
    for (const table of tables) assert.deepEqual(table.columns.slice(0, 4).map(c => c.name), [...ENVELOPE_COLUMNS])
    const network = tables.find(t => t.stream === 'network')
    assert.deepEqual(network?.columns.find(c => c.field === 'signalDbm'), { field: 'signalDbm', name: 'signal_dbm', type: 'DOUBLE', nullable: false })
    const billing = tables.find(t => t.stream === 'billing')
    assert.equal(billing?.columns.find(c => c.field === 'topUpAmount')?.nullable, true)
    assert.equal(tables.find(t => t.stream === 'crm')?.columns.find(c => c.field === 'effectiveDate')?.type, 'DATE')
  })

  it('snake_case Avro names', () => {
    assert.equal(snakeCase('packetLossPct'), 'packet_loss_pct')
    assert.equal(snakeCase('eventTime'), 'event_time')
    assert.equal(snakeCase('osVersion'), 'os_version')
  })
})

describe('the Gold feature definition', () => {
  it('names every feature once, and the model reads days since last activity too', () => {
    const names = FEATURES.map(f => f.name)
    assert.equal(new Set(names).size, names.length)
    assert.equal(new Set(MEASURES.map(m => m.name)).size, MEASURES.length)
    assert.deepEqual(MODEL_FEATURES, [...names, 'days_since_last_activity'])
    for (const reference of ['total_events', 'avg_signal_dbm', 'avg_latency_ms', 'avg_packet_loss_pct', 'avg_bill_amount', 'avg_data_used_mb', 'max_days_overdue', 'overdue_count', 'avg_battery_pct', 'avg_quality_score']) {
      assert.ok(names.includes(reference), `the reference design's ${reference}`)
    }
  })

  it('computes days since last activity the same in SQL and in TypeScript', async () => {
    const instance = await DuckDBInstance.create(':memory:')
    const connection = await instance.connect()
    try {
      for (const [reference, last] of [[DAY_MS * 3 + 5, 5], [1_790_000_000_000, 1_789_123_456_789], [10, 10]] as const) {
        const reader = await connection.runAndReadAll(`SELECT ${daysSinceLastActivitySql(`${reference}::BIGINT`, `${last}::BIGINT`)}`)
        assert.equal(Number(reader.getRows()[0]?.[0]), daysSinceLastActivity(reference, last))
      }
    } finally {
      connection.closeSync()
      instance.closeSync()
    }
  })
})

describe('the Silver gate', () => {
  it('has the reference rules and a finite check for every measurement', async () => {
    const tables = await sourceTables()
    const reasons = (stream: string): string[] => gateRules(tables.find(t => t.stream === stream) ?? tables[0]!).map(r => r.reason)
    assert.ok(reasons('billing').includes('quality_below_45'))
    assert.ok(reasons('billing').includes('negative_bill_amount'))
    assert.ok(reasons('network').includes('signal_above_0_dbm'))
    assert.ok(reasons('network').includes('non_finite_latency_ms'))
    assert.ok(reasons('device').includes('battery_out_of_range'))
    for (const stream of ['billing', 'network', 'device', 'crm']) assert.ok(reasons(stream).includes('text_too_long'), `${stream}: long text is quarantined`)
    for (const stream of ['billing', 'network', 'device', 'crm']) assert.equal(new Set(reasons(stream)).size, reasons(stream).length, `${stream}: reasons are unique`)
  })

  it('quarantines a text field longer than MAX_TEXT_CHARS, and only that', async () => {
    const network = (await sourceTables()).find(t => t.stream === 'network')
    assert.ok(network !== undefined)
    const long = gateRules(network).filter(r => r.reason === 'text_too_long')
    const instance = await DuckDBInstance.create(':memory:')
    const connection = await instance.connect()
    try {
      for (const [length, expected] of [[MAX_TEXT_CHARS, []], [MAX_TEXT_CHARS + 1, ['text_too_long']], [900_000, ['text_too_long']]] as const) {
        const reader = await connection.runAndReadAll(`SELECT ${reasonsExpression(long)} FROM (SELECT repeat('x', ${length}) AS cell_id, 'LTE_4G' AS radio_technology)`)
        assert.deepEqual(JSON.parse(JSON.stringify(reader.getRowsJson()[0]?.[0])), expected, `${length} characters`)
      }
    } finally {
      connection.closeSync()
      instance.closeSync()
    }
  })
})
