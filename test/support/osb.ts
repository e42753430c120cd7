// Shorthands for OSB tests against the example catalog.
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import assert from 'node:assert/strict';
import { pollLastOperation, type TestStack } from './stack';

export const SERVICE = '6db0d0a4-2b5e-4c1e-9a1f-7f6d2c0e5a11';
export const PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a01';
export const ASYNC_ONLY_PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a02';
export const APP_BOUND_PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a03';
/** The resource sets the OSB tests use: a ConfigMap, then the etcd keyspace. */
export const osbResourceSets = resolve(__dirname, '..', 'fixtures', 'resource-sets.osb.yaml');

export const newId = (prefix: string) => `${prefix}-${randomUUID()}`;
export const instancePath = (id: string) => `/v2/service_instances/${id}`;
export const bindingPath = (id: string, bid: string) => `/v2/service_instances/${id}/service_bindings/${bid}`;
export const deleteQuery = (plan = PLAN) => `service_id=${SERVICE}&plan_id=${plan}`;

/** Provisions asynchronously and waits for success. */
export async function provisionAndWait(stack: TestStack, id: string, body: Record<string, unknown> = {}): Promise<void> {
  const res = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN, ...body });
  assert.equal(res.statusCode, 202, res.body);
  const done = await pollLastOperation(stack, instancePath(id), res.json().operation);
  assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));
}

/** Binds asynchronously and waits for success. */
export async function bindAndWait(stack: TestStack, id: string, bid: string, body: Record<string, unknown> = {}): Promise<void> {
  const res = await stack.osb('PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN, ...body });
  assert.equal(res.statusCode, 202, res.body);
  const done = await pollLastOperation(stack, bindingPath(id, bid), res.json().operation);
  assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));
}

/** Whether Temporal has ever run a workflow for this instance. */
export async function workflowExists(stack: TestStack, id: string): Promise<boolean> {
  try {
    await stack.client.workflow.getHandle(`instance/${id}`).describe();
    return true;
  } catch {
    return false;
  }
}
