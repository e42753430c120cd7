// OSB v2.17 binding rotation (docs/design/osb-semantics.md#binding-rotation) over HTTP and the CLI, as a platform
// and an operator see it: a bind naming predecessor_binding_id creates a new binding with new credentials and the
// predecessor's parameters; both work until they expire or are deleted; the refusals are 400s that say why. The
// last test rotates while the worker process is killed with SIGKILL mid-bind.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pollLastOperation, startTestStack, type TestStack } from '../support/stack';
import {
  PLAN,
  ROTATING_ASYNC_PLAN,
  ROTATING_PLAN,
  SERVICE,
  asEtcdUser,
  bindingPath,
  bindingWorkflowIdOf,
  deleteQuery,
  instancePath,
  instanceWorkflowIdOf,
  newId,
  provisionBody,
  rotationCatalog,
  type EtcdCredentials,
} from '../support/osb';
import { cliRunner, EXIT } from '../support/cli';
import { kube } from '../support/endpoints-fixtures';
import { startWorkerProcess, type ChildProcessHandle } from '../support/reliability/processes';
import { cancelResourceSets, markReady, waitingForReadiness } from '../support/cancel-fixtures';

let stack: TestStack;
before(async () => {
  stack = await startTestStack({ overrides: { catalog: rotationCatalog } });
});
let killStack: TestStack | undefined;
let worker: ChildProcessHandle | undefined;
after(async () => {
  await worker?.kill();
  await killStack?.close();
  await stack?.close();
});

const { cli } = cliRunner(() => stack.configFile);
const OSB_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/;

async function provisioned(s: TestStack, id: string, plan: string): Promise<void> {
  const res = await s.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ plan_id: plan }));
  assert.equal(res.statusCode, 202, res.body);
  assert.equal((await pollLastOperation(s, instancePath(id), res.json().operation as string)).body.state, 'succeeded');
}

/** The credentials authenticate with the tenant etcd and reach the instance's keyspace. */
async function works(c: EtcdCredentials): Promise<void> {
  await asEtcdUser(c, async (client) => {
    await client.get(`${c.keyPrefix}probe`).string();
  });
}

async function revoked(c: EtcdCredentials): Promise<void> {
  await assert.rejects(asEtcdUser(c, (client) => client.get(`${c.keyPrefix}probe`).string()), `user ${c.username} can no longer authenticate`);
}

test('the catalog serves binding_rotatable on the rotating plan and never its credential policy', async () => {
  const res = await stack.osb('GET', '/v2/catalog');
  const plans = (res.json().services as Array<{ plans: Array<Record<string, unknown>> }>)[0]!.plans;
  const rotating = plans.find((p) => p.id === ROTATING_PLAN)!;
  assert.equal(rotating.binding_rotatable, true);
  assert.equal(plans.find((p) => p.id === PLAN)!.binding_rotatable, undefined);
  assert.ok(!res.body.includes('renewBefore') && !res.body.includes('ttl'), 'the credential policy is brokerflow-private');
});

test('synchronous rotation: the successor has new credentials and the predecessor\'s parameters; both work until the predecessor is deleted', async () => {
  const id = newId('rot');
  await provisioned(stack, id, ROTATING_PLAN);
  const old = newId('rot-old');
  const t0 = Date.now();
  const first = await stack.osb('PUT', bindingPath(id, old), { service_id: SERVICE, plan_id: ROTATING_PLAN, parameters: { readOnly: true } });
  assert.equal(first.statusCode, 201, first.body);
  const oldBody = first.json() as { credentials: EtcdCredentials; metadata: { expires_at: string; renew_before: string } };
  assert.match(oldBody.metadata.expires_at, OSB_TIME);
  assert.match(oldBody.metadata.renew_before, OSB_TIME);
  const expires = Date.parse(oldBody.metadata.expires_at);
  assert.ok(expires >= t0 + 24 * 3600_000 && expires <= Date.now() + 24 * 3600_000, `expires_at ${oldBody.metadata.expires_at} is a day after the bind`);
  assert.equal(expires - Date.parse(oldBody.metadata.renew_before), 2 * 3600_000, 'renew_before is 2 h ahead');

  const next = newId('rot-new');
  // The platform need not send the parameters again.
  const rotated = await stack.osb('PUT', bindingPath(id, next), { service_id: SERVICE, plan_id: ROTATING_PLAN, predecessor_binding_id: old });
  assert.equal(rotated.statusCode, 201, rotated.body);
  const nextBody = rotated.json() as { credentials: EtcdCredentials; parameters: Record<string, unknown>; metadata: { expires_at: string } };
  assert.notEqual(nextBody.credentials.username, oldBody.credentials.username);
  assert.notEqual(nextBody.credentials.password, oldBody.credentials.password);
  assert.deepEqual(nextBody.parameters, { readOnly: true });
  assert.ok(Date.parse(nextBody.metadata.expires_at) >= expires, 'the successor lives a TTL from its own bind');
  await works(oldBody.credentials);
  await works(nextBody.credentials);

  // The registry keeps the link; fetch shows the successor with its metadata.
  const entry = await stack.worker.registry.registry.open('service-binding', next, { instanceId: id });
  assert.equal(entry.get('predecessor-binding-id'), old);
  const fetched = await stack.osb('GET', bindingPath(id, next));
  assert.equal(fetched.statusCode, 200);
  assert.deepEqual(fetched.json().metadata, nextBody.metadata);
  assert.deepEqual(fetched.json().credentials, nextBody.credentials);

  // The same rotation again is identical: 200 with the same credentials.
  const again = await stack.osb('PUT', bindingPath(id, next), { service_id: SERVICE, plan_id: ROTATING_PLAN, predecessor_binding_id: old });
  assert.equal(again.statusCode, 200, again.body);
  assert.deepEqual(again.json().credentials, nextBody.credentials);

  // The platform deletes the predecessor once its apps use the successor: only the predecessor's user goes.
  const del = await stack.osb('DELETE', `${bindingPath(id, old)}?${deleteQuery(ROTATING_PLAN)}`);
  assert.equal(del.statusCode, 200, del.body);
  await revoked(oldBody.credentials);
  await works(nextBody.credentials);
  // A repeated rotation after that is still answered from the successor.
  assert.equal((await stack.osb('PUT', bindingPath(id, next), { service_id: SERVICE, plan_id: ROTATING_PLAN, predecessor_binding_id: old })).statusCode, 200);
});

test('asynchronous rotation: 202, last_operation succeeded, then fetch returns the new credentials with the predecessor\'s parameters', async () => {
  const id = newId('rota');
  await provisioned(stack, id, ROTATING_ASYNC_PLAN);
  const old = newId('rota-old');
  const bind = await stack.osb('PUT', `${bindingPath(id, old)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: ROTATING_ASYNC_PLAN, parameters: { tier: 'gold' } });
  assert.equal(bind.statusCode, 202, bind.body);
  assert.equal((await pollLastOperation(stack, bindingPath(id, old), bind.json().operation as string)).body.state, 'succeeded');
  const oldCredentials = (await stack.osb('GET', bindingPath(id, old))).json().credentials as EtcdCredentials;

  const next = newId('rota-new');
  const sync = await stack.osb('PUT', bindingPath(id, next), { service_id: SERVICE, plan_id: ROTATING_ASYNC_PLAN, predecessor_binding_id: old });
  assert.equal(sync.statusCode, 422, 'the plan\'s bindings are asynchronous only');
  assert.equal(sync.json().error, 'AsyncRequired');
  const rotated = await stack.osb('PUT', `${bindingPath(id, next)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: ROTATING_ASYNC_PLAN, predecessor_binding_id: old });
  assert.equal(rotated.statusCode, 202, rotated.body);
  assert.deepEqual(Object.keys(rotated.json()), ['operation']);
  const done = await pollLastOperation(stack, bindingPath(id, next), rotated.json().operation as string);
  assert.deepEqual(done.body, { state: 'succeeded' });
  const fetched = (await stack.osb('GET', bindingPath(id, next))).json() as { credentials: EtcdCredentials; parameters: Record<string, unknown>; metadata: { expires_at: string; renew_before: string } };
  assert.deepEqual(fetched.parameters, { tier: 'gold' });
  assert.match(fetched.metadata.expires_at, OSB_TIME);
  assert.notEqual(fetched.credentials.username, oldCredentials.username);
  await works(fetched.credentials);
  await works(oldCredentials);
});

test('rotation refusals are 400s that say why, and change nothing', async () => {
  const id = newId('rotx');
  await provisioned(stack, id, ROTATING_PLAN);
  const other = newId('rotx-other');
  await provisioned(stack, other, ROTATING_PLAN);
  const plain = newId('rotx-plain');
  await provisioned(stack, plain, PLAN);
  const old = newId('rotx-old');
  assert.equal((await stack.osb('PUT', bindingPath(id, old), { service_id: SERVICE, plan_id: ROTATING_PLAN })).statusCode, 201);
  const plainOld = newId('rotx-plain-old');
  assert.equal((await stack.osb('PUT', bindingPath(plain, plainOld), { service_id: SERVICE, plan_id: PLAN })).statusCode, 201);

  const rotate = (instance: string, plan: string, predecessor: string) =>
    stack.osb('PUT', `${bindingPath(instance, newId('rotx-new'))}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: plan, predecessor_binding_id: predecessor });
  const cases: Array<[string, Promise<{ statusCode: number; json(): Record<string, unknown> }>, RegExp]> = [
    ['plan not rotatable', rotate(plain, PLAN, plainOld), /not binding_rotatable/],
    ['predecessor does not exist', rotate(id, ROTATING_PLAN, 'no-such-binding'), /predecessor binding "no-such-binding" does not exist under this service instance/],
    ['predecessor of another instance', rotate(other, ROTATING_PLAN, old), new RegExp(`predecessor binding "${old}" belongs to another service instance`)],
  ];
  for (const [name, pending, says] of cases) {
    const res = await pending;
    assert.equal(res.statusCode, 400, name);
    assert.match(String(res.json().description), says, name);
  }
  const self = newId('rotx-self');
  const selfRes = await stack.osb('PUT', bindingPath(id, self), { service_id: SERVICE, plan_id: ROTATING_PLAN, predecessor_binding_id: self });
  assert.equal(selfRes.statusCode, 400);
  assert.match(String(selfRes.json().description), /names the binding itself/);
  // Nothing was created: the refused IDs have no binding and no workflow.
  assert.equal((await stack.osb('GET', bindingPath(id, self))).statusCode, 404);
  const entries = (await stack.worker.registry.registry.list('service-binding')).filter((b) => [id, other, plain].includes(String(b.values['instance-id'])));
  assert.deepEqual(entries.map((b) => b.id).sort(), [old, plainOld].sort());
});

test('brokerflow rotate --wait --json: the new binding, where its credentials are and when they expire; the secret only with --show-credentials', async () => {
  const id = newId('rotc');
  await provisioned(stack, id, ROTATING_PLAN);
  const old = newId('rotc-old');
  const bind = await cli(['bind', id, old, '--params', '{"readOnly":true}', '--wait']);
  assert.equal(bind.code, EXIT.ok, bind.stdout + bind.stderr);
  const bound = bind.json.credentials as { location: string; fields: string[]; expiresAt: string; renewBefore: string; values?: unknown };
  assert.match(bound.location, new RegExp(`registry-service-binding-${old}`));
  for (const field of ['endpoints', 'password', 'username']) assert.ok(bound.fields.includes(field), `${field} is named: ${bound.fields.join(', ')}`);
  assert.match(bound.expiresAt, OSB_TIME);
  assert.match(bound.renewBefore, OSB_TIME);
  assert.equal(bound.values, undefined);
  const oldPassword = ((await stack.osb('GET', bindingPath(id, old))).json().credentials as EtcdCredentials).password;
  assert.ok(!bind.stdout.includes(oldPassword), 'bind prints no secret');

  const next = newId('rotc-new');
  const run = await cli(['rotate', id, old, next, '--wait']);
  assert.equal(run.code, EXIT.ok, run.stdout + run.stderr);
  assert.ok(run.lines.some((l) => l.state === 'succeeded' && l.operation === 'bind'), run.stdout);
  const summary = run.json.credentials as { predecessorBindingId: string; fields: string[]; expiresAt: string; values?: unknown };
  assert.equal(run.json.bindingId, next);
  assert.equal(summary.predecessorBindingId, old);
  assert.deepEqual(summary.fields, bound.fields);
  assert.equal(summary.values, undefined);
  const fetched = (await stack.osb('GET', bindingPath(id, next))).json() as { credentials: EtcdCredentials; parameters: unknown };
  assert.deepEqual(fetched.parameters, { readOnly: true });
  assert.ok(!run.stdout.includes(fetched.credentials.password), 'rotate prints no secret');

  const status = await cli(['status', id, '--binding', next, '--show-credentials']);
  assert.equal(status.code, EXIT.ok, status.stdout + status.stderr);
  assert.equal(status.json.state, 'succeeded');
  assert.deepEqual((status.json.credentials as { values: EtcdCredentials }).values, fetched.credentials);

  const human = await cli(['status', id, '--binding', next], { json: false });
  assert.match(human.stdout, /credentials: registry entry registry-service-binding-/);
  assert.match(human.stdout, /expires at \d{4}-.*; rotate from /);
  assert.match(human.stdout, new RegExp(`rotated from binding ${old}`));
  assert.ok(!human.stdout.includes(fetched.credentials.password));

  const refused = await cli(['rotate', id, 'no-such-binding', newId('rotc-x')]);
  assert.equal(refused.code, EXIT.usage, refused.stdout);
  assert.equal(refused.json.status, 400);
  assert.match(String(refused.json.description), /does not exist under this service instance/);
});

test('a rotation whose bind is interrupted by a SIGKILL of the worker is finished by the next worker: both bindings work', { timeout: 300_000 }, async () => {
  const { core } = kube();
  // No worker in this process: a worker process, killed while the successor's bind waits at its second resource.
  const s = (killStack = await startTestStack({ worker: false, overrides: { catalog: rotationCatalog, resourceSets: cancelResourceSets } }));
  worker = await startWorkerProcess(s.configFile);
  const id = newId('rotk');
  const put = await s.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ plan_id: ROTATING_PLAN }));
  assert.equal(put.statusCode, 202, put.body);
  await waitingForReadiness(core, s.client, instanceWorkflowIdOf(id), id, 'applyCreateChange');
  await markReady(core, id, true);
  assert.equal((await pollLastOperation(s, instancePath(id), put.json().operation as string, 120_000)).body.state, 'succeeded');

  const old = newId('rotk-old');
  const bind = await s.osb('PUT', `${bindingPath(id, old)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: ROTATING_PLAN, parameters: { readOnly: true } });
  assert.equal(bind.statusCode, 202, bind.body);
  await waitingForReadiness(core, s.client, bindingWorkflowIdOf(old), old, 'applyCreateChange');
  await markReady(core, old, true);
  assert.equal((await pollLastOperation(s, bindingPath(id, old), bind.json().operation as string, 120_000)).body.state, 'succeeded');
  const oldCredentials = (await s.osb('GET', bindingPath(id, old))).json().credentials as EtcdCredentials;

  const next = newId('rotk-new');
  const rotated = await s.osb('PUT', `${bindingPath(id, next)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: ROTATING_PLAN, predecessor_binding_id: old });
  assert.equal(rotated.statusCode, 202, rotated.body);
  // The successor's etcd user exists and its bind waits for its ConfigMap: kill the worker there.
  await waitingForReadiness(core, s.client, bindingWorkflowIdOf(next), next, 'applyCreateChange');
  await worker.kill();
  const inFlight = await s.osb('GET', `${bindingPath(id, next)}/last_operation?operation=${encodeURIComponent(rotated.json().operation as string)}`);
  assert.equal(inFlight.json().state, 'in progress', 'the platform sees the rotation in progress while no worker runs');
  worker = await startWorkerProcess(s.configFile);
  await markReady(core, next, true);

  const done = await pollLastOperation(s, bindingPath(id, next), rotated.json().operation as string, 240_000);
  assert.deepEqual(done.body, { state: 'succeeded' });
  const fetched = (await s.osb('GET', bindingPath(id, next))).json() as { credentials: EtcdCredentials; parameters: unknown; metadata: { expires_at: string } };
  assert.deepEqual(fetched.parameters, { readOnly: true });
  assert.match(fetched.metadata.expires_at, OSB_TIME);
  assert.notEqual(fetched.credentials.username, oldCredentials.username);
  await works(fetched.credentials);
  await works(oldCredentials);
  // The successor's expiry timer runs, a workflow of its own.
  const timer = (await s.worker.registry.registry.open('service-binding', next, { instanceId: id })).get<string>('expiry-workflow-id')!;
  assert.equal((await s.client.workflow.getHandle(timer).describe()).status.name, 'RUNNING');
});
