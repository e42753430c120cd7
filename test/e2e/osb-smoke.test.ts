import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startTestStack, pollLastOperation, type TestStack } from '../support/stack';
import { ORG_SPACE } from '../support/osb';

const SERVICE = '6db0d0a4-2b5e-4c1e-9a1f-7f6d2c0e5a11';
const PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a01';
let stack: TestStack;
before(async () => {
  stack = await startTestStack();
});
after(() => stack.close());

test('provision, bind, fetch credentials, unbind and deprovision an etcd keyspace end to end', async () => {
  const id = `i-${randomUUID()}`;
  const put = await stack.osb('PUT', `/v2/service_instances/${id}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN, ...ORG_SPACE, parameters: { quotaKeys: 10 } });
  assert.equal(put.statusCode, 202, put.body);
  const op = put.json().operation as string;
  const done = await pollLastOperation(stack, `/v2/service_instances/${id}`, op);
  assert.deepEqual(done, { status: 200, body: { state: 'succeeded' } });

  const bid = `b-${randomUUID()}`;
  const bind = await stack.osb('PUT', `/v2/service_instances/${id}/service_bindings/${bid}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN });
  assert.equal(bind.statusCode, 202, bind.body);
  assert.equal(bind.json().credentials, undefined);
  const bound = await pollLastOperation(stack, `/v2/service_instances/${id}/service_bindings/${bid}`, bind.json().operation);
  assert.equal(bound.body.state, 'succeeded', JSON.stringify(bound));
  const fetched = await stack.osb('GET', `/v2/service_instances/${id}/service_bindings/${bid}`);
  assert.equal(fetched.statusCode, 200, fetched.body);
  const creds = fetched.json().credentials;
  assert.equal(creds.prefix, `/tenants/${id}`);
  assert.ok(typeof creds.password === 'string' && creds.password.length >= 16);

  const unbind = await stack.osb('DELETE', `/v2/service_instances/${id}/service_bindings/${bid}?accepts_incomplete=true&service_id=${SERVICE}&plan_id=${PLAN}`);
  assert.equal(unbind.statusCode, 202, unbind.body);
  const unbound = await pollLastOperation(stack, `/v2/service_instances/${id}/service_bindings/${bid}`, unbind.json().operation);
  assert.equal(unbound.status, 410);

  const del = await stack.osb('DELETE', `/v2/service_instances/${id}?accepts_incomplete=true&service_id=${SERVICE}&plan_id=${PLAN}`);
  assert.equal(del.statusCode, 202, del.body);
  const deleted = await pollLastOperation(stack, `/v2/service_instances/${id}`, del.json().operation);
  assert.equal(deleted.status, 410);
});
