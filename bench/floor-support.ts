// The floor of the OSB benchmark: a bare Temporal worker (no-op activities, the floor workflow bundled on its
// own) in a child process of its own, started with the same concurrency limits as brokerflow's worker, and a
// client that runs one floor operation the way a platform runs a provision (start, then poll until done).
//
// Run as a script it is that worker:
//   node --import tsx bench/floor-support.ts --address HOST:PORT --task-queue NAME --bundle FILE
import { writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import type { ManagedProcess } from '../scripts/lib/process';
import type { FloorActivities } from './floor-workflows';
import { newPollerCheck, OperationReportedFailed, startNodeScript, type OperationTiming } from './process-support';

/** brokerflow's worker defaults (worker/worker.ts), which the floor worker copies so both may run as much at once. */
const MAX_CONCURRENT_ACTIVITIES = 100;
const MAX_CONCURRENT_WORKFLOW_TASKS = 40;

/** Bundles bench/floor-workflows.ts into `path`. */
export async function bundleFloorWorkflows(path: string): Promise<void> {
  const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./floor-workflows'), logger: silent as never });
  writeFileSync(path, bundle.code);
}

/** Starts a floor worker process and waits until the server sees it polling. */
export async function startFloorWorker(opts: { client: Client; address: string; taskQueue: string; bundlePath: string; logDir: string; name?: string }): Promise<ManagedProcess> {
  return startNodeScript({
    name: opts.name ?? 'floor-worker',
    script: __filename,
    args: ['--address', opts.address, '--task-queue', opts.taskQueue, '--bundle', opts.bundlePath],
    logDir: opts.logDir,
    ready: await newPollerCheck(opts.client, opts.taskQueue),
  });
}

/**
 * One floor operation: start the workflow, then poll its state every `pollMs` until it completed, as the OSB
 * client polls last_operation. Resolves with the latency in ms.
 */
export async function floorOperation(client: Client, taskQueue: string, activities: number, pollMs: number, timeoutMs = 120_000, localActivities = 0): Promise<OperationTiming> {
  const workflowId = `floor/${randomUUID()}`;
  const sentAt = Date.now();
  const t0 = performance.now();
  const handle = await client.workflow.start('floorWorkflow', { taskQueue, workflowId, args: [activities, localActivities] });
  for (;;) {
    await new Promise((r) => setTimeout(r, pollMs));
    const d = await handle.describe();
    if (d.status.name === 'COMPLETED') return { ms: performance.now() - t0, sentAt, workflowId };
    if (d.status.name !== 'RUNNING') throw new OperationReportedFailed(workflowId, `the run ended ${d.status.name}`);
    if (performance.now() - t0 > timeoutMs) throw new Error(`floor workflow ${workflowId} still running after ${timeoutMs} ms`);
  }
}

function arg(name: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) throw new Error(`floor worker: ${name} is required`);
  return v;
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const connection = await NativeConnection.connect({ address: arg('--address') });
  const activities: FloorActivities = { async noop() {} };
  const worker = await Worker.create({
    connection,
    namespace: 'default',
    taskQueue: arg('--task-queue'),
    workflowBundle: { codePath: arg('--bundle') },
    activities,
    maxConcurrentActivityTaskExecutions: MAX_CONCURRENT_ACTIVITIES,
    maxConcurrentWorkflowTaskExecutions: MAX_CONCURRENT_WORKFLOW_TASKS,
  });
  await worker.run();
  await connection.close();
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`floor worker: ${err.message}\n`);
    process.exit(1);
  });
}
