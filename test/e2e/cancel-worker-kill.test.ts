// A cancellation's undo is workflow code, so a worker that dies while it runs leaves it to the next worker. The
// worker here is a child process started as an operator starts it (`worker/main.ts --config <file>`) and killed
// with SIGKILL while the undo is at a known step; another worker process then finishes it. The known step comes
// from a failing dependency (the tenant etcd of this test, stopped, so the undo of a provision retries its read
// of the keyspace) or from the resource set (the undo of an update re-applies the previous ConfigMap and waits
// for it to become ready, which only the test marks).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { userInfo } from 'node:os';
import { pollLastOperation, startTestStack, type TestStack } from '../support/stack';
import { SERVICE, instancePath, instanceWorkflowIdOf, newId, provisionBody } from '../support/osb';
import { cliRunner, EXIT } from '../support/cli';
import { eventually, kube } from '../support/endpoints-fixtures';
import { startWorkerProcess, type ChildProcessHandle } from '../support/reliability/processes';
import { startOwnTenantEtcd, type OwnTenantEtcd } from '../support/reliability/servers';
import { keyspaceOf } from '../support/reliability/inspect';
import { cancelResourceSets, configMapData, markReady, recordedCancelToCleanMs, waitingForReadiness } from '../support/cancel-fixtures';

const { core } = kube();
const cliRequester = `${userInfo().username} (brokerflow CLI)`;
let tenant: OwnTenantEtcd | undefined;
let stack: TestStack | undefined;
let worker: ChildProcessHandle | undefined;
const figures: string[] = [];
after(async () => {
  await worker?.kill();
  await stack?.close();
  await tenant?.server.stop();
  for (const f of figures) console.log(`# ${f}`);
});

/** The stack (no worker in this process), on a tenant etcd of this test, and a worker process. */
async function setUp(): Promise<TestStack> {
  if (stack) return stack;
  tenant = await startOwnTenantEtcd('cancel-kill');
  stack = await startTestStack({
    worker: false,
    overrides: {
      resourceSets: cancelResourceSets,
      drivers: { etcd: { endpoints: [tenant.server.endpoint], auth: { username: 'root', password: tenant.rootPassword } } },
    },
  });
  worker = await startWorkerProcess(stack.configFile);
  return stack;
}

const cli = (args: string[]) => cliRunner(() => stack!.configFile).cli(args);

/** The pending activity of the instance's run whose type is `type`, once it is being retried (attempt 2 or later). */
async function retrying(s: TestStack, id: string, type: string): Promise<number> {
  return eventually(
    `${type} of ${id} to be retried`,
    async () => {
      const d = await s.client.workflow.getHandle(instanceWorkflowIdOf(id)).describe();
      const a = d.raw.pendingActivities?.find((p) => p.activityType?.name === type && (p.attempt ?? 1) >= 2);
      return a ? a.attempt ?? 2 : undefined;
    },
    60_000,
  );
}

async function replaceWorker(s: TestStack): Promise<void> {
  await worker!.kill();
  worker = await startWorkerProcess(s.configFile);
}

test('a provision whose undo is interrupted by a SIGKILL of the worker is undone by the next worker and recorded as cancelled', { timeout: 300_000 }, async () => {
  const s = await setUp();
  const etcd = tenant!.root();
  try {
    const id = newId('kill-p');
    const put = await s.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 10 } }));
    assert.equal(put.statusCode, 202, put.body);
    const operation = put.json().operation as string;
    await waitingForReadiness(core, s.client, instanceWorkflowIdOf(id), id, 'applyCreateChange');
    assert.ok((await keyspaceOf(etcd, id)).owner, 'the keyspace was created');

    // The tenant etcd goes down: the undo's first step, reading the keyspace, fails and is retried.
    await tenant!.server.stop();
    const cancel = await cli(['cancel', id]);
    assert.equal(cancel.code, EXIT.ok, cancel.stdout + cancel.stderr);
    assert.equal(cancel.json.cancelRequested, true);
    const attempt = await retrying(s, id, 'getCurrentState');
    const progress = await s.client.workflow.getHandle(instanceWorkflowIdOf(id)).query<{ phase: string; reconcile: { resource?: string } }>('progress');
    assert.deepEqual({ phase: progress.phase, resource: progress.reconcile.resource }, { phase: 'compensating', resource: 'keyspace' });

    await replaceWorker(s);
    await tenant!.server.restart();
    const done = await pollLastOperation(s, instancePath(id), operation, 240_000);
    assert.deepEqual(
      { status: done.status, state: done.body.state, description: done.body.description },
      { status: 200, state: 'failed', description: `cancelled by ${cliRequester}` },
    );
    assert.deepEqual(await keyspaceOf(etcd, id), { keys: [] }, 'no keyspace left');
    assert.equal(await configMapData(core, id), undefined, 'no ConfigMap left');
    const ms = await recordedCancelToCleanMs(s.client, instanceWorkflowIdOf(id));
    figures.push(`cancel-to-clean (provision, worker killed during the undo at attempt ${attempt} of its first step, etcd down meanwhile): ${ms} ms`);
  } finally {
    etcd.close();
  }
});

test('an update whose undo is interrupted by a SIGKILL of the worker is undone by the next worker: the previous state is back', { timeout: 300_000 }, async () => {
  const s = await setUp();
  const id = newId('kill-u');
  const put = await s.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 10 } }));
  assert.equal(put.statusCode, 202, put.body);
  await waitingForReadiness(core, s.client, instanceWorkflowIdOf(id), id, 'applyCreateChange');
  await markReady(core, id, true);
  assert.equal((await pollLastOperation(s, instancePath(id), put.json().operation as string, 120_000)).body.state, 'succeeded');

  await markReady(core, id, false);
  const patch = await s.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 20 } });
  assert.equal(patch.statusCode, 202, patch.body);
  const operation = patch.json().operation as string;
  await waitingForReadiness(core, s.client, instanceWorkflowIdOf(id), id, 'applyUpdateChange', '20');

  const cancel = await cli(['cancel', id]);
  assert.equal(cancel.code, EXIT.ok, cancel.stdout + cancel.stderr);
  // The undo has put the previous value back and waits for the ConfigMap to be ready: kill the worker there.
  await waitingForReadiness(core, s.client, instanceWorkflowIdOf(id), id, 'applyUpdateChange', '10');
  const progress = await s.client.workflow.getHandle(instanceWorkflowIdOf(id)).query<{ phase: string }>('progress');
  assert.equal(progress.phase, 'compensating');
  await replaceWorker(s);
  await markReady(core, id, true);

  const done = await pollLastOperation(s, instancePath(id), operation, 240_000);
  assert.deepEqual(
    { status: done.status, state: done.body.state, description: done.body.description },
    { status: 200, state: 'failed', description: `cancelled by ${cliRequester}` },
  );
  const fetched = await s.osb('GET', instancePath(id));
  assert.equal(fetched.statusCode, 200, fetched.body);
  assert.deepEqual(fetched.json().parameters, { quotaKeys: 10 });
  assert.equal((await configMapData(core, id))?.quotaKeys, '10');
  const ms = await recordedCancelToCleanMs(s.client, instanceWorkflowIdOf(id));
  figures.push(`cancel-to-clean (update, worker killed while the undo waited for readiness; includes the test marking the ConfigMap ready): ${ms} ms`);
});
