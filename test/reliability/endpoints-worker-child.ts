// Child process of endpoints-worker-kill.test.ts: a worker with endpoint reconciliation on the test's task
// queue, until it is killed. Arguments: the runtime config file; the `endpoints:` section comes as JSON in
// BROKERFLOW_TEST_ENDPOINTS. Prints `ready <pid>` once polling.
import type { EndpointSyncConfig } from '../../config/endpoints';
import { createEndpointDeps } from '../../worker/dependencies';
import { loadRuntimeConfig } from '../../config/runtime';
import { createTestWorker } from '../support/worker';

async function main(): Promise<void> {
  const config = loadRuntimeConfig(process.argv[2]!);
  const endpoints = JSON.parse(process.env.BROKERFLOW_TEST_ENDPOINTS ?? '{}') as EndpointSyncConfig;
  const worker = await createTestWorker(config, { endpoints: await createEndpointDeps(endpoints) });
  const run = worker.run();
  process.stdout.write(`ready ${process.pid}\n`);
  await run;
}

main().catch((err: Error) => {
  process.stderr.write(`endpoint worker child failed: ${err.stack ?? err.message}\n`);
  process.exit(2);
});
