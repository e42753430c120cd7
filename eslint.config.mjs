// Lint guards what the compiler cannot: floating promises, the workflow sandbox (no Node built-ins,
// no adapters, no I/O libraries in workflows/) and the domain at the bottom of the layers (it imports nothing).
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'bench/results/**', '**/*.mjs', '**/*.js'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test()/describe() return promises the runner itself awaits.
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  {
    // The next build of the workflows that upgrade tests run is workflow code too (test/support/fixtures/next-build).
    files: ['workflows/**/*.ts', 'test/support/fixtures/next-build/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'workflows run in a deterministic sandbox: no Node built-ins' })),
          patterns: [
            // Not even types: what workflows and adapters both need lives in domain/.
            { group: ['**/adapters', '**/adapters/**'], message: 'workflows never import adapters, not even types: shared types live in domain/, side effects behind activities' },
            { group: ['**/config', '**/config/**'], allowTypeImports: true, message: 'workflows never import config code: call an activity (type imports are fine)' },
            { group: ['**/activities/*', '!**/activities/index'], allowTypeImports: true, message: 'workflows import activity types only' },
            { group: ['@kubernetes/*', 'etcd3', '@aws-sdk/*', '@google-cloud/*', 'fastify', 'pino'], message: 'no I/O libraries in workflows/' },
          ],
        },
      ],
    },
  },
  {
    files: ['domain/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'domain/ is plain data and rules: no Node built-ins' })),
          patterns: [
            {
              group: ['**/adapters', '**/adapters/**', '**/activities', '**/activities/**', '**/workflows', '**/workflows/**', '**/config', '**/config/**', '**/client', '**/client/**', '**/worker', '**/worker/**'],
              message: 'domain/ is the bottom layer: every other part imports it, it imports none of them',
            },
            { group: ['@temporalio/*', '@kubernetes/*', 'etcd3', '@aws-sdk/*', '@google-cloud/*', 'fastify', 'pino'], message: 'domain/ has no I/O and no Temporal' },
          ],
        },
      ],
    },
  },
);
