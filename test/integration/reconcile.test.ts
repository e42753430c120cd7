// Reconciliation (docs/design/contracts/reconciliation.md) on the real Temporal dev server: the reconcile
// workflow's order, flags, failures and retries, observed both through the driver and through the workflow
// history the Web UI shows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { WorkflowFailedError } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { connectClient } from '../../platform/temporal';
import { reconcileWorkflow, type ReconcileInput } from '../../workflows/reconcile';
import type { ResourceDef } from '../../config/resource-sets';
import { createReconcileMetrics } from '../../activities/metrics';
import { TraceDriver } from '../support/trace-driver';
import { writeTestConfig } from '../support/config';
import { createTestWorker } from '../support/worker';
import { scheduledActivities } from '../support/history';

const driver = new TraceDriver({
  flaky: { failTransiently: { getCurrentState: 2 } },
  broken: { failAlways: { applyCreateChange: 'retryable' } },
  fatal: { failAlways: { applyCreateChange: 'fatal' } },
  stopAll: { cancelReconciliationAt: 'getDesiredState' },
  skipMe: { cancelResourceAt: 'getDesiredState' },
});
const metricsRegistry = new Registry();
const { config } = writeTestConfig();
let client: Client;
let worker: Worker;
let running: Promise<void>;

before(async () => {
  client = await connectClient(config);
  worker = await createTestWorker(config, {
    drivers: new Map([['trace', driver]]),
    reconcileMetrics: createReconcileMetrics(metricsRegistry),
  });
  running = worker.run();
});
after(async () => {
  worker.shutdown();
  await running;
  await client.connection.close();
});

const res = (name: string, desired: Record<string, unknown> | null = { size: 1 }): ResourceDef => ({
  name,
  driver: 'trace',
  spec: { id: `${name}-\${instance.id}`, desired },
});

function input(resources: ResourceDef[], mode: 'update' | 'delete' = 'update', options: ReconcileInput['options'] = {}): ReconcileInput {
  const instanceId = randomUUID();
  return {
    resources,
    mode,
    options: { retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 3 }, ...options },
    object: { operationId: `op-${instanceId}`, instanceId, serviceId: 's', planId: 'p' },
    template: { instance: { id: instanceId, serviceId: 's', planId: 'p', parameters: {}, context: {} }, operation: { id: `op-${instanceId}`, type: 'provision' } },
  };
}

async function start(i: ReconcileInput): Promise<WorkflowHandle<typeof reconcileWorkflow>> {
  return client.workflow.start(reconcileWorkflow, {
    taskQueue: config.temporal.taskQueue,
    workflowId: `reconcile/${i.object.instanceId}`,
    args: [i],
    workflowExecutionTimeout: '2 minutes',
  });
}

/** The activities the history scheduled, as their Web UI summaries (`resource: step`), in order. */
async function scheduledSteps(handle: WorkflowHandle): Promise<string[]> {
  const acts = await scheduledActivities(client, handle);
  for (const a of acts) assert.ok(a.summary.endsWith(`: ${a.type}`), `summary "${a.summary}" names the step ${a.type}`);
  return acts.map((a) => a.summary);
}

test('resources reconcile strictly in order: current, desired, patch, then create', async () => {
  const i = input([res('first'), res('second')]);
  const handle = await start(i);
  const outcome = await handle.result();
  assert.deepEqual(outcome, { status: 'completed', resources: ['first', 'second'], canceledResources: [] });
  assert.deepEqual(await scheduledSteps(handle), [
    'first: getCurrentState',
    'first: getDesiredState',
    'first: newUpdatePatch',
    'first: applyCreateChange',
    'second: getCurrentState',
    'second: getDesiredState',
    'second: newUpdatePatch',
    'second: applyCreateChange',
  ]);
  assert.ok(driver.objects.has(`first-${i.object.instanceId}`));
});

test('a patch with create, delete and update parts applies them in that order', async () => {
  const i = input([{ ...res('swap'), spec: { id: 'swap-fixed-${instance.id}', desired: { replace: 1 } } }]);
  driver.objects.set(`swap-fixed-${i.object.instanceId}`, { id: `swap-fixed-${i.object.instanceId}`, replace: 0 });
  const handle = await start(i);
  await handle.result();
  const steps = await scheduledSteps(handle);
  assert.deepEqual(steps.slice(3), ['swap: applyCreateChange', 'swap: applyDeleteChange', 'swap: applyUpdateChange']);
});

test('deletion allowed and update allowed set to false skip those parts of the patch', async () => {
  const i = input([{ ...res('guarded'), spec: { id: 'guarded-${instance.id}', desired: { replace: 1 } } }], 'update', {
    deletionAllowed: false,
    updateAllowed: false,
  });
  driver.objects.set(`guarded-${i.object.instanceId}`, { id: `guarded-${i.object.instanceId}`, replace: 0 });
  const handle = await start(i);
  await handle.result();
  assert.deepEqual((await scheduledSteps(handle)).slice(3), ['guarded: applyCreateChange']);
});

test('delete mode uses the delete patch and removes what exists', async () => {
  const i = input([res('doomed')], 'delete');
  driver.objects.set(`doomed-${i.object.instanceId}`, { id: `doomed-${i.object.instanceId}`, size: 1 });
  const handle = await start(i);
  await handle.result();
  assert.deepEqual((await scheduledSteps(handle)).slice(2), ['doomed: newDeletePatch', 'doomed: applyDeleteChange']);
  assert.equal(driver.objects.has(`doomed-${i.object.instanceId}`), false);
});

test('the first failure stops the chain, names the resource and step, and later resources never run', async () => {
  const i = input([res('fatal'), res('after-fatal')]);
  const handle = await start(i);
  await assert.rejects(handle.result(), (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError);
    assert.match(String(err.cause?.message), /resource "fatal" step applyCreateChange failed: .*cannot succeed/);
    return true;
  });
  const steps = await scheduledSteps(handle);
  assert.equal(steps.filter((s) => s === 'fatal: applyCreateChange').length, 1, 'a non-retryable failure is not retried');
  assert.equal(steps.some((s) => s.startsWith('after-fatal')), false);
});

test('a transient failure is retried with growing backoff and then succeeds', async () => {
  const i = input([res('flaky')]);
  const before = driver.trace.length;
  const handle = await start(i);
  assert.equal((await handle.result()).status, 'completed');
  const attempts = driver.trace.slice(before).filter((t) => t.resource === 'flaky' && t.step === 'getCurrentState');
  assert.equal(attempts.length, 3);
  const gap1 = attempts[1]!.at - attempts[0]!.at;
  const gap2 = attempts[2]!.at - attempts[1]!.at;
  assert.ok(gap2 > gap1, `backoff grows between attempts (${gap1} ms then ${gap2} ms)`);
});

test('a step that keeps failing surfaces its error after the policy gives up', async () => {
  const i = input([res('broken')]);
  const before = driver.trace.length;
  const handle = await start(i);
  await assert.rejects(handle.result(), (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError);
    assert.match(String(err.cause?.message), /resource "broken" step applyCreateChange failed: .*is down/);
    return true;
  });
  const attempts = driver.trace.slice(before).filter((t) => t.resource === 'broken' && t.step === 'applyCreateChange');
  assert.equal(attempts.length, 3, 'maximumAttempts bounds the retries');
});

test('reconciliation canceled inside a resource stops everything and succeeds', async () => {
  const i = input([res('before-stop'), res('stopAll'), res('never')]);
  const handle = await start(i);
  assert.deepEqual(await handle.result(), {
    status: 'canceled',
    at: 'stopAll',
    reason: `stopAll-${i.object.instanceId}: reconciliation canceled at getDesiredState`,
    resources: ['before-stop'],
  });
  const steps = await scheduledSteps(handle);
  assert.equal(steps.some((s) => s.startsWith('never')), false);
  assert.equal(steps.some((s) => s === 'stopAll: newUpdatePatch'), false);
});

test('resource canceled skips the rest of that resource and the next one runs', async () => {
  const i = input([res('skipMe'), res('next')]);
  const handle = await start(i);
  assert.deepEqual(await handle.result(), { status: 'completed', resources: ['next'], canceledResources: ['skipMe'] });
  const steps = await scheduledSteps(handle);
  assert.equal(steps.includes('skipMe: newUpdatePatch'), false);
  assert.ok(steps.includes('next: applyCreateChange'));
});

test('a resource set with no resources fails with an execution-failed error', async () => {
  const handle = await start(input([]));
  await assert.rejects(handle.result(), (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError);
    assert.match(String(err.cause?.message), /execution failed: the resource set has no resources/);
    return true;
  });
});

test('reconcile metrics count steps per resource, errors only for failures, and events by kind', async () => {
  const text = await metricsRegistry.metrics();
  assert.match(text, /brokerflow_reconcile_step_total\{resource="first",step="getCurrentState"\} 1/);
  assert.match(text, /brokerflow_reconcile_step_errors_total\{resource="broken",step="applyCreateChange"\} 3/);
  assert.doesNotMatch(text, /brokerflow_reconcile_step_errors_total\{resource="first"/);
  assert.match(text, /brokerflow_reconcile_event_duration_seconds_count\{event="delete"\} [1-9]/);
  assert.match(text, /brokerflow_reconcile_event_duration_seconds_count\{event="update"\} [1-9]/);
});
