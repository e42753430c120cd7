// The worker process: configuration -> adapters -> activities -> Worker, until SIGINT/SIGTERM.
import { createServer, type Server } from 'node:http';
import { performance } from 'node:perf_hooks';
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
  const startedAt = performance.now();
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
  // Bound before anything is polled: a port another process holds is a startup error that names the port, never
  // an unhandled 'error' event that kills a worker which is already running operations.
  const metrics = config.worker?.metricsPort !== undefined ? await serveMetrics(config.worker.metricsPort, built.metrics) : undefined;
  await registerSearchAttributes(config, log);
  if (built.deps.endpoints) {
    // Endpoint reconciliation runs as a singleton watcher workflow plus a resync schedule; starting them is idempotent.
    const client = await connectClient(config);
    const started = await ensureEndpointSync(client, { taskQueue: config.temporal.taskQueue, settings: built.deps.endpoints.settings });
    log.info({ sync: built.deps.endpoints.settings.name, schedule: started.scheduleId }, 'endpoint reconciliation running');
    await client.connection.close();
  }
  // Said as it begins to poll: tests and supervisors take this line as "ready".
  log.info(
    {
      taskQueue: config.temporal.taskQueue,
      namespace: config.temporal.namespace,
      drivers: [...(built.deps.drivers?.keys() ?? [])],
      metricsPort: metrics?.port,
      workflowBundle: bundle.from,
      startupMs: Math.round(performance.now() - startedAt),
    },
    'worker started',
  );
  await worker.run();
  metrics?.server.close();
  await built.close();
  log.info('worker stopped');
}

/** Serves `/metrics` on 127.0.0.1:`port` (0: a free port, logged in "worker started"); rejects with the port when it cannot be bound. */
async function serveMetrics(port: number, registry: { metrics(): Promise<string>; contentType: string }): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', (err: NodeJS.ErrnoException) => fail(new Error(`the metrics port 127.0.0.1:${port} (worker.metricsPort) cannot be bound: ${err.code ?? err.message}`)));
    server.listen(port, '127.0.0.1', () => ok());
  });
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : port };
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
