// How a test file finds the servers that test/run.ts started for the whole run.

export const testEnvNames = {
  temporalAddress: 'BROKERFLOW_TEST_TEMPORAL_ADDRESS',
  temporalUi: 'BROKERFLOW_TEST_TEMPORAL_UI',
  etcdEndpoint: 'BROKERFLOW_TEST_ETCD_ENDPOINT',
  motoEndpoint: 'BROKERFLOW_TEST_MOTO_ENDPOINT',
  tenantEtcdEndpoint: 'BROKERFLOW_TEST_TENANT_ETCD_ENDPOINT',
  tenantEtcdRootPassword: 'BROKERFLOW_TEST_TENANT_ETCD_ROOT_PASSWORD',
  kubeconfig: 'KUBECONFIG_BROKERFLOW_TEST',
  workDir: 'BROKERFLOW_TEST_WORK_DIR',
  workflowBundle: 'BROKERFLOW_TEST_WORKFLOW_BUNDLE',
} as const;

/** Where the servers of one run are: what test/run.ts (and the benchmarks' stack) hands every test file. */
export interface TestServers {
  temporalAddress: string;
  temporalUi?: string | undefined;
  etcdEndpoint: string;
  motoEndpoint: string;
  tenantEtcdEndpoint: string;
  tenantEtcdRootPassword: string;
  kubeconfig: string;
  workDir: string;
  workflowBundle: string;
}

/** The environment variables that carry `servers` to a test file (see {@link requireTestEnv}). */
export function testServersEnv(servers: TestServers): Record<string, string> {
  return Object.fromEntries(
    (Object.keys(testEnvNames) as Array<keyof typeof testEnvNames>).flatMap((k) => (servers[k] ? [[testEnvNames[k], servers[k]]] : [])),
  );
}

/** Reads one server address; a test run outside `npm test` fails here with a message that says so. */
export function requireTestEnv(key: keyof typeof testEnvNames): string {
  const name = testEnvNames[key];
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: this test needs the real servers that \`npm test\` starts ` +
        '(or `npm run test:only -- <file>` once dependencies are installed).',
    );
  }
  return value;
}
