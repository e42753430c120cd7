// The layer rules of docs/design/architecture.md ("Dependency rules"), checked on every import of product code,
// type-only imports included. test/unit/architecture.test.ts runs this in `npm test`, on the tree and on a
// planted violation of each rule; `npx depcruise --config .dependency-cruiser.cjs <folders>` shows it by hand.
const IO_LIBRARIES = '^(@kubernetes/|etcd3|@aws-sdk/|@google-cloud/|fastify|@fastify/|pino|prom-client|undici)';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import circle makes load order matter and two modules one; break it with a module both import.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'domain-imports-nothing',
      severity: 'error',
      comment: 'domain/ is the bottom layer: plain data and rules, no other folder, no Temporal, no Node built-ins, no I/O.',
      from: { path: '^domain/' },
      to: { pathNot: '^domain/' },
    },
    {
      name: 'workflows-never-import-adapters',
      severity: 'error',
      comment: 'Workflows reach the world through activities only; the types both need live in domain/.',
      from: { path: '^workflows/' },
      to: { path: '^adapters/' },
    },
    {
      name: 'workflows-import-types-only-from-activities-and-config',
      severity: 'error',
      comment: 'The workflow sandbox runs no activity or configuration code.',
      from: { path: '^workflows/' },
      to: { path: '^(activities|config)/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'workflows-no-io',
      severity: 'error',
      comment: 'Workflows are deterministic: no I/O libraries, nothing from the processes around them.',
      from: { path: '^workflows/' },
      to: { path: [IO_LIBRARIES, '^(client|worker|platform)/'] },
    },
    {
      name: 'workflows-no-node-builtins',
      severity: 'error',
      comment: 'Node built-ins are not deterministic (clock, randomness, I/O).',
      from: { path: '^workflows/' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'adapters-import-no-temporal',
      severity: 'error',
      comment: 'Adapters are plain libraries; Temporal belongs to workflows, activities, worker, client and platform.',
      from: { path: '^adapters/' },
      to: { path: '^@temporalio/' },
    },
    {
      name: 'adapters-stay-below-the-processes',
      severity: 'error',
      comment: 'Adapters know nothing of activities, workflows, the worker, the client or platform.',
      from: { path: '^adapters/' },
      to: { path: '^(activities|workflows|worker|client|platform)/' },
    },
    {
      name: 'client-imports-no-activity-values',
      severity: 'error',
      comment: 'The broker and CLI start and read operations; they never run activity code.',
      from: { path: '^client/' },
      to: { path: '^activities/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'worker-and-client-are-siblings',
      severity: 'error',
      comment: 'What both need lives in platform/.',
      from: { path: '^worker/' },
      to: { path: '^client/' },
    },
    {
      name: 'client-does-not-import-the-worker',
      severity: 'error',
      comment: 'What both need lives in platform/.',
      from: { path: '^client/' },
      to: { path: '^worker/' },
    },
    {
      name: 'platform-below-the-processes',
      severity: 'error',
      comment: 'platform/ is what worker and client stand on; it imports neither, nor activity code.',
      from: { path: '^platform/' },
      to: { path: '^(worker|client)/|^activities/' },
    },
    {
      name: 'activities-never-import-workflow-code',
      severity: 'error',
      comment: 'Activities may use the workflows\' message definitions, never their code (workflows import activity types).',
      from: { path: '^activities/' },
      to: { path: '^workflows/', pathNot: '^workflows/([a-z-]*-messages|messages|searchAttributes)\\.ts$' },
    },
    {
      name: 'product-never-imports-tests-or-scripts',
      severity: 'error',
      from: { path: '^(domain|workflows|activities|adapters|worker|client|platform|config)/' },
      to: { path: '^(test|scripts|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
    exclude: { path: '(^|/)node_modules/' },
  },
};
