// The story of each OSB operation workflow, run by a real worker on Temporal's time-skipping test server with
// stub activities (./stubs.ts). Each test asserts what the platform sees: the operation record that
// last_operation reads, the workflow's result, and which resources exist afterwards. Retry backoff (seconds to
// minutes) is skipped by the test server, so the whole file runs in seconds.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ResourceDef } from '../../config/resource-sets';
import {
  deprovisionAfterProvisionId,
  deprovisionRequestedSignal,
  instanceWorkflowId,
  progressQuery,
  type OperationInput,
  type OperationResult,
} from '../../workflows/messages';
import { OperationStateKey } from '../../workflows/searchAttributes';
import type { FakeCatalog } from './stubs';
import { WorkflowTestBed, type Scenario } from './testbed';

const resource = (name: string, spec: Record<string, unknown> = {}): ResourceDef => ({ name, driver: 'fake', spec });

/** Plan `standard`: a database and its user per instance, an account per binding; `empty-binding`: no binding resources. */
const catalog: FakeCatalog = {
  standard: { instance: [resource('db', { engine: 'etcd' }), resource('user')], binding: [resource('account')] },
  'empty-binding': { instance: [resource('db')], binding: [] },
  retired: { skipped: 'no resource set handles maintenance version 0.9' },
};

let bed: WorkflowTestBed;
before(async () => {
  bed = await WorkflowTestBed.start();
});
after(async () => {
  await bed?.stop();
});

/** Starts an operation and waits for its end (following a provision that continued as a deprovision). */
async function runToEnd(s: Scenario, input: OperationInput): Promise<OperationResult> {
  return (await s.start(input)).result() as Promise<OperationResult>;
}

describe('provision', () => {
  test('creates every resource of the plan and records the operation as succeeded', async () => {
    const s = bed.scenario(catalog);
    const input = s.input('provision', { parameters: { size: 1 } });
    const result = await runToEnd(s, input);
    assert.deepEqual(result, { operation: 'provision', operationId: input.operationId, state: 'succeeded' });
    assert.deepEqual(s.registry.lastOperation(input), { operation: 'provision', operationId: input.operationId, state: 'succeeded' });
    assert.deepEqual(s.world.names(), [`db@${input.instanceId}`, `user@${input.instanceId}`]);
    assert.deepEqual(s.world.resources.get(`db@${input.instanceId}`), { spec: { engine: 'etcd' }, parameters: { size: 1 } });
  });

  test('a DELETE while a create is in flight stops it, records the provision as failed and continues as a deprovision of what was created', async () => {
    const s = bed.scenario(catalog);
    const input = s.input('provision');
    // The user's create is in flight when the DELETE comes; the call lands even though it is cancelled.
    const createUser = s.gates.hold<{ resource: ResourceDef }>('applyCreateChange', (i) => i.resource.name === 'user');
    const handle = await s.start(input);
    await createUser.reached;
    assert.deepEqual((await handle.query(progressQuery)).reconcile, { resource: 'user', step: 'applyCreateChange', done: 1, total: 2 });

    await handle.signal(deprovisionRequestedSignal, s.input('deprovision'));
    const result = (await handle.result()) as OperationResult;

    const deprovisionId = deprovisionAfterProvisionId(input.operationId);
    assert.deepEqual(result, { operation: 'deprovision', operationId: deprovisionId, state: 'succeeded' });
    assert.deepEqual(s.registry.journal, [
      `begin provision ${input.operationId}`,
      `complete provision ${input.operationId} failed: provisioning was stopped: the platform deleted the instance`,
      `begin deprovision ${deprovisionId}`,
      `complete deprovision ${deprovisionId} succeeded`,
    ]);
    // The deprovision began only after the cancelled create had landed, so it deleted that resource too.
    assert.deepEqual(s.world.names(), []);
    assert.equal(s.registry.entry(input)?.gone, true, 'a tombstone: last_operation answers 410');
    const first = await bed.env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId).describe();
    assert.equal(first.status.name, 'CONTINUED_AS_NEW');
  });

  test('a DELETE that comes before the provision recorded anything leaves no provision record and deprovisions', async () => {
    const s = bed.scenario(catalog);
    const input = s.input('provision');
    const del = s.input('deprovision');
    const handle = await bed.env.client.workflow.signalWithStart('provision', {
      taskQueue: bed.taskQueue,
      workflowId: instanceWorkflowId(input.instanceId),
      args: [input],
      signal: deprovisionRequestedSignal,
      signalArgs: [del],
    });
    const result = (await handle.result()) as OperationResult;
    const deprovisionId = deprovisionAfterProvisionId(input.operationId);
    assert.deepEqual(result, { operation: 'deprovision', operationId: deprovisionId, state: 'succeeded' });
    assert.deepEqual(s.registry.journal, [`begin deprovision ${deprovisionId}`, `complete deprovision ${deprovisionId} succeeded`]);
    assert.deepEqual(s.world.names(), []);
  });

  test('a DELETE that comes while the provision records its end is still carried out', async () => {
    const s = bed.scenario(catalog);
    const input = s.input('provision');
    const completing = s.gates.hold<{ operation: string }>('recordComplete', (i) => i.operation === 'provision');
    const handle = await s.start(input);
    await completing.reached;
    await handle.signal(deprovisionRequestedSignal, s.input('deprovision'));
    completing.release();
    const result = (await handle.result()) as OperationResult;

    const deprovisionId = deprovisionAfterProvisionId(input.operationId);
    assert.deepEqual(result, { operation: 'deprovision', operationId: deprovisionId, state: 'succeeded' });
    // The end is recorded by a local activity in the workflow task that ran every step (workflows/local-first.ts):
    // Temporal refuses to close the run while a signal it has not seen waits, so the task runs again from its start
    // with the DELETE known. Its steps are idempotent (the begin reopens the same operation), the provision is
    // closed as stopped, and the deprovision follows as before.
    assert.deepEqual(s.registry.journal, [
      `begin provision ${input.operationId}`,
      `complete provision ${input.operationId} succeeded`,
      `complete provision ${input.operationId} failed: provisioning was stopped: the platform deleted the instance`,
      `begin deprovision ${deprovisionId}`,
      `complete deprovision ${deprovisionId} succeeded`,
    ]);
    assert.deepEqual(s.world.names(), []);
    assert.equal(s.registry.entry(input)?.gone, true);
  });

  test('an identical provision that already succeeded succeeds at once and changes nothing', async () => {
    const s = bed.scenario(catalog);
    const earlier = s.input('provision');
    s.registry.seed(earlier);
    const again = s.input('provision'); // same request (fingerprint), new operation ID
    const result = await runToEnd(s, again);
    assert.deepEqual(result, { operation: 'provision', operationId: again.operationId, state: 'succeeded', description: 'already done' });
    assert.deepEqual(s.registry.lastOperation(earlier), { operation: 'provision', operationId: earlier.operationId, state: 'succeeded' });
    assert.deepEqual(s.registry.journal, []);
    assert.deepEqual(s.world.names(), []);
  });

  test('a different provision of an instance that exists is refused without touching its record', async () => {
    const s = bed.scenario(catalog);
    const earlier = s.input('provision');
    s.registry.seed(earlier);
    const other = s.input('provision', { fingerprint: 'another request', parameters: { size: 9 } });
    const result = await runToEnd(s, other);
    assert.deepEqual(result, {
      operation: 'provision',
      operationId: other.operationId,
      state: 'failed',
      description: `instance ${other.instanceId} already exists with different attributes`,
    });
    assert.deepEqual(s.registry.lastOperation(earlier), { operation: 'provision', operationId: earlier.operationId, state: 'succeeded' });
    assert.deepEqual(s.registry.journal, []);
  });

  test('a step that fails with a non-retryable error is recorded as failed, naming the resource and step', async () => {
    const s = bed.scenario(catalog);
    s.world.fail({ resource: 'user', step: 'applyCreateChange', type: 'Invalid', message: 'user name is taken' });
    const input = s.input('provision');
    const handle = await s.start(input);
    const result = (await handle.result()) as OperationResult;
    const description = 'resource "user" step applyCreateChange failed: user name is taken';
    assert.deepEqual(result, { operation: 'provision', operationId: input.operationId, state: 'failed', description });
    assert.deepEqual(s.registry.lastOperation(input), { operation: 'provision', operationId: input.operationId, state: 'failed', description });
    assert.equal(s.world.attempts.get('user:applyCreateChange'), 1, 'invalid input is not retried');
    // The entry stays so that a DELETE can clean up what was created.
    assert.deepEqual(s.world.names(), [`db@${input.instanceId}`]);
    assert.equal((await handle.describe()).typedSearchAttributes.get(OperationStateKey), 'failed');
  });

  test('a step that keeps failing is retried 7 times with backoff, then recorded as failed', async () => {
    const s = bed.scenario(catalog);
    s.world.fail({ resource: 'db', step: 'getCurrentState', type: 'Unavailable', message: 'etcd is down' });
    const input = s.input('provision');
    const result = await runToEnd(s, input);
    const description = 'resource "db" step getCurrentState failed: etcd is down';
    assert.deepEqual(result, { operation: 'provision', operationId: input.operationId, state: 'failed', description });
    assert.equal(s.registry.lastOperation(input)?.state, 'failed');
    assert.equal(s.world.attempts.get('db:getCurrentState'), 7);
    assert.deepEqual(s.world.names(), []);
  });

  test('a step that fails twice and then works does not fail the provision', async () => {
    const s = bed.scenario(catalog);
    s.world.fail({ resource: 'db', step: 'applyCreateChange', type: 'Unavailable', message: 'etcd is down', times: 2 });
    const input = s.input('provision');
    const result = await runToEnd(s, input);
    assert.equal(result.state, 'succeeded');
    assert.equal(s.registry.lastOperation(input)?.state, 'succeeded');
    assert.equal(s.world.attempts.get('db:applyCreateChange'), 3);
    assert.deepEqual(s.world.names(), [`db@${input.instanceId}`, `user@${input.instanceId}`]);
  });

  test('a provision cancelled while a create is in flight waits for the create to stop, removes what it created and is recorded as cancelled', async () => {
    const s = bed.scenario(catalog);
    const input = s.input('provision');
    const createUser = s.gates.hold<{ resource: ResourceDef }>('applyCreateChange', (i) => i.resource.name === 'user');
    const handle = await s.start(input);
    await createUser.reached;
    await handle.cancel();
    const result = (await handle.result()) as OperationResult;
    const description = `cancelled by ${s.registry.cancelIdentity}`;
    assert.deepEqual(result, { operation: 'provision', operationId: input.operationId, state: 'failed', description });
    // Never left "in progress": last_operation tells the platform it failed, and why.
    assert.deepEqual(s.registry.lastOperation(input), { operation: 'provision', operationId: input.operationId, state: 'failed', description });
    // The create in flight landed before the undo began, so the undo deleted it too: nothing is left.
    assert.deepEqual(s.world.names(), []);
    assert.deepEqual(s.registry.journal, [`begin provision ${input.operationId}`, `complete provision ${input.operationId} failed: ${description}`]);
    assert.equal((await handle.describe()).typedSearchAttributes.get(OperationStateKey), 'failed');
  });

  test('a provision cancelled while its begin is being recorded settles the begin, then undoes and records the cancellation', async () => {
    const s = bed.scenario(catalog);
    const input = s.input('provision');
    const begin = s.gates.hold('recordBegin');
    const handle = await s.start(input);
    await begin.reached;
    await handle.cancel();
    const result = (await handle.result()) as OperationResult;
    begin.release();
    assert.equal(result.state, 'failed');
    assert.equal(result.description, `cancelled by ${s.registry.cancelIdentity}`);
    assert.deepEqual(s.registry.lastOperation(input)?.state, 'failed');
    assert.deepEqual(s.world.names(), []);
  });

  test('a plan whose maintenance version no resource set handles succeeds without reconciling', async () => {
    const s = bed.scenario(catalog);
    const input = s.input('provision', { planId: 'retired' });
    const result = await runToEnd(s, input);
    assert.equal(result.state, 'succeeded');
    assert.equal(s.registry.lastOperation(input)?.state, 'succeeded');
    assert.deepEqual(s.world.names(), []);
  });

  test('a plan missing from the worker\'s catalog is recorded as failed', async () => {
    const s = bed.scenario(catalog);
    const input = s.input('provision', { planId: 'unknown' });
    const result = await runToEnd(s, input);
    const description = `plan unknown of service ${input.serviceId} is not in this worker's catalog`;
    assert.deepEqual(result, { operation: 'provision', operationId: input.operationId, state: 'failed', description });
    assert.deepEqual(s.registry.lastOperation(input), { operation: 'provision', operationId: input.operationId, state: 'failed', description });
  });
});

describe('update', () => {
  test('applies the new parameters to the resources and to the instance when it succeeds', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision', { parameters: { size: 1 } }));
    const update = s.input('update', { parameters: { size: 2 } });
    const result = await runToEnd(s, update);
    assert.deepEqual(result, { operation: 'update', operationId: update.operationId, state: 'succeeded' });
    assert.deepEqual(s.registry.lastOperation(update), { operation: 'update', operationId: update.operationId, state: 'succeeded' });
    assert.deepEqual(s.registry.entry(update)?.parameters, { size: 2 });
    assert.deepEqual(s.world.resources.get(`db@${update.instanceId}`), { spec: { engine: 'etcd' }, parameters: { size: 2 } });
  });

  test('a failed update keeps the applied parameters, and the same update afterwards succeeds', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision', { parameters: { size: 1 } }));
    s.world.fail({ resource: 'db', step: 'applyUpdateChange', type: 'Invalid', message: 'size 2 exceeds the quota', times: 1 });
    const first = s.input('update', { parameters: { size: 2 } });
    const failed = await runToEnd(s, first);
    const description = 'resource "db" step applyUpdateChange failed: size 2 exceeds the quota';
    assert.deepEqual(failed, { operation: 'update', operationId: first.operationId, state: 'failed', description });
    assert.deepEqual(s.registry.lastOperation(first), { operation: 'update', operationId: first.operationId, state: 'failed', description });
    assert.deepEqual(s.registry.entry(first)?.parameters, { size: 1 }, 'the instance keeps what was applied');

    const again = s.input('update', { parameters: { size: 2 } });
    const result = await runToEnd(s, again);
    assert.equal(result.state, 'succeeded');
    assert.deepEqual(s.registry.lastOperation(again), { operation: 'update', operationId: again.operationId, state: 'succeeded' });
    assert.deepEqual(s.registry.entry(again)?.parameters, { size: 2 });
    assert.deepEqual(s.world.resources.get(`db@${again.instanceId}`), { spec: { engine: 'etcd' }, parameters: { size: 2 } });
  });

  test('a cancelled update reconciles the resources back to the applied parameters and keeps them', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision', { parameters: { size: 1 } }));
    const update = s.input('update', { parameters: { size: 2 } });
    // The second resource's update is in flight: the first already has the new parameters.
    const updateUser = s.gates.hold<{ resource: ResourceDef }>('applyUpdateChange', (i) => i.resource.name === 'user');
    const handle = await s.start(update);
    await updateUser.reached;
    assert.deepEqual(s.world.resources.get(`db@${update.instanceId}`), { spec: { engine: 'etcd' }, parameters: { size: 2 } });
    await handle.cancel();
    const result = (await handle.result()) as OperationResult;
    const description = `cancelled by ${s.registry.cancelIdentity}`;
    assert.deepEqual(result, { operation: 'update', operationId: update.operationId, state: 'failed', description });
    assert.deepEqual(s.registry.lastOperation(update), { operation: 'update', operationId: update.operationId, state: 'failed', description });
    assert.deepEqual(s.registry.entry(update)?.parameters, { size: 1 }, 'the instance keeps what was applied');
    assert.deepEqual(s.world.resources.get(`db@${update.instanceId}`), { spec: { engine: 'etcd' }, parameters: { size: 1 } });
    assert.deepEqual(s.world.resources.get(`user@${update.instanceId}`), { spec: {}, parameters: { size: 1 } });
  });

  test('an update that starts after the instance was deprovisioned is refused and records nothing', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const gone = s.input('deprovision');
    await runToEnd(s, gone);
    const update = s.input('update', { parameters: { size: 2 } });
    const result = await runToEnd(s, update);
    assert.deepEqual(result, { operation: 'update', operationId: update.operationId, state: 'failed', description: `instance ${update.instanceId} does not exist` });
    // last_operation still answers with the deprovision (410 Gone).
    assert.deepEqual(s.registry.lastOperation(update), { operation: 'deprovision', operationId: gone.operationId, state: 'succeeded' });
    assert.equal(s.registry.journal.some((line) => line.includes(update.operationId)), false);
  });
});

describe('deprovision', () => {
  test('deletes every binding and the instance, leaving tombstones', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const bind = s.input('bind', { bindingId: s.bindingId('app') });
    await runToEnd(s, bind);
    assert.deepEqual(s.world.names(), [`account@${bind.bindingId}`, `db@${bind.instanceId}`, `user@${bind.instanceId}`]);

    const del = s.input('deprovision');
    const result = await runToEnd(s, del);
    assert.deepEqual(result, { operation: 'deprovision', operationId: del.operationId, state: 'succeeded' });
    assert.deepEqual(s.world.names(), []);
    assert.equal(s.registry.entry(del)?.gone, true);
    assert.deepEqual(s.registry.lastOperation(del), { operation: 'deprovision', operationId: del.operationId, state: 'succeeded' });
    const binding = s.registry.entry(bind);
    assert.equal(binding?.gone, true, "the binding's last_operation answers 410");
    assert.equal(binding?.credentials, undefined);
  });

  test('a cancelled deprovision ignores the cancellation and runs to completion', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const deprovision = s.input('deprovision');
    const deleteDb = s.gates.hold<{ resource: ResourceDef }>('applyDeleteChange', (i) => i.resource.name === 'db');
    const handle = await s.start(deprovision);
    await deleteDb.reached;
    await handle.cancel();
    deleteDb.release();
    const result = (await handle.result()) as OperationResult;
    assert.deepEqual(result, { operation: 'deprovision', operationId: deprovision.operationId, state: 'succeeded' });
    assert.equal(s.registry.entry(deprovision)?.gone, true);
    assert.deepEqual(s.world.names(), []);
  });

  test('a failed delete is recorded as failed and keeps the instance, so that a second DELETE can finish it', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    s.world.fail({ resource: 'user', step: 'applyDeleteChange', type: 'Permission', message: 'not allowed', times: 1 });
    const first = s.input('deprovision');
    const failed = await runToEnd(s, first);
    assert.equal(failed.state, 'failed');
    assert.deepEqual(s.registry.lastOperation(first), {
      operation: 'deprovision',
      operationId: first.operationId,
      state: 'failed',
      description: 'resource "user" step applyDeleteChange failed: not allowed',
    });
    assert.notEqual(s.registry.entry(first)?.gone, true);

    const second = s.input('deprovision');
    assert.equal((await runToEnd(s, second)).state, 'succeeded');
    assert.equal(s.registry.entry(second)?.gone, true);
    assert.deepEqual(s.world.names(), []);
  });
});

describe('bind and unbind', () => {
  test('bind creates the binding resources and stores their credentials', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const bind = s.input('bind', { bindingId: s.bindingId() });
    const result = await runToEnd(s, bind);
    assert.deepEqual(result, { operation: 'bind', operationId: bind.operationId, state: 'succeeded' });
    assert.deepEqual(s.registry.lastOperation(bind), { operation: 'bind', operationId: bind.operationId, state: 'succeeded' });
    assert.deepEqual(s.registry.entry(bind)?.credentials, { account: `secret-of-account@${bind.bindingId}` });
    assert.ok(s.world.resources.has(`account@${bind.bindingId}`));
  });

  test('a plan without binding resources binds with its registry entry alone', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision', { planId: 'empty-binding' }));
    const bind = s.input('bind', { planId: 'empty-binding', bindingId: s.bindingId() });
    assert.equal((await runToEnd(s, bind)).state, 'succeeded');
    assert.equal(s.registry.lastOperation(bind)?.state, 'succeeded');
    assert.equal(s.registry.entry(bind)?.credentials, undefined);
  });

  test('an identical bind that already succeeded succeeds at once and changes nothing', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const bind = s.input('bind', { bindingId: s.bindingId() });
    await runToEnd(s, bind);
    const journal = [...s.registry.journal];
    const again = s.input('bind', { bindingId: bind.bindingId });
    const result = await runToEnd(s, again);
    assert.deepEqual(result, { operation: 'bind', operationId: again.operationId, state: 'succeeded', description: 'already done' });
    assert.deepEqual(s.registry.lastOperation(bind)?.operationId, bind.operationId);
    assert.deepEqual(s.registry.journal, journal);
  });

  test('a bind whose instance is gone is refused and records nothing', async () => {
    const s = bed.scenario(catalog);
    const bind = s.input('bind', { bindingId: s.bindingId() });
    const result = await runToEnd(s, bind);
    assert.deepEqual(result, { operation: 'bind', operationId: bind.operationId, state: 'failed', description: `instance ${bind.instanceId} does not exist` });
    assert.equal(s.registry.entry(bind), undefined);
    assert.deepEqual(s.world.names(), []);
  });

  test('unbind deletes the binding resources and leaves a tombstone', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const bind = s.input('bind', { bindingId: s.bindingId() });
    await runToEnd(s, bind);
    const unbind = s.input('unbind', { bindingId: bind.bindingId });
    const result = await runToEnd(s, unbind);
    assert.deepEqual(result, { operation: 'unbind', operationId: unbind.operationId, state: 'succeeded' });
    assert.deepEqual(s.registry.lastOperation(unbind), { operation: 'unbind', operationId: unbind.operationId, state: 'succeeded' });
    assert.equal(s.registry.entry(unbind)?.gone, true);
    assert.equal(s.registry.entry(unbind)?.credentials, undefined);
    assert.deepEqual(s.world.names(), [`db@${unbind.instanceId}`, `user@${unbind.instanceId}`]);
  });

  test('a bind cancelled after it stored its credentials removes its resources and the credentials', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const bind = s.input('bind', { bindingId: s.bindingId() });
    const stored = s.gates.hold('storeCredentials');
    const handle = await s.start(bind);
    await stored.reached;
    assert.ok(s.registry.entry(bind)?.credentials, 'the credentials are stored');
    await handle.cancel();
    const result = (await handle.result()) as OperationResult;
    stored.release();
    const description = `cancelled by ${s.registry.cancelIdentity}`;
    assert.deepEqual(result, { operation: 'bind', operationId: bind.operationId, state: 'failed', description });
    assert.deepEqual(s.registry.lastOperation(bind), { operation: 'bind', operationId: bind.operationId, state: 'failed', description });
    assert.equal(s.registry.entry(bind)?.credentials, undefined);
    assert.deepEqual(s.world.names(), [`db@${bind.instanceId}`, `user@${bind.instanceId}`]);
  });

  test('a cancelled unbind ignores the cancellation and runs to completion', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const bind = s.input('bind', { bindingId: s.bindingId() });
    await runToEnd(s, bind);
    const unbind = s.input('unbind', { bindingId: bind.bindingId });
    const deleteAccount = s.gates.hold('applyDeleteChange');
    const handle = await s.start(unbind);
    await deleteAccount.reached;
    await handle.cancel();
    deleteAccount.release();
    assert.equal(((await handle.result()) as OperationResult).state, 'succeeded');
    assert.equal(s.registry.entry(unbind)?.gone, true);
    assert.equal(s.world.resources.has(`account@${bind.bindingId}`), false);
  });

  test('a failing bind step is recorded as failed and stores no credentials', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    s.world.fail({ resource: 'account', step: 'applyCreateChange', type: 'Conflict', message: 'account exists' });
    const bind = s.input('bind', { bindingId: s.bindingId() });
    const result = await runToEnd(s, bind);
    const description = 'resource "account" step applyCreateChange failed: account exists';
    assert.deepEqual(result, { operation: 'bind', operationId: bind.operationId, state: 'failed', description });
    assert.deepEqual(s.registry.lastOperation(bind), { operation: 'bind', operationId: bind.operationId, state: 'failed', description });
    assert.equal(s.registry.entry(bind)?.credentials, undefined);
  });
});

// A plan's maximum_polling_duration (docs/design/contracts/operations.md#polling-bounds). Held steps heartbeat, and
// the test server skips time while a result is awaited: the bound's timer fires once nothing else can happen first.
describe('maximum_polling_duration', () => {
  const stopped = 'stopped after the plan\'s maximum_polling_duration of 5 s';

  test('a provision still running at its bound is stopped, removes what it created and is recorded as failed', async () => {
    const s = bed.scenario(catalog);
    const input = s.input('provision', { maximumPollingSeconds: 5 });
    const createUser = s.gates.hold<{ resource: ResourceDef }>('applyCreateChange', (i) => i.resource.name === 'user');
    const handle = await s.start(input);
    await createUser.reached;
    const result = (await handle.result()) as OperationResult;
    assert.deepEqual(result, { operation: 'provision', operationId: input.operationId, state: 'failed', description: stopped });
    assert.deepEqual(s.registry.lastOperation(input), { operation: 'provision', operationId: input.operationId, state: 'failed', description: stopped });
    assert.deepEqual(s.world.names(), []);
    assert.deepEqual(s.registry.journal, [`begin provision ${input.operationId}`, `complete provision ${input.operationId} failed: ${stopped}`]);
    // The bound is a durable timer in the run's history (what the Web UI shows).
    const { events } = await handle.fetchHistory();
    assert.ok(events?.some((e) => e.timerFiredEventAttributes), 'a timer fired');
  });

  test('an update still running at its bound restores the applied parameters', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision', { parameters: { size: 1 } }));
    const update = s.input('update', { parameters: { size: 2 }, maximumPollingSeconds: 5 });
    const updateUser = s.gates.hold<{ resource: ResourceDef }>('applyUpdateChange', (i) => i.resource.name === 'user');
    const handle = await s.start(update);
    await updateUser.reached;
    const result = (await handle.result()) as OperationResult;
    assert.deepEqual(result, { operation: 'update', operationId: update.operationId, state: 'failed', description: stopped });
    assert.deepEqual(s.registry.lastOperation(update), { operation: 'update', operationId: update.operationId, state: 'failed', description: stopped });
    assert.deepEqual(s.registry.entry(update)?.parameters, { size: 1 });
    assert.deepEqual(s.world.resources.get(`db@${update.instanceId}`), { spec: { engine: 'etcd' }, parameters: { size: 1 } });
  });

  test('a bind still running at its bound removes its resources and stores no credentials', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const bind = s.input('bind', { bindingId: s.bindingId(), maximumPollingSeconds: 5 });
    const createAccount = s.gates.hold<{ resource: ResourceDef }>('applyCreateChange', (i) => i.resource.name === 'account');
    const handle = await s.start(bind);
    await createAccount.reached;
    const result = (await handle.result()) as OperationResult;
    assert.deepEqual(result, { operation: 'bind', operationId: bind.operationId, state: 'failed', description: stopped });
    assert.deepEqual(s.registry.lastOperation(bind), { operation: 'bind', operationId: bind.operationId, state: 'failed', description: stopped });
    assert.equal(s.registry.entry(bind)?.credentials, undefined);
    assert.deepEqual(s.world.names(), [`db@${bind.instanceId}`, `user@${bind.instanceId}`]);
  });

  test('an operation that ends within its bound is unaffected, also once the bound has passed', async () => {
    const s = bed.scenario(catalog);
    const input = s.input('provision', { maximumPollingSeconds: 5 });
    const result = await runToEnd(s, input);
    assert.deepEqual(result, { operation: 'provision', operationId: input.operationId, state: 'succeeded' });
    await bed.env.sleep('10s');
    assert.deepEqual(s.registry.lastOperation(input), { operation: 'provision', operationId: input.operationId, state: 'succeeded' });
    assert.deepEqual(s.world.names(), [`db@${input.instanceId}`, `user@${input.instanceId}`]);
    const bind = s.input('bind', { bindingId: s.bindingId(), maximumPollingSeconds: 5 });
    assert.equal((await runToEnd(s, bind)).state, 'succeeded');
    assert.ok(s.registry.entry(bind)?.credentials);
  });

  test('a deprovision is not bounded: it runs to completion', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const deprovision = s.input('deprovision', { maximumPollingSeconds: 5 });
    const deleteDb = s.gates.hold<{ resource: ResourceDef }>('applyDeleteChange', (i) => i.resource.name === 'db');
    const handle = await s.start(deprovision);
    await deleteDb.reached;
    await bed.env.sleep('6s');
    deleteDb.release();
    const result = (await handle.result()) as OperationResult;
    assert.deepEqual(result, { operation: 'deprovision', operationId: deprovision.operationId, state: 'succeeded' });
    assert.deepEqual(s.world.names(), []);
  });
});
