// last_operation latency (p50/p99) while operations run, with the step lookup (the description names the resource,
// step, attempt and last error: docs/design/contracts/osb-api.md#what-a-running-operations-description-says) beside the
// registry-only answer, in the same run: two broker processes on one registry and task queue, one with the lookup's
// default deadline and one with `broker.lastOperationStepDeadlineMs: 0`, one worker process, polled over HTTP one
// request at a time, alternating between the two. The operations are provisions of the example plan whose tenant etcd
// endpoint answers nothing, so their first step is being retried (a pending activity with attempts and a last error)
// for the whole measurement. Also: how many of the lookup's answers named the resource (the worker's report: one the
// broker kept while the same activity is pending, or one that came within the deadline). Sizes:
// 200 polls per broker and run quick, 1000 full, times --scale.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import { freePort, httpOk, type ManagedProcess } from '../scripts/lib/process';
import { STEP_LOOKUP_DEADLINE_MS } from '../client/operations';
import { percentile, row, type BenchContext, type BenchRow, type Benchmark } from './harness';
import { PLAN_ID, PLATFORM_ORG_SPACE, SERVICE_ID, startBroker, startWorkers, writeDeployment, type BenchDeployment } from './osb-support';
import { startNodeScript } from './process-support';

/** Running operations polled in each run. */
const OPERATIONS = 5;
/** The case the rows (and the target in bench/report.ts) are about. */
export const CASE = 'last_operation of a running provision whose step is being retried';

type Body = { state?: string; description?: string };

async function osb(d: BenchDeployment, brokerUrl: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Body & { operation?: string } }> {
  const res = await fetch(`${brokerUrl}${path}`, {
    method,
    headers: { authorization: d.authorization, 'x-broker-api-version': '2.17', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as Body & { operation?: string } };
}

/** The same deployment with another broker port and the step lookup off: the registry-only answer. */
async function registryOnlyBroker(d: BenchDeployment): Promise<{ url: string; config: string }> {
  const port = await freePort();
  const config = parse(readFileSync(d.configFile, 'utf8')) as { broker: Record<string, unknown> };
  config.broker = { ...config.broker, port, lastOperationStepDeadlineMs: 0 };
  const file = d.configFile.replace(/\.yaml$/, '.registry-only.yaml');
  writeFileSync(file, stringify(config));
  return { url: `http://127.0.0.1:${port}`, config: file };
}

export const benchmark: Benchmark = {
  name: 'last-operation',
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const dir = mkdtempSync(join(ctx.workDir, 'bench-lastop-'));
    // Nothing listens there: every etcd call of the plan's driver fails at once, and Temporal retries the step.
    const deadEtcd = `http://127.0.0.1:${await freePort()}`;
    const d = await writeDeployment({ dir, temporalAddress: ctx.temporalAddress, tenantEtcdEndpoint: deadEtcd, tenantEtcdRootPassword: 'unused' });
    const registryOnly = await registryOnlyBroker(d);
    const connection = await Connection.connect({ address: ctx.temporalAddress });
    const client = new Client({ connection, namespace: 'default' });
    const procs: ManagedProcess[] = [];
    const polls = Math.max(20, Math.round((ctx.quick ? 200 : 1000) * ctx.scale));
    const samples = { lookup: { p50: [] as number[], p99: [] as number[], answered: [] as number[] }, registry: { p50: [] as number[], p99: [] as number[] } };
    try {
      const started = await Promise.allSettled([
        startBroker(d),
        startNodeScript({
          name: 'broker-registry-only',
          script: 'client/broker/main.ts',
          args: ['--config', registryOnly.config],
          env: d.env,
          logDir: d.logDir,
          ready: () => httpOk(`${registryOnly.url}/readyz`, { headers: { authorization: d.authorization } }),
        }),
        startWorkers(d, client, 1),
      ] as const);
      for (const s of started) if (s.status === 'fulfilled') procs.push(...(Array.isArray(s.value) ? s.value : [s.value]));
      const failed = started.find((s) => s.status === 'rejected');
      if (failed) throw failed.reason;

      for (let r = 0; r < ctx.runs; r++) {
        // Fresh provisions each run, so every poll of the run meets a step being retried (7 attempts take a minute).
        const paths: Array<{ path: string; operation: string }> = [];
        for (let i = 0; i < OPERATIONS; i++) {
          const path = `/v2/service_instances/bench-lastop-${r}-${i}-${Date.now()}`;
          const put = await osb(d, d.brokerUrl, 'PUT', `${path}?accepts_incomplete=true`, { service_id: SERVICE_ID, plan_id: PLAN_ID, ...PLATFORM_ORG_SPACE });
          if (put.status !== 202) throw new Error(`provision answered ${put.status}: ${JSON.stringify(put.json)}`);
          paths.push({ path, operation: put.json.operation! });
        }
        // Wait until each step has failed once: its description then carries an attempt and a last error.
        for (const p of paths) {
          const end = Date.now() + 30_000;
          for (;;) {
            const res = await osb(d, d.brokerUrl, 'GET', `${p.path}/last_operation?operation=${p.operation}`);
            if (res.status === 200 && res.json.state === 'in progress' && /\(attempt \d+/.test(res.json.description ?? '')) break;
            if (Date.now() > end) throw new Error(`no retried step shown for ${p.path}: ${JSON.stringify(res.json)}`);
            await new Promise((res) => setTimeout(res, 200));
          }
        }
        const lookup: number[] = [];
        const registry: number[] = [];
        let answered = 0;
        for (let i = 0; i < polls * 2; i++) {
          const p = paths[Math.floor(i / 2) % paths.length]!;
          const withLookup = i % 2 === 0;
          const t0 = performance.now();
          const res = await osb(d, withLookup ? d.brokerUrl : registryOnly.url, 'GET', `${p.path}/last_operation?operation=${p.operation}`);
          const ms = performance.now() - t0;
          if (res.status !== 200 || res.json.state !== 'in progress') throw new Error(`last_operation of ${p.path} answered ${res.status}: ${JSON.stringify(res.json)}`);
          (withLookup ? lookup : registry).push(ms);
          // The worker's report names the resource at the head; without it the step comes from Temporal alone.
          if (withLookup && res.json.description?.startsWith('keyspace: ')) answered++;
        }
        samples.lookup.p50.push(percentile(lookup, 50));
        samples.lookup.p99.push(percentile(lookup, 99));
        samples.lookup.answered.push((100 * answered) / polls);
        samples.registry.p50.push(percentile(registry, 50));
        samples.registry.p99.push(percentile(registry, 99));
      }
    } finally {
      await Promise.allSettled(procs.map((p) => p.stop()));
      await connection.close();
    }
    const kase = `${CASE} (${polls} polls per broker and run)`;
    const fields = (subject: 'brokerflow' | 'baseline', metric: string, unit: string) => ({ benchmark: 'last-operation', case: kase, subject, metric, unit });
    return [
      row(fields('brokerflow', 'latency p50', 'ms'), samples.lookup.p50),
      row(fields('baseline', 'latency p50', 'ms'), samples.registry.p50),
      row(fields('brokerflow', 'latency p99', 'ms'), samples.lookup.p99),
      row(fields('baseline', 'latency p99', 'ms'), samples.registry.p99),
      row(fields('brokerflow', `answers with the worker's report (kept, or within the ${STEP_LOOKUP_DEADLINE_MS} ms deadline)`, '%'), samples.lookup.answered),
    ];
  },
};
