// Worker memory over a long run, only with `npm run bench -- --soak` (10 minutes; `--soak-minutes N` for another
// length): platform-like clients provision and deprovision instances of the example plan over HTTP without pause
// (a provision, then its deprovision, each polled every 100 ms), against one broker and one worker process, while the
// worker's resident set is sampled every 5 s. The figure is its growth from the first minute after a warm-up minute
// to the last minute (medians of the samples in each), beside the operations completed and the worker's resident set
// when idle before and after. Memory that grows with the number of operations run (a leak) shows as growth; a
// worker that stays within ±10 % is flat. The worker runs endpoint reconciliation as production does (the
// `endpoints:` section: its watcher mirrors a namespace of 5 services into etcd, and stays running throughout), so
// the idle figures are a worker's with the endpoint watcher running. Idle, the worker's own metrics split its
// resident set: the main thread's V8 heap, external memory (buffers), and the rest (the workflow thread's V8 heap,
// the SDK's native core, the C allocator's free memory); the SDK's metrics give the workflows it keeps cached.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { Etcd3 } from 'etcd3';
import { parse, stringify } from 'yaml';
import { freePort, type ManagedProcess } from '../scripts/lib/process';
import type { EndpointSyncConfig } from '../config/endpoints';
import { stopEndpointSync } from '../platform/endpoint-workflows';
import { row, summarize, type BenchContext, type BenchRow, type Benchmark } from './harness';
import { deprovisionOperation, provisionOperation, startBroker, startWorkers, tenantDeployment, type BenchDeployment } from './osb-support';
import { procStatus } from './process-support';

/** Clients working at once: enough to keep the worker busy on 2 cores without queueing for minutes. */
const CLIENTS = 10;
const SAMPLE_EVERY_MS = 5_000;
const POLL_MS = 100;
/** Services in the namespace the worker's endpoint watcher mirrors, each with 2 IPs × 2 ports. */
const SERVICES = 5;
const PORTS = [80, 443];
const ALLOWED = 'soak.bench.brokerflow.io';
export const CASE = `worker memory over a soak of provisions and deprovisions, ${CLIENTS} clients, endpoint watcher running`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The median resident set (MB) of the samples taken in [from, to) ms after the start. */
function medianMb(samples: Array<{ at: number; kb: number }>, from: number, to: number): number {
  const inside = samples.filter((s) => s.at >= from && s.at < to).map((s) => s.kb / 1024);
  if (inside.length === 0) throw new Error(`no memory sample between ${from} and ${to} ms`);
  return summarize(inside).median;
}

/** A gauge's value from a Prometheus text page (the first series of that name). */
function gauge(page: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([-+0-9.eE]+)$`, 'm').exec(page);
  if (!m) throw new Error(`no ${name} in the worker's metrics`);
  return Number(m[1]);
}

/** The worker's memory (MB) after `ms` of quiet: its resident set, and how it splits as its metrics tell. */
export interface IdleMemory {
  rss: number;
  heap: number;
  external: number;
  rest: number;
  cachedWorkflows: number;
}

export async function idleMemory(pid: number, ms: number, ports: { metrics: number; sdkMetrics: number }): Promise<IdleMemory> {
  await sleep(ms);
  const [mine, sdk] = await Promise.all(
    [ports.metrics, ports.sdkMetrics].map(async (port) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text()),
  );
  const s = procStatus(pid);
  if (!s) throw new Error(`worker process ${pid} is gone`);
  const rss = s.rssKb / 1024;
  // prom-client's default metrics (process.memoryUsage of the main thread), prefixed as worker/dependencies.ts does.
  const heap = gauge(mine!, 'brokerflow_worker_nodejs_heap_size_total_bytes') / 2 ** 20;
  const external = gauge(mine!, 'brokerflow_worker_nodejs_external_memory_bytes') / 2 ** 20;
  return { rss, heap, external, rest: rss - heap - external, cachedWorkflows: gauge(sdk!, 'temporal_sticky_cache_size') };
}

/**
 * A namespace of the bench's kube-apiserver with {@link SERVICES} services, watched by the worker's endpoint
 * watcher (the `endpoints:` section written into the deployment's configuration), mirrored into the bench's etcd.
 */
export async function mirroredNamespace(ctx: BenchContext, d: BenchDeployment, ports: { metrics: number; sdkMetrics: number }) {
  if (!ctx.kubeconfig) throw new Error('the soak needs the kube-apiserver for its endpoint watcher: the harness must start it and pass ctx.kubeconfig');
  const id = randomBytes(4).toString('hex');
  const kc = new KubeConfig();
  kc.loadFromFile(ctx.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const ns = `bf-soak-${id}`;
  const endpoints: EndpointSyncConfig = {
    name: `soak-${id}`,
    registry: 'etcd',
    etcd: { endpoints: [ctx.etcdEndpoint], prefix: `/bf-soak-${id}/` },
    kubeconfig: ctx.kubeconfig,
    allowedAnnotations: [`${ALLOWED}/*`],
    labelPrefix: `${id}.soak.bench.brokerflow.io`,
  };
  const config = parse(readFileSync(d.configFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(d.configFile, stringify({ ...config, endpoints, worker: { metricsPort: ports.metrics, sdkMetricsPort: ports.sdkMetrics } }));
  await core.createNamespace({ body: { metadata: { name: ns, labels: { [`${endpoints.labelPrefix}/watch`]: 'enabled' } } } });
  for (let i = 0; i < SERVICES; i++) {
    await core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: `svc-${i}`, annotations: { [`${ALLOWED}/app`]: `svc-${i}` } },
        spec: { clusterIP: 'None', externalIPs: [`10.30.0.${i + 1}`, `10.31.0.${i + 1}`], ports: PORTS.map((p) => ({ name: `p${p}`, port: p })) },
      },
    });
  }
  const etcd = new Etcd3({ hosts: ctx.etcdEndpoint });
  const prefix = endpoints.etcd!.prefix!;
  // The namespace, each service and each of its endpoints: one key each.
  const keys = 1 + SERVICES + SERVICES * 2 * PORTS.length;
  return {
    name: endpoints.name!,
    /** Resolves once the running worker's watcher has mirrored every service into etcd. */
    async mirrored(timeoutMs = 120_000): Promise<void> {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const n = await etcd.getAll().prefix(prefix).count();
        if (n >= keys) return;
        if (performance.now() > deadline) throw new Error(`the worker's endpoint watcher mirrored ${n} of ${keys} keys under ${prefix} in ${timeoutMs} ms`);
        await sleep(250);
      }
    },
    /** Stops the mirror (its watcher and resync schedule), while its worker still runs to end the watcher. */
    stop: (client: Client) => stopEndpointSync(client, endpoints.name!),
    /** Removes the namespace and the mirrored keys. */
    async close(): Promise<void> {
      await Promise.allSettled([core.deleteNamespace({ name: ns }), etcd.delete().prefix(prefix).exec()]);
      etcd.close();
    },
  };
}

export const benchmark: Benchmark = {
  name: 'soak',
  soakOnly: true,
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const minutes = ctx.soakMinutes ?? 10;
    if (minutes < 3) throw new Error('a soak needs at least 3 minutes: a warm-up minute, a first and a last minute');
    const d = await tenantDeployment(ctx, 'bench-soak-');
    const ports = { metrics: await freePort(), sdkMetrics: await freePort() };
    const connection = await Connection.connect({ address: ctx.temporalAddress });
    const client = new Client({ connection, namespace: 'default' });
    const mirror = await mirroredNamespace(ctx, d, ports);
    const procs: ManagedProcess[] = [];
    try {
      const [broker, workers] = await Promise.all([startBroker(d), startWorkers(d, client, 1)]);
      procs.push(broker, ...workers);
      const worker = workers[0]!;
      await mirror.mirrored();
      const before = await idleMemory(worker.pid, 10_000, ports);

      const t0 = performance.now();
      const end = t0 + minutes * 60_000;
      const samples: Array<{ at: number; kb: number }> = [];
      const sampler = setInterval(() => {
        const s = procStatus(worker.pid);
        if (s) samples.push({ at: performance.now() - t0, kb: s.rssKb });
      }, SAMPLE_EVERY_MS);
      let operations = 0;
      try {
        await Promise.all(
          Array.from({ length: CLIENTS }, async () => {
            while (performance.now() < end) {
              const p = await provisionOperation(d, POLL_MS);
              await deprovisionOperation(d, p.workflowId.slice('instance/'.length), POLL_MS);
              operations += 2;
            }
          }),
        );
      } finally {
        clearInterval(sampler);
      }
      const ranMs = performance.now() - t0;
      const after = await idleMemory(worker.pid, 10_000, ports);
      // The first minute warms the caches up; growth is measured from the second minute to the last.
      const first = medianMb(samples, 60_000, 120_000);
      const last = medianMb(samples, ranMs - 60_000, ranMs + 1);
      const growth = (100 * (last - first)) / first;
      console.log(`# soak: ${operations} operations in ${(ranMs / 60_000).toFixed(1)} min; worker ${first.toFixed(0)} MB -> ${last.toFixed(0)} MB (${growth.toFixed(1)} %)`);
      console.log(`# soak: worker idle before ${JSON.stringify(before)}, after ${JSON.stringify(after)} (MB)`);
      const fields = (metric: string, unit: string) => ({ benchmark: 'soak', case: `${CASE}, ${minutes} minutes`, subject: 'brokerflow' as const, metric, unit });
      return [
        row(fields('operations completed', 'ops'), [operations]),
        row(fields('worker RSS, second minute (median)', 'MB'), [first]),
        row(fields('worker RSS, last minute (median)', 'MB'), [last]),
        row(fields('worker RSS growth, second to last minute', '%'), [growth]),
        row(fields('worker RSS idle, before the soak', 'MB'), [before.rss]),
        row(fields('worker RSS idle, after the soak', 'MB'), [after.rss]),
        ...(['before', 'after'] as const).flatMap((when) => {
          const m = when === 'before' ? before : after;
          return [
            row(fields(`worker main-thread V8 heap, idle ${when} the soak`, 'MB'), [m.heap]),
            row(fields(`worker external memory (buffers), idle ${when} the soak`, 'MB'), [m.external]),
            row(fields(`worker RSS outside both (workflow thread, SDK core, allocator), idle ${when} the soak`, 'MB'), [m.rest]),
            row(fields(`workflows cached by the worker, idle ${when} the soak`, 'workflows'), [m.cachedWorkflows]),
          ];
        }),
      ];
    } finally {
      await mirror.stop(client).catch(() => undefined);
      await Promise.allSettled(procs.map((p) => p.stop()));
      await mirror.close();
      await connection.close();
    }
  },
};
