// The watcher survives the death of its worker: a child worker process runs the watch activity while services
// keep changing, is killed with SIGKILL mid-stream, and the watch resumes on another worker (the heartbeat
// times out, Temporal runs the activity again there); the registry converges to what the cluster says.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ensureEndpointSync } from '../../platform/endpoint-workflows';
import { endpointWatcherWorkflowId } from '../../workflows/endpoints-messages';
import {
  addresses,
  allowed,
  eventually,
  kube,
  patchService,
  serviceBody,
  snapshot,
  startMirror,
  startWorker,
  uid,
  type Mirror,
} from '../support/endpoints-fixtures';
import { writeRawTestConfig } from '../support/config';

const children: ChildProcess[] = [];
let mirror: Mirror | undefined;
const { core } = kube();
const namespaces: string[] = [];

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await mirror?.stop();
  await Promise.allSettled(namespaces.map((name) => core.deleteNamespace({ name })));
});

/** Starts a worker process on the mirror's task queue; resolves once it polls. */
async function startChildWorker(m: Mirror): Promise<ChildProcess> {
  // The child loads the same configuration file (same task queue) as the in-process side.
  const { file } = writeRawTestConfig({ temporal: { address: m.config.temporal.address, namespace: 'default', taskQueue: m.config.temporal.taskQueue } });
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'endpoints-worker-child.ts'), file], {
    env: { ...process.env, BROKERFLOW_TEST_ENDPOINTS: JSON.stringify(m.endpointConfig) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => line.startsWith('ready ') && resolve());
    child.on('exit', (code) => reject(new Error(`worker child exited (${code}): ${stderr.slice(-800)}`)));
  });
  return child;
}

/** The watch activity as Temporal sees it: which worker ran it last and which attempt it is on. */
async function watchActivity(m: Mirror): Promise<{ identity: string; attempt: number } | undefined> {
  const desc = await m.client.workflow.getHandle(endpointWatcherWorkflowId(m.name)).describe();
  const act = desc.raw.pendingActivities?.find((a) => a.activityType?.name === 'watchKubernetes');
  if (!act || act.state !== 1 /* SCHEDULED */ && act.state !== 2 /* STARTED */) return undefined;
  return act.lastWorkerIdentity ? { identity: act.lastWorkerIdentity, attempt: act.attempt ?? 0 } : undefined;
}

test('killing the worker that runs the watcher mid-stream moves the watch to another worker and the registry converges', { timeout: 60_000 }, async () => {
  const m = (mirror = await startMirror({ worker: false, start: false, endpoints: { heartbeatTimeoutSeconds: 3, reconcileTimeoutSeconds: 5 } }));
  const child = await startChildWorker(m);
  await ensureEndpointSync(m.client, { taskQueue: m.config.temporal.taskQueue, settings: m.deps.settings });
  const running = await eventually('the child runs the watch', () => watchActivity(m));
  assert.equal(running.identity.split('@')[0], String(child.pid));

  const ns = `bf-kill-${uid()}`;
  namespaces.push(ns);
  await core.createNamespace({ body: { metadata: { name: ns, labels: { [m.labelKey]: 'enabled' } } } });
  const names = ['s0', 's1', 's2', 's3', 's4'];
  for (const name of names) {
    await core.createNamespacedService({ namespace: ns, body: serviceBody(name, { annotations: { [`${allowed}/x`]: name }, ips: ['10.10.0.1'], ports: [1000] }) });
  }
  await eventually('the child registered the services', async () => (Object.keys((await snapshot(m.registry, ns)).services).length === 5 ? true : undefined));

  // A second worker joins; then changes stream in while the child is killed in the middle of them.
  const survivor = await startWorker(m);
  let port = 1000;
  let streaming = true;
  const stream = (async () => {
    while (streaming) {
      port += 1;
      await patchService(core, ns, names[port % names.length]!, { ports: [port] });
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  await new Promise((r) => setTimeout(r, 500));
  child.kill('SIGKILL');
  const killedAt = Date.now();
  await new Promise((r) => setTimeout(r, 1_500));
  streaming = false;
  await stream;
  // Changes the dead worker can never have seen.
  await core.deleteNamespacedService({ name: 's0', namespace: ns });
  await core.createNamespacedService({ namespace: ns, body: serviceBody('s5', { annotations: { [`${allowed}/x`]: 's5' }, ips: ['10.10.0.2'], ports: [5555] }) });

  const moved = await eventually('the watch runs on the surviving worker', async () => {
    const a = await watchActivity(m);
    return a && a.identity === survivor.options.identity ? a : undefined;
  }, 30_000);
  assert.ok(moved.attempt >= 2, `attempt ${moved.attempt}`);

  // The expected registry, computed from the cluster as it is now.
  const list = await core.listNamespacedService({ namespace: ns });
  const expected = Object.fromEntries(list.items.map((s) => [`${ns}/${s.metadata!.name}`, s.spec!.ports!.map((p) => `${s.spec!.externalIPs![0]}:${p.port}`).sort().join()]));
  assert.equal(Object.keys(expected).length, 5);
  await eventually(
    'the registry matches the cluster',
    async () => {
      const snap = await snapshot(m.registry, ns);
      const actual = Object.fromEntries(Object.entries(snap.services).map(([k, v]) => [k, addresses(v).join()]));
      return JSON.stringify(actual, Object.keys(actual).sort()) === JSON.stringify(expected, Object.keys(expected).sort()) ? true : undefined;
    },
    40_000,
  );
  console.log(`# converged ${Date.now() - killedAt} ms after the kill (heartbeat timeout 3 s)`);
});
