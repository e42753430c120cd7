// OSB provision latency (PUT -> last_operation succeeded, p50/p99) and throughput at 1, 10 and 50 concurrent
// clients, on the example catalog's `standard` plan with the etcd-only resource set (config/resource-sets.example.yaml:
// one etcd prefix per instance) and the file registry (the shipped default); broker and worker run as processes of
// their own. Beside it, on the same Temporal server in the same run, the floor: a bare Temporal workflow with as many
// no-op activities as a provision runs, local and regular alike (read from a provision's history), started and polled the same way (every
// 100 ms), with its own worker process; and the truer floor, right after each level: one workflow with ONE no-op
// activity, the least a durable operation costs. Also: worker and broker peak RSS during the 50-client run (beside the floor
// worker's), throughput at 10 clients with 2 worker processes then 1, where a provision's time goes (from workflow
// histories, with the Temporal Cloud actions they record), and what a worker holds in memory before its first task. Sizes: 5/20/50 operations per level quick,
// 30/100/250 full, times --scale.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { ManagedProcess } from '../scripts/lib/process';
import { percentile, row, type BenchContext, type BenchRow, type Benchmark } from './harness';
import { bundleFloorWorkflows, floorOperation, startFloorWorker } from './floor-support';
import { medianBreakdown, runBreakdown, type RunBreakdown } from './history-support';
import { provisionOperation, startBroker, startWorkers, tenantDeployment } from './osb-support';
import { OperationReportedFailed, PeakRssSampler, type OperationTiming } from './process-support';
import { probeWorkerMemory, type WorkerMemoryParts } from './rss-probe-support';

/** How often both subjects poll for the end of an operation; latencies are quantized to it alike. */
export const POLL_MS = 100;
/** Concurrent clients. */
export const LEVELS = [1, 10, 50] as const;
/** The level the throughput target is checked at, where a provision's time is taken apart, and where 1 and 2
 *  worker processes are compared. */
export const TARGET_LEVEL = 10;
/** The metric of brokerflow's throughput divided by the floor's, run by run (what the target is checked on). */
export const PAIRED_RATIO_METRIC = 'throughput ÷ floor, paired per run';
/** The case comparing a provision with the one-activity floor (bench/report.ts checks two targets on it). */
export const oneActivityCase = (clients: number) => `provision vs the one-activity floor, ${clientsLabel(clients)}`;
/** brokerflow's throughput divided by the one-activity floor's, measured back to back. */
export const ONE_ACTIVITY_RATIO_METRIC = 'throughput ÷ one-activity floor, paired per run';
/** The level whose memory is reported. */
export const LOAD_LEVEL = 50;

type Subject = 'brokerflow' | 'baseline';
type Operation = () => Promise<OperationTiming>;

/** Operations per level (each client runs its share one after another): quick keeps the whole level short. */
export function operationsAt(clients: number, quick: boolean, scale: number): number {
  const sizes: Record<number, number> = quick ? { 1: 5, 10: 20, 50: 50 } : { 1: 30, 10: 100, 50: 250 };
  return Math.max(clients, Math.round((sizes[clients] ?? clients * 2) * scale));
}

/** What a closed loop measured: latencies and throughput of the operations that succeeded, and those reported failed. */
interface LoopResult {
  latencies: number[];
  opsPerSecond: number;
  done: OperationTiming[];
  failed: OperationReportedFailed[];
}

/**
 * Runs `total` operations with `clients` in flight. An operation its client was told failed is counted apart (a
 * platform would stop there too); more than a tenth of them failing makes the figures meaningless, so it throws.
 */
async function closedLoop(clients: number, total: number, op: Operation): Promise<LoopResult> {
  let next = 0;
  const done: OperationTiming[] = [];
  const failed: OperationReportedFailed[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < total) {
        next++;
        try {
          done.push(await op());
        } catch (err) {
          if (!(err instanceof OperationReportedFailed)) throw err;
          failed.push(err);
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  if (failed.length > total / 10) throw new Error(`${failed.length} of ${total} operations reported failed, e.g. ${failed[0]!.message}`);
  return { latencies: done.map((d) => d.ms), opsPerSecond: done.length / seconds, done, failed };
}

function clientsLabel(n: number): string {
  return `${n} client${n === 1 ? '' : 's'}`;
}

export const benchmark: Benchmark = {
  name: 'osb',
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const d = await tenantDeployment(ctx, 'bench-osb-');
    const connection = await Connection.connect({ address: ctx.temporalAddress });
    const client = new Client({ connection, namespace: 'default' });
    const floorQueue = `bench-floor-${randomBytes(4).toString('hex')}`;
    const floorBundle = join(d.dir, 'floor-workflows.js');
    const procs: ManagedProcess[] = [];
    const samples = new Map<string, { fields: Omit<BenchRow, 'median' | 'min' | 'max' | 'runs'>; values: number[] }>();
    const add = (subject: Subject, kase: string, metric: string, unit: string, value: number) => {
      const key = `${subject}|${kase}|${metric}`;
      const s = samples.get(key) ?? { fields: { benchmark: 'osb', case: kase, subject, metric, unit }, values: [] };
      s.values.push(value);
      samples.set(key, s);
    };
    const t0 = performance.now();
    // Progress on stderr (stdout may be the JSON report): where a long run spends its time.
    const phase = (what: string) => process.stderr.write(`#   osb: ${what} at ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    try {
      // Everything starts at once: the two workers read the product's prebuilt workflow bundle (as in production).
      const started = await Promise.allSettled([
        startBroker(d),
        startWorkers(d, client, 2),
        bundleFloorWorkflows(floorBundle).then(() => startFloorWorker({ client, address: ctx.temporalAddress, taskQueue: floorQueue, bundlePath: floorBundle, logDir: d.logDir })),
        probeWorkerMemory(ctx.temporalAddress),
      ] as const);
      const [brokerStarted, workersStarted, floorStarted, probed] = started;
      if (brokerStarted.status === 'fulfilled') procs.push(brokerStarted.value);
      if (workersStarted.status === 'fulfilled') procs.push(...workersStarted.value);
      if (floorStarted.status === 'fulfilled') procs.push(floorStarted.value);
      const failed = started.find((s) => s.status === 'rejected');
      if (failed) throw failed.reason;
      const broker = (brokerStarted as PromiseFulfilledResult<ManagedProcess>).value;
      const [worker, second] = (workersStarted as PromiseFulfilledResult<ManagedProcess[]>).value as [ManagedProcess, ManagedProcess];
      const floorWorker = (floorStarted as PromiseFulfilledResult<ManagedProcess>).value;
      const memory = (probed as PromiseFulfilledResult<WorkerMemoryParts>).value;
      // One probe: what a worker holds before its first task, step by step (each figure adds to the one before).
      const memCase = 'worker memory at start, by part (one probe process)';
      add('brokerflow', memCase, 'node + tsx', 'MB', memory.nodeAndTsx);
      add('brokerflow', memCase, '+ Temporal SDK', 'MB', memory.temporalSdk - memory.nodeAndTsx);
      add('brokerflow', memCase, '+ brokerflow modules (config, adapters, activities)', 'MB', memory.brokerflowModules - memory.temporalSdk);
      add('brokerflow', memCase, '+ the prebuilt workflow bundle read', 'MB', memory.bundleRead - memory.brokerflowModules);
      add('brokerflow', memCase, '+ a Worker created with it (its workflow sandbox loaded; after GC)', 'MB', memory.workerCreated - memory.bundleRead);

      phase('processes ready');
      const provision: Operation = () => provisionOperation(d, POLL_MS);
      // Warm-up: connections, JIT, caches; one provision's history says how many activities the floor must run.
      const warm = await closedLoop(3, 6, provision);
      const { activities, localActivities } = await runBreakdown(client, warm.done[0]!.workflowId);
      const floor: Operation = () => floorOperation(client, floorQueue, activities, POLL_MS, undefined, localActivities);
      const floor1: Operation = () => floorOperation(client, floorQueue, 1, POLL_MS);
      await closedLoop(3, 6, floor);
      await closedLoop(3, 6, floor1);

      phase(`warmed up (a provision runs ${activities} activities and ${localActivities} local activities)`);
      // Two worker processes first (then one is stopped, so every figure after this is for one worker).
      const scalingCase = (n: number) => `scaling: ${n} worker process${n === 1 ? '' : 'es'}`;
      for (let r = 0; r < ctx.runs; r++) {
        const res = await closedLoop(TARGET_LEVEL, operationsAt(TARGET_LEVEL, ctx.quick, ctx.scale), provision);
        add('brokerflow', scalingCase(2), `throughput, ${clientsLabel(TARGET_LEVEL)}`, 'ops/s', res.opsPerSecond);
      }
      await second.stop();
      phase('scaling measured');

      const failures: Array<{ subject: Subject; kase: string; run: number; description: string }> = [];
      const breakdowns: Record<Subject, Array<Array<RunBreakdown & { requestToStart: number; endToSeen: number }>>> = { brokerflow: [], baseline: [] };
      for (let r = 0; r < ctx.runs; r++) {
        for (const clients of LEVELS) {
          const total = operationsAt(clients, ctx.quick, ctx.scale);
          // Alternate which subject goes first so neither always meets a warmer (or more compacted) server.
          const order: Subject[] = (r + clients) % 2 ? ['baseline', 'brokerflow'] : ['brokerflow', 'baseline'];
          const throughputs: Partial<Record<Subject, number>> = {};
          const latest: Partial<Record<Subject, LoopResult>> = {};
          for (const subject of order) {
            // Peak RSS during the 50-client run: worker and broker for brokerflow, the floor's worker beside them.
            const watched: Array<[string, PeakRssSampler]> =
              clients !== LOAD_LEVEL
                ? []
                : subject === 'brokerflow'
                  ? [['worker peak RSS', new PeakRssSampler(worker.pid)], ['broker peak RSS', new PeakRssSampler(broker.pid)]]
                  : [['worker peak RSS', new PeakRssSampler(floorWorker.pid)]];
            watched.forEach(([, sampler]) => sampler.start());
            const res = await closedLoop(clients, total, subject === 'brokerflow' ? provision : floor);
            const kase = `provision, ${clientsLabel(clients)}`;
            add(subject, kase, 'latency p50', 'ms', percentile(res.latencies, 50));
            add(subject, kase, 'latency p99', 'ms', percentile(res.latencies, 99));
            add(subject, kase, 'throughput', 'ops/s', res.opsPerSecond);
            throughputs[subject] = res.opsPerSecond;
            latest[subject] = res;
            failures.push(...res.failed.map((f) => ({ subject, kase, run: r, description: f.description })));
            for (const f of res.failed) process.stderr.write(`#   osb: ${f.message}\n`);
            for (const [metric, sampler] of watched) add(subject, kase, metric, 'MB', sampler.stop());
            if (clients === TARGET_LEVEL && subject === 'brokerflow') add(subject, scalingCase(1), `throughput, ${clientsLabel(TARGET_LEVEL)}`, 'ops/s', res.opsPerSecond);
            if (clients === TARGET_LEVEL) {
              // Read after the clock stopped: where the time of (up to) ten of these operations went.
              const sample = res.done.slice(0, 10);
              const parts = await Promise.all(
                sample.map(async (op) => {
                  const b = await runBreakdown(client, op.workflowId);
                  return { ...b, requestToStart: b.startedAt - op.sentAt, endToSeen: op.sentAt + op.ms - b.endedAt };
                }),
              );
              breakdowns[subject].push(parts);
            }
          }
          // The truer floor, right after: the least a durable operation costs (one workflow, one no-op activity),
          // started and polled the same way, on the same server and floor worker.
          const least = await closedLoop(clients, total, floor1);
          const lkase = oneActivityCase(clients);
          const mine = latest.brokerflow!;
          add('brokerflow', lkase, 'latency p50', 'ms', percentile(mine.latencies, 50));
          add('brokerflow', lkase, 'throughput', 'ops/s', mine.opsPerSecond);
          add('baseline', lkase, 'latency p50', 'ms', percentile(least.latencies, 50));
          add('baseline', lkase, 'throughput', 'ops/s', least.opsPerSecond);
          add('brokerflow', lkase, ONE_ACTIVITY_RATIO_METRIC, '×', mine.opsPerSecond / least.opsPerSecond);
          phase(`run ${r + 1}, ${clientsLabel(clients)} measured`);
          // The two were measured back to back, so their ratio cancels most of the load drifting between runs.
          add('brokerflow', `provision, ${clientsLabel(clients)}`, PAIRED_RATIO_METRIC, '×', throughputs.brokerflow! / throughputs.baseline!);
        }
      }

      // Operations whose client was told they failed: a row per case and reason, with each run's count.
      for (const key of new Set(failures.map((f) => `${f.subject}\u0000${f.kase}\u0000${f.description}`))) {
        const [subject, kase, description] = key.split('\u0000') as [Subject, string, string];
        for (let r = 0; r < ctx.runs; r++) {
          add(subject, kase, `operations reported failed: "${description}"`, 'count', failures.filter((f) => f.run === r && `${f.subject}\u0000${f.kase}\u0000${f.description}` === key).length);
        }
      }

      const kase = `where the time goes, ${clientsLabel(TARGET_LEVEL)} (median per operation)`;
      for (const subject of ['brokerflow', 'baseline'] as const) {
        for (const parts of breakdowns[subject]) {
          const b = medianBreakdown(parts);
          add(subject, kase, 'activities', 'count', b.activities);
          add(subject, kase, 'local activities', 'count', b.localActivities);
          add(subject, kase, 'history events', 'count', b.events);
          add(subject, kase, 'history size', 'bytes', b.historyBytes);
          add(subject, kase, 'billable actions (Temporal Cloud, from the history)', 'count', b.actions);
          add(subject, kase, 'request sent -> run started (HTTP, checks, start call)', 'ms', percentile(parts.map((p) => p.requestToStart), 50));
          add(subject, kase, 'run time on the server', 'ms', b.runMs);
          add(subject, kase, 'activity execution', 'ms', b.activityExecMs);
          add(subject, kase, 'activity queue wait', 'ms', b.activityQueueMs);
          add(subject, kase, 'workflow task execution (local activities included)', 'ms', b.workflowTaskExecMs);
          add(subject, kase, 'workflow task queue wait', 'ms', b.workflowTaskQueueMs);
          add(subject, kase, 'round trips and server bookkeeping', 'ms', b.otherMs);
          // Negative when the client saw success before the run closed (brokerflow records it in the registry first).
          add(subject, kase, 'run closed -> client saw success (polling)', 'ms', percentile(parts.map((p) => p.endToSeen), 50));
          if (subject === 'brokerflow') {
            for (const [type, v] of Object.entries(b.execByType)) add(subject, kase, `activity execution: ${type}`, 'ms', v);
          }
        }
      }
    } finally {
      await Promise.allSettled(procs.map((p) => p.stop()));
      await connection.close().catch(() => undefined);
    }
    // Cases in reading order: what a worker holds, the levels, scaling, then where the time goes.
    const rank = (c: string) => ['worker memory', 'provision, ', 'provision vs', 'scaling', 'where the time goes'].findIndex((p) => c.startsWith(p));
    return [...samples.values()].sort((a, b) => rank(a.fields.case) - rank(b.fields.case)).map((s) => row(s.fields, s.values));
  },
};
