/** Tests draw random cases reproducibly with the product's own seeded generator. */
export { seededRandom } from '../../core/random.ts'
export type { Random } from '../../core/random.ts'
