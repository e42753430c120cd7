// Assembles a running broker from configuration: credentials, Temporal client, readiness checks, routes.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { ConfigError } from '../../config/catalog';
import { resolveSecret, type RuntimeConfig } from '../../config/runtime';
import { connectClient } from '../../platform/temporal';
import type { BrokerCredentials } from './auth';
import { buildBrokerApp } from './app';
import { Gauge, type Registry as PromRegistry } from 'prom-client';
import { createRegistry, type RegistryBundle } from '../../adapters/factory';
import { OperationsClient } from '../operations';
import { OsbService } from './service';
import { createBrokerMetrics } from './metrics';

/** Resolves the configured broker credentials; a broker without any refuses to start. */
export function brokerCredentials(cfg: RuntimeConfig): BrokerCredentials {
  const auth = cfg.broker?.auth;
  const creds: BrokerCredentials = {
    basic: (auth?.basic ?? []).map((b, i) => ({
      username: b.username,
      password: resolveSecret(b.password, `broker.auth.basic[${i}].password`, cfg.baseDir),
    })),
    bearerTokens: (auth?.bearerTokens ?? []).map((t, i) => resolveSecret(t, `broker.auth.bearerTokens[${i}]`, cfg.baseDir)),
  };
  if (creds.basic.length === 0 && creds.bearerTokens.length === 0) {
    throw new ConfigError('broker.auth: configure at least one basic user or bearer token; the broker never runs unauthenticated', 'broker.auth');
  }
  return creds;
}

/** A broker app with its Temporal client; `close()` releases both. */
export interface RunningBroker {
  app: FastifyInstance;
  client: Client;
  osb: OsbService;
  close(): Promise<void>;
}

export async function createBroker(cfg: RuntimeConfig, log: Logger, client?: Client): Promise<RunningBroker> {
  const credentials = brokerCredentials(cfg);
  const temporal = client ?? (await connectClient(cfg));
  const registry = await createRegistry(cfg);
  const metrics = createBrokerMetrics();
  registryReplicaMetrics(metrics.registry, registry);
  const operations = new OperationsClient(temporal, cfg.temporal.taskQueue, registry.registry);
  const osb = new OsbService({
    catalog: cfg.catalogData,
    registry: registry.registry,
    operations,
    metrics,
    syncTimeoutMs: (cfg.broker?.syncTimeoutSeconds ?? 60) * 1000,
    ...(cfg.broker?.lastOperationStepDeadlineMs !== undefined ? { stepLookupDeadlineMs: cfg.broker.lastOperationStepDeadlineMs } : {}),
    auditWarnings: { warn: (fields, message) => log.warn(fields, message) },
  });
  const app = await buildBrokerApp({
    metrics,
    osb,
    catalog: cfg.catalogData,
    credentials,
    logger: log,
    bodyLimitBytes: cfg.broker?.bodyLimitBytes,
    ...(cfg.broker?.tls ? { https: readTls(cfg, cfg.broker.tls) } : {}),
    readiness: [
      {
        name: 'temporal',
        check: async () => {
          // A short deadline: an unreachable Temporal must turn /readyz to 503 in seconds, not after gRPC's retries.
          await temporal.connection.withDeadline(Date.now() + 2000, () => temporal.workflowService.getSystemInfo({}));
        },
      },
      {
        name: 'registry',
        // Ready while the registry answers, i.e. while each store has a primary. Replicas that are down or
        // behind are reported here (and in the metrics) but do not fail readiness: the broker serves correctly
        // from the primary, and they are repaired at the next write or periodic repair.
        check: async () => {
          await registry.registry.readOperation('service-instance', 'readiness-probe');
          const replicas = registry.replicaHealth();
          return { degraded: replicas.filter((r) => r.degraded).length, pendingRepairs: replicas.reduce((n, r) => n + r.pendingRepairs, 0), replicas };
        },
      },
    ],
  });
  return {
    app,
    client: temporal,
    osb,
    async close() {
      await app.close();
      await registry.close();
      if (!client) await temporal.connection.close();
    },
  };
}

/**
 * The registry's replicas as gauges, read at each scrape: `brokerflow_registry_replica_degraded{store,replica}`
 * (1 while down or behind) and `brokerflow_registry_pending_repairs{store,replica}` (objects it missed).
 */
export function registryReplicaMetrics(register: PromRegistry, bundle: Pick<RegistryBundle, 'replicaHealth'>): void {
  new Gauge({
    name: 'brokerflow_registry_replica_degraded',
    help: 'Whether a registry persistence replica is down or missed writes not yet repaired (1) or not (0).',
    labelNames: ['store', 'replica'],
    registers: [register],
    collect() {
      for (const r of bundle.replicaHealth()) this.set({ store: r.store, replica: r.replica }, r.degraded ? 1 : 0);
    },
  });
  new Gauge({
    name: 'brokerflow_registry_pending_repairs',
    help: 'Objects a registry persistence replica missed and that are not yet copied to it.',
    labelNames: ['store', 'replica'],
    registers: [register],
    collect() {
      for (const r of bundle.replicaHealth()) this.set({ store: r.store, replica: r.replica }, r.pendingRepairs);
    },
  });
}

function readTls(cfg: RuntimeConfig, tls: { cert: string; key: string }): { key: Buffer; cert: Buffer } {
  const read = (file: string, field: string) => {
    try {
      return readFileSync(resolve(cfg.baseDir, file));
    } catch (err) {
      throw new ConfigError(`${field}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, field);
    }
  };
  return { key: read(tls.key, 'broker.tls.key'), cert: read(tls.cert, 'broker.tls.cert') };
}
