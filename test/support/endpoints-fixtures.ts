// Shared set-up of the endpoint reconciliation tests: the run's kube-apiserver and etcd, a per-file mirror
// (its own name, watch label prefix, etcd registry prefix and task queue) and a readable registry snapshot.
import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Service } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { EtcdServiceRegistry, type Metadata } from '../../adapters/service-registries';
import type { WatchedChange } from '../../adapters/kubernetes/watcher';
import type { EndpointDeps, WatchProgress } from '../../activities/endpoints';
import { endpointWatcherWorkflowId, type ResyncSummary } from '../../workflows/endpoints-messages';
import { decodePayload } from './history';
import type { EndpointSyncConfig } from '../../config/endpoints';
import { ensureEndpointSync, stopEndpointSync } from '../../platform/endpoint-workflows';
import { createEndpointDeps } from '../../worker/dependencies';
import { connectClient } from '../../platform/temporal';
import type { RuntimeConfig } from '../../config/runtime';
import { writeTestConfig } from './config';
import { requireTestEnv } from './env';
import { createTestWorker } from './worker';

/** The annotation prefix every test allows. */
export const allowed = 'bf.test';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns something other than undefined, or fails saying what it waited for. */
export async function eventually<T>(what: string | (() => string), check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}${last ? `: ${String(last)}` : ''}`);
    await sleep(100);
  }
}

/** A kubeconfig for the run's kube-apiserver and a CoreV1 client. */
export function kube(): { kc: KubeConfig; core: CoreV1Api } {
  const kc = new KubeConfig();
  kc.loadFromFile(requireTestEnv('kubeconfig'));
  return { kc, core: kc.makeApiClient(CoreV1Api) };
}

/** A unique lowercase suffix. */
export const uid = () => randomBytes(4).toString('hex');

/** A headless service (the test cluster's service CIDR is small) with external IPs, ports and annotations. */
export function serviceBody(name: string, opts: { annotations?: Record<string, string>; ips?: string[]; ports?: number[] }): V1Service {
  return {
    metadata: { name, annotations: opts.annotations ?? {} },
    spec: {
      clusterIP: 'None',
      externalIPs: opts.ips ?? [],
      ports: (opts.ports ?? [80]).map((port) => ({ name: `p${port}`, port })),
    },
  };
}

/** Merge-patches a service's spec and/or annotations (a `null` annotation value removes it). */
export async function patchService(
  core: CoreV1Api,
  ns: string,
  name: string,
  patch: { annotations?: Record<string, string | null>; ips?: string[]; ports?: number[] },
): Promise<void> {
  const body: Record<string, unknown> = {};
  if (patch.annotations) body.metadata = { annotations: patch.annotations };
  const spec: Record<string, unknown> = {};
  if (patch.ips) spec.externalIPs = patch.ips;
  if (patch.ports) spec.ports = patch.ports.map((port) => ({ name: `p${port}`, port }));
  if (Object.keys(spec).length) body.spec = spec;
  await core.patchNamespacedService({ name, namespace: ns, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
}

/** Sets (or removes, with null) the namespace's watch label. */
export async function labelNamespace(core: CoreV1Api, ns: string, key: string, value: string | null): Promise<void> {
  await core.patchNamespace({ name: ns, body: { metadata: { labels: { [key]: value } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
}

/** One service in the registry: its metadata and endpoints as `name address:port owner`. */
export interface ServiceSnapshot {
  metadata: Metadata;
  endpoints: string[];
}

/** The registry (or one namespace of it) as plain data: `ns/svc` -> snapshot; namespaces with metadata. */
export async function snapshot(registry: EtcdServiceRegistry, onlyNs?: string): Promise<{ namespaces: Record<string, Metadata>; services: Record<string, ServiceSnapshot> }> {
  const namespaces: Record<string, Metadata> = {};
  const services: Record<string, ServiceSnapshot> = {};
  for (const ns of await registry.listNs()) {
    if (onlyNs && ns.name !== onlyNs) continue;
    namespaces[ns.name] = ns.metadata;
    for (const sv of await registry.listServ(ns.name).catch(() => [])) {
      const eps = await registry.listEndp(ns.name, sv.name).catch(() => []);
      services[`${ns.name}/${sv.name}`] = {
        metadata: sv.metadata,
        endpoints: eps.map((e) => `${e.name} ${e.address}:${e.port} ${e.metadata.owner ?? '-'}`).sort(),
      };
    }
  }
  return { namespaces, services };
}

/** Sorted `address:port` of the endpoints a service has. */
export function addresses(s: ServiceSnapshot | undefined): string[] {
  return (s?.endpoints ?? []).map((e) => e.split(' ')[1]!).sort();
}

/** A mirror for one test file: worker, client, registry and the settings it runs with. */
export interface Mirror {
  name: string;
  labelKey: string;
  config: RuntimeConfig;
  deps: EndpointDeps;
  endpointConfig: EndpointSyncConfig;
  registry: EtcdServiceRegistry;
  client: Client;
  worker?: Worker;
  workerRun?: Promise<void>;
  stop(): Promise<void>;
}

/** Builds the `endpoints:` section for a test: unique name, label prefix and registry prefix. */
export function testEndpointConfig(overrides: Partial<EndpointSyncConfig> = {}): EndpointSyncConfig {
  const id = uid();
  return {
    name: `t-${id}`,
    registry: 'etcd',
    etcd: { endpoints: [requireTestEnv('etcdEndpoint')], prefix: `/bf-endpoints-${id}/` },
    kubeconfig: requireTestEnv('kubeconfig'),
    allowedAnnotations: [`${allowed}/*`],
    labelPrefix: `t${id}.brokerflow.io`,
    watchByDefault: false,
    resyncIntervalSeconds: 3600,
    debounceMs: 200,
    heartbeatTimeoutSeconds: 5,
    stallTimeoutSeconds: 60,
    reconcileTimeoutSeconds: 10,
    ...overrides,
  };
}

/** Starts a mirror: an in-process worker (unless `worker: false`), the watcher and the resync schedule. */
export async function startMirror(opts: { endpoints?: Partial<EndpointSyncConfig>; worker?: boolean; start?: boolean } = {}): Promise<Mirror> {
  const endpointConfig = testEndpointConfig(opts.endpoints);
  const { config } = writeTestConfig();
  const deps = await createEndpointDeps(endpointConfig);
  const registry = EtcdServiceRegistry.connect({ endpoints: endpointConfig.etcd!.endpoints, prefix: endpointConfig.etcd!.prefix! });
  const client = await connectClient(config);
  const mirror: Mirror = {
    name: deps.settings.name,
    labelKey: `${endpointConfig.labelPrefix}/watch`,
    config,
    deps,
    endpointConfig,
    registry,
    client,
    async stop() {
      await stopEndpointSync(client, deps.settings.name).catch(() => undefined);
      if (mirror.worker && mirror.worker.getState() === 'RUNNING') mirror.worker.shutdown();
      await mirror.workerRun?.catch(() => undefined);
      await Promise.allSettled([registry.close(), deps.close?.(), client.connection.close()]);
    },
  };
  if (opts.worker !== false) await startWorker(mirror);
  if (opts.start !== false) {
    await ensureEndpointSync(client, { taskQueue: config.temporal.taskQueue, settings: deps.settings });
    await watchCaughtUp(mirror);
  }
  return mirror;
}

/**
 * Waits until the mirror's watch has compared the cluster with the registry (its heartbeat details say so), and
 * returns that comparison's summary: from then on every change reaches a per-service workflow.
 */
export async function watchCaughtUp(mirror: Pick<Mirror, 'client' | 'name'>, timeoutMs = 30_000): Promise<ResyncSummary> {
  return eventually(
    'the endpoint watch caught up with the registry',
    async () => {
      const desc = await mirror.client.workflow.getHandle(endpointWatcherWorkflowId(mirror.name)).describe();
      const act = desc.raw.pendingActivities?.find((a) => a.activityType?.name === 'watchKubernetes');
      const payload = act?.heartbeatDetails?.payloads?.[0];
      if (!payload) return undefined;
      return (await decodePayload<WatchProgress>(mirror.client, payload)).caughtUp;
    },
    timeoutMs,
  );
}

/** Starts (another) in-process worker for the mirror's task queue. */
export async function startWorker(mirror: Mirror): Promise<Worker> {
  const worker = await createTestWorker(mirror.config, { endpoints: mirror.deps });
  mirror.worker = worker;
  mirror.workerRun = worker.run();
  return worker;
}

/** Records what a watcher reports, as `ns/svc change`. */
export function recorder() {
  const seen: string[] = [];
  const rec = {
    seen,
    initial: [] as string[],
    onChange: async (key: { namespace: string; service: string }, change: WatchedChange, initial: boolean) => {
      seen.push(`${key.namespace}/${key.service} ${change}`);
      if (initial) rec.initial.push(`${key.namespace}/${key.service}`);
    },
    /** Waits until `line` has been reported (at least `times` times). */
    async waitFor(line: string, times = 1, timeoutMs = 15_000) {
      await eventually(() => `"${line}" reported (seen: ${seen.join(', ')})`, async () => (seen.filter((s) => s === line).length >= times ? true : undefined), timeoutMs);
    },
    of: (prefix: string) => seen.filter((s) => s.startsWith(prefix)),
  };
  return rec;
}

