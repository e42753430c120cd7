// Endpoint reconciliation: time for an initial sync of N services × 10 endpoints to converge in the etcd
// registry, and the delay from a service change in Kubernetes to the registry update (p50/p99), through the
// real watcher and workflows. Baselines in the same run: the same reconcile called directly (no Temporal, no
// debounce), the same keys written straight to etcd, and the watcher feeding the reconcile directly.
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { Etcd3 } from 'etcd3';
import type { Worker } from '@temporalio/worker';
import { createEndpointActivities, type EndpointDeps } from '../activities/endpoints';
import type { EndpointSyncConfig } from '../config/endpoints';
import { ensureEndpointSync, stopEndpointSync } from '../platform/endpoint-workflows';
import { createEndpointDeps } from '../worker/dependencies';
import { KubeServiceWatcher } from '../adapters/kubernetes/watcher';
import { endpointName } from '../adapters/kubernetes';
import { connectClient } from '../platform/temporal';
import { validateRuntimeConfig, type RuntimeConfig } from '../config/runtime';
import { bundleWorkflows, createWorker } from '../worker/worker';
import { mapLimited } from '../adapters/service-registries/concurrency';
import { percentile, row, type BenchContext, type BenchRow, type Benchmark } from './harness';

const PORTS = [80, 443, 8080, 8443, 9090];
const IPS = (i: number) => [`10.${20 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, `10.${120 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`];
const ALLOWED = 'bench.brokerflow.io';
const CHANGE_SPACING_MS = 250;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls the number of keys under an etcd prefix until it reaches `count`; returns when it did (performance.now()). */
async function waitForKeys(etcd: Etcd3, prefix: string, count: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const n = await etcd.getAll().prefix(prefix).count();
    if (n >= count) return performance.now();
    if (performance.now() > deadline) throw new Error(`only ${n} of ${count} keys under ${prefix} after ${timeoutMs} ms`);
    await sleep(25);
  }
}

/** Records when each key under a prefix was last put (performance.now()), from an etcd watch. */
async function putTimes(etcd: Etcd3, prefix: string): Promise<{ times: Map<string, number>; close(): Promise<void> }> {
  const times = new Map<string, number>();
  const watcher = await etcd.watch().prefix(prefix).create();
  watcher.on('put', (kv) => times.set(kv.key.toString(), performance.now()));
  return { times, close: () => watcher.cancel() };
}

export const benchmark: Benchmark = {
  name: 'endpoints',
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    if (!ctx.kubeconfig) throw new Error('the endpoints benchmark needs the kube-apiserver: the harness must start it and pass ctx.kubeconfig');
    const services = Math.round((ctx.quick ? 200 : 1_000) * ctx.scale);
    const changes = Math.round((ctx.quick ? 20 : 100) * ctx.scale);
    const runs = Math.max(1, ctx.quick ? Math.min(ctx.runs, 2) : ctx.runs);
    const id = randomBytes(4).toString('hex');
    const kc = new KubeConfig();
    kc.loadFromFile(ctx.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const etcd = new Etcd3({ hosts: ctx.etcdEndpoint });
    const dir = join(ctx.workDir, `endpoints-bench-${id}`);
    mkdirSync(dir, { recursive: true });
    const bundle = await bundleWorkflows();
    const ns = `bf-bench-${id}`;
    const labelKeys: string[] = [];
    const samples = { sync: [] as number[], direct: [] as number[], raw: [] as number[], p50: [] as number[], p99: [] as number[], p50Baseline: [] as number[], p99Baseline: [] as number[] };
    const endpointCount = PORTS.length * 2;
    const keysPerRegistry = 1 + services + services * endpointCount;

    /** A fresh mirror: its own name, label and registry prefix, on its own task queue. */
    const mirrorConfig = (tag: string): EndpointSyncConfig => ({
      name: `bench-${id}-${tag}`,
      registry: 'etcd',
      etcd: { endpoints: [ctx.etcdEndpoint], prefix: `/bf-bench-${id}-${tag}/` },
      kubeconfig: ctx.kubeconfig,
      allowedAnnotations: [`${ALLOWED}/*`],
      labelPrefix: `${tag}.${id}.bench.brokerflow.io`,
    });
    const runtime = (taskQueue: string): RuntimeConfig =>
      validateRuntimeConfig({ catalog: resolve(__dirname, '..', 'config', 'catalog.example.yaml'), temporal: { address: ctx.temporalAddress, namespace: 'default', taskQueue } }, 'endpoints benchmark', dir);
    const watch = async (cfg: EndpointSyncConfig) => {
      const key = `${cfg.labelPrefix}/watch`;
      labelKeys.push(key);
      await core.patchNamespace({ name: ns, body: { metadata: { labels: { [key]: 'enabled' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    };
    /**
     * Changes `changes` services one after another, 250 ms apart without waiting for each (a rate a small
     * installation sustains, so the figure is latency, not a queue), and returns each delay to the registry.
     */
    const changeDelays = async (prefix: string, svcName: (i: number) => string, round: number): Promise<number[]> => {
      const watchPuts = await putTimes(etcd, prefix);
      try {
        const expected: Array<{ key: string; t0: number }> = [];
        for (let c = 0; c < changes; c++) {
          const i = (c * 7 + round) % services;
          const port = 20_000 + round * changes + c;
          const ports = [...PORTS.slice(0, -1), port];
          const t0 = performance.now();
          await core.patchNamespacedService(
            { name: svcName(i), namespace: ns, body: { spec: { ports: ports.map((p) => ({ name: `p${p}`, port: p })) } } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          expected.push({ key: `${prefix}namespaces/${ns}/services/${svcName(i)}/endpoints/${endpointName(svcName(i), IPS(i)[1]!, port)}`, t0 });
          await sleep(CHANGE_SPACING_MS);
        }
        const deadline = performance.now() + 60_000;
        while (expected.some((e) => !watchPuts.times.has(e.key)) && performance.now() < deadline) await sleep(20);
        const missing = expected.filter((e) => !watchPuts.times.has(e.key));
        if (missing.length) throw new Error(`${missing.length} changes never reached the registry (first: ${missing[0]!.key})`);
        return expected.map((e) => watchPuts.times.get(e.key)! - e.t0);
      } finally {
        await watchPuts.close();
      }
    };

    const workers: Worker[] = [];
    const cleanups: Array<() => Promise<unknown>> = [];
    const client = await connectClient(runtime('unused'));
    try {
      await core.createNamespace({ body: { metadata: { name: ns } } });
      const names = Array.from({ length: services }, (_, i) => `svc-${String(i).padStart(5, '0')}`);
      await mapLimited(names.map((name, i) => [name, i] as const), 8, ([name, i]) =>
        core.createNamespacedService({
          namespace: ns,
          body: {
            metadata: { name, annotations: { [`${ALLOWED}/app`]: name } },
            spec: { clusterIP: 'None', externalIPs: IPS(i), ports: PORTS.map((p) => ({ name: `p${p}`, port: p })) },
          },
        }),
      );

      for (let r = 0; r < runs; r++) {
        // brokerflow: watcher + per-service workflows, from watch start to every key in etcd.
        const cfg = mirrorConfig(`w${r}`);
        const deps: EndpointDeps = await createEndpointDeps(cfg);
        cleanups.push(() => deps.close!());
        const config = runtime(`bench-endpoints-${id}-${r}`);
        const worker = await createWorker({ config, deps: { endpoints: deps }, workflowBundle: { code: bundle.code } });
        workers.push(worker);
        const running = worker.run();
        cleanups.push(() => running);
        await watch(cfg);
        const t0 = performance.now();
        await ensureEndpointSync(client, { taskQueue: config.temporal.taskQueue, settings: deps.settings });
        const t1 = await waitForKeys(etcd, cfg.etcd!.prefix!, keysPerRegistry, 300_000);
        samples.sync.push(t1 - t0);
        const delays = await changeDelays(cfg.etcd!.prefix!, (i) => names[i]!, r);
        samples.p50.push(percentile(delays, 50));
        samples.p99.push(percentile(delays, 99));
        await stopEndpointSync(client, deps.settings.name);
        cleanups.push(() => etcd.delete().prefix(cfg.etcd!.prefix!).exec());

        // Baseline 1: the same reconcile, called directly for every service (no Temporal, no watch, no debounce).
        const dcfg = mirrorConfig(`d${r}`);
        const ddeps = await createEndpointDeps(dcfg);
        cleanups.push(() => ddeps.close!());
        await watch(dcfg);
        const acts = createEndpointActivities(ddeps);
        const d0 = performance.now();
        await mapLimited(names, 8, (name) => acts.reconcileKubeService({ sync: ddeps.settings.name, namespace: ns, service: name }));
        samples.direct.push(performance.now() - d0);
        cleanups.push(() => etcd.delete().prefix(dcfg.etcd!.prefix!).exec());

        // Baseline 2: the same keys and values put straight into etcd, 128 per transaction, 8 in flight.
        const rawPrefix = `/bf-bench-${id}-raw${r}/`;
        const kvs = await etcd.getAll().prefix(dcfg.etcd!.prefix!).exec();
        const pairs = kvs.kvs.map((kv) => ({ key: rawPrefix + kv.key.toString().slice(dcfg.etcd!.prefix!.length), value: kv.value }));
        const batches: (typeof pairs)[] = [];
        for (let i = 0; i < pairs.length; i += 128) batches.push(pairs.slice(i, i + 128));
        const w0 = performance.now();
        await mapLimited(batches, 8, (batch) => etcd.kv.txn({ success: batch.map((p) => ({ request_put: { key: Buffer.from(p.key), value: p.value } })) }));
        samples.raw.push(performance.now() - w0);
        cleanups.push(() => etcd.delete().prefix(rawPrefix).exec());

        // Baseline 3 (change delay): the same watcher feeding the reconcile directly, without Temporal or debounce.
        const watcher = new KubeServiceWatcher({
          kubeConfig: kc,
          policy: ddeps.settings.policy,
          allowedAnnotations: ddeps.settings.allowlist,
          onChange: async (key) => {
            if (key.namespace === ns) await acts.reconcileKubeService({ sync: ddeps.settings.name, namespace: key.namespace, service: key.service });
          },
        });
        watcher.start();
        await watcher.synced;
        // The first sync notifies every service (all already in sync); measure once that burst has drained.
        while (watcher.stats().pending > 0) await sleep(20);
        const baseDelays = await changeDelays(dcfg.etcd!.prefix!, (i) => names[i]!, runs + r);
        samples.p50Baseline.push(percentile(baseDelays, 50));
        samples.p99Baseline.push(percentile(baseDelays, 99));
        await watcher.stop();
      }
    } finally {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await Promise.allSettled(cleanups.map((c) => c()));
      await core.deleteNamespace({ name: ns }).catch(() => undefined);
      await client.connection.close();
      etcd.close();
    }

    const bench = 'endpoints';
    const sync = `initial sync, ${services} services × ${endpointCount} endpoints`;
    const change = `service change -> registry (${changes} changes per run, one every ${CHANGE_SPACING_MS} ms)`;
    const converged = 'time to converged';
    return [
      // Against the same reconcile without Temporal (what the workflows add), then against the etcd floor.
      row({ benchmark: bench, case: `${sync}; baseline: reconcile called directly, 8 in flight`, subject: 'brokerflow', metric: converged, unit: 'ms' }, samples.sync),
      row({ benchmark: bench, case: `${sync}; baseline: reconcile called directly, 8 in flight`, subject: 'baseline', metric: converged, unit: 'ms' }, samples.direct),
      row({ benchmark: bench, case: `${sync}; baseline: the same keys put straight into etcd`, subject: 'brokerflow', metric: converged, unit: 'ms' }, samples.sync),
      row({ benchmark: bench, case: `${sync}; baseline: the same keys put straight into etcd`, subject: 'baseline', metric: converged, unit: 'ms' }, samples.raw),
      // Baseline: the same watcher calling the same reconcile directly (no Temporal, no debounce).
      row({ benchmark: bench, case: change, subject: 'brokerflow', metric: 'delay p50', unit: 'ms' }, samples.p50),
      row({ benchmark: bench, case: change, subject: 'baseline', metric: 'delay p50', unit: 'ms' }, samples.p50Baseline),
      row({ benchmark: bench, case: change, subject: 'brokerflow', metric: 'delay p99', unit: 'ms' }, samples.p99),
      row({ benchmark: bench, case: change, subject: 'baseline', metric: 'delay p99', unit: 'ms' }, samples.p99Baseline),
    ];
  },
};
