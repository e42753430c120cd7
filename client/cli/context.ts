// What every CLI command works with: the configuration, a Temporal client, the registry and the OSB service.
import type { Client } from '@temporalio/client';
import type { RuntimeConfig } from '../../config/runtime';
import { createDrivers, createRegistry, driverSecretStore, readOnlySecretStore } from '../../adapters/factory';
import type { ResourceDriver } from '../../adapters/resources/types';
import type { Registry } from '../../adapters/registry';
import { OperationsClient } from '../operations';
import { OsbService } from '../broker/service';
import { probeWorkflow } from '../../workflows/probe';

/** The CLI's connections; `close()` releases them. */
export interface CliContext {
  config: RuntimeConfig;
  client: Client;
  registry: Registry;
  operations: OperationsClient;
  osb: OsbService;
  /** The configured resource drivers over a read-only secret store (dry runs), created on first use. */
  drivers(): Promise<Map<string, ResourceDriver>>;
  /** Checks Temporal, the registry and that a worker runs workflows. */
  doctor(timeoutMs: number): Promise<Array<{ name: string; ok: boolean; detail?: string }>>;
  close(): Promise<void>;
}

export async function createCliContext(config: RuntimeConfig, connect: () => Promise<Client>): Promise<CliContext> {
  const client = await connect();
  const bundle = await createRegistry(config);
  const operations = new OperationsClient(client, config.temporal.taskQueue, bundle.registry);
  const osb = new OsbService({
    catalog: config.catalogData,
    registry: bundle.registry,
    operations,
    syncTimeoutMs: (config.broker?.syncTimeoutSeconds ?? 60) * 1000,
  });
  let drivers: ReturnType<typeof createDrivers> | undefined;
  return {
    config,
    client,
    registry: bundle.registry,
    operations,
    osb,
    async drivers() {
      drivers ??= createDrivers(config, readOnlySecretStore(driverSecretStore(bundle.secrets)));
      return (await drivers).drivers;
    },
    async doctor(timeoutMs) {
      const checks: Array<{ name: string; ok: boolean; detail?: string }> = [];
      try {
        await client.workflowService.getSystemInfo({});
        checks.push({ name: 'temporal', ok: true, detail: `${config.temporal.address} namespace ${config.temporal.namespace}` });
      } catch (err) {
        checks.push({ name: 'temporal', ok: false, detail: (err as Error).message });
      }
      try {
        await bundle.registry.list('service-instance');
        checks.push({ name: 'registry', ok: true, detail: config.registry?.backend ?? 'file' });
      } catch (err) {
        checks.push({ name: 'registry', ok: false, detail: (err as Error).message });
      }
      try {
        const started = Date.now();
        const result = await client.workflow.execute(probeWorkflow, {
          taskQueue: config.temporal.taskQueue,
          workflowId: `probe/${Date.now()}-${process.pid}`,
          args: [{ note: 'doctor' }],
          workflowExecutionTimeout: `${Math.max(1, Math.round(timeoutMs / 1000))} seconds`,
        });
        checks.push({ name: 'worker', ok: true, detail: `${result.workerIdentity} answered in ${Date.now() - started} ms on task queue ${config.temporal.taskQueue}` });
      } catch {
        checks.push({ name: 'worker', ok: false, detail: `no worker ran a workflow on task queue ${config.temporal.taskQueue} within ${Math.round(timeoutMs / 1000)} s` });
      }
      return checks;
    },
    async close() {
      await drivers?.then((d) => d.close(), () => undefined);
      await bundle.close();
      await client.connection.close();
    },
  };
}
