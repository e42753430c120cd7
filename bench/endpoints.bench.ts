// Endpoint reconciliation at scale (`--endpoint-services N`, default 1,000; the targets are set for 1,000 and
// 10,000): the time for the watch's initial sync of N services × 10 endpoints to converge in the etcd registry,
// the time for the scheduled resync to restore a registry that lost every key, and the delay from a service
// change in Kubernetes to the registry at 10 changes/s (p50/p99), through the real watcher and workflows.
// Baselines in the same run: the same keys put straight into etcd (128 per transaction, 8 in flight) for the
// syncs, and the same watcher feeding the reconcile directly (no Temporal, no debounce) for the changes.
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { Etcd3 } from 'etcd3';
import type { Worker } from '@temporalio/worker';
import { createEndpointActivities, type EndpointDeps } from '../activities/endpoints';
import { endpointResyncScheduleId, endpointWatcherWorkflowId } from '../workflows/endpoints-messages';
import type { EndpointSyncConfig } from '../config/endpoints';
import { ensureEndpointSync, stopEndpointSync } from '../platform/endpoint-workflows';
import { createEndpointDeps } from '../worker/dependencies';
import { KubeServiceWatcher } from '../adapters/kubernetes/watcher';
import { endpointName } from '../adapters/kubernetes';
import { connectClient } from '../platform/temporal';
import { validateRuntimeConfig, type RuntimeConfig } from '../config/runtime';
import { bundleWorkflows, createWorker } from '../worker/worker';
import { mapLimited } from '../adapters/service-registries/concurrency';
import { watchCaughtUp } from '../test/support/endpoints-fixtures';
import { percentile, row, type BenchContext, type BenchRow, type Benchmark } from './harness';

const PORTS = [80, 443, 8080, 8443, 9090];
const IPS = (i: number) => [`10.${20 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, `10.${120 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`];
const ALLOWED = 'bench.brokerflow.io';
const CHANGE_SPACING_MS = 100; // 10 changes/s
// A full collection before each memory reading, so garbage does not count as memory kept.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
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
    const services = Math.max(1, Math.round(ctx.endpointServices * ctx.scale));
    const changes = Math.round((ctx.quick ? 50 : 100) * ctx.scale);
    const runs = Math.max(1, ctx.quick ? Math.min(ctx.runs, 2) : ctx.runs);
    const id = randomBytes(4).toString('hex');
    const kc = new KubeConfig();
    kc.loadFromFile(ctx.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const etcd = new Etcd3({ hosts: ctx.etcdEndpoint, grpcOptions: { 'grpc.max_receive_message_length': -1 } });
    const dir = join(ctx.workDir, `endpoints-bench-${id}`);
    mkdirSync(dir, { recursive: true });
    const bundle = await bundleWorkflows();
    const ns = `bf-bench-${id}`;
    const samples = {
      sync: [] as number[],
      resync: [] as number[],
      raw: [] as number[],
      p50: [] as number[],
      p99: [] as number[],
      p50Baseline: [] as number[],
      p99Baseline: [] as number[],
      rssBefore: [] as number[],
      rssPeak: [] as number[],
      heapAfterSync: [] as number[],
      heapAfterResync: [] as number[],
    };
    const endpointCount = PORTS.length * 2;
    const keysPerRegistry = 1 + services + services * endpointCount;
    const syncTimeoutMs = Math.max(120_000, services * 50);

    /** A fresh mirror: its own name, label and registry prefix, on its own task queue. */
    const mirrorConfig = (tag: string, prefix = `/bf-bench-${id}-${tag}/`): EndpointSyncConfig => ({
      name: `bench-${id}-${tag}`,
      registry: 'etcd',
      etcd: { endpoints: [ctx.etcdEndpoint], prefix },
      kubeconfig: ctx.kubeconfig,
      allowedAnnotations: [`${ALLOWED}/*`],
      labelPrefix: `${tag}.${id}.bench.brokerflow.io`,
    });
    const runtime = (taskQueue: string): RuntimeConfig =>
      validateRuntimeConfig({ catalog: resolve(__dirname, '..', 'config', 'catalog.example.yaml'), temporal: { address: ctx.temporalAddress, namespace: 'default', taskQueue } }, 'endpoints benchmark', dir);
    const watch = async (cfg: EndpointSyncConfig) => {
      await core.patchNamespace({ name: ns, body: { metadata: { labels: { [`${cfg.labelPrefix}/watch`]: 'enabled' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    };
    /** This process's RSS (the worker runs in it), sampled every 100 ms while `work` runs: its peak, in MB. */
    const peakRss = async <T>(work: () => Promise<T>): Promise<{ value: T; peakMb: number }> => {
      let peak = process.memoryUsage.rss();
      const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 100);
      try {
        const value = await work();
        return { value, peakMb: Math.max(peak, process.memoryUsage.rss()) / 2 ** 20 };
      } finally {
        clearInterval(timer);
      }
    };
    /** The heap this process retains (after a full collection), in MB: what syncs leave behind, without garbage. */
    const retainedMb = () => {
      collectGarbage();
      return process.memoryUsage().heapUsed / 2 ** 20;
    };
    /**
     * Changes `changes` services one after another, 100 ms apart (10 changes/s) without waiting for each, and
     * returns each one's delay to the registry.
     */
    const changeDelays = async (prefix: string, svcName: (i: number) => string, round: number): Promise<number[]> => {
      const watchPuts = await putTimes(etcd, prefix);
      try {
        const expected: Array<{ key: string; t0: number }> = [];
        const start = performance.now();
        for (let c = 0; c < changes; c++) {
          // Paced against the start, so a slow patch does not lower the rate.
          const wait = start + c * CHANGE_SPACING_MS - performance.now();
          if (wait > 0) await sleep(wait);
          const i = (c * 7 + round) % services;
          const port = 20_000 + round * changes + c;
          const ports = [...PORTS.slice(0, -1), port];
          const t0 = performance.now();
          await core.patchNamespacedService(
            { name: svcName(i), namespace: ns, body: { spec: { ports: ports.map((p) => ({ name: `p${p}`, port: p })) } } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          expected.push({ key: `${prefix}namespaces/${ns}/services/${svcName(i)}/endpoints/${endpointName(svcName(i), IPS(i)[1]!, port)}`, t0 });
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
      await mapLimited(names.map((name, i) => [name, i] as const), 16, ([name, i]) =>
        core.createNamespacedService({
          namespace: ns,
          body: {
            metadata: { name, annotations: { [`${ALLOWED}/app`]: name } },
            spec: { clusterIP: 'None', externalIPs: IPS(i), ports: PORTS.map((p) => ({ name: `p${p}`, port: p })) },
          },
        }),
      );

      for (let r = 0; r < runs; r++) {
        // brokerflow: the watcher's initial sync, from the watch's start to every key in etcd.
        const cfg = mirrorConfig(`w${r}`);
        const prefix = cfg.etcd!.prefix!;
        const deps: EndpointDeps = await createEndpointDeps(cfg);
        cleanups.push(() => deps.close!());
        const config = runtime(`bench-endpoints-${id}-${r}`);
        const worker = await createWorker({ config, deps: { endpoints: deps }, workflowBundle: { code: bundle.code } });
        workers.push(worker);
        const running = worker.run();
        cleanups.push(() => running);
        cleanups.push(() => etcd.delete().prefix(prefix).exec());
        await watch(cfg);
        samples.rssBefore.push(process.memoryUsage.rss() / 2 ** 20);
        const sync = await peakRss(async () => {
          const t0 = performance.now();
          await ensureEndpointSync(client, { taskQueue: config.temporal.taskQueue, settings: deps.settings });
          return (await waitForKeys(etcd, prefix, keysPerRegistry, syncTimeoutMs)) - t0;
        });
        samples.sync.push(sync.value);
        samples.rssPeak.push(sync.peakMb);
        samples.heapAfterSync.push(retainedMb());

        // Changes at 10/s while the watch runs, once its first comparison has finished (steady state).
        await watchCaughtUp({ client, name: deps.settings.name }, syncTimeoutMs);
        const delays = await changeDelays(prefix, (i) => names[i]!, r);
        samples.p50.push(percentile(delays, 50));
        samples.p99.push(percentile(delays, 99));

        // The resync: nobody watches, the registry has lost every key, and the scheduled resync runs.
        await stopEndpointSync(client, deps.settings.name);
        await client.workflow.getHandle(endpointWatcherWorkflowId(deps.settings.name)).result().catch(() => undefined);
        await etcd.delete().prefix(prefix).exec();
        const r0 = performance.now();
        await client.workflow.execute('endpointResyncWorkflow', {
          taskQueue: config.temporal.taskQueue,
          workflowId: `${endpointResyncScheduleId(deps.settings.name)}/bench-${r}`,
          args: [{ sync: deps.settings.name }],
        });
        samples.resync.push((await waitForKeys(etcd, prefix, keysPerRegistry, syncTimeoutMs)) - r0);
        samples.heapAfterResync.push(retainedMb());
        const kvs = await etcd.getAll().prefix(prefix).exec();

        // Baseline (both syncs): the same keys and values put straight into etcd, 128 per transaction, 8 in flight.
        const rawPrefix = `/bf-bench-${id}-raw${r}/`;
        const pairs = kvs.kvs.map((kv) => ({ key: rawPrefix + kv.key.toString().slice(prefix.length), value: kv.value }));
        const batches: (typeof pairs)[] = [];
        for (let i = 0; i < pairs.length; i += 128) batches.push(pairs.slice(i, i + 128));
        cleanups.push(() => etcd.delete().prefix(rawPrefix).exec());
        const w0 = performance.now();
        await mapLimited(batches, 8, (batch) => etcd.kv.txn({ success: batch.map((p) => ({ request_put: { key: Buffer.from(p.key), value: p.value } })) }));
        samples.raw.push(performance.now() - w0);

        // Baseline (change delay): the same watcher feeding the reconcile directly, without Temporal or debounce,
        // into the registry the raw baseline just wrote.
        const dcfg = mirrorConfig(`d${r}`, rawPrefix);
        const ddeps = await createEndpointDeps(dcfg);
        cleanups.push(() => ddeps.close!());
        await watch(dcfg);
        const acts = createEndpointActivities(ddeps);
        const watcher = new KubeServiceWatcher({
          kubeConfig: kc,
          policy: ddeps.settings.policy,
          allowedAnnotations: ddeps.settings.allowlist,
          onChange: async (key, _change, initial) => {
            if (!initial && key.namespace === ns) await acts.reconcileKubeService({ sync: ddeps.settings.name, namespace: key.namespace, service: key.service });
          },
        });
        watcher.start();
        await watcher.synced;
        const baseDelays = await changeDelays(rawPrefix, (i) => names[i]!, runs + r);
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
    const size = `${services} services × ${endpointCount} endpoints`;
    const sync = `initial sync, ${size}; baseline: the same keys put straight into etcd`;
    const resync = `resync of a registry that lost every key, ${size}; baseline: the same keys put straight into etcd`;
    const change = `service change -> registry at 10 changes/s (${changes} changes per run); baseline: the watcher calling the reconcile directly`;
    const memory = `memory of the process running the worker, ${size}`;
    const converged = 'time to converged';
    return [
      row({ benchmark: bench, case: sync, subject: 'brokerflow', metric: converged, unit: 'ms' }, samples.sync),
      row({ benchmark: bench, case: sync, subject: 'baseline', metric: converged, unit: 'ms' }, samples.raw),
      row({ benchmark: bench, case: resync, subject: 'brokerflow', metric: converged, unit: 'ms' }, samples.resync),
      row({ benchmark: bench, case: resync, subject: 'baseline', metric: converged, unit: 'ms' }, samples.raw),
      row({ benchmark: bench, case: change, subject: 'brokerflow', metric: 'delay p50', unit: 'ms' }, samples.p50),
      row({ benchmark: bench, case: change, subject: 'baseline', metric: 'delay p50', unit: 'ms' }, samples.p50Baseline),
      row({ benchmark: bench, case: change, subject: 'brokerflow', metric: 'delay p99', unit: 'ms' }, samples.p99),
      row({ benchmark: bench, case: change, subject: 'baseline', metric: 'delay p99', unit: 'ms' }, samples.p99Baseline),
      row({ benchmark: bench, case: memory, subject: 'brokerflow', metric: 'RSS before the initial sync', unit: 'MB' }, samples.rssBefore),
      row({ benchmark: bench, case: memory, subject: 'brokerflow', metric: 'RSS peak during the initial sync', unit: 'MB' }, samples.rssPeak),
      row({ benchmark: bench, case: memory, subject: 'brokerflow', metric: 'heap retained after the initial sync (after a full GC)', unit: 'MB' }, samples.heapAfterSync),
      row({ benchmark: bench, case: memory, subject: 'brokerflow', metric: 'heap retained after the resync (after a full GC)', unit: 'MB' }, samples.heapAfterResync),
      // Memory flat: what syncs leave behind, from the first run's initial sync to the last run's resync.
      row(
        { benchmark: bench, case: memory, subject: 'brokerflow', metric: 'retained heap growth over the runs, after the first sync to after the last resync', unit: '%' },
        [((samples.heapAfterResync.at(-1)! - samples.heapAfterSync[0]!) / samples.heapAfterSync[0]!) * 100],
      ),
    ];
  },
};
