// Lint guards what the compiler cannot: floating promises, and the workflow sandbox (no Node built-ins,
// no adapters, no I/O libraries in workflows/).
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
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'workflows run in a deterministic sandbox: no Node built-ins' })),
          patterns: [
            { group: ['**/adapters', '**/adapters/**', '**/config', '**/config/**'], allowTypeImports: true, message: 'workflows never import adapters or config code: call an activity (type imports are fine)' },
            { group: ['**/activities/*', '!**/activities/index'], allowTypeImports: true, message: 'workflows import activity types only' },
            { group: ['@kubernetes/*', 'etcd3', '@aws-sdk/*', '@google-cloud/*', 'fastify', 'pino'], message: 'no I/O libraries in workflows/' },
          ],
        },
      ],
    },
  },
);
