// The cluster tier (`npm run test:cluster`): brokerflow as it runs next to a self-hosted Temporal — the server's
// frontend, history, matching and worker services as separate processes on PostgreSQL — with TWO worker processes
// and TWO broker processes (started as an operator starts them), and the platform talking HTTP to both brokers.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { freePort } from '../../scripts/lib/process';
import { startTemporalCluster, type TemporalCluster } from '../../scripts/lib/temporal-cluster';
import { startTestStack, type TestStack } from '../support/stack';
import { requireTestEnv } from '../support/env';
import { startBrokerProcess, startWorkerProcess, type ChildProcessHandle } from '../support/reliability/processes';
import { httpSender, type Send } from '../support/reliability/platform';

/** Fails at once, with the command to use, when the run did not start the cluster shape. */
export function requireClusterShape(): void {
  if (process.env.BROKERFLOW_TEST_TEMPORAL !== 'cluster') {
    throw new Error('test/cluster runs on the multi-service Temporal cluster: use `npm run test:cluster` (test/run.ts --temporal=cluster)');
  }
}

/** A Temporal cluster of one scenario (its own PostgreSQL and services), for scenarios that restart services. */
export async function startOwnCluster(name: string): Promise<TemporalCluster> {
  const workDir = requireTestEnv('workDir');
  const suffix = randomBytes(3).toString('hex');
  return startTemporalCluster({ dataDir: join(workDir, `${name}-${suffix}`), logDir: join(workDir, 'logs', `${name}-${suffix}`), ephemeral: true });
}

/** brokerflow on the cluster: an in-process stack for inspection (no worker) plus worker and broker processes. */
export interface ClusterStack {
  /** Registry, Temporal client and config; its in-process worker is never started. */
  stack: TestStack;
  workers: ChildProcessHandle[];
  brokers: Array<{ process: ChildProcessHandle; port: number; send: Send }>;
  /** Kills worker `i` with SIGKILL and starts it again; returns the new handle's spawn-to-polling time (ms). */
  killAndRestartWorker(i: number): Promise<number>;
  close(): Promise<void>;
}

export async function startClusterStack(opts: { temporalAddress?: string; workers?: number; brokers?: number } = {}): Promise<ClusterStack> {
  const stack = await startTestStack({
    worker: false,
    ...(opts.temporalAddress
      ? { overrides: { temporal: { address: opts.temporalAddress, namespace: 'default', taskQueue: `tq-${randomBytes(5).toString('hex')}` } } }
      : {}),
  });
  const workers: ChildProcessHandle[] = [];
  const brokers: ClusterStack['brokers'] = [];
  const close = async () => {
    await Promise.allSettled([...workers.map((w) => w.stop()), ...brokers.map((b) => b.process.stop())]);
    await stack.close();
  };
  try {
    // One at a time: each bundles the workflow code at start, which is CPU-heavy.
    for (let i = 0; i < (opts.workers ?? 2); i++) workers.push(await startWorkerProcess(stack.configFile));
    for (let i = 0; i < (opts.brokers ?? 2); i++) {
      const port = await freePort();
      const proc = await startBrokerProcess(stack.configFile, port);
      brokers.push({ process: proc, port, send: httpSender(`http://127.0.0.1:${port}`) });
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    stack,
    workers,
    brokers,
    async killAndRestartWorker(i) {
      await workers[i]!.kill();
      workers[i] = await startWorkerProcess(stack.configFile);
      return workers[i]!.readyAt - workers[i]!.spawnedAt;
    },
    close,
  };
}
