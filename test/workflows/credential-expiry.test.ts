// Credential expiry as a story on Temporal's time-skipping test server (docs/design/osb-semantics.md#credential-expiry):
// a bind on a plan with a credential policy records expires_at and starts the binding's expiry workflow, whose
// durable timer runs for days of workflow time in a second and then revokes the credentials; an unbind cancels the
// timer, a rotation's new binding gets one of its own, and a binding deprovisioned meanwhile has nothing to revoke.
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ResourceDef } from '../../config/resource-sets';
import type { BindingExpiryResult, OperationInput, OperationResult } from '../../workflows/messages';
import type { FakeCatalog } from './stubs';
import { WorkflowTestBed, type Scenario } from './testbed';

const resource = (name: string): ResourceDef => ({ name, driver: 'fake', spec: {} });
const catalog: FakeCatalog = { standard: { instance: [resource('db')], binding: [resource('account')] } };

const DAY = 86_400;
/** Three days, renewed six hours ahead. */
const policy = { ttlSeconds: 3 * DAY, renewBeforeSeconds: 6 * 3600 };
/** An hour, renewed ten minutes ahead: enough for the scenarios that are not about the length of the TTL. */
const hourly = { ttlSeconds: 3600, renewBeforeSeconds: 600 };

// A test server per test: on one server, a second scenario's wait for an expiry timer after a first one's did not
// skip time (the timer stayed pending with the clock still), so each scenario gets a fresh server.
let bed: WorkflowTestBed;
beforeEach(async () => {
  bed = await WorkflowTestBed.start();
});
afterEach(async () => {
  await bed?.stop();
});

async function runToEnd(s: Scenario, input: OperationInput): Promise<OperationResult> {
  return (await s.start(input)).result() as Promise<OperationResult>;
}

/** Binds `name` on the scenario's provisioned instance with the credential policy; returns the bind input and its timer. */
async function boundWithPolicy(s: Scenario, name: string, over: Partial<OperationInput> = {}): Promise<{ bind: OperationInput; workflowId: string; expiresAt: string }> {
  const bind = s.input('bind', { bindingId: s.bindingId(name), credentialPolicy: hourly, ...over });
  assert.equal((await runToEnd(s, bind)).state, 'succeeded');
  const expiry = s.registry.entry(bind)?.expiry;
  assert.ok(expiry, 'the bind recorded its credential lifetime');
  return { bind, workflowId: expiry.workflowId, expiresAt: expiry.expiresAt };
}

describe('credential expiry', () => {
  test('a bind records expires_at a TTL of days after its success and renew_before ahead of it; at expires_at the credentials are revoked', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const before = await bed.env.currentTimeMs();
    const { bind, workflowId, expiresAt } = await boundWithPolicy(s, 'app', { credentialPolicy: policy });
    const entry = s.registry.entry(bind)!;
    const expires = Date.parse(expiresAt);
    assert.ok(expires - before >= policy.ttlSeconds * 1000 && expires - before < policy.ttlSeconds * 1000 + 60_000, `expires_at ${expiresAt} is 3 days after the bind`);
    assert.equal(Date.parse(entry.expiry!.renewBefore), expires - policy.renewBeforeSeconds * 1000);
    assert.match(expiresAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);
    assert.ok(entry.credentials, 'valid credentials until then');
    assert.ok(s.world.resources.has(`account@${bind.bindingId}`));

    // The timer is a workflow of its own, visible under a deterministic ID; the test server skips the three days.
    const handle = bed.env.client.workflow.getHandle(workflowId);
    assert.equal((await handle.describe()).status.name, 'RUNNING');
    const result = (await handle.result()) as BindingExpiryResult;
    assert.equal(result.revoked, true);
    const lag = result.revokedAt! - expires;
    assert.ok(lag >= 0 && lag < 2000, `revoked ${lag} ms after expires_at`);
    assert.equal(s.registry.entry(bind)?.credentials, undefined, 'the credentials are gone from the registry');
    assert.equal(s.registry.entry(bind)?.expiredAt, expiresAt, 'the binding is recorded as expired at expires_at');
    assert.equal(s.world.resources.has(`account@${bind.bindingId}`), false, 'the binding resources (the etcd user) are gone');
    assert.ok(s.world.resources.has(`db@${bind.instanceId}`), 'the instance is untouched');
    assert.equal(s.registry.lastOperation(bind)?.state, 'succeeded', 'the bind stays the last operation');
  });

  test('an unbind cancels the timer: nothing is revoked later', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const { bind, workflowId } = await boundWithPolicy(s, 'app');
    const unbind = s.input('unbind', { bindingId: bind.bindingId, expiryWorkflowId: workflowId });
    assert.equal((await runToEnd(s, unbind)).state, 'succeeded');
    const handle = bed.env.client.workflow.getHandle(workflowId);
    await assert.rejects(handle.result(), /cancel/i);
    assert.equal((await handle.describe()).status.name, 'CANCELLED');
    assert.ok(!s.registry.journal.some((line) => line.startsWith('expire ')), s.registry.journal.join('\n'));
  });

  test('a rotation gives the new binding a timer of its own; the predecessor keeps its own and is revoked first, at its own expires_at', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const old = await boundWithPolicy(s, 'old', { parameters: { readOnly: true } });
    const next = await boundWithPolicy(s, 'new', { parameters: { readOnly: true }, predecessorBindingId: old.bind.bindingId });
    assert.notEqual(next.workflowId, old.workflowId);
    assert.ok(Date.parse(next.expiresAt) > Date.parse(old.expiresAt), 'the successor lives a TTL from its own bind');
    // (The test server skips time whenever every workflow waits, so what holds at a given instant is asserted on the
    // real server, test/e2e/osb-rotation.test.ts; here: each timer revokes its own binding, at its own time.)
    const first = (await bed.env.client.workflow.getHandle(old.workflowId).result()) as BindingExpiryResult;
    const second = (await bed.env.client.workflow.getHandle(next.workflowId).result()) as BindingExpiryResult;
    assert.equal(first.revoked && second.revoked, true);
    assert.ok(first.revokedAt! - Date.parse(old.expiresAt) < 2000 && first.revokedAt! < Date.parse(next.expiresAt));
    assert.ok(second.revokedAt! >= Date.parse(next.expiresAt) && second.revokedAt! - Date.parse(next.expiresAt) < 2000);
    const order = s.registry.journal.filter((line) => line.startsWith('expire '));
    assert.deepEqual(order, [`expire binding ${old.bind.bindingId} at ${old.expiresAt}`, `expire binding ${next.bind.bindingId} at ${next.expiresAt}`]);
    assert.equal(s.world.resources.has(`account@${old.bind.bindingId}`) || s.world.resources.has(`account@${next.bind.bindingId}`), false);
  });

  test('a binding its instance\'s deprovision removed has nothing left to revoke when the timer fires', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const { workflowId } = await boundWithPolicy(s, 'app');
    assert.equal((await runToEnd(s, s.input('deprovision'))).state, 'succeeded');
    const result = (await bed.env.client.workflow.getHandle(workflowId).result()) as BindingExpiryResult;
    assert.deepEqual(result, { bindingId: s.bindingId('app'), revoked: false, reason: 'the binding no longer exists' });
  });

  test('a bind without a credential policy starts no timer and records no expiry', async () => {
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const bind = s.input('bind', { bindingId: s.bindingId() });
    assert.equal((await runToEnd(s, bind)).state, 'succeeded');
    assert.equal(s.registry.entry(bind)?.expiry, undefined);
  });
});
