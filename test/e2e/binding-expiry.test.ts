// Credential expiry that happens (docs/design/osb-semantics.md#credential-expiry), in real time: a plan whose
// credentials live 4 s; at expires_at the binding's etcd user goes, and the platform's fetch, last_operation, bind and
// unbind answer as the design says. The revocation lag (from expires_at until the etcd user is gone) is measured and
// printed, not asserted (a loaded machine stretches it; the test asserts the revocation happens). The last test restarts this file's own Temporal server between the bind and expires_at.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { TemporalDevServer } from '../../scripts/lib/temporal';
import { pollLastOperation, startTestStack, type TestStack } from '../support/stack';
import {
  ROTATING_PLAN,
  ROTATING_RESTART_PLAN,
  ROTATING_SHORT_PLAN,
  SERVICE,
  asEtcdUser,
  bindingPath,
  deleteQuery,
  instancePath,
  newId,
  provisionBody,
  rotationCatalog,
  type EtcdCredentials,
} from '../support/osb';
import { managedUsers, waitFor } from '../support/reliability/inspect';
import { sharedTenantEtcd, startOwnTemporal } from '../support/reliability/servers';
import { cliRunner, EXIT } from '../support/cli';

const etcd = sharedTenantEtcd();
let stack: TestStack;
before(async () => {
  stack = await startTestStack({ overrides: { catalog: rotationCatalog } });
});
let temporal: TemporalDevServer | undefined;
let restartStack: TestStack | undefined;
const figures: string[] = [];
after(async () => {
  await restartStack?.close();
  await temporal?.stop();
  await stack?.close();
  etcd.close();
  for (const f of figures) console.log(`# ${f}`);
});

const { cli } = cliRunner(() => stack.configFile);

async function provisioned(s: TestStack, id: string, plan: string): Promise<void> {
  const res = await s.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ plan_id: plan }));
  assert.equal(res.statusCode, 202, res.body);
  assert.equal((await pollLastOperation(s, instancePath(id), res.json().operation as string, 120_000)).body.state, 'succeeded');
}

/** Whether the etcd user of these credentials still exists (looked up by its name only). */
async function userExists(c: EtcdCredentials): Promise<boolean> {
  return (await managedUsers(etcd, new Set([c.username]))).length > 0;
}

/** Waits until the etcd user is gone; returns when that was seen, in ms after `expiresAt` (polled every 50 ms). */
async function revocationLag(c: EtcdCredentials, expiresAt: string, timeoutMs: number): Promise<number> {
  await waitFor(`etcd user ${c.username} to be revoked`, async () => ((await userExists(c)) ? undefined : true), timeoutMs, 50);
  return Date.now() - Date.parse(expiresAt);
}

test('at expires_at the etcd user is revoked; fetch 404, last_operation succeeded saying so, rebind 409, rotation 400, unbind 200', { timeout: 120_000 }, async () => {
  const id = newId('exp');
  await provisioned(stack, id, ROTATING_SHORT_PLAN);
  const bid = newId('exp-b');
  const bind = await stack.osb('PUT', bindingPath(id, bid), { service_id: SERVICE, plan_id: ROTATING_SHORT_PLAN });
  assert.equal(bind.statusCode, 201, bind.body);
  const { credentials, metadata } = bind.json() as { credentials: EtcdCredentials; metadata: { expires_at: string; renew_before: string } };
  assert.equal(Date.parse(metadata.expires_at) - Date.parse(metadata.renew_before), 2000, 'renew_before is 2 s ahead of expires_at');
  assert.ok(Date.parse(metadata.expires_at) > Date.now(), 'expires_at is still ahead when the bind answers');
  await asEtcdUser(credentials, (c) => c.get(`${credentials.keyPrefix}probe`).string());
  const fetchedBefore = await stack.osb('GET', bindingPath(id, bid));
  assert.deepEqual(fetchedBefore.json().metadata, metadata, 'fetch returns the same expires_at and renew_before');

  const lag = await revocationLag(credentials, metadata.expires_at, 30_000);
  // The lag is a figure, not an assertion (a loaded machine stretches it): printed with the results.
  figures.push(`revocation lag (expires_at until the etcd user is gone, TTL 4 s, polled every 50 ms): ${lag} ms`);
  await assert.rejects(asEtcdUser(credentials, (c) => c.get(`${credentials.keyPrefix}probe`).string()), 'the credentials no longer authenticate');

  // The registry records the expiry; the platform's answers follow from it.
  await waitFor('the registry to record the expiry', async () => ((await stack.worker.registry.registry.open('service-binding', bid, { instanceId: id })).get('expired-at') ? true : undefined), 10_000, 50);
  const entry = await stack.worker.registry.registry.open('service-binding', bid, { instanceId: id });
  assert.equal(entry.get('expired-at'), metadata.expires_at);
  assert.equal(entry.get('credentials'), undefined, 'no credentials left in the registry');

  const fetched = await stack.osb('GET', bindingPath(id, bid));
  assert.equal(fetched.statusCode, 404);
  assert.match(String(fetched.json().description), new RegExp(`expired at ${metadata.expires_at} and were revoked`));
  const last = await stack.osb('GET', `${bindingPath(id, bid)}/last_operation`);
  assert.equal(last.statusCode, 200);
  assert.deepEqual(last.json(), { state: 'succeeded', description: `the binding's credentials expired at ${metadata.expires_at} and were revoked` });
  const rebind = await stack.osb('PUT', bindingPath(id, bid), { service_id: SERVICE, plan_id: ROTATING_SHORT_PLAN });
  assert.equal(rebind.statusCode, 409);
  assert.match(String(rebind.json().description), /expired .* delete it and bind anew/);
  const rotate = await stack.osb('PUT', bindingPath(id, newId('exp-next')), { service_id: SERVICE, plan_id: ROTATING_SHORT_PLAN, predecessor_binding_id: bid });
  assert.equal(rotate.statusCode, 400);
  assert.match(String(rotate.json().description), new RegExp(`predecessor binding "${bid}" expired at ${metadata.expires_at}`));

  const status = await cli(['status', id, '--binding', bid]);
  assert.equal(status.code, EXIT.ok, status.stdout + status.stderr);
  assert.equal((status.json.credentials as { expiredAt: string }).expiredAt, metadata.expires_at);

  const unbind = await stack.osb('DELETE', `${bindingPath(id, bid)}?${deleteQuery(ROTATING_SHORT_PLAN)}`);
  assert.equal(unbind.statusCode, 200, unbind.body);
  assert.equal((await stack.osb('GET', `${bindingPath(id, bid)}/last_operation`)).statusCode, 410);
});

test('a rotation before expires_at keeps the credentials flowing: the successor is valid after the predecessor expired', { timeout: 120_000 }, async () => {
  const id = newId('expr');
  await provisioned(stack, id, ROTATING_SHORT_PLAN);
  const old = newId('expr-old');
  const first = await stack.osb('PUT', bindingPath(id, old), { service_id: SERVICE, plan_id: ROTATING_SHORT_PLAN, parameters: { readOnly: true } });
  assert.equal(first.statusCode, 201, first.body);
  const oldBody = first.json() as { credentials: EtcdCredentials; metadata: { expires_at: string } };
  const next = newId('expr-new');
  const rotated = await stack.osb('PUT', bindingPath(id, next), { service_id: SERVICE, plan_id: ROTATING_SHORT_PLAN, predecessor_binding_id: old });
  assert.equal(rotated.statusCode, 201, rotated.body);
  const nextBody = rotated.json() as { credentials: EtcdCredentials; metadata: { expires_at: string } };
  // The predecessor goes at its own expires_at; the successor, bound later, is still there then.
  await revocationLag(oldBody.credentials, oldBody.metadata.expires_at, 30_000);
  if (Date.now() < Date.parse(nextBody.metadata.expires_at)) assert.equal(await userExists(nextBody.credentials), true, 'the successor outlives the predecessor');
  await revocationLag(nextBody.credentials, nextBody.metadata.expires_at, 30_000);
  // The registry records the expiry right after the user is gone.
  await waitFor('fetch of the successor to answer 404', async () => ((await stack.osb('GET', bindingPath(id, next))).statusCode === 404 ? true : undefined), 10_000, 100);
});

test('an unbind before expires_at cancels the binding\'s expiry workflow', { timeout: 120_000 }, async () => {
  const id = newId('expu');
  await provisioned(stack, id, ROTATING_PLAN);
  const bid = newId('expu-b');
  assert.equal((await stack.osb('PUT', bindingPath(id, bid), { service_id: SERVICE, plan_id: ROTATING_PLAN })).statusCode, 201);
  const timer = (await stack.worker.registry.registry.open('service-binding', bid, { instanceId: id })).get<string>('expiry-workflow-id')!;
  assert.match(timer, new RegExp(`^binding-expiry/${bid}/bind-`));
  const handle = stack.client.workflow.getHandle(timer);
  assert.equal((await handle.describe()).status.name, 'RUNNING', 'the timer is a workflow of its own, visible in the Web UI');
  const unbind = await stack.osb('DELETE', `${bindingPath(id, bid)}?${deleteQuery(ROTATING_PLAN)}`);
  assert.equal(unbind.statusCode, 200, unbind.body);
  await waitFor('the expiry workflow to be cancelled', async () => ((await handle.describe()).status.name === 'CANCELLED' ? true : undefined), 30_000, 100);
});

test('expiry still revokes at expires_at when Temporal was restarted between the bind and expires_at', { timeout: 300_000 }, async () => {
  temporal = await startOwnTemporal('expiry-restart');
  const taskQueue = `tq-${randomBytes(5).toString('hex')}`;
  // A catalog plan whose TTL outlasts a restart of the Temporal dev server (which takes a few seconds).
  const s = (restartStack = await startTestStack({ overrides: { catalog: rotationCatalog, temporal: { address: temporal.address, namespace: 'default', taskQueue } } }));
  const id = newId('expt');
  await provisioned(s, id, ROTATING_RESTART_PLAN);
  const bid = newId('expt-b');
  const bind = await s.osb('PUT', bindingPath(id, bid), { service_id: SERVICE, plan_id: ROTATING_RESTART_PLAN });
  assert.equal(bind.statusCode, 201, bind.body);
  const { credentials, metadata } = bind.json() as { credentials: EtcdCredentials; metadata: { expires_at: string } };

  const down = Date.now();
  await temporal.stop();
  await temporal.restart();
  const restartMs = Date.now() - down;
  assert.ok(Date.now() < Date.parse(metadata.expires_at), `Temporal was back (after ${restartMs} ms) before expires_at`);
  assert.equal(await userExists(credentials), true, 'the credentials are valid until expires_at');

  const lag = await revocationLag(credentials, metadata.expires_at, 120_000);
  figures.push(`revocation lag after a Temporal restart (${restartMs} ms down and up again) between bind and expires_at: ${lag} ms`);
  await waitFor('fetch to answer 404', async () => ((await s.osb('GET', bindingPath(id, bid))).statusCode === 404 ? true : undefined), 10_000, 100);
});
