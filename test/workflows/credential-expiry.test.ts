// Credential expiry as a story on Temporal's time-skipping test server (docs/design/osb-semantics.md#credential-expiry):
// a bind on a plan with a credential policy records expires_at and starts the binding's expiry workflow, whose
// durable timer runs for days of workflow time in a second and then revokes the credentials; an unbind cancels the
// timer, a rotation's new binding gets one of its own, and a binding deprovisioned meanwhile has nothing to revoke.
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@temporalio/client';
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
/** Seconds of real time: for the scenario with two timers, which does not skip time (see the rotation test). */
const seconds = (ttlSeconds: number) => ({ ttlSeconds, renewBeforeSeconds: 1 });

// A test server per test: on one server, a second wait for an expiry timer after a first one's did not skip time
// (the timer stayed pending with the clock still), so each scenario gets a fresh server.
let bed: WorkflowTestBed;
/**
 * A client that never unlocks time skipping. The operations run with the server's clock at real speed, so a timer of
 * an hour cannot fire while an unbind or a deprovision is still running; time is skipped only where a test waits for
 * an expiry with the time-skipping client (`bed.env.client`).
 */
let realTime: Client;
beforeEach(async () => {
  bed = await WorkflowTestBed.start();
  realTime = new Client({ connection: bed.env.connection, namespace: bed.env.namespace ?? 'default' });
});
afterEach(async () => {
  await bed?.stop();
});

/** Runs an operation to its end in real time. */
async function runToEnd(s: Scenario, input: OperationInput): Promise<OperationResult> {
  const started = await s.start(input);
  return realTime.workflow.getHandle(started.workflowId, started.firstExecutionRunId).result() as Promise<OperationResult>;
}

/** Binds `name` on the scenario's provisioned instance with the credential policy; returns the bind input and its timer. */
async function boundWithPolicy(s: Scenario, name: string, over: Partial<OperationInput> = {}): Promise<{ bind: OperationInput; workflowId: string; expiresAt: string }> {
  const bind = s.input('bind', { bindingId: s.bindingId(name), credentialPolicy: hourly, ...over });
  assert.equal((await runToEnd(s, bind)).state, 'succeeded');
  const expiry = s.registry.entry(bind)?.expiry;
  assert.ok(expiry, 'the bind recorded its credential lifetime');
  return { bind, workflowId: expiry.workflowId, expiresAt: expiry.expiresAt };
}

/**
 * For the scenarios that wait for a skipped timer: a test server that stopped skipping time would otherwise wait out
 * the hour (or the three days) in real time; it fails instead, naming the scenario.
 */
const skipsTime = { timeout: 120_000 };

describe('credential expiry', () => {
  test('a bind records expires_at a TTL of days after its success and renew_before ahead of it; at expires_at the credentials are revoked', skipsTime, async () => {
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
    const handle = realTime.workflow.getHandle(workflowId);
    await assert.rejects(handle.result(), /cancel/i);
    assert.equal((await handle.describe()).status.name, 'CANCELLED');
    assert.ok(!s.registry.journal.some((line) => line.startsWith('expire ')), s.registry.journal.join('\n'));
  });

  test('a rotation gives the new binding a timer of its own; the predecessor keeps its own and is revoked first, at its own expires_at', async () => {
    // In real time, with TTLs of seconds: on the test server, once the first expiry workflow had run, waiting for the
    // second one did not skip time (a CI run waited out the whole hour), so this scenario does not skip time at all.
    const s = bed.scenario(catalog);
    await runToEnd(s, s.input('provision'));
    const old = await boundWithPolicy(s, 'old', { parameters: { readOnly: true }, credentialPolicy: seconds(2) });
    const next = await boundWithPolicy(s, 'new', { parameters: { readOnly: true }, predecessorBindingId: old.bind.bindingId, credentialPolicy: seconds(5) });
    assert.notEqual(next.workflowId, old.workflowId);
    assert.ok(Date.parse(next.expiresAt) > Date.parse(old.expiresAt), 'the successor lives a TTL from its own bind');
    assert.ok(s.world.resources.has(`account@${old.bind.bindingId}`), 'the predecessor keeps its credentials after the rotation');
    // (What holds at a given instant over HTTP is asserted on the real server, test/e2e/osb-rotation.test.ts; here:
    // each timer revokes its own binding, not before its own expires_at, the predecessor's first.)
    const [first, second] = (await Promise.all([
      realTime.workflow.getHandle(old.workflowId).result(),
      realTime.workflow.getHandle(next.workflowId).result(),
    ])) as [BindingExpiryResult, BindingExpiryResult];
    assert.equal(first.revoked && second.revoked, true);
    assert.ok(first.revokedAt! >= Date.parse(old.expiresAt), `the predecessor was revoked at ${first.revokedAt}, not before ${old.expiresAt}`);
    assert.ok(second.revokedAt! >= Date.parse(next.expiresAt), `the successor was revoked at ${second.revokedAt}, not before ${next.expiresAt}`);
    const order = s.registry.journal.filter((line) => line.startsWith('expire '));
    assert.deepEqual(order, [`expire binding ${old.bind.bindingId} at ${old.expiresAt}`, `expire binding ${next.bind.bindingId} at ${next.expiresAt}`]);
    assert.equal(s.world.resources.has(`account@${old.bind.bindingId}`) || s.world.resources.has(`account@${next.bind.bindingId}`), false);
  });

  test('a binding its instance\'s deprovision removed has nothing left to revoke when the timer fires', skipsTime, async () => {
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
