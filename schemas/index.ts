export { createSchemaRegistry, registerAvroSchema, setSubjectCompatibility } from './registry.ts'
export type { Compatibility, RegisterOptions, RegistryClientOptions } from './registry.ts'
export { SchemaError, SCHEMA_ERROR_CODES } from './errors.ts'
