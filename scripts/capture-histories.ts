// Captures the workflow histories the replay test (test/replay/replay.test.ts) checks every workflow change
// against: real runs on a real Temporal dev server with the real worker, driven as a platform and an operator
// would (OSB requests over the broker's HTTP routes; the Temporal client where there is no route: endpoint
// reconciliation, the probe, the standalone reconcile workflow). One history per run, saved as
// test/replay/histories/<name>.json in the format of `temporal workflow show --output json`.
//
//   npm run replay:capture        (node --import tsx scripts/capture-histories.ts)
//   npm run replay:capture -- --only fleet-upgrade
//                                 only the named histories (comma-separated), written beside the committed ones,
//                                 which stay as they are: for a new workflow type, without re-capturing the rest
//
// The servers are the test run's (Temporal, etcd, a tenant etcd with auth, moto, the Kubernetes control plane),
// started through scripts/lib exactly as test/run.ts and `npm run bench` start them, and stopped at the end.
// Payloads are encrypted with the committed TEST-ONLY key of test/replay/support.ts (why: see there).
// Re-capture after a deliberate, patched() change to a workflow, or when a new workflow type is exported; never
// to make a failing replay pass (that failure is what in-flight executions would hit in production).
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { startBenchStack, type BenchStack } from '../bench/stack-support';
import { requireTestEnv } from '../test/support/env';
import { testBrokerUser } from '../test/support/config';
import { pollLastOperation, startTestStack, type TestStack } from '../test/support/stack';
import {
  BOUNDED_1H_PLAN,
  BOUNDED_5S_PLAN,
  PLAN,
  ROTATING_PLAN,
  ROTATING_SHORT_PLAN,
  SERVICE,
  bindingPath,
  deleteQuery,
  instancePath,
  newId,
  osbResourceSets,
  pollingCatalog,
  provisionBody,
  rotationCatalog,
} from '../test/support/osb';
import { allowed, eventually, kube, serviceBody, patchService, testEndpointConfig, uid } from '../test/support/endpoints-fixtures';
import { cancelResourceSets, markReady, waitingForReadiness } from '../test/support/cancel-fixtures';
import { historiesDir, historyFromJson, historyToJson, historyWorkflowType, loadHistories, replayTestEncryption, unencryptedPayloads } from '../test/replay/support';
import { ensureEndpointSync, signalKubeService, stopEndpointSync } from '../platform/endpoint-workflows';
import { watchLabelKey } from '../adapters/kubernetes';
import { createCliContext } from '../client/cli/context';
import { connectClient } from '../platform/temporal';
import { endpointWatcherWorkflowId, kubeServiceWorkflowId } from '../workflows/endpoints-messages';
import { instanceWorkflowId, bindingWorkflowId } from '../workflows/messages';
import { FLEET_UPGRADE_WORKFLOW, fleetPauseSignal, fleetResumeSignal, fleetUpgradeWorkflowId, type FleetUpgradeInput } from '../workflows/fleet-messages';
import { parseMaintenanceWindow } from '../domain/fleet';
import { newFleetPlan, writeFleetCatalog } from '../test/support/fleet';
import { ORG_SPACE } from '../test/support/osb';
import type { reconcileWorkflow } from '../workflows/reconcile';
import * as workflows from '../workflows';

const captured = new Map<string, string>();
/** Secrets of this run that must not appear in any history, in clear or base64. */
const secrets = new Set<string>();

/** Waits until the run has closed (completed, failed, continued as new, cancelled, ...). */
async function waitClosed(handle: WorkflowHandle, timeoutMs = 60_000): Promise<void> {
  await eventually(`${handle.workflowId} to close`, async () => ((await handle.describe()).status.name !== 'RUNNING' ? true : undefined), timeoutMs);
}

/** Saves one run's history under `name` once it has closed; checks it ran the workflow type expected. */
async function capture(client: Client, name: string, workflowId: string, runId: string, type: string): Promise<void> {
  const handle = client.workflow.getHandle(workflowId, runId);
  await waitClosed(handle);
  const json = historyToJson(await handle.fetchHistory());
  const parsed = JSON.parse(json) as { events: Array<Record<string, unknown>> };
  assert.equal(historyWorkflowType(parsed), type, `${name}: workflow type`);
  assert.equal(historyFromJson(parsed).events?.length, parsed.events.length, `${name}: reads back`);
  captured.set(name, json);
  console.log(`  captured ${name} (${type}, ${workflowId})`);
}

/** The run a workflow ID points at now (its latest run). */
async function latestRunId(client: Client, workflowId: string): Promise<string> {
  return (await client.workflow.getHandle(workflowId).describe()).runId;
}

/** Sends an OSB request that must start an operation (202); returns the operation. */
async function startOperation(stack: TestStack, method: 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown): Promise<string> {
  const res = await stack.osb(method, url, body);
  assert.equal(res.statusCode, 202, `${method} ${url}: ${res.body}`);
  return (res.json() as { operation: string }).operation;
}

/** Polls last_operation until the operation ended; checks how. */
async function expectEnd(stack: TestStack, path: string, operation: string, expected: 'succeeded' | 'failed' | 'gone'): Promise<void> {
  const done = await pollLastOperation(stack, path, operation);
  const got = done.status === 410 ? 'gone' : done.body.state;
  assert.equal(got, expected, `${path} ${operation}: ${JSON.stringify(done)}`);
}

/** Instance and binding operations over the broker's OSB routes, as a platform sends them. */
async function captureOperations(stack: TestStack): Promise<void> {
  const { client } = stack;
  const id = newId('replay');
  const wf = instanceWorkflowId(id);

  let op = await startOperation(stack, 'PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 5 } }));
  const provisionRun = await latestRunId(client, wf);
  await expectEnd(stack, instancePath(id), op, 'succeeded');
  await capture(client, 'provision', wf, provisionRun, 'provision');

  op = await startOperation(stack, 'PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 9 } });
  const updateRun = await latestRunId(client, wf);
  await expectEnd(stack, instancePath(id), op, 'succeeded');
  await capture(client, 'update', wf, updateRun, 'update');

  // Bind, read the credentials (they must appear in no history), unbind.
  const bid = newId('replay-b');
  op = await startOperation(stack, 'PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN, parameters: { readOnly: true } });
  const bindRun = await latestRunId(client, bindingWorkflowId(bid));
  await expectEnd(stack, bindingPath(id, bid), op, 'succeeded');
  await capture(client, 'bind', bindingWorkflowId(bid), bindRun, 'bind');
  const fetched = await stack.osb('GET', bindingPath(id, bid));
  assert.equal(fetched.statusCode, 200, fetched.body);
  secrets.add((fetched.json() as { credentials: { password: string } }).credentials.password);

  op = await startOperation(stack, 'DELETE', `${bindingPath(id, bid)}?accepts_incomplete=true&${deleteQuery()}`);
  const unbindRun = await latestRunId(client, bindingWorkflowId(bid));
  await expectEnd(stack, bindingPath(id, bid), op, 'gone');
  await capture(client, 'unbind', bindingWorkflowId(bid), unbindRun, 'unbind');

  // A binding left in place: the deprovision deletes its resources and entry before the instance's.
  const kept = newId('replay-b');
  op = await startOperation(stack, 'PUT', `${bindingPath(id, kept)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN });
  await expectEnd(stack, bindingPath(id, kept), op, 'succeeded');
  secrets.add(((await stack.osb('GET', bindingPath(id, kept))).json() as { credentials: { password: string } }).credentials.password);
  op = await startOperation(stack, 'DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
  const deprovisionRun = await latestRunId(client, wf);
  await expectEnd(stack, instancePath(id), op, 'gone');
  await capture(client, 'deprovision', wf, deprovisionRun, 'deprovision');

  // A failed operation: someone else's data sits at the keyspace, so its create step fails (not retryable)
  // after the ConfigMap was created; the platform's DELETE (orphan mitigation) then cleans up.
  const failing = newId('replay-fail');
  const tenant = new Etcd3({ hosts: requireTestEnv('tenantEtcdEndpoint'), auth: { username: 'root', password: requireTestEnv('tenantEtcdRootPassword') } });
  try {
    await tenant.put(`/tenants/${failing}/foreign`).value('not ours');
  } finally {
    tenant.close();
  }
  op = await startOperation(stack, 'PUT', `${instancePath(failing)}?accepts_incomplete=true`, provisionBody());
  const failedRun = await latestRunId(client, instanceWorkflowId(failing));
  await expectEnd(stack, instancePath(failing), op, 'failed');
  await capture(client, 'provision-failed', instanceWorkflowId(failing), failedRun, 'provision');
  op = await startOperation(stack, 'DELETE', `${instancePath(failing)}?accepts_incomplete=true&${deleteQuery()}`);
  await expectEnd(stack, instancePath(failing), op, 'gone');
}

/**
 * A DELETE while the provision is in the middle of a step: the stack's resource set waits for a ConfigMap to
 * become ready (`data.ready`, which nothing sets), as a real resource waits for a slow Deployment. The DELETE
 * signals the provision, which cancels the step, records its end and continues as a deprovision.
 */
async function captureInterruptedProvision(stack: TestStack): Promise<void> {
  const { client } = stack;
  const id = newId('replay-halt');
  const wf = instanceWorkflowId(id);
  await startOperation(stack, 'PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
  const provisionRun = await latestRunId(client, wf);
  await eventually('the provision to wait for the ConfigMap to become ready', async () => {
    const desc = await client.workflow.getHandle(wf, provisionRun).describe();
    return desc.raw.pendingActivities?.some((a) => a.activityType?.name === 'applyCreateChange' && a.state === 2 /* STARTED */) ? true : undefined;
  });
  const op = await startOperation(stack, 'DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
  await expectEnd(stack, instancePath(id), op, 'gone');
  await capture(client, 'provision-interrupted-by-delete', wf, provisionRun, 'provision');
  await capture(client, 'deprovision-after-interrupted-provision', wf, await latestRunId(client, wf), 'deprovision');
}

/**
 * Cancelled operations (docs/design/contracts/operations.md#cancellation-and-compensation): the stack's resource
 * set waits for a ConfigMap the script marks ready, so each cancellation reaches its operation at a known step.
 * A provision undoes what it created, an update reconciles back to the applied parameters (its undo waits for
 * readiness too, and is let through), a bind removes its etcd user. Cancelled as `brokerflow cancel` does it.
 */
async function captureCancellations(stack: TestStack): Promise<void> {
  const { client } = stack;
  const { core } = kube();
  const cli = await createCliContext(stack.config, () => connectClient(stack.config));
  const identity = 'history-capture (brokerflow CLI)';
  try {
    const cancel = async (ref: { instanceId: string; bindingId?: string }) => {
      const outcome = await cli.operations.requestCancel(ref, identity);
      assert.equal(outcome.kind, 'requested', JSON.stringify(outcome));
    };
    const id = newId('replay-cancel');
    const wf = instanceWorkflowId(id);
    let op = await startOperation(stack, 'PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 10 } }));
    let run = await latestRunId(client, wf);
    await waitingForReadiness(core, client, wf, id, 'applyCreateChange');
    await cancel({ instanceId: id });
    await expectEnd(stack, instancePath(id), op, 'failed');
    await capture(client, 'provision-cancelled', wf, run, 'provision');

    op = await startOperation(stack, 'PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 10 } }));
    await waitingForReadiness(core, client, wf, id, 'applyCreateChange');
    await markReady(core, id, true);
    await expectEnd(stack, instancePath(id), op, 'succeeded');
    await markReady(core, id, false);
    op = await startOperation(stack, 'PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 20 } });
    run = await latestRunId(client, wf);
    await waitingForReadiness(core, client, wf, id, 'applyUpdateChange', '20');
    await cancel({ instanceId: id });
    await waitingForReadiness(core, client, wf, id, 'applyUpdateChange', '10');
    await markReady(core, id, true);
    await expectEnd(stack, instancePath(id), op, 'failed');
    await capture(client, 'update-cancelled', wf, run, 'update');

    const bid = newId('replay-cancel-b');
    op = await startOperation(stack, 'PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN });
    run = await latestRunId(client, bindingWorkflowId(bid));
    await waitingForReadiness(core, client, bindingWorkflowId(bid), bid, 'applyCreateChange');
    await cancel({ instanceId: id, bindingId: bid });
    await expectEnd(stack, bindingPath(id, bid), op, 'failed');
    await capture(client, 'bind-cancelled', bindingWorkflowId(bid), run, 'bind');

    op = await startOperation(stack, 'DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    await expectEnd(stack, instancePath(id), op, 'gone');
  } finally {
    await cli.close();
  }
}

/**
 * Polling bounds (docs/design/contracts/operations.md#polling-bounds): a provision held at its ConfigMap's
 * readiness until its plan's maximum_polling_duration (5 s) stops it and it undoes what it created, and one that
 * the script lets through within its plan's bound (1 h), whose timer never fires.
 */
async function capturePollingBounds(stack: TestStack): Promise<void> {
  const { client } = stack;
  const { core } = kube();
  const stopped = newId('replay-bound');
  let wf = instanceWorkflowId(stopped);
  let op = await startOperation(stack, 'PUT', `${instancePath(stopped)}?accepts_incomplete=true`, provisionBody({ plan_id: BOUNDED_5S_PLAN, parameters: { quotaKeys: 10 } }));
  let run = await latestRunId(client, wf);
  await expectEnd(stack, instancePath(stopped), op, 'failed');
  await capture(client, 'provision-past-polling-bound', wf, run, 'provision');
  op = await startOperation(stack, 'DELETE', `${instancePath(stopped)}?accepts_incomplete=true&${deleteQuery(BOUNDED_5S_PLAN)}`);
  await expectEnd(stack, instancePath(stopped), op, 'gone');

  const within = newId('replay-bound-ok');
  wf = instanceWorkflowId(within);
  op = await startOperation(stack, 'PUT', `${instancePath(within)}?accepts_incomplete=true`, provisionBody({ plan_id: BOUNDED_1H_PLAN, parameters: { quotaKeys: 10 } }));
  run = await latestRunId(client, wf);
  await waitingForReadiness(core, client, wf, within, 'applyCreateChange');
  await markReady(core, within, true);
  await expectEnd(stack, instancePath(within), op, 'succeeded');
  await capture(client, 'provision-within-polling-bound', wf, run, 'provision');
  op = await startOperation(stack, 'DELETE', `${instancePath(within)}?accepts_incomplete=true&${deleteQuery(BOUNDED_1H_PLAN)}`);
  await expectEnd(stack, instancePath(within), op, 'gone');
}

/**
 * Credential lifecycle (docs/design/osb-semantics.md#credential-expiry): a bind on a plan with a credential policy
 * (it starts the binding's expiry workflow), an unbind that cancels that workflow, a rotation, and an expiry that
 * fires and revokes (TTL 4 s).
 */
async function captureCredentialLifecycle(stack: TestStack): Promise<void> {
  const { client } = stack;
  const timerOf = async (id: string, bid: string) => (await stack.worker.registry.registry.open('service-binding', bid, { instanceId: id })).get<string>('expiry-workflow-id')!;
  const password = async (id: string, bid: string) => ((await stack.osb('GET', bindingPath(id, bid))).json() as { credentials: { password: string } }).credentials.password;

  // A day's credentials, unbound before they expire: the unbind cancels the timer.
  const daily = newId('replay-rot');
  let op = await startOperation(stack, 'PUT', `${instancePath(daily)}?accepts_incomplete=true`, provisionBody({ plan_id: ROTATING_PLAN }));
  await expectEnd(stack, instancePath(daily), op, 'succeeded');
  const kept = newId('replay-rot-b');
  op = await startOperation(stack, 'PUT', `${bindingPath(daily, kept)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: ROTATING_PLAN });
  let run = await latestRunId(client, bindingWorkflowId(kept));
  await expectEnd(stack, bindingPath(daily, kept), op, 'succeeded');
  await capture(client, 'bind-with-expiry', bindingWorkflowId(kept), run, 'bind');
  secrets.add(await password(daily, kept));
  const dailyTimer = await timerOf(daily, kept);
  op = await startOperation(stack, 'DELETE', `${bindingPath(daily, kept)}?accepts_incomplete=true&${deleteQuery(ROTATING_PLAN)}`);
  run = await latestRunId(client, bindingWorkflowId(kept));
  await expectEnd(stack, bindingPath(daily, kept), op, 'gone');
  await capture(client, 'unbind-cancels-expiry', bindingWorkflowId(kept), run, 'unbind');
  await capture(client, 'binding-expiry-cancelled', dailyTimer, await latestRunId(client, dailyTimer), 'bindingExpiry');

  // Credentials of 4 s, rotated, then expired.
  const short = newId('replay-exp');
  op = await startOperation(stack, 'PUT', `${instancePath(short)}?accepts_incomplete=true`, provisionBody({ plan_id: ROTATING_SHORT_PLAN }));
  await expectEnd(stack, instancePath(short), op, 'succeeded');
  const old = newId('replay-exp-old');
  op = await startOperation(stack, 'PUT', `${bindingPath(short, old)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: ROTATING_SHORT_PLAN, parameters: { readOnly: true } });
  await expectEnd(stack, bindingPath(short, old), op, 'succeeded');
  secrets.add(await password(short, old));
  const next = newId('replay-exp-new');
  op = await startOperation(stack, 'PUT', `${bindingPath(short, next)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: ROTATING_SHORT_PLAN, predecessor_binding_id: old });
  run = await latestRunId(client, bindingWorkflowId(next));
  await expectEnd(stack, bindingPath(short, next), op, 'succeeded');
  await capture(client, 'bind-rotation', bindingWorkflowId(next), run, 'bind');
  secrets.add(await password(short, next));
  const oldTimer = await timerOf(short, old);
  await capture(client, 'binding-expiry', oldTimer, await latestRunId(client, oldTimer), 'bindingExpiry');
  const expired = await stack.osb('GET', bindingPath(short, old));
  assert.equal(expired.statusCode, 404, expired.body);
}

/** Endpoint reconciliation: the watcher, per-service workflows (local activity and activity), the resync. */
async function captureEndpoints(stack: TestStack): Promise<void> {
  const { client } = stack;
  const taskQueue = stack.config.temporal.taskQueue;
  const settings = stack.worker.deps.endpoints!.settings;
  const { core } = kube();
  // As the worker does at start-up (worker/main.ts): the watcher singleton and the resync schedule.
  const { watcherRunId, scheduleId } = await ensureEndpointSync(client, { taskQueue, settings });

  const ns = `bf-replay-${uid()}`;
  await core.createNamespace({ body: { metadata: { name: ns, labels: { [watchLabelKey(settings.policy.labelPrefix)]: 'enabled' } } } });
  await core.createNamespacedService({ namespace: ns, body: serviceBody('web', { annotations: { [`${allowed}/team`]: 'blue' }, ips: ['10.9.0.1'], ports: [80] }) });
  const webId = kubeServiceWorkflowId(settings.name, ns, 'web');
  const firstRun = await eventually('the watcher to start the per-service workflow', async () => (await client.workflow.getHandle(webId).describe().catch(() => undefined))?.runId);
  await capture(client, 'kube-service', webId, firstRun, 'kubeServiceWorkflow');
  // A burst of changes: signals that arrive while a reconcile runs wait for a quiet spell (debounce).
  for (const port of [81, 82, 83]) await patchService(core, ns, 'web', { ports: [port] });
  const burstRun = await eventually('a new run for the burst', async () => {
    const runId = await latestRunId(client, webId);
    return runId !== firstRun ? runId : undefined;
  });
  await capture(client, 'kube-service-burst', webId, burstRun, 'kubeServiceWorkflow');

  // A service reconciled in a regular activity (the setting for slow registries), signalled with the
  // watcher's own helper: it sits in a namespace that is not watched, so the reconcile removes it. Signals
  // that arrive while the activity runs wait for a quiet spell (the debounce timer) and one more reconcile.
  const quietNs = `bf-replay-${uid()}`;
  await core.createNamespace({ body: { metadata: { name: quietNs } } });
  await core.createNamespacedService({ namespace: quietNs, body: serviceBody('api', { annotations: { [`${allowed}/x`]: '1' }, ips: ['10.9.0.2'] }) });
  for (let i = 0; i < 5; i++) {
    await signalKubeService(client, taskQueue, { ...settings, reconcileIn: 'activity' }, { namespace: quietNs, service: 'api' }, 'resync');
    await new Promise((r) => setTimeout(r, 40));
  }
  const apiId = kubeServiceWorkflowId(settings.name, quietNs, 'api');
  await capture(client, 'kube-service-activity', apiId, await latestRunId(client, apiId), 'kubeServiceWorkflow');

  // The scheduled resync, triggered now instead of waiting for the interval.
  const schedule = client.schedule.getHandle(scheduleId);
  await schedule.trigger();
  const resync = await eventually('the schedule to start a resync', async () => (await schedule.describe()).info.recentActions[0]?.action.workflow);
  await capture(client, 'endpoint-resync', resync.workflowId, resync.firstExecutionRunId, 'endpointResyncWorkflow');

  // Stopping the mirror cancels the watcher (it waits for the watch activity to acknowledge).
  await stopEndpointSync(client, settings.name);
  await capture(client, 'endpoint-watcher', endpointWatcherWorkflowId(settings.name), watcherRunId, 'endpointWatcherWorkflow');
  await Promise.allSettled([core.deleteNamespace({ name: ns }), core.deleteNamespace({ name: quietNs })]);
}

/** `brokerflow doctor`'s probe, and a standalone reconcile as an operator would start one. */
async function captureTools(stack: TestStack): Promise<void> {
  const { client } = stack;
  const cli = await createCliContext(stack.config, () => connectClient(stack.config));
  try {
    const checks = await cli.doctor(30_000);
    assert.ok(checks.every((c) => c.ok), JSON.stringify(checks));
  } finally {
    await cli.close();
  }
  const probe = await eventually('the probe run to be listed', async () => {
    for await (const w of client.workflow.list({ query: `WorkflowType = 'probeWorkflow' AND TaskQueue = '${stack.config.temporal.taskQueue}'` })) return w;
    return undefined;
  });
  await capture(client, 'probe', probe.workflowId, probe.runId, 'probeWorkflow');

  const instanceId = newId('replay-rec');
  const operationId = `op-${instanceId}`;
  const handle = await client.workflow.start<typeof reconcileWorkflow>('reconcileWorkflow', {
    taskQueue: stack.config.temporal.taskQueue,
    workflowId: `reconcile/${instanceId}`,
    args: [
      {
        resources: [{ name: 'keyspace', driver: 'etcd-prefix', spec: { prefix: '/tenants/${instance.id}' } }],
        mode: 'update',
        object: { operationId, instanceId, serviceId: SERVICE, planId: PLAN },
        template: { instance: { id: instanceId, serviceId: SERVICE, planId: PLAN, parameters: {}, context: {} }, operation: { id: operationId, type: 'provision' }, owner: null },
      },
    ],
  });
  await capture(client, 'reconcile', handle.workflowId, handle.firstExecutionRunId, 'reconcileWorkflow');
}

/**
 * A fleet upgrade (`brokerflow upgrade`) of a plan of its own: three instances provisioned at 1.0.0, served at 2.0.0,
 * one of them busy with a PATCH when its turn comes (asked again after a durable timer), paused and resumed, inside
 * an always-open window.
 */
async function captureFleetUpgrade(workDir: string, encryption: typeof replayTestEncryption, stacks: TestStack[]): Promise<void> {
  const dir = mkdtempSync(join(workDir, 'fleet-'));
  const plan = newFleetPlan('replay');
  const taskQueue = `replay-fleet-${Date.now()}`;
  const overrides = (version: string) => {
    const files = writeFleetCatalog(dir, plan, version);
    return {
      catalog: files.catalog,
      resourceSets: files.resourceSets,
      encryption,
      temporal: { address: requireTestEnv('temporalAddress'), namespace: 'default', taskQueue },
      registry: { backend: 'file' as const, file: { dirs: [join(dir, 'registry')] } },
    };
  };
  const ids = [0, 1, 2].map((i) => newId(`replay-fleet${i}`));
  const old = await startTestStack({ overrides: overrides('1.0.0') });
  try {
    for (const id of ids) {
      const op = await startOperation(old, 'PUT', `${instancePath(id)}?accepts_incomplete=true`, { service_id: plan.serviceId, plan_id: plan.planId, ...ORG_SPACE });
      await expectEnd(old, instancePath(id), op, 'succeeded');
    }
  } finally {
    await old.close();
  }
  const stack = await startTestStack({ overrides: overrides('2.0.0') });
  stacks.push(stack);
  // The first instance is busy with a parameters update when the upgrade reaches it.
  const busyOp = await startOperation(stack, 'PATCH', `${instancePath(ids[0]!)}?accepts_incomplete=true`, { service_id: plan.serviceId, parameters: { quotaKeys: 7 } });
  const input: FleetUpgradeInput = {
    serviceId: plan.serviceId,
    planId: plan.planId,
    targetVersion: '2.0.0',
    maxInFlight: 2,
    window: parseMaintenanceWindow('daily 00:00-24:00 UTC'),
    busyRetrySeconds: 1,
    requestedBy: 'replay capture',
  };
  const handle = await stack.client.workflow.start(FLEET_UPGRADE_WORKFLOW, { taskQueue, workflowId: fleetUpgradeWorkflowId(plan.planId), args: [input] });
  await handle.signal(fleetPauseSignal, { by: 'replay capture' });
  await handle.signal(fleetResumeSignal, { by: 'replay capture' });
  await expectEnd(stack, instancePath(ids[0]!), busyOp, 'succeeded');
  await capture(stack.client, 'fleet-upgrade', handle.workflowId, handle.firstExecutionRunId, FLEET_UPGRADE_WORKFLOW);
  const result = (await handle.result()) as { phase: string; upgraded: number };
  assert.equal(result.phase, 'succeeded', JSON.stringify(result));
  assert.equal(result.upgraded, ids.length);
}

/** The resource set of the stack whose provisions wait: the OSB one, with a ConfigMap that never gets ready. */
function waitingResourceSets(dir: string): string {
  const file = join(dir, 'resource-sets.waiting.yaml');
  writeFileSync(
    file,
    `resourceSets:
  - name: etcd-keyspace
    maintenanceVersions: ["1.0.0"]
    instance:
      - name: settings
        driver: kubernetes
        spec:
          manifest:
            apiVersion: v1
            kind: ConfigMap
            metadata: { name: "bf-\${instance.id}", namespace: default }
            data: { quotaKeys: "1000" }
          readiness: { jsonPath: data.ready, timeoutSeconds: 600 }
      - name: keyspace
        driver: etcd-prefix
        spec:
          prefix: /tenants/\${instance.id}
    binding: []
  # The example catalog's registered plan needs a set of this name (as in test/support/fixtures); nothing here uses it.
  - name: etcd-keyspace-registered
    maintenanceVersions: ["1.0.0"]
    instance:
      - name: keyspace
        driver: etcd-prefix
        spec:
          prefix: /tenants/\${instance.id}
    binding: []
`,
  );
  return file;
}

/** Fails when a history holds a payload in clear or one of this run's secrets. */
function checkNoSecrets(name: string, json: string): void {
  const clear = unencryptedPayloads(JSON.parse(json));
  assert.deepEqual(clear, [], `${name}: payloads not encrypted`);
  for (const s of secrets) {
    assert.ok(!json.includes(s) && !json.includes(Buffer.from(s).toString('base64')), `${name}: holds a secret of the run in clear`);
  }
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const onlyArg = process.argv.indexOf('--only');
  const only = onlyArg >= 0 ? new Set((process.argv[onlyArg + 1] ?? '').split(',').filter(Boolean)) : undefined;
  if (only && only.size === 0) throw new Error('--only needs the names of the histories to capture, e.g. --only fleet-upgrade');
  const workDir = mkdtempSync(join(tmpdir(), 'brokerflow-replay-capture-'));
  console.log(`# capture work dir: ${workDir} (server logs in ${join(workDir, 'logs')})`);
  let servers: BenchStack | undefined;
  const stacks: TestStack[] = [];
  let ok = false;
  try {
    servers = await startBenchStack(workDir);
    Object.assign(process.env, servers.env);
    console.log(`# servers ready in ${Date.now() - t0} ms`);
    secrets.add(requireTestEnv('tenantEtcdRootPassword'));
    secrets.add(testBrokerUser.password);
    const encryption = replayTestEncryption;
    if (only) {
      // Only what is asked for, beside the committed histories (which stay as they are).
      if (only.has('fleet-upgrade')) await captureFleetUpgrade(workDir, encryption, stacks);
      const missing = [...only].filter((n) => !captured.has(n));
      assert.deepEqual(missing, [], `--only names histories no scenario captures in this mode (fleet-upgrade only)`);
      for (const [name, json] of captured) checkNoSecrets(name, json);
      for (const [name, json] of captured) writeFileSync(join(historiesDir, `${name}.json`), `${json}\n`);
      console.log(`# wrote ${[...captured.keys()].join(', ')} to ${historiesDir} in ${Math.round((Date.now() - t0) / 1000)} s`);
      ok = true;
      return;
    }
    const osbStack = await startTestStack({ overrides: { resourceSets: osbResourceSets, encryption, endpoints: testEndpointConfig({ debounceMs: 300 }) } });
    stacks.push(osbStack);
    const waiting = await startTestStack({ overrides: { resourceSets: waitingResourceSets(workDir), encryption } });
    stacks.push(waiting);

    const cancelling = await startTestStack({ overrides: { resourceSets: cancelResourceSets, encryption } });
    stacks.push(cancelling);
    const bounded = await startTestStack({ overrides: { catalog: pollingCatalog, resourceSets: cancelResourceSets, encryption } });
    stacks.push(bounded);
    const rotating = await startTestStack({ overrides: { catalog: rotationCatalog, resourceSets: osbResourceSets, encryption } });
    stacks.push(rotating);

    await captureOperations(osbStack);
    await captureInterruptedProvision(waiting);
    await captureCancellations(cancelling);
    await capturePollingBounds(bounded);
    await captureCredentialLifecycle(rotating);
    await captureEndpoints(osbStack);
    await captureTools(osbStack);
    await captureFleetUpgrade(workDir, encryption, stacks);

    // Every exported workflow type has at least one history (the replay test checks the same).
    const types = new Set([...captured.values()].map((j) => historyWorkflowType(JSON.parse(j) as { events: Array<Record<string, unknown>> })));
    const missing = Object.keys(workflows).filter((t) => !types.has(t));
    assert.deepEqual(missing, [], 'workflow types without a captured history: add a scenario to scripts/capture-histories.ts');
    // Staged first (kept with the work dir when a check fails); the committed set is replaced only at the end.
    const staging = mkdtempSync(join(workDir, 'histories-'));
    for (const [name, json] of captured) writeFileSync(join(staging, `${name}.json`), `${json}\n`);
    for (const [name, json] of captured) checkNoSecrets(name, json);

    mkdirSync(historiesDir, { recursive: true });
    for (const f of readdirSync(historiesDir)) if (f.endsWith('.json')) rmSync(join(historiesDir, f));
    for (const f of readdirSync(staging)) copyFileSync(join(staging, f), join(historiesDir, f));
    assert.equal(loadHistories().filter((h) => !h.name.startsWith('kept/')).length, captured.size);
    console.log(`# wrote ${captured.size} histories to ${historiesDir} in ${Math.round((Date.now() - t0) / 1000)} s`);
    ok = true;
  } finally {
    await Promise.allSettled(stacks.map((s) => s.close()));
    await servers?.stop();
    if (ok) rmSync(workDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(`\ncapture failed: ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
