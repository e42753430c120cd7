// Issue 6: killing the worker in the middle of a resource set and starting a new one completes the set exactly
// once — no duplicated Kubernetes object, etcd key or etcd user.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { WorkflowHandle } from '@temporalio/client';
import { startTestStack, pollLastOperation, type TestStack } from '../support/stack';
import { requireTestEnv } from '../support/env';
import { PLAN, SERVICE, bindingPath, bindingWorkflowIdOf, instancePath, instanceWorkflowIdOf, newId, osbResourceSets, provisionBody } from '../support/osb';
import { scheduledActivities } from '../support/history';
import { etcdOwnerKey } from '../../adapters/resources/etcd';

const root = resolve(__dirname, '..', '..');
let stack: TestStack | undefined;
let worker: ChildProcess | undefined;
after(async () => {
  worker?.kill('SIGKILL');
  await stack?.close();
});

function startWorkerProcess(configFile: string): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts', '--config', configFile], { cwd: root, stdio: 'ignore' });
}

async function killWhen(handle: WorkflowHandle, stack: TestStack, seen: (summaries: string[]) => boolean): Promise<string[]> {
  for (let i = 0; i < 600; i++) {
    const summaries = (await scheduledActivities(stack.client, handle).catch(() => [])).map((a) => a.summary || a.type);
    if (seen(summaries)) {
      worker!.kill('SIGKILL');
      await new Promise((r) => worker!.once('exit', r));
      return summaries;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('the workflow never reached the step to kill at');
}

/**
 * Kills the worker once the run's history ends with a workflow task started and not yet completed (the local steps
 * run inside it). A task so short that the poll misses it is killed just after; the set must come out whole either way.
 */
async function killWhileTaskRuns(handle: WorkflowHandle): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const events = (await handle.fetchHistory().catch(() => undefined))?.events ?? [];
    if (events.length > 0 && (events[events.length - 1]!.workflowTaskStartedEventAttributes || events.some((e) => e.workflowExecutionCompletedEventAttributes))) {
      worker!.kill('SIGKILL');
      await new Promise((r) => worker!.once('exit', r));
      return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the workflow never started a task');
}

test('a worker killed mid-reconciliation leaves a set that a new worker completes exactly once', { timeout: 180_000 }, async () => {
  stack = await startTestStack({ worker: false, overrides: { resourceSets: osbResourceSets } });
  const id = newId('crash');
  worker = startWorkerProcess(stack.configFile);
  const put = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
  assert.equal(put.statusCode, 202);
  const handle = stack.client.workflow.getHandle(instanceWorkflowIdOf(id));
  // Killed while the first resource (the ConfigMap) is being created, before the keyspace.
  const atKill = await killWhen(handle, stack, (s) => s.includes('settings: applyCreateChange'));
  assert.equal(atKill.some((s) => s.startsWith('keyspace')), false);
  worker = startWorkerProcess(stack.configFile);
  assert.equal((await pollLastOperation(stack, instancePath(id), put.json().operation, 120_000)).body.state, 'succeeded');

  const bid = newId('b');
  const bind = await stack.osb('PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN });
  assert.equal(bind.statusCode, 202, bind.body);
  // A binding's operations run on the binding's own workflow (docs/design/osb-semantics.md). Its steps on etcd are
  // local activities (workflows/local-first.ts) that one workflow task runs one after another, recorded only when the
  // task completes: the worker is killed while that task runs, so the next worker runs the task again from its start.
  await killWhileTaskRuns(stack.client.workflow.getHandle(bindingWorkflowIdOf(bid)));
  worker = startWorkerProcess(stack.configFile);
  assert.equal((await pollLastOperation(stack, bindingPath(id, bid), bind.json().operation, 120_000)).body.state, 'succeeded');

  const { KubeConfig, CoreV1Api } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromFile(requireTestEnv('kubeconfig'));
  const maps = await kc.makeApiClient(CoreV1Api).listNamespacedConfigMap({ namespace: 'default', labelSelector: `brokerflow.io/instance-id=${id}` });
  assert.equal(maps.items.length, 1, 'one ConfigMap');
  const tenant = new Etcd3({ hosts: requireTestEnv('tenantEtcdEndpoint'), auth: { username: 'root', password: requireTestEnv('tenantEtcdRootPassword') } });
  try {
    assert.deepEqual(await tenant.getAll().prefix(`/tenants/${id}/`).keys(), [], 'nothing written twice under the prefix');
    assert.equal(await tenant.get(etcdOwnerKey(`/tenants/${id}`)).string(), id, 'one owner mark, naming the instance');
    const creds = (await stack.osb('GET', bindingPath(id, bid))).json().credentials as { username: string; password: string };
    const users = (await tenant.getUsers()).map((u) => u.name).filter((n) => n === creds.username);
    assert.equal(users.length, 1, 'one etcd user');
    const asUser = new Etcd3({ hosts: requireTestEnv('tenantEtcdEndpoint'), auth: { username: creds.username, password: creds.password } });
    try {
      await asUser.put(`/tenants/${id}/after-crash`).value('ok');
    } finally {
      asUser.close();
    }
  } finally {
    tenant.close();
  }
});
