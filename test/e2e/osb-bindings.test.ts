// The OSB API for bindings (docs/design/contracts/osb-api.md#bindings): bind, fetch, unbind and their
// last_operation; credentials come from the driver, live encrypted in the registry and never appear in
// workflow history.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { startTestStack, pollLastOperation, type TestStack } from '../support/stack';
import { requireTestEnv } from '../support/env';
import { APP_BOUND_PLAN, PLAN, SERVICE, bindAndWait, bindingPath, bindingWorkflowIdOf, deleteQuery, instancePath, newId, provisionAndWait, provisionBody } from '../support/osb';
import { decodePayload } from '../support/history';

let stack: TestStack;
before(async () => {
  stack = await startTestStack();
});
after(() => stack.close());

test('async bind answers 202 without credentials; fetch binding then returns working etcd credentials', async () => {
  const id = newId('bind');
  await provisionAndWait(stack, id);
  const bid = newId('b');
  const res = await stack.osb('PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN });
  assert.equal(res.statusCode, 202);
  assert.deepEqual(Object.keys(res.json()), ['operation']);
  assert.equal((await stack.osb('GET', bindingPath(id, bid))).statusCode === 200, false, 'not fetchable before the bind completes');
  const done = await pollLastOperation(stack, bindingPath(id, bid), res.json().operation);
  assert.deepEqual(done.body, { state: 'succeeded' });
  const fetched = (await stack.osb('GET', bindingPath(id, bid))).json();
  const c = fetched.credentials as { username: string; password: string; keyPrefix: string; endpoints: string[] };
  const client = new Etcd3({ hosts: c.endpoints, auth: { username: c.username, password: c.password } });
  try {
    await client.put(`${c.keyPrefix}hello`).value('world');
    assert.equal(await client.get(`${c.keyPrefix}hello`).string(), 'world');
    await assert.rejects(client.put('/tenants/someone-else/x').value('no').exec(), 'the credentials are limited to the instance prefix');
  } finally {
    client.close();
  }
});

test('a synchronous bind answers 201 with credentials; an identical re-bind 200; a different one 409', async () => {
  const id = newId('sbind');
  await provisionAndWait(stack, id);
  const bid = newId('b');
  const res = await stack.osb('PUT', bindingPath(id, bid), { service_id: SERVICE, plan_id: PLAN, parameters: { readOnly: true } });
  assert.equal(res.statusCode, 201, res.body);
  assert.ok(typeof res.json().credentials.password === 'string');
  const same = await stack.osb('PUT', bindingPath(id, bid), { service_id: SERVICE, plan_id: PLAN, parameters: { readOnly: true } });
  assert.equal(same.statusCode, 200);
  assert.deepEqual(same.json().credentials, res.json().credentials);
  const different = await stack.osb('PUT', bindingPath(id, bid), { service_id: SERVICE, plan_id: PLAN, parameters: { readOnly: false } });
  assert.equal(different.statusCode, 409);
});

test('a plan that binds to applications only answers 422 RequiresApp without an app_guid', async () => {
  const id = newId('app');
  const put = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ plan_id: APP_BOUND_PLAN }));
  assert.equal((await pollLastOperation(stack, instancePath(id), put.json().operation)).body.state, 'succeeded');
  // Binding IDs are unique across instances (and name the binding's workflow): a fresh one per test.
  const bid = newId('b');
  const res = await stack.osb('PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: APP_BOUND_PLAN });
  assert.equal(res.statusCode, 422);
  assert.equal(res.json().error, 'RequiresApp');
  const ok = await stack.osb('PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: APP_BOUND_PLAN, bind_resource: { app_guid: 'app-1' } });
  assert.equal(ok.statusCode, 202);
});

test('bind while the instance is being provisioned is 422 ConcurrencyError', async () => {
  await stack.stopWorker();
  const id = newId('early');
  try {
    assert.equal((await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody())).statusCode, 202);
    const res = await stack.osb('PUT', `${bindingPath(id, newId('b'))}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN });
    assert.equal(res.statusCode, 422);
    assert.equal(res.json().error, 'ConcurrencyError');
  } finally {
    await stack.startWorker();
  }
});

test('unbind removes the etcd user; last_operation then 410; a second unbind 410', async () => {
  const id = newId('unb');
  await provisionAndWait(stack, id);
  const bid = newId('b');
  await bindAndWait(stack, id, bid);
  const creds = (await stack.osb('GET', bindingPath(id, bid))).json().credentials as { username: string; password: string; endpoints: string[] };
  const res = await stack.osb('DELETE', `${bindingPath(id, bid)}?accepts_incomplete=true&${deleteQuery()}`);
  assert.equal(res.statusCode, 202);
  assert.equal((await pollLastOperation(stack, bindingPath(id, bid), res.json().operation)).status, 410);
  assert.equal((await stack.osb('DELETE', `${bindingPath(id, bid)}?accepts_incomplete=true&${deleteQuery()}`)).statusCode, 410);
  assert.equal((await stack.osb('GET', bindingPath(id, bid))).statusCode, 404);
  const client = new Etcd3({ hosts: creds.endpoints, auth: { username: creds.username, password: creds.password } });
  try {
    await assert.rejects(client.get('/tenants/x').string(), 'the unbound user can no longer authenticate');
  } finally {
    client.close();
  }
});

test('deprovision with bindings left removes their etcd users too: nothing is orphaned', async () => {
  const id = newId('dep');
  await provisionAndWait(stack, id);
  await bindAndWait(stack, id, newId('left-behind'));
  const res = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
  assert.equal((await pollLastOperation(stack, instancePath(id), res.json().operation)).status, 410);
  const root = new Etcd3({ hosts: requireTestEnv('tenantEtcdEndpoint'), auth: { username: 'root', password: requireTestEnv('tenantEtcdRootPassword') } });
  try {
    const creds = (await stack.worker.registry.registry.list('service-binding')).filter((b) => b.values['instance-id'] === id);
    assert.deepEqual(creds, [], 'no binding entry is left for the instance');
    assert.equal((await root.getAll().prefix(`/tenants/${id}/`).keys()).length, 0);
  } finally {
    root.close();
  }
});

test('binding credentials never appear in the bind workflow history, raw or decoded', async () => {
  const id = newId('hist');
  await provisionAndWait(stack, id);
  const bid = newId('b');
  await bindAndWait(stack, id, bid);
  const password = (await stack.osb('GET', bindingPath(id, bid))).json().credentials.password as string;
  assert.ok(password.length >= 16);
  // A binding's operations run on the binding's own workflow (docs/design/osb-semantics.md).
  const handle = stack.client.workflow.getHandle(bindingWorkflowIdOf(bid));
  const history = await handle.fetchHistory();
  const raw = JSON.stringify(history, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v));
  assert.equal(raw.includes(password), false, 'the password is not in the raw (encrypted) history');
  // Decode every payload the way the Web UI would with the codec server: still no password.
  const payloads: unknown[] = [];
  const collect = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(collect);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (o.metadata && o.data instanceof Uint8Array) payloads.push(o);
      else Object.values(o).forEach(collect);
    }
  };
  collect(history.events);
  assert.ok(payloads.length > 5);
  for (const p of payloads) {
    const decoded = String(JSON.stringify(await decodePayload(stack.client, p as never).catch(() => null)));
    assert.equal(decoded.includes(password), false);
  }
  // And the search attributes hold no secrets either.
  const d = await handle.describe();
  assert.equal(JSON.stringify(d.searchAttributes).includes(password), false);
});
