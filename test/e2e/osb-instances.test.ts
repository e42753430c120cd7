// The OSB API for instances (docs/design/contracts/osb-api.md#instances): provision, update, deprovision, fetch
// and last_operation, with the status codes the spec gives, against the running broker + worker + real servers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { startTestStack, pollLastOperation, type TestStack } from '../support/stack';
import { etcdOwnerKey } from '../../adapters/resources/etcd';
import { requireTestEnv } from '../support/env';
import { PLAN, SERVICE, deleteQuery, instancePath, newId, osbResourceSets, provisionAndWait, provisionBody } from '../support/osb';

let stack: TestStack;
let tenant: Etcd3;
before(async () => {
  stack = await startTestStack({ overrides: { resourceSets: osbResourceSets } });
  tenant = new Etcd3({ hosts: requireTestEnv('tenantEtcdEndpoint'), auth: { username: 'root', password: requireTestEnv('tenantEtcdRootPassword') } });
});
after(async () => {
  tenant.close();
  await stack.close();
});

async function configMap(id: string): Promise<Record<string, unknown> | undefined> {
  const { KubeConfig, CoreV1Api } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromFile(requireTestEnv('kubeconfig'));
  try {
    return (await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: `bf-${id}`, namespace: 'default' })) as unknown as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

test('async provision answers 202 with an operation; last_operation says in progress with Retry-After, then succeeded', async () => {
  const id = newId('prov');
  const res = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 5 } }));
  assert.equal(res.statusCode, 202);
  const operation = res.json().operation as string;
  assert.ok(operation.length > 0 && operation.length <= 10_000);
  const first = await stack.osb('GET', `${instancePath(id)}/last_operation?operation=${operation}`);
  assert.equal(first.statusCode, 200);
  if (first.json().state === 'in progress') assert.ok(Number(first.headers['retry-after']) > 0);
  const done = await pollLastOperation(stack, instancePath(id), operation);
  assert.deepEqual(done, { status: 200, body: { state: 'succeeded' } });
  assert.equal(((await configMap(id))?.data as Record<string, string>).quotaKeys, '5');
  assert.equal(await tenant.get(etcdOwnerKey(`/tenants/${id}`)).string(), id);
  // Pollers that send no operation, or the operation type instead of its ID, get the same answer.
  for (const q of ['', '?operation=provision']) {
    const r = await stack.osb('GET', `${instancePath(id)}/last_operation${q}`);
    assert.deepEqual(r.json(), { state: 'succeeded' });
  }
  const fetched = await stack.osb('GET', instancePath(id));
  assert.equal(fetched.statusCode, 200);
  assert.deepEqual(fetched.json(), { service_id: SERVICE, plan_id: PLAN, parameters: { quotaKeys: 5 }, maintenance_info: { version: '1.0.0' } });
});

test('a synchronous provision (no accepts_incomplete) waits and answers 201', async () => {
  const id = newId('sync');
  const res = await stack.osb('PUT', instancePath(id), provisionBody());
  assert.equal(res.statusCode, 201, res.body);
  assert.deepEqual((await stack.osb('GET', `${instancePath(id)}/last_operation`)).json(), { state: 'succeeded' });
});

test('an identical re-PUT gets 200 once provisioned; different attributes get 409 and change nothing', async () => {
  const id = newId('again');
  await provisionAndWait(stack, id, { parameters: { quotaKeys: 7 } });
  const same = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 7 } }));
  assert.equal(same.statusCode, 200);
  const different = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 8 } }));
  assert.equal(different.statusCode, 409);
  // The platform's org and space are part of what makes a provision identical.
  const otherSpace = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 7 }, space_guid: 'another-space' }));
  assert.equal(otherSpace.statusCode, 409, otherSpace.body);
  assert.equal(((await configMap(id))?.data as Record<string, string>).quotaKeys, '7');
});

test('update changes parameters (merged over the old ones); an update with nothing to change is 200 {}', async () => {
  const id = newId('upd');
  await provisionAndWait(stack, id, { parameters: { quotaKeys: 3 } });
  const unchanged = await stack.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE });
  assert.equal(unchanged.statusCode, 200);
  assert.deepEqual(unchanged.json(), {});
  const res = await stack.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 9 } });
  assert.equal(res.statusCode, 202, res.body);
  const done = await pollLastOperation(stack, instancePath(id), res.json().operation);
  assert.deepEqual(done.body, { state: 'succeeded' });
  assert.equal(((await configMap(id))?.data as Record<string, string>).quotaKeys, '9');
  assert.deepEqual((await stack.osb('GET', instancePath(id))).json().parameters, { quotaKeys: 9 });
  const bad = await stack.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: -1 } });
  assert.equal(bad.statusCode, 400);
  assert.deepEqual((await stack.osb('GET', instancePath(id))).json().parameters, { quotaKeys: 9 }, 'a refused update changes nothing');
});

test('PATCH while provisioning is 422 ConcurrencyError; fetch while provisioning is 404', async () => {
  await stack.stopWorker();
  const id = newId('busy');
  try {
    const res = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
    assert.equal(res.statusCode, 202);
    const patch = await stack.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 2 } });
    assert.equal(patch.statusCode, 422);
    assert.equal(patch.json().error, 'ConcurrencyError');
    assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 404);
    // No worker runs: last_operation still answers, from the registry and Temporal alone.
    const lo = await stack.osb('GET', `${instancePath(id)}/last_operation?operation=${res.json().operation}`);
    assert.equal(lo.statusCode, 200);
    assert.equal(lo.json().state, 'in progress');
  } finally {
    await stack.startWorker();
  }
  assert.equal((await pollLastOperation(stack, instancePath(id))).body.state, 'succeeded');
});

test('deprovision deletes what the instance owns and last_operation then answers 410 Gone', async () => {
  const id = newId('del');
  await provisionAndWait(stack, id);
  const res = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
  assert.equal(res.statusCode, 202);
  const done = await pollLastOperation(stack, instancePath(id), res.json().operation);
  assert.equal(done.status, 410);
  assert.equal(await configMap(id), undefined);
  assert.equal((await tenant.getAll().prefix(`/tenants/${id}/`).keys()).length, 0);
  assert.equal((await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`)).statusCode, 410);
  assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 404);
});

test('a synchronous deprovision answers 200 {}', async () => {
  const id = newId('sdel');
  await provisionAndWait(stack, id);
  const res = await stack.osb('DELETE', `${instancePath(id)}?${deleteQuery()}`);
  assert.equal(res.statusCode, 200, res.body);
  assert.deepEqual(res.json(), {});
});

test('a DELETE during provisioning stops creation and deprovisions; nothing is left behind', async () => {
  await stack.stopWorker();
  const id = newId('halt');
  let deleteOp: string;
  try {
    const put = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
    assert.equal(put.statusCode, 202);
    const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(del.statusCode, 202, del.body);
    deleteOp = del.json().operation;
    const again = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(again.json().operation, deleteOp, 'a repeated DELETE gets the same operation');
  } finally {
    await stack.startWorker();
  }
  const done = await pollLastOperation(stack, instancePath(id), deleteOp!);
  assert.equal(done.status, 410, JSON.stringify(done));
  assert.equal(await configMap(id), undefined);
  assert.equal((await tenant.getAll().prefix(`/tenants/${id}/`).keys()).length, 0);
});

test('orphan mitigation: a provision that fails half-way is cleaned up by the platform\'s DELETE', async () => {
  const id = newId('orphan');
  // Someone else's data already sits at the keyspace: the ConfigMap is created, then the keyspace step fails.
  await tenant.put(`/tenants/${id}/foreign`).value('not ours');
  const put = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
  const failed = await pollLastOperation(stack, instancePath(id), put.json().operation);
  assert.equal(failed.body.state, 'failed');
  assert.match(String(failed.body.description), /resource "keyspace" step applyCreateChange failed/);
  assert.ok(await configMap(id), 'the first resource was created before the failure');
  assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 404, 'a failed provision is not a fetchable instance');
  const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
  assert.equal(del.statusCode, 202);
  assert.equal((await pollLastOperation(stack, instancePath(id), del.json().operation)).status, 410);
  assert.equal(await configMap(id), undefined, 'orphan mitigation removed what the failed provision created');
  assert.equal(await tenant.get(`/tenants/${id}/foreign`).string(), 'not ours', 'data brokerflow does not own is untouched');
});
