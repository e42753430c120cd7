// brokerflow as users run it, for the OSB benchmark: a configuration file for the example catalog with the
// etcd-only resource set, the broker (`client/broker/main.ts`) and worker (`worker/main.ts`) as processes of
// their own, and a platform-like client that provisions over HTTP and polls last_operation.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Client } from '@temporalio/client';
import { freePort, httpOk, repoRoot, type ManagedProcess } from '../scripts/lib/process';
import { newPollerCheck, OperationReportedFailed, startNodeScript, type OperationTiming } from './process-support';
import { requireTestEnv } from '../test/support/env';
import type { BenchContext } from './harness';

/** The example catalog's etcd-keyspace service and its `standard` plan (config/catalog.example.yaml). */
export const SERVICE_ID = '6db0d0a4-2b5e-4c1e-9a1f-7f6d2c0e5a11';
export const PLAN_ID = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a01';
/** The platform's organization and space, which every provision must name (docs/design/osb-semantics.md). */
export const PLATFORM_ORG_SPACE = { organization_guid: 'bench-org', space_guid: 'bench-space' } as const;
/** The resource set the plan reconciles: one etcd prefix per instance, nothing else. */
export const RESOURCE_SETS_FILE = 'config/resource-sets.example.yaml';

/** A brokerflow configuration for the benchmark, and the environment its secrets come from. */
export interface BenchDeployment {
  /** The deployment's directory: its configuration, registry and logs. */
  dir: string;
  configFile: string;
  taskQueue: string;
  brokerUrl: string;
  brokerPort: number;
  /** Secrets, passed to the processes as environment variables (the file only names them). */
  env: NodeJS.ProcessEnv;
  authorization: string;
  logDir: string;
}

/** Writes the configuration: file registry (the shipped default), the tenant etcd for the plan's driver. */
export async function writeDeployment(opts: {
  dir: string;
  temporalAddress: string;
  tenantEtcdEndpoint: string;
  tenantEtcdRootPassword: string;
}): Promise<BenchDeployment> {
  mkdirSync(opts.dir, { recursive: true });
  const taskQueue = `bench-osb-${randomBytes(4).toString('hex')}`;
  const brokerPort = await freePort();
  const password = randomBytes(12).toString('hex');
  const config = {
    temporal: { address: opts.temporalAddress, namespace: 'default', taskQueue },
    catalog: join(repoRoot, 'config', 'catalog.example.yaml'),
    resourceSets: join(repoRoot, RESOURCE_SETS_FILE),
    drivers: { etcd: { endpoints: [opts.tenantEtcdEndpoint], auth: { username: 'root', password: { env: 'BROKERFLOW_BENCH_TENANT_ROOT_PASSWORD' } } } },
    broker: { host: '127.0.0.1', port: brokerPort, auth: { basic: [{ username: 'platform', password: { env: 'BROKERFLOW_BENCH_BROKER_PASSWORD' } }] } },
    registry: { backend: 'file', file: { dirs: [join(opts.dir, 'registry')] } },
    encryption: { currentKeyId: 'bench-1', keys: [{ id: 'bench-1', key: { env: 'BROKERFLOW_BENCH_ENCRYPTION_KEY' } }] },
  };
  const configFile = join(opts.dir, 'brokerflow.yaml');
  writeFileSync(configFile, stringify(config));
  return {
    dir: opts.dir,
    configFile,
    taskQueue,
    brokerPort,
    brokerUrl: `http://127.0.0.1:${brokerPort}`,
    env: {
      BROKERFLOW_BENCH_TENANT_ROOT_PASSWORD: opts.tenantEtcdRootPassword,
      BROKERFLOW_BENCH_BROKER_PASSWORD: password,
      BROKERFLOW_BENCH_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      // Request logs at info would measure log writing; warnings and errors still land in the process logs.
      BROKERFLOW_LOG_LEVEL: process.env.BROKERFLOW_LOG_LEVEL ?? 'warn',
      // The configuration file decides the Temporal address; a TEMPORAL_* variable of the caller must not.
      TEMPORAL_ADDRESS: opts.temporalAddress,
      TEMPORAL_NAMESPACE: 'default',
    },
    authorization: `Basic ${Buffer.from(`platform:${password}`).toString('base64')}`,
    logDir: join(opts.dir, 'logs'),
  };
}

/** A deployment on the run's tenant etcd, in a fresh directory of the run's work directory named after `prefix`. */
export function tenantDeployment(ctx: BenchContext, prefix: string): Promise<BenchDeployment> {
  return writeDeployment({
    dir: mkdtempSync(join(ctx.workDir, prefix)),
    temporalAddress: ctx.temporalAddress,
    tenantEtcdEndpoint: requireTestEnv('tenantEtcdEndpoint'),
    tenantEtcdRootPassword: requireTestEnv('tenantEtcdRootPassword'),
  });
}

/** Starts the broker process and waits until /readyz answers (Temporal and the registry reachable). */
export function startBroker(d: BenchDeployment): Promise<ManagedProcess> {
  return startNodeScript({
    name: 'broker',
    script: 'client/broker/main.ts',
    args: ['--config', d.configFile],
    env: d.env,
    logDir: d.logDir,
    ready: () => httpOk(`${d.brokerUrl}/readyz`, { headers: { authorization: d.authorization } }),
  });
}

/**
 * Starts `count` worker processes together (each bundles the workflows itself, as in production) and waits until
 * the server sees all of them polling.
 */
export async function startWorkers(d: BenchDeployment, client: Client, count: number): Promise<ManagedProcess[]> {
  const ready = await newPollerCheck(client, d.taskQueue, count);
  const started = await Promise.allSettled(
    Array.from({ length: count }, (_, i) =>
      startNodeScript({ name: `worker-${i + 1}`, script: 'worker/main.ts', args: ['--config', d.configFile], env: d.env, logDir: d.logDir, ready }),
    ),
  );
  const failed = started.find((s) => s.status === 'rejected');
  const workers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  if (failed) {
    await Promise.allSettled(workers.map((w) => w.stop()));
    throw failed.reason;
  }
  return workers;
}

/** One OSB request as a platform sends it (basic auth, the API version header, JSON). */
export async function osb(d: BenchDeployment, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${d.brokerUrl}${path}`, {
    method,
    headers: {
      authorization: d.authorization,
      'x-broker-api-version': '2.17',
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    json = { raw: text };
  }
  return { status: res.status, json };
}

/**
 * One provision as a platform does it: PUT with accepts_incomplete, then GET last_operation every `pollMs` until
 * the state is final. Resolves with the latency (PUT sent -> succeeded seen) and the instance's workflow ID.
 */
export async function provisionOperation(d: BenchDeployment, pollMs: number, timeoutMs = 120_000): Promise<OperationTiming> {
  const instanceId = randomUUID();
  const path = `/v2/service_instances/${instanceId}`;
  const sentAt = Date.now();
  const t0 = performance.now();
  const put = await osb(d, 'PUT', `${path}?accepts_incomplete=true`, { service_id: SERVICE_ID, plan_id: PLAN_ID, ...PLATFORM_ORG_SPACE, parameters: { quotaKeys: 100 } });
  if (put.status !== 202) throw new Error(`provision of ${instanceId} answered ${put.status}: ${JSON.stringify(put.json)}`);
  const operation = String(put.json.operation);
  for (;;) {
    await new Promise((r) => setTimeout(r, pollMs));
    const res = await osb(d, 'GET', `${path}/last_operation?operation=${encodeURIComponent(operation)}`);
    if (res.status !== 200) throw new Error(`last_operation of ${instanceId} answered ${res.status}: ${JSON.stringify(res.json)}`);
    if (res.json.state === 'succeeded') return { ms: performance.now() - t0, sentAt, workflowId: `instance/${instanceId}` };
    if (res.json.state === 'failed') throw new OperationReportedFailed(`instance/${instanceId}`, String(res.json.description));
    if (performance.now() - t0 > timeoutMs) throw new Error(`provision of ${instanceId} still in progress after ${timeoutMs} ms`);
  }
}

/**
 * One deprovision as a platform does it: DELETE with accepts_incomplete, then GET last_operation every `pollMs`
 * until the instance is gone (410) or the operation failed. Resolves with the latency in ms.
 */
export async function deprovisionOperation(d: BenchDeployment, instanceId: string, pollMs: number, timeoutMs = 120_000): Promise<number> {
  const path = `/v2/service_instances/${instanceId}`;
  const query = `service_id=${SERVICE_ID}&plan_id=${PLAN_ID}`;
  const t0 = performance.now();
  const del = await osb(d, 'DELETE', `${path}?accepts_incomplete=true&${query}`);
  if (del.status === 200 || del.status === 410) return performance.now() - t0;
  if (del.status !== 202) throw new Error(`deprovision of ${instanceId} answered ${del.status}: ${JSON.stringify(del.json)}`);
  const operation = String(del.json.operation);
  for (;;) {
    await new Promise((r) => setTimeout(r, pollMs));
    const res = await osb(d, 'GET', `${path}/last_operation?operation=${encodeURIComponent(operation)}&${query}`);
    if (res.status === 410 || (res.status === 200 && res.json.state === 'succeeded')) return performance.now() - t0;
    if (res.status !== 200) throw new Error(`last_operation of ${instanceId} answered ${res.status}: ${JSON.stringify(res.json)}`);
    if (res.json.state === 'failed') throw new OperationReportedFailed(`instance/${instanceId}`, String(res.json.description));
    if (performance.now() - t0 > timeoutMs) throw new Error(`deprovision of ${instanceId} still in progress after ${timeoutMs} ms`);
  }
}
