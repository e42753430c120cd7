// The worker process: configuration -> adapters -> activities -> Worker, until SIGINT/SIGTERM.
import { createServer } from 'node:http';
import { configPathFromArgs, loadRuntimeConfig } from '../config';
import { createLogger } from '../client/logging';
import { createWorker, installRuntime } from './worker';
import { buildWorkerDependencies } from './dependencies';
import { prebuiltWorkflowBundle } from './bundle';
import { connectClient } from '../client/temporal';

async function main(): Promise<void> {
  const log = createLogger('worker');
  const config = loadRuntimeConfig(configPathFromArgs());
  const sdkPort = config.worker?.sdkMetricsPort;
  installRuntime(sdkPort ? { sdkMetricsAddress: `127.0.0.1:${sdkPort}` } : {});
  const built = await buildWorkerDependencies(config);
  const worker = await createWorker({ config, deps: built.deps, workflowBundle: { codePath: prebuiltWorkflowBundle() } });
  const metricsPort = config.worker?.metricsPort;
  const server =
    metricsPort !== undefined
      ? createServer((req, res) => {
          if (req.url !== '/metrics') {
            res.writeHead(404).end();
            return;
          }
          built.metrics.metrics().then(
            (text) => res.writeHead(200, { 'Content-Type': built.metrics.contentType }).end(text),
            () => res.writeHead(500).end(),
          );
        }).listen(metricsPort, '127.0.0.1')
      : undefined;
  log.info(
    { taskQueue: config.temporal.taskQueue, namespace: config.temporal.namespace, drivers: [...(built.deps.drivers?.keys() ?? [])], metricsPort },
    'worker started',
  );
  if (built.deps.endpoints) {
    // Endpoint reconciliation runs as a singleton watcher workflow plus a resync schedule; starting them is idempotent.
    const client = await connectClient(config);
    const { ensureEndpointSync } = require('../activities/endpoints') as typeof import('../activities/endpoints');
    const started = await ensureEndpointSync(client, { taskQueue: config.temporal.taskQueue, settings: built.deps.endpoints.settings });
    log.info({ sync: built.deps.endpoints.settings.name, schedule: started.scheduleId }, 'endpoint reconciliation running');
    await client.connection.close();
  }
  await worker.run();
  server?.close();
  await built.close();
  log.info('worker stopped');
}

main().catch((err: Error) => {
  process.stderr.write(`brokerflow worker: ${err.message}\n`);
  process.exit(1);
});
