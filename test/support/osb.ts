// Shorthands for OSB tests against the example catalog.
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import assert from 'node:assert/strict';
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { Etcd3 } from 'etcd3';
import { pollLastOperation, type TestStack } from './stack';

export const SERVICE = '6db0d0a4-2b5e-4c1e-9a1f-7f6d2c0e5a11';
export const PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a01';
export const ASYNC_ONLY_PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a02';
export const APP_BOUND_PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a03';
/** Instance operations asynchronous only, bindings always synchronous (`instancesAsync: required`, `bindingsAsync: never`). */
export const ASYNC_INSTANCES_PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a05';
/**
 * The platform's organization and space: a provision must name both, non-empty (docs/design/osb-semantics.md,
 * "Checks common to all requests"). Spread it into every provision body.
 */
export const ORG_SPACE = { organization_guid: 'org-brokerflow-test', space_guid: 'space-brokerflow-test' } as const;
/** The catalog of the polling-bound tests: the standard plan, and plans with a maximum_polling_duration of 5 s and 1 h. */
export const pollingCatalog = resolve(__dirname, 'fixtures', 'catalog.polling.yaml');
export const BOUNDED_5S_PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2b05';
export const BOUNDED_1H_PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2b06';
/** The example catalog's rotating plan: rotatable bindings whose credentials live a day. */
export const ROTATING_PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a06';
/** The catalog of the rotation and expiry tests: standard, rotating, and the two plans below. */
export const rotationCatalog = resolve(__dirname, 'fixtures', 'catalog.rotation.yaml');
/** Rotatable bindings whose credentials expire 4 s after the bind (renew_before 2 s ahead). */
export const ROTATING_SHORT_PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2c01';
/** Rotatable bindings created and deleted asynchronously only (`bindingsAsync: required`), a day's credentials. */
export const ROTATING_ASYNC_PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2c02';
/** Rotatable bindings whose credentials live 45 s: longer than a restart of the Temporal dev server. */
export const ROTATING_RESTART_PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2c03';
/** The resource sets the OSB tests use: a ConfigMap, then the etcd keyspace. */
export const osbResourceSets = resolve(__dirname, 'fixtures', 'resource-sets.osb.yaml');

export const newId = (prefix: string) => `${prefix}-${randomUUID()}`;
export const instancePath = (id: string) => `/v2/service_instances/${id}`;
export const bindingPath = (id: string, bid: string) => `/v2/service_instances/${id}/service_bindings/${bid}`;
export const deleteQuery = (plan = PLAN) => `service_id=${SERVICE}&plan_id=${plan}`;
/** The body of a provision of the standard plan, with the platform's org and space. */
export const provisionBody = (extra: Record<string, unknown> = {}) => ({ service_id: SERVICE, plan_id: PLAN, ...ORG_SPACE, ...extra });

/** The workflow an instance's operations (provision, update, deprovision) run on. */
export const instanceWorkflowIdOf = (id: string) => `instance/${id}`;
/** The workflow a binding's operations (bind, unbind) run on: one per binding ID (docs/design/osb-semantics.md). */
export const bindingWorkflowIdOf = (bid: string) => `binding/${bid}`;

/** Provisions asynchronously and waits for success; returns the operation. */
export async function provisionAndWait(stack: TestStack, id: string, body: Record<string, unknown> = {}): Promise<string> {
  const res = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody(body));
  assert.equal(res.statusCode, 202, res.body);
  const operation = res.json().operation as string;
  const done = await pollLastOperation(stack, instancePath(id), operation);
  assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));
  return operation;
}

/** Binds asynchronously and waits for success; returns the operation. */
export async function bindAndWait(stack: TestStack, id: string, bid: string, body: Record<string, unknown> = {}): Promise<string> {
  const res = await stack.osb('PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN, ...body });
  assert.equal(res.statusCode, 202, res.body);
  const operation = res.json().operation as string;
  const done = await pollLastOperation(stack, bindingPath(id, bid), operation);
  assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));
  return operation;
}

/** Whether Temporal has ever run a workflow for this instance. */
export async function workflowExists(stack: TestStack, id: string): Promise<boolean> {
  try {
    await stack.client.workflow.getHandle(instanceWorkflowIdOf(id)).describe();
    return true;
  } catch {
    return false;
  }
}

/** Every workflow run a visibility query lists (e.g. `InstanceId="x" AND BindingId="b"`). */
export async function listRuns(stack: TestStack, query: string): Promise<WorkflowExecutionInfo[]> {
  const out: WorkflowExecutionInfo[] = [];
  for await (const w of stack.client.workflow.list({ query })) out.push(w);
  return out;
}

/**
 * Lists a visibility query until it returns at least `atLeast` runs (visibility is eventually consistent), then
 * returns what it lists; fails after `timeoutMs` naming the query.
 */
export async function waitForRuns(stack: TestStack, query: string, atLeast = 1, timeoutMs = 30_000): Promise<WorkflowExecutionInfo[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const runs = await listRuns(stack, query);
    if (runs.length >= atLeast) return runs;
    if (Date.now() > end) throw new Error(`visibility listed ${runs.length} run(s) for ${query} after ${timeoutMs} ms, expected at least ${atLeast}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** What an etcd-user binding hands out (the etcd-user driver's outputs). */
export interface EtcdCredentials {
  username: string;
  password: string;
  keyPrefix: string;
  endpoints: string[];
}

/**
 * Repeats `fn` while etcd answers "revision of auth store is old": a request checked against the auth store
 * before a concurrent change to its users or roles is refused when applied. Other tests (and other model lanes)
 * change users and roles all the time, so any client of the shared tenant etcd meets it now and then.
 */
export async function onAuthRace<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 5 || !/revision of auth store is old/.test((err as Error).message)) throw err;
    }
    await new Promise((r) => setTimeout(r, 100 * attempt));
  }
}

/** Runs `fn` as the binding's etcd user, as an application would (a fresh login for each attempt). */
export async function asEtcdUser<T>(c: EtcdCredentials, fn: (client: Etcd3) => Promise<T>): Promise<T> {
  return onAuthRace(async () => {
    const client = new Etcd3({ hosts: c.endpoints, auth: { username: c.username, password: c.password } });
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  });
}
