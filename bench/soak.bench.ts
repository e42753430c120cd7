// Worker memory over a long run, only with `npm run bench -- --soak` (10 minutes; `--soak-minutes N` for another
// length): platform-like clients provision and deprovision instances of the example plan over HTTP without pause
// (a provision, then its deprovision, each polled every 100 ms), against one broker and one worker process, while the
// worker's resident set is sampled every 5 s. The figure is its growth from the first minute after a warm-up minute
// to the last minute (medians of the samples in each), beside the operations completed and the worker's resident set
// when idle before and after. Memory that grows with the number of operations run (a leak) shows as growth; a
// worker that stays within ±10 % is flat.
import { Client, Connection } from '@temporalio/client';
import type { ManagedProcess } from '../scripts/lib/process';
import { row, summarize, type BenchContext, type BenchRow, type Benchmark } from './harness';
import { deprovisionOperation, provisionOperation, startBroker, startWorkers, tenantDeployment } from './osb-support';
import { procStatus } from './process-support';

/** Clients working at once: enough to keep the worker busy on 2 cores without queueing for minutes. */
const CLIENTS = 10;
const SAMPLE_EVERY_MS = 5_000;
const POLL_MS = 100;
export const CASE = `worker memory over a soak of provisions and deprovisions, ${CLIENTS} clients`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The median resident set (MB) of the samples taken in [from, to) ms after the start. */
function medianMb(samples: Array<{ at: number; kb: number }>, from: number, to: number): number {
  const inside = samples.filter((s) => s.at >= from && s.at < to).map((s) => s.kb / 1024);
  if (inside.length === 0) throw new Error(`no memory sample between ${from} and ${to} ms`);
  return summarize(inside).median;
}

/** The worker's resident set (MB) after `ms` of quiet. */
async function idleMb(pid: number, ms: number): Promise<number> {
  await sleep(ms);
  const s = procStatus(pid);
  if (!s) throw new Error(`worker process ${pid} is gone`);
  return s.rssKb / 1024;
}

export const benchmark: Benchmark = {
  name: 'soak',
  soakOnly: true,
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const minutes = ctx.soakMinutes ?? 10;
    if (minutes < 3) throw new Error('a soak needs at least 3 minutes: a warm-up minute, a first and a last minute');
    const d = await tenantDeployment(ctx, 'bench-soak-');
    const connection = await Connection.connect({ address: ctx.temporalAddress });
    const client = new Client({ connection, namespace: 'default' });
    const procs: ManagedProcess[] = [];
    try {
      const [broker, workers] = await Promise.all([startBroker(d), startWorkers(d, client, 1)]);
      procs.push(broker, ...workers);
      const worker = workers[0]!;
      const before = await idleMb(worker.pid, 10_000);

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
      const after = await idleMb(worker.pid, 10_000);
      // The first minute warms the caches up; growth is measured from the second minute to the last.
      const first = medianMb(samples, 60_000, 120_000);
      const last = medianMb(samples, ranMs - 60_000, ranMs + 1);
      const growth = (100 * (last - first)) / first;
      console.log(`# soak: ${operations} operations in ${(ranMs / 60_000).toFixed(1)} min; worker ${first.toFixed(0)} MB -> ${last.toFixed(0)} MB (${growth.toFixed(1)} %)`);
      const fields = (metric: string, unit: string) => ({ benchmark: 'soak', case: `${CASE}, ${minutes} minutes`, subject: 'brokerflow' as const, metric, unit });
      return [
        row(fields('operations completed', 'ops'), [operations]),
        row(fields('worker RSS, second minute (median)', 'MB'), [first]),
        row(fields('worker RSS, last minute (median)', 'MB'), [last]),
        row(fields('worker RSS growth, second to last minute', '%'), [growth]),
        row(fields('worker RSS idle, before the soak', 'MB'), [before]),
        row(fields('worker RSS idle, after the soak', 'MB'), [after]),
      ];
    } finally {
      await Promise.allSettled(procs.map((p) => p.stop()));
      await connection.close();
    }
  },
};
