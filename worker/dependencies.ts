// Configuration -> adapters -> what activities are built from, for the worker process (and tests).
import { hostname } from 'node:os';
import { Registry as MetricsRegistry, collectDefaultMetrics } from 'prom-client';
import type { RuntimeConfig } from '../config/runtime';
import { createDrivers, createRegistry, driverSecretStore, type RegistryBundle } from '../adapters/factory';
import type { ResourceDriver } from '../adapters/resources/types';
import type { ActivityDeps } from '../activities';
import { createReconcileMetrics } from '../activities/metrics';
import { resolve } from 'node:path';

/** Activity dependencies with the resources behind them. */
export interface WorkerDependencies {
  deps: ActivityDeps;
  registry: RegistryBundle;
  metrics: MetricsRegistry;
  close(): Promise<void>;
}

/**
 * Builds everything activities need. `extraDrivers` adds drivers beyond the configured ones (tests use a
 * tracing driver; an operator may add their own kinds).
 */
export async function buildWorkerDependencies(cfg: RuntimeConfig, extraDrivers: Map<string, ResourceDriver> = new Map()): Promise<WorkerDependencies> {
  const registry = await createRegistry(cfg);
  const { drivers, close: closeDrivers } = await createDrivers(cfg, driverSecretStore(registry.secrets));
  for (const [kind, d] of extraDrivers) drivers.set(kind, d);
  const kubeconfig = cfg.kubernetes?.kubeconfig ? resolve(cfg.baseDir, cfg.kubernetes.kubeconfig) : process.env.KUBECONFIG;
  // Imported only when configured: endpoint reconciliation pulls in @kubernetes/client-node.
  const endpoints = cfg.endpoints
    ? (require('../activities/endpoints') as typeof import('../activities/endpoints')).createEndpointDeps(cfg.endpoints, { ...(kubeconfig ? { kubeconfig } : {}), baseDir: cfg.baseDir })
    : undefined;
  const metrics = new MetricsRegistry();
  collectDefaultMetrics({ register: metrics, prefix: 'brokerflow_worker_' });
  return {
    deps: {
      workerIdentity: `${process.pid}@${hostname()}`,
      drivers,
      reconcileMetrics: createReconcileMetrics(metrics),
      operations: { registry: registry.registry, catalog: cfg.catalogData, resourceSets: cfg.resourceSetData },
      ...(endpoints ? { endpoints } : {}),
    },
    registry,
    metrics,
    async close() {
      await endpoints?.close?.();
      await closeDrivers();
      await registry.close();
    },
  };
}
