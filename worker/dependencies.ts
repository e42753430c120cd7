// Configuration -> adapters -> what activities are built from, for the worker process (and tests).
import { hostname } from 'node:os';
import { Registry as MetricsRegistry, collectDefaultMetrics } from 'prom-client';
import type { Client } from '@temporalio/client';
import type { RuntimeConfig } from '../config/runtime';
import { endpointSettings, type EndpointSyncConfig } from '../config/endpoints';
import { createDrivers, createEndpointAdapters, createRegistry, driverSecretStore, type RegistryBundle } from '../adapters/factory';
import type { ResourceDriver } from '../adapters/resources/types';
import type { ActivityDeps } from '../activities';
import type { EndpointDeps } from '../activities/endpoints';
import { createReconcileMetrics, createServiceRegistryCallMetrics } from '../activities/metrics';
import type { CallObserver } from '../adapters/service-registries/call-budget';
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
  const metrics = new MetricsRegistry();
  collectDefaultMetrics({ register: metrics, prefix: 'brokerflow_worker_' });
  const observer = createServiceRegistryCallMetrics(metrics);
  const registry = await createRegistry(cfg);
  const { drivers, close: closeDrivers } = await createDrivers(cfg, driverSecretStore(registry.secrets), { observer });
  for (const [kind, d] of extraDrivers) drivers.set(kind, d);
  const kubeconfig = cfg.kubernetes?.kubeconfig ? resolve(cfg.baseDir, cfg.kubernetes.kubeconfig) : process.env.KUBECONFIG;
  const endpoints = cfg.endpoints ? await createEndpointDeps(cfg.endpoints, { ...(kubeconfig ? { kubeconfig } : {}), baseDir: cfg.baseDir, observer }) : undefined;
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

/** What the endpoint activities are built from: the section's settings and its adapters (worker and tests). */
export async function createEndpointDeps(
  cfg: EndpointSyncConfig,
  opts: { kubeconfig?: string; baseDir?: string; client?: Client; observer?: CallObserver } = {},
): Promise<EndpointDeps> {
  const settings = endpointSettings(cfg);
  const adapters = await createEndpointAdapters(cfg, {
    ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}),
    ...(opts.baseDir ? { baseDir: opts.baseDir } : {}),
    ...(opts.observer ? { observer: opts.observer } : {}),
  });
  return { settings, ...adapters, ...(opts.client ? { client: opts.client } : {}) };
}
