// Cancelling an operation in flight, as an operator and a platform see it: `brokerflow cancel` (a child process,
// as a script runs it) or a plain Temporal cancellation (what the Web UI's "Request Cancellation" sends) stops a
// provision, update or bind, which undoes its work and ends as failed, "cancelled by <who>". Checked against the
// real servers: the tenant etcd (keyspaces, users, roles), Kubernetes (the ConfigMaps), the registry and the OSB
// answers the platform gets next. The resource set makes each operation wait for a ConfigMap that only the test
// marks ready, so a cancellation reaches it at a known step; nothing here waits on a clock.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { userInfo } from 'node:os';
import { Client } from '@temporalio/client';
import { etcdUserName } from '../../adapters/resources';
import { OperationStateKey } from '../../workflows/searchAttributes';
import { pollLastOperation, startTestStack, type TestStack } from '../support/stack';
import { PLAN, SERVICE, bindingPath, bindingWorkflowIdOf, deleteQuery, instancePath, instanceWorkflowIdOf, newId, provisionBody } from '../support/osb';
import { cliRunner, EXIT } from '../support/cli';
import { kube } from '../support/endpoints-fixtures';
import { sharedTenantEtcd } from '../support/reliability/servers';
import { keyspaceOf, managedRoles, managedUsers } from '../support/reliability/inspect';
import { cancelResourceSets, configMapData, markReady, recordedCancelToCleanMs, waitingForReadiness } from '../support/cancel-fixtures';

let stack: TestStack;
const etcd = sharedTenantEtcd();
const { core } = kube();
before(async () => {
  stack = await startTestStack({ overrides: { resourceSets: cancelResourceSets } });
});
after(async () => {
  etcd.close();
  await stack?.close();
});

const { cli, startCli } = cliRunner(() => stack.configFile);
/** What `brokerflow cancel` records as who cancelled: the OS user running it. */
const cliRequester = `${userInfo().username} (brokerflow CLI)`;
/**
 * Cancel-to-clean per operation, printed at the end: as Temporal recorded it (cancel request event to the end
 * recorded) and as the CLI user waits for it (`brokerflow cancel --wait`, process start included).
 */
const cancelToClean: Array<{ operation: string; recordedMs: number; cliMs?: number }> = [];
after(() => {
  for (const f of cancelToClean) {
    console.log(`# cancel-to-clean (${f.operation}): ${f.recordedMs} ms from the cancel request to the compensation recorded${f.cliMs !== undefined ? `; ${f.cliMs} ms for \`brokerflow cancel --wait\`` : ''}`);
  }
});

/** Starts a provision and waits until it has created the keyspace and waits for its ConfigMap to become ready. */
async function provisionInFlight(id: string, parameters: Record<string, unknown> = { quotaKeys: 10 }): Promise<string> {
  const res = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters }));
  assert.equal(res.statusCode, 202, res.body);
  await waitingForReadiness(core, stack.client, instanceWorkflowIdOf(id), id, 'applyCreateChange');
  return res.json().operation as string;
}

/** A provisioned instance: its provision is let through by marking the ConfigMap ready. */
async function provisioned(id: string, parameters: Record<string, unknown> = { quotaKeys: 10 }): Promise<void> {
  const operation = await provisionInFlight(id, parameters);
  await markReady(core, id, true);
  const done = await pollLastOperation(stack, instancePath(id), operation);
  assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));
}

async function lastOperation(path: string, operation: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await stack.osb('GET', `${path}/last_operation?operation=${encodeURIComponent(operation)}`);
  return { status: res.statusCode, body: res.json() };
}

async function nothingLeftOfInstance(id: string): Promise<void> {
  assert.deepEqual(await keyspaceOf(etcd, id), { keys: [] }, 'no keyspace and no owner mark in the tenant etcd');
  assert.equal(await configMapData(core, id), undefined, 'no ConfigMap');
}

test('a provision cancelled with the CLI removes what it created; last_operation says failed, cancelled by the user; a DELETE then finds nothing left', async () => {
  const id = newId('cancel-p');
  const operation = await provisionInFlight(id);
  assert.ok((await keyspaceOf(etcd, id)).owner, 'the keyspace was created before the provision began to wait');
  assert.ok(await configMapData(core, id), 'the ConfigMap exists and is waited for');

  const t0 = Date.now();
  const run = await cli(['cancel', id, '--wait']);
  cancelToClean.push({ operation: 'provision', cliMs: Date.now() - t0, recordedMs: await recordedCancelToCleanMs(stack.client, instanceWorkflowIdOf(id)) });
  assert.equal(run.code, EXIT.ok, run.stdout + run.stderr);
  assert.deepEqual(run.lines[0], { cancelRequested: true, operation: 'provision', operationId: operation, instanceId: id, requestedBy: cliRequester });
  assert.equal(run.json.state, 'failed');
  assert.equal(run.json.description, `cancelled by ${cliRequester}`);

  // The platform's poll.
  const last = await lastOperation(instancePath(id), operation);
  assert.equal(last.status, 200);
  assert.equal(last.body.state, 'failed');
  assert.equal(last.body.description, `cancelled by ${cliRequester}`);
  await nothingLeftOfInstance(id);
  // The registry keeps the failed provision (so the platform may deprovision); the run is marked failed.
  const record = await stack.worker.registry.registry.readOperation('service-instance', id);
  assert.deepEqual(
    { operation: record?.operation, operationId: record?.operationId, state: record?.state, description: record?.description },
    { operation: 'provision', operationId: operation, state: 'failed', description: `cancelled by ${cliRequester}` },
  );
  const described = await stack.client.workflow.getHandle(instanceWorkflowIdOf(id)).describe();
  assert.equal(described.typedSearchAttributes.get(OperationStateKey), 'failed');
  assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 404, 'a failed provision has no instance to fetch');

  // OSB orphan mitigation after a failed provision: the DELETE is accepted and leaves nothing.
  const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
  assert.equal(del.statusCode, 202, del.body);
  const gone = await pollLastOperation(stack, instancePath(id), del.json().operation as string);
  assert.equal(gone.status, 410);
  await nothingLeftOfInstance(id);
  assert.equal((await stack.worker.registry.registry.open('service-instance', id)).exists(), false);
});

test('a provision cancelled as the Web UI does it is recorded with that identity, and the platform may provision again', async () => {
  const id = newId('cancel-ui');
  const operation = await provisionInFlight(id);
  // "Request Cancellation": a plain Temporal cancellation, recorded with the identity of whoever sent it.
  const ui = new Client({ connection: stack.client.connection, namespace: stack.config.temporal.namespace, identity: 'ops@example.org (web ui)' });
  const { runId } = await stack.client.workflow.getHandle(instanceWorkflowIdOf(id)).describe();
  await ui.workflow.getHandle(instanceWorkflowIdOf(id)).cancel();
  const done = await pollLastOperation(stack, instancePath(id), operation);
  cancelToClean.push({ operation: 'provision, Temporal cancellation', recordedMs: await recordedCancelToCleanMs(stack.client, instanceWorkflowIdOf(id), runId) });
  assert.deepEqual(
    { status: done.status, state: done.body.state, description: done.body.description },
    { status: 200, state: 'failed', description: 'cancelled by ops@example.org (web ui)' },
  );
  await nothingLeftOfInstance(id);

  // A PUT after the failed provision starts a new one (another operation), which can succeed.
  const again = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 10 } }));
  assert.equal(again.statusCode, 202, again.body);
  const retried = again.json().operation as string;
  assert.notEqual(retried, operation);
  await waitingForReadiness(core, stack.client, instanceWorkflowIdOf(id), id, 'applyCreateChange');
  await markReady(core, id, true);
  assert.equal((await pollLastOperation(stack, instancePath(id), retried)).body.state, 'succeeded');
  assert.ok((await keyspaceOf(etcd, id)).owner);
});

test('an update cancelled with the CLI restores the previous parameters and resources, and the instance stays usable', async () => {
  const id = newId('cancel-u');
  await provisioned(id, { quotaKeys: 10 });
  // The next change waits for the ConfigMap to be ready again.
  await markReady(core, id, false);
  const patch = await stack.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 20 } });
  assert.equal(patch.statusCode, 202, patch.body);
  const operation = patch.json().operation as string;
  await waitingForReadiness(core, stack.client, instanceWorkflowIdOf(id), id, 'applyUpdateChange', '20');

  const cancel = startCli(['cancel', id, '--wait']);
  // The undo puts the previous value back and then waits for readiness like any apply; let it through then.
  await until('the ConfigMap to hold the previous value again', async () => ((await configMapData(core, id))?.quotaKeys === '10' ? true : undefined));
  await markReady(core, id, true);
  const run = await cancel.done;
  cancelToClean.push({ operation: 'update (includes the test marking the ConfigMap ready)', recordedMs: await recordedCancelToCleanMs(stack.client, instanceWorkflowIdOf(id)) });
  assert.equal(run.code, EXIT.ok, run.stdout + run.stderr);
  assert.equal(run.json.description, `cancelled by ${cliRequester}`);

  const last = await lastOperation(instancePath(id), operation);
  assert.deepEqual(
    { status: last.status, state: last.body.state, description: last.body.description },
    { status: 200, state: 'failed', description: `cancelled by ${cliRequester}` },
  );
  const fetched = await stack.osb('GET', instancePath(id));
  assert.equal(fetched.statusCode, 200, fetched.body);
  assert.deepEqual(fetched.json().parameters, { quotaKeys: 10 }, 'fetch instance shows the previous parameters');
  assert.equal((await configMapData(core, id))?.quotaKeys, '10', 'the resource is back at the previous desired state');
  assert.ok((await keyspaceOf(etcd, id)).owner, 'the keyspace is untouched');
});

test('a bind cancelled with the CLI leaves no etcd user, role or credentials, and the binding does not exist for the platform', async () => {
  const id = newId('cancel-b');
  const bid = newId('cancel-bb');
  await provisioned(id);
  const put = await stack.osb('PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN });
  assert.equal(put.statusCode, 202, put.body);
  const operation = put.json().operation as string;
  await waitingForReadiness(core, stack.client, bindingWorkflowIdOf(bid), bid, 'applyCreateChange');
  const user = etcdUserName(bid);
  assert.equal((await managedUsers(etcd, new Set([user]))).length, 1, 'the bind had created its etcd user');

  const t0 = Date.now();
  const run = await cli(['cancel', id, '--binding', bid, '--wait']);
  cancelToClean.push({ operation: 'bind', cliMs: Date.now() - t0, recordedMs: await recordedCancelToCleanMs(stack.client, bindingWorkflowIdOf(bid)) });
  assert.equal(run.code, EXIT.ok, run.stdout + run.stderr);
  assert.equal(run.lines[0]?.operation, 'bind');
  assert.equal(run.json.description, `cancelled by ${cliRequester}`);

  const last = await lastOperation(bindingPath(id, bid), operation);
  assert.deepEqual({ status: last.status, state: last.body.state, description: last.body.description }, { status: 200, state: 'failed', description: `cancelled by ${cliRequester}` });
  assert.deepEqual(await managedUsers(etcd, new Set([user])), [], 'no etcd user');
  assert.equal((await managedRoles(etcd)).includes(user), false, 'no etcd role');
  assert.equal(await configMapData(core, bid), undefined, 'no binding ConfigMap');
  const entry = await stack.worker.registry.registry.open('service-binding', bid, { instanceId: id });
  assert.equal(entry.get('credentials'), undefined, 'no credentials in the registry');
  assert.equal((await stack.osb('GET', bindingPath(id, bid))).statusCode, 404, 'the binding does not exist');
  // The platform's orphan mitigation: the DELETE is accepted and the binding is gone.
  const del = await stack.osb('DELETE', `${bindingPath(id, bid)}?accepts_incomplete=true&${deleteQuery()}`);
  assert.equal(del.statusCode, 202, del.body);
  assert.equal((await pollLastOperation(stack, bindingPath(id, bid), del.json().operation as string)).status, 410);
});

test('cancel with nothing running fails with exit 3 and changes nothing', async () => {
  const id = newId('cancel-idle');
  await provisioned(id);
  const before = await stack.worker.registry.registry.readOperation('service-instance', id);
  const run = await cli(['cancel', id]);
  assert.equal(run.code, EXIT.notFound, run.stdout + run.stderr);
  assert.equal(run.json.error, `no operation runs on instance ${id}: nothing to cancel`);
  assert.deepEqual(await stack.worker.registry.registry.readOperation('service-instance', id), before);
  const unknown = await cli(['cancel', newId('never'), '--binding', 'nope']);
  assert.equal(unknown.code, EXIT.notFound, unknown.stdout + unknown.stderr);
  const human = await cli(['cancel', id], { json: false });
  assert.equal(human.code, EXIT.notFound);
  assert.match(human.stderr, /nothing to cancel/);
});

test('a deprovision is not cancelled: the CLI refuses with exit 4, a Temporal cancellation is recorded but ignored, and it runs to completion', async () => {
  const id = newId('cancel-d');
  await provisioned(id);
  // With no worker the deprovision is accepted and waits for one: it is in flight for as long as the test needs.
  await stack.stopWorker();
  try {
    const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(del.statusCode, 202, del.body);
    const operation = del.json().operation as string;
    const refused = await cli(['cancel', id]);
    assert.equal(refused.code, EXIT.conflict, refused.stdout + refused.stderr);
    assert.match(String(refused.json.error), new RegExp(`^deprovision ${operation} of instance ${id} cannot be cancelled: a deprovision runs to completion`));
    const ui = new Client({ connection: stack.client.connection, namespace: stack.config.temporal.namespace, identity: 'ops@example.org (web ui)' });
    await ui.workflow.getHandle(instanceWorkflowIdOf(id)).cancel();
    await stack.startWorker();
    const done = await pollLastOperation(stack, instancePath(id), operation);
    assert.equal(done.status, 410, 'the deprovision succeeded');
    await nothingLeftOfInstance(id);
    const history = await stack.client.workflow.getHandle(instanceWorkflowIdOf(id)).fetchHistory();
    assert.ok(history.events?.some((e) => e.workflowExecutionCancelRequestedEventAttributes), 'the cancellation is in the history');
    // The registry records the end before the run itself completes: wait for the run, then ask how it ended.
    const handle = stack.client.workflow.getHandle(instanceWorkflowIdOf(id));
    await handle.result();
    assert.equal((await handle.describe()).status.name, 'COMPLETED', 'the run completed: it was not cancelled');
  } finally {
    await stack.startWorker();
  }
});

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
