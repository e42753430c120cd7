// Instance and binding asynchrony chosen separately per plan (docs/design/contracts/configuration.md#catalog and
// the AsyncRequired rows of docs/design/osb-semantics.md), over HTTP as a platform sees it. The example catalog's
// `async-instances` plan requires accepts_incomplete=true for instance operations and serves bindings
// synchronously (`bindingsAsync: never`), even to accepts_incomplete=true.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pollLastOperation, startTestStack, type TestStack } from '../support/stack';
import {
  ASYNC_INSTANCES_PLAN,
  ASYNC_ONLY_PLAN,
  SERVICE,
  asEtcdUser,
  bindingPath,
  deleteQuery,
  instancePath,
  newId,
  provisionBody,
  type EtcdCredentials,
} from '../support/osb';

let stack: TestStack;
before(async () => {
  stack = await startTestStack();
});
after(async () => {
  await stack?.close();
});

const JSON_WITHOUT_BODY = { 'content-type': 'application/json' };

/** Provisions on `plan` asynchronously and waits until it succeeded. */
async function provisioned(id: string, plan: string): Promise<void> {
  const res = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ plan_id: plan }));
  assert.equal(res.statusCode, 202, res.body);
  const done = await pollLastOperation(stack, instancePath(id), res.json().operation as string);
  assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));
}

/** The credentials work: the binding's etcd user writes and reads a key under the instance's prefix. */
async function usable(credentials: EtcdCredentials): Promise<void> {
  const key = `${credentials.keyPrefix}/probe`;
  await asEtcdUser(credentials, async (c) => {
    await c.put(key).value('ok');
    assert.equal(await c.get(key).string(), 'ok');
  });
}

test('the served catalog offers the plan, and bindings of its service are retrievable', async () => {
  const res = await stack.osb('GET', '/v2/catalog');
  assert.equal(res.statusCode, 200);
  const service = (res.json() as { services: Array<{ id: string; bindings_retrievable?: boolean; plans: Array<Record<string, unknown>> }> }).services.find((s) => s.id === SERVICE)!;
  assert.equal(service.bindings_retrievable, true);
  const plan = service.plans.find((p) => p.id === ASYNC_INSTANCES_PLAN);
  assert.ok(plan, 'the async-instances plan is served');
  assert.ok(!('brokerflow' in plan));
});

test('async-instances plan: instance operations need accepts_incomplete; bindings are answered 201 with credentials, with or without it', async () => {
  const id = newId('amode');
  const refused = await stack.osb('PUT', instancePath(id), provisionBody({ plan_id: ASYNC_INSTANCES_PLAN }));
  assert.equal(refused.statusCode, 422, refused.body);
  assert.equal(refused.json().error, 'AsyncRequired');
  assert.match(refused.json().description as string, /instance operations are asynchronous only/);
  assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 404, 'nothing was provisioned');

  await provisioned(id, ASYNC_INSTANCES_PLAN);

  const body = { service_id: SERVICE, plan_id: ASYNC_INSTANCES_PLAN };
  const plain = await stack.osb('PUT', bindingPath(id, `${id}-b1`), body);
  assert.equal(plain.statusCode, 201, plain.body);
  const plainCredentials = plain.json().credentials as EtcdCredentials;
  assert.ok(plainCredentials.username && plainCredentials.password, 'the answer carries the credentials');
  await usable(plainCredentials);

  // accepts_incomplete=true allows an asynchronous answer but does not require one: this plan answers at once.
  const offered = await stack.osb('PUT', `${bindingPath(id, `${id}-b2`)}?accepts_incomplete=true`, body);
  assert.equal(offered.statusCode, 201, offered.body);
  assert.equal(offered.json().operation, undefined, 'no operation to poll');
  const offeredCredentials = offered.json().credentials as EtcdCredentials;
  await usable(offeredCredentials);
  const fetched = await stack.osb('GET', bindingPath(id, `${id}-b2`));
  assert.equal(fetched.statusCode, 200, fetched.body);
  assert.deepEqual(fetched.json().credentials, offeredCredentials);

  // An identical repeat is 200 with the same binding, as for any synchronous bind.
  const again = await stack.osb('PUT', `${bindingPath(id, `${id}-b2`)}?accepts_incomplete=true`, body);
  assert.equal(again.statusCode, 200, again.body);
  assert.deepEqual(again.json().credentials, offeredCredentials);

  // Unbind is synchronous too: 200 with or without accepts_incomplete, and the binding is gone.
  const unbindOffered = await stack.osb('DELETE', `${bindingPath(id, `${id}-b2`)}?accepts_incomplete=true&${deleteQuery(ASYNC_INSTANCES_PLAN)}`, undefined, JSON_WITHOUT_BODY);
  assert.equal(unbindOffered.statusCode, 200, unbindOffered.body);
  assert.equal((await stack.osb('GET', bindingPath(id, `${id}-b2`))).statusCode, 404);
  const unbindPlain = await stack.osb('DELETE', `${bindingPath(id, `${id}-b1`)}?${deleteQuery(ASYNC_INSTANCES_PLAN)}`, undefined, JSON_WITHOUT_BODY);
  assert.equal(unbindPlain.statusCode, 200, unbindPlain.body);

  const updateRefused = await stack.osb('PATCH', instancePath(id), { service_id: SERVICE, parameters: { any: 1 } });
  assert.equal(updateRefused.statusCode, 422, updateRefused.body);
  assert.equal(updateRefused.json().error, 'AsyncRequired');
  const deleteRefused = await stack.osb('DELETE', `${instancePath(id)}?${deleteQuery(ASYNC_INSTANCES_PLAN)}`, undefined, JSON_WITHOUT_BODY);
  assert.equal(deleteRefused.statusCode, 422, deleteRefused.body);
  assert.equal(deleteRefused.json().error, 'AsyncRequired');
  const deleted = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery(ASYNC_INSTANCES_PLAN)}`, undefined, JSON_WITHOUT_BODY);
  assert.equal(deleted.statusCode, 202, deleted.body);
  const gone = await pollLastOperation(stack, instancePath(id), deleted.json().operation as string);
  assert.equal(gone.status, 410, JSON.stringify(gone.body));
});

test('asyncOnly keeps its meaning: a bind on the async-only plan without accepts_incomplete is 422 AsyncRequired', async () => {
  const id = newId('amode-ao');
  await provisioned(id, ASYNC_ONLY_PLAN);
  const body = { service_id: SERVICE, plan_id: ASYNC_ONLY_PLAN };
  const refused = await stack.osb('PUT', bindingPath(id, `${id}-b`), body);
  assert.equal(refused.statusCode, 422, refused.body);
  assert.equal(refused.json().error, 'AsyncRequired');
  assert.match(refused.json().description as string, /binding operations are asynchronous only/);
  const accepted = await stack.osb('PUT', `${bindingPath(id, `${id}-b`)}?accepts_incomplete=true`, body);
  assert.equal(accepted.statusCode, 202, accepted.body);
  const done = await pollLastOperation(stack, bindingPath(id, `${id}-b`), accepted.json().operation as string);
  assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));
  const deleted = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery(ASYNC_ONLY_PLAN)}`, undefined, JSON_WITHOUT_BODY);
  assert.equal(deleted.statusCode, 202, deleted.body);
  await pollLastOperation(stack, instancePath(id), deleted.json().operation as string);
});
