// The worker process: configuration -> adapters -> activities -> Worker, until SIGINT/SIGTERM.
import { createServer } from 'node:http';
import { configPathFromArgs, loadRuntimeConfig } from '../config';
import { createLogger } from '../platform/logging';
import { createWorker, installRuntime } from './worker';
import { buildWorkerDependencies } from './dependencies';
import { prebuiltWorkflowBundle } from './bundle';
import { upgradeTestWorkflowsEnv, workflowsEntry } from './workflows-entry';
import { connectClient } from '../platform/temporal';
import { ensureEndpointSync } from '../platform/endpoint-workflows';
import { searchAttributeDefinitions } from '../workflows/searchAttributes';
import { temporal } from '@temporalio/proto';

async function main(): Promise<void> {
  // First, so that a worker told to run anything but the product's workflows refuses before it connects anywhere.
  const entry = workflowsEntry();
  const log = createLogger('worker');
  if (entry.upgradeTest) log.warn({ [upgradeTestWorkflowsEnv]: entry.path }, 'this worker runs an upgrade test\'s build of the workflows, not the product\'s');
  const config = loadRuntimeConfig(configPathFromArgs());
  const sdkPort = config.worker?.sdkMetricsPort;
  installRuntime(sdkPort ? { sdkMetricsAddress: `127.0.0.1:${sdkPort}` } : {});
  const built = await buildWorkerDependencies(config);
  const bundle = prebuiltWorkflowBundle({ log });
  const worker = await createWorker({ config, deps: built.deps, workflowBundle: { code: bundle.code } });
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
    { taskQueue: config.temporal.taskQueue, namespace: config.temporal.namespace, drivers: [...(built.deps.drivers?.keys() ?? [])], metricsPort, workflowBundle: bundle.from },
    'worker started',
  );
  await registerSearchAttributes(config, log);
  if (built.deps.endpoints) {
    // Endpoint reconciliation runs as a singleton watcher workflow plus a resync schedule; starting them is idempotent.
    const client = await connectClient(config);
    const started = await ensureEndpointSync(client, { taskQueue: config.temporal.taskQueue, settings: built.deps.endpoints.settings });
    log.info({ sync: built.deps.endpoints.settings.name, schedule: started.scheduleId }, 'endpoint reconciliation running');
    await client.connection.close();
  }
  await worker.run();
  server?.close();
  await built.close();
  log.info('worker stopped');
}

/**
 * Registers brokerflow's search attributes on the namespace (idempotent): a real cluster refuses workflow starts
 * that set unknown ones. Needs operator rights; without them (Temporal Cloud) it warns and the attributes must be
 * added in the Cloud UI or with tcld.
 */
async function registerSearchAttributes(config: Parameters<typeof connectClient>[0], log: ReturnType<typeof createLogger>): Promise<void> {
  const client = await connectClient(config);
  try {
    const { customAttributes } = await client.connection.operatorService.listSearchAttributes({ namespace: config.temporal.namespace });
    const missing = searchAttributeDefinitions.filter((d) => !(d.name in (customAttributes ?? {})));
    if (missing.length === 0) return;
    await client.connection.operatorService.addSearchAttributes({
      namespace: config.temporal.namespace,
      searchAttributes: Object.fromEntries(missing.map((d) => [d.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
    });
    log.info({ added: missing.map((d) => d.name) }, 'search attributes registered');
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not register search attributes; add them to the namespace by hand (see docs/DEPLOY.md)');
  } finally {
    await client.connection.close();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`brokerflow worker: ${err.message}\n`);
  process.exit(1);
});
