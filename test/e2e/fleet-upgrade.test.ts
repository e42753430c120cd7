// `brokerflow upgrade --plan <id>` over the CLI and what platforms see over HTTP, against the test run's servers: a
// plan of this file's own (test/support/fleet.ts) whose instances were provisioned at maintenance version 1.0.0 is
// served with a catalog at 2.0.0, as after an operator shipped a release. A dry run lists every instance's change
// and touches nothing; the upgrade (N at a time, paused and resumed, a second start refused, an instance busy with
// a platform's PATCH asked again later) brings every instance to 2.0.0 through ordinary OSB updates, which
// last_operation, GET instance and the audit trail report as usual. Beside the real keyspace, the plan has a
// resource of a test driver in this file's worker (`switch`), which can hold a parameters update.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import { Etcd3 } from 'etcd3';
import { startTestStack, pollLastOperation, type TestStack } from '../support/stack';
import { requireTestEnv } from '../support/env';
import { instancePath, ORG_SPACE } from '../support/osb';
import { cliRunner, EXIT, type Json } from '../support/cli';
import { newFleetPlan, writeFleetCatalog } from '../support/fleet';
import type { RuntimeConfigFile } from '../../config/runtime';
import { fleetProgressQuery, fleetUpgradeWorkflowId, type FleetProgress, type FleetStepStart } from '../../workflows/fleet-messages';
import type { ResourceState } from '../../domain/reconcile';
import type { DriverContext, ResourceDriver } from '../../adapters/resources/types';
import { TraceDriver } from '../support/trace-driver';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createFleetActivities } from '../../activities/fleet';
import { deferred } from '../support/deferred';

/** A trace driver whose updates can be held: while armed, an applyUpdateChange waits until released. */
class HoldingDriver extends TraceDriver {
  private held: { entered: (id: string) => void; released: Promise<void> } | undefined;

  arm(): { entered: Promise<string>; release: () => void } {
    const entered = deferred<string>();
    const released = deferred();
    this.held = { entered: entered.resolve, released: released.promise };
    return {
      entered: entered.promise,
      release: () => {
        this.held = undefined;
        released.resolve();
      },
    };
  }

  override async applyUpdateChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    const held = this.held;
    if (held) {
      held.entered(ctx.object.instanceId);
      await held.released;
    }
    return super.applyUpdateChange(state, ctx);
  }
}
const holding = new HoldingDriver();
const drivers = () => new Map<string, ResourceDriver>([['holding', holding]]);
const switchResource = {
  name: 'switch',
  driver: 'holding',
  spec: { id: '${instance.id}', desired: { quotaKeys: { $if: "'quotaKeys' in instance.parameters", then: { $eval: 'instance.parameters.quotaKeys' }, else: 1000 } } },
};

const INSTANCES = 8;
const tag = `fl${randomBytes(4).toString('hex')}`;
const ids = Array.from({ length: INSTANCES }, (_, i) => `${tag}-${i}`);
/** An instance of the plan the first test upgrades with the fleet's own step activity, retried. */
const stepped = `${tag}-step`;
const plan = newFleetPlan(tag);
const taskQueue = `tq-fleet-${randomBytes(5).toString('hex')}`;

let stack: TestStack;
let tenant: Etcd3;
before(async () => {
  const dir = mkdtempSync(join(requireTestEnv('workDir'), 'fleet-e2e-'));
  const config = (catalog: { catalog: string; resourceSets: string }): Partial<RuntimeConfigFile> => ({
    catalog: catalog.catalog,
    resourceSets: catalog.resourceSets,
    temporal: { address: requireTestEnv('temporalAddress'), namespace: 'default', taskQueue },
    registry: { backend: 'file', file: { dirs: [join(dir, 'registry')] } },
  });
  tenant = new Etcd3({ hosts: requireTestEnv('tenantEtcdEndpoint'), auth: { username: 'root', password: requireTestEnv('tenantEtcdRootPassword') } });
  // The instances are provisioned by a broker whose catalog has the plan at 1.0.0 ...
  const old = await startTestStack({ overrides: config(writeFleetCatalog(dir, plan, '1.0.0', [switchResource])), extraDrivers: drivers() });
  try {
    await Promise.all(
      [...ids, stepped].map(async (id) => {
        const res = await old.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, { service_id: plan.serviceId, plan_id: plan.planId, ...ORG_SPACE });
        assert.equal(res.statusCode, 202, res.body);
        const done = await pollLastOperation(old, instancePath(id), res.json().operation as string);
        assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));
      }),
    );
  } finally {
    await old.close();
  }
  // ... and served from now on by one whose catalog has it at 2.0.0 (same registry and task queue).
  stack = await startTestStack({ overrides: config(writeFleetCatalog(dir, plan, '2.0.0', [switchResource])), extraDrivers: drivers() });
});
after(async () => {
  await stack?.close();
  for (const id of [...ids, stepped]) await tenant.delete().prefix(`/tenants/${id}`).catch(() => undefined);
  tenant?.close();
});

const { cli, startCli } = cliRunner(() => stack.configFile);

/** The maintenance version GET instance reports (what a platform reads). */
async function versionOf(id: string): Promise<string | undefined> {
  const res = await stack.osb('GET', instancePath(id));
  assert.equal(res.statusCode, 200, res.body);
  return (res.json().maintenance_info as { version?: string } | undefined)?.version;
}

async function fleetWorkflowExists(): Promise<boolean> {
  try {
    await stack.client.workflow.getHandle(fleetUpgradeWorkflowId(plan.planId)).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

test('a fleet step retried after it started an update joins that update and never starts another', async () => {
  // The step activity as a worker runs it, twice for one step: as when its worker died after the update started.
  const env = new MockActivityEnvironment({ taskQueue }, { client: stack.client });
  const acts = createFleetActivities({ registry: stack.worker.registry.registry, catalog: stack.config.catalogData });
  const step = { instanceId: stepped, serviceId: plan.serviceId, planId: plan.planId, targetVersion: '2.0.0', stepKey: `${plan.planId}@test-step` };
  const first = (await env.run(acts.startFleetUpdate, step)) as FleetStepStart;
  assert.equal(first.kind, 'started');
  const operationId = (first as { operationId: string }).operationId;
  assert.deepEqual(await env.run(acts.startFleetUpdate, step), { kind: 'joined', operationId });
  assert.deepEqual(await env.run(acts.awaitFleetUpdate, { instanceId: stepped, operationId }), { state: 'succeeded' });
  // Even once the update has ended, the same step finds it rather than counting the instance as current.
  assert.deepEqual(await env.run(acts.startFleetUpdate, step), { kind: 'joined', operationId });
  // Another step (another upgrade) finds the instance current, and nothing runs.
  assert.deepEqual(await env.run(acts.startFleetUpdate, { ...step, stepKey: `${plan.planId}@another` }), { kind: 'current' });
  assert.equal(await versionOf(stepped), '2.0.0');
  const updates = (await stack.worker.registry.registry.audit.read(stepped))!.filter((r) => r.operation === 'update');
  assert.deepEqual(
    updates.map((r) => [r.operationId, r.requestedBy, r.outcome?.state]),
    [[operationId, `brokerflow-fleet/${plan.planId}@test-step`, 'succeeded']],
  );
});

test('a dry run lists each instance that would change, from its version to the target, and changes nothing', async () => {
  const run = await cli(['upgrade', '--plan', plan.planId, '--dry-run']);
  assert.equal(run.code, EXIT.ok, run.stderr);
  assert.equal(run.json.dryRun, true);
  assert.equal(run.json.targetVersion, '2.0.0');
  assert.deepEqual(run.json.changes, ids.map((instanceId) => ({ instanceId, from: '1.0.0', to: '2.0.0' })).sort((a, b) => (a.instanceId < b.instanceId ? -1 : 1)));
  assert.deepEqual(run.json.current, [stepped]);
  const human = await cli(['upgrade', '--plan', plan.planName, '--dry-run'], { json: false });
  assert.equal(human.code, EXIT.ok, human.stderr);
  assert.match(human.stdout, new RegExp(`${INSTANCES} to update, 1 already current, 0 skipped; nothing was changed`));
  assert.match(human.stdout, new RegExp(`${ids[0]}: 1\\.0\\.0 -> 2\\.0\\.0`));
  for (const id of ids) assert.equal(await versionOf(id), '1.0.0', `${id} is untouched`);
  assert.equal(await fleetWorkflowExists(), false, 'no fleet upgrade started');
  const history = await cli(['history', ids[0]!]);
  assert.deepEqual((history.json.items as Json[]).map((i) => i.operation), ['provision'], 'no update ran');
});

test('bad options are refused with exit 2 and say what is wrong, starting nothing', async () => {
  const window = await cli(['upgrade', '--plan', plan.planId, '--window', 'Mon-Fri 22:00-04:00 CET']);
  assert.equal(window.code, EXIT.usage);
  assert.match(String(window.json.error), /windows are written in UTC/);
  const inFlight = await cli(['upgrade', '--plan', plan.planId, '--max-in-flight', '0']);
  assert.equal(inFlight.code, EXIT.usage);
  assert.match(String(inFlight.json.error), /--max-in-flight must be a whole number of at least 1/);
  const unknown = await cli(['upgrade', '--plan', 'no-such-plan']);
  assert.equal(unknown.code, EXIT.usage);
  const nothing = await cli(['upgrade', 'pause', '--plan', plan.planId]);
  assert.equal(nothing.code, EXIT.notFound);
  assert.match(String(nothing.json.error), /no fleet upgrade of plan .* is running: nothing to pause/);
  assert.equal(await fleetWorkflowExists(), false);
});

test('the upgrade brings every instance to the new version N at a time, through ordinary updates platforms see', async () => {
  // A platform's parameters update holds the first instance when the upgrade starts.
  const busy = ids[0]!;
  const gate = holding.arm();
  const patch = await stack.osb('PATCH', `${instancePath(busy)}?accepts_incomplete=true`, { service_id: plan.serviceId, parameters: { quotaKeys: 7 } });
  assert.equal(patch.statusCode, 202, patch.body);
  assert.equal(await gate.entered, busy);

  const started = await cli(['upgrade', '--plan', plan.planId, '--max-in-flight', '3', '--busy-retry-seconds', '2']);
  assert.equal(started.code, EXIT.ok, started.stderr);
  assert.equal(started.json.workflowId, `fleet-upgrade/${plan.planId}`);
  // A second start while it runs is refused, saying so.
  const again = await cli(['upgrade', '--plan', plan.planId, '--max-in-flight', '3']);
  assert.equal(again.code, EXIT.conflict);
  assert.match(String(again.json.error), /a fleet upgrade of plan .* is already running/);
  // The busy instance waits (asked again every 2 s), the others go on.
  const handle = stack.client.workflow.getHandle(fleetUpgradeWorkflowId(plan.planId));
  for (let i = 0; ; i++) {
    const p = await handle.query(fleetProgressQuery);
    if (p.waiting === 1 && p.done === INSTANCES) break;
    assert.ok(i < 600, `the busy instance waiting while the others are done: ${JSON.stringify(p)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // Paused: nothing new starts, and the upgrade stays open.
  const paused = await cli(['upgrade', 'pause', '--plan', plan.planId]);
  assert.equal(paused.code, EXIT.ok, paused.stderr);
  const status = await cli(['upgrade', 'status', '--plan', plan.planId]);
  assert.equal(status.code, EXIT.ok);
  assert.equal(status.json.paused, true);
  assert.equal(status.json.total, INSTANCES + 1);
  assert.equal(status.json.waiting, 1);
  // What the Web UI shows: the run found by its search attributes, with its progress as current details.
  // (Visibility is eventually consistent: it is asked until it lists the run.)
  let listed: string[] = [];
  for (let i = 0; i < 40 && listed.length === 0; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 250));
    listed = [];
    for await (const w of stack.client.workflow.list({ query: `OperationType = 'fleet-upgrade' AND PlanId = '${plan.planId}'` })) listed.push(w.workflowId);
  }
  assert.deepEqual(listed, [`fleet-upgrade/${plan.planId}`]);
  const metadata = (await handle.query('__temporal_workflow_metadata')) as { currentDetails?: string };
  assert.match(metadata.currentDetails ?? '', new RegExp(`\\*\\*paused\\*\\*: ${INSTANCES}/${INSTANCES + 1} done .*1 waiting \\(busy\\)`));

  // The platform's update ends; resumed, the upgrade asks again and upgrades the instance too.
  gate.release();
  const patched = await pollLastOperation(stack, instancePath(busy), patch.json().operation as string);
  assert.equal(patched.body.state, 'succeeded');
  const watch = startCli(['upgrade', 'resume', '--plan', plan.planId, '--watch']);
  const run = await watch.done;
  assert.equal(run.code, EXIT.ok, run.stderr + run.stdout);
  const progress = run.lines.slice(1) as unknown as FleetProgress[];
  const last = progress[progress.length - 1]!;
  assert.equal(last.phase, 'succeeded');
  assert.deepEqual({ total: last.total, done: last.done, upgraded: last.upgraded, failed: last.failed, waiting: last.waiting, remaining: last.remaining }, {
    total: INSTANCES + 1,
    done: INSTANCES + 1,
    upgraded: INSTANCES,
    failed: 0,
    waiting: 0,
    remaining: 0,
  });
  assert.ok(progress.every((p) => p.inFlight.length <= 3), 'never more than 3 updates in flight');

  const spans: Array<[number, number]> = [];
  for (const id of ids) {
    assert.equal(await versionOf(id), '2.0.0', `${id} is at the new version`);
    const lastOp = await stack.osb('GET', `${instancePath(id)}/last_operation`);
    assert.equal(lastOp.statusCode, 200);
    assert.equal(lastOp.json().state, 'succeeded');
    const history = await cli(['history', id]);
    const updates = (history.json.items as Json[]).filter((i) => i.operation === 'update');
    const byFleet = updates.filter((u) => String(u.requestedBy).startsWith(`brokerflow-fleet/${plan.planId}@`));
    assert.equal(byFleet.length, 1, `${id}: one update by the fleet`);
    assert.equal(updates.length, id === busy ? 2 : 1, `${id}: updates`);
    const trail = (await stack.worker.registry.registry.audit.read(id))!.find((r) => r.operation === 'update' && r.origin?.platform === 'brokerflow-fleet')!;
    assert.deepEqual(trail.changes.maintenanceVersion, { from: '1.0.0', to: '2.0.0' });
    spans.push([Date.parse(trail.acceptedAt), Date.parse(trail.outcome!.completedAt)]);
  }
  // The busy instance kept the platform's parameters.
  assert.equal(((await stack.osb('GET', instancePath(busy))).json().parameters as Json).quotaKeys, 7);
  // Each update was accepted only after the one it waited for had recorded its end: at most 3 overlap.
  const overlap = Math.max(...spans.map(([start]) => spans.filter(([s, e]) => s <= start && start < e).length));
  assert.ok(overlap <= 3, `at most 3 updates ran at once (${overlap})`);
});

test('an upgrade of a plan whose instances are all current changes nothing and ends at once', async () => {
  const run = await cli(['upgrade', '--plan', plan.planId, '--watch']);
  assert.equal(run.code, EXIT.ok, run.stderr);
  const last = run.json as unknown as FleetProgress;
  assert.equal(last.phase, 'succeeded');
  assert.deepEqual({ done: last.done, upgraded: last.upgraded, current: last.current }, { done: INSTANCES + 1, upgraded: 0, current: INSTANCES + 1 });
  for (const id of ids) {
    const history = await cli(['history', id]);
    const byFleet = (history.json.items as Json[]).filter((i) => i.operation === 'update' && String(i.requestedBy).startsWith('brokerflow-fleet/'));
    assert.equal(byFleet.length, 1, `${id}: still one update by a fleet upgrade`);
  }
});
