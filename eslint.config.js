// Lint rules that the type checker does not cover: no `any`, `import type` for types, no
// floating promises (a dropped rejection in a consumer loop loses data silently), no focused or
// hollow tests.
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['node_modules/', '.stack/', 'data/', 'coverage/'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname }
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'separate-type-imports' }],
      '@typescript-eslint/no-floating-promises': ['error', {
        // node:test's describe/it return promises the runner itself awaits.
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }]
      }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      '@typescript-eslint/only-throw-error': 'error',
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Only entry points (cli/main.ts, bench/*.ts, test/with-stack.ts, test/helpers) read process.env; pass configuration down.' }]
    }
  },
  {
    files: ['cli/main.ts', 'test/**/*.ts', 'bench/*.ts'],
    rules: { 'no-restricted-properties': 'off' }
  },
  {
    files: ['test/**/*.test.ts'],
    rules: {
      'no-restricted-syntax': ['error',
        { selector: "CallExpression[callee.property.name='only']", message: 'Focused tests hide the rest of the suite.' },
        { selector: "CallExpression[callee.property.name='skip']", message: 'A skipped test needs a reason in an issue, not in the suite.' }
      ]
    }
  }
)
