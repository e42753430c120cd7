// The story of a fleet upgrade (workflows/fleet.ts), run by a real worker on Temporal's time-skipping test server
// with stub fleet activities: a fake plan of instances whose updates the test can hold, fail or keep busy. Each
// test asserts what an operator sees (the progress query, the workflow's result) and what the instances went
// through (one update each, started only when allowed). Durable waits (the window, busy instances asked again
// later) are skipped by the test server, so the file runs in seconds.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import type { FleetActivities } from '../../activities/fleet';
import { parseMaintenanceWindow, planFleetUpgrade } from '../../domain/fleet';
import {
  FLEET_UPGRADE_WORKFLOW,
  fleetAbortSignal,
  fleetPauseSignal,
  fleetProgressQuery,
  fleetResumeSignal,
  fleetUpgradeWorkflowId,
  type FleetProgress,
  type FleetResult,
  type FleetStepInput,
  type FleetStepStart,
  type FleetUpgradeInput,
} from '../../workflows/fleet-messages';
import { deferred } from '../support/deferred';
import { startTestEnv, workflowBundle } from './testbed';

const TARGET = '2.0.0';

/** A plan of fake instances: what the fleet's activities see and do, per scenario. */
class FakeFleet {
  readonly versions = new Map<string, string>();
  /** Update starts per instance (a busy answer is no start). */
  readonly updates = new Map<string, number>();
  /** Server time (skipped) at which each update was asked for, per instance. */
  readonly askedAt = new Map<string, number[]>();
  /** Instances answering busy for their first n asks. */
  readonly busyFor = new Map<string, number>();
  readonly failing = new Set<string>();
  /** While set, updates wait for it before they end. */
  hold: Promise<void> | undefined;
  inFlight = 0;
  maxSeenInFlight = 0;

  constructor(readonly planId: string, count: number) {
    for (let i = 0; i < count; i++) this.versions.set(`${planId}.i${String(i).padStart(2, '0')}`, '1.0.0');
  }

  ids(): string[] {
    return [...this.versions.keys()];
  }

  activities(): FleetActivities {
    return {
      fleetInstances: async (ref) => {
        const p = planFleetUpgrade([...this.versions].map(([instanceId, v]) => ({ instanceId, maintenanceVersion: v, provisioned: true })), ref.targetVersion);
        return { changes: p.changes, current: p.current, skipped: p.skipped };
      },
      startFleetUpdate: async (input: FleetStepInput): Promise<FleetStepStart> => {
        const asked = this.askedAt.get(input.instanceId) ?? [];
        asked.push(Context.current().info.currentAttemptScheduledTimestampMs);
        this.askedAt.set(input.instanceId, asked);
        const busy = this.busyFor.get(input.instanceId) ?? 0;
        if (asked.length <= busy) return { kind: 'busy', reason: 'another operation (update) is in progress on the instance' };
        this.updates.set(input.instanceId, (this.updates.get(input.instanceId) ?? 0) + 1);
        this.inFlight++;
        this.maxSeenInFlight = Math.max(this.maxSeenInFlight, this.inFlight);
        return { kind: 'started', operationId: `update-${input.instanceId}` };
      },
      awaitFleetUpdate: async (ref) => {
        const hold = this.hold;
        if (hold) {
          // Beats while held, as the real wait does, so no heartbeat timeout fires.
          const beat = setInterval(() => Context.current().heartbeat(), 50);
          await hold.finally(() => clearInterval(beat));
        }
        this.inFlight--;
        if (this.failing.has(ref.instanceId)) return { state: 'failed', description: `keyspace: applyUpdateChange failed for ${ref.instanceId}` };
        this.versions.set(ref.instanceId, TARGET);
        return { state: 'succeeded' };
      },
    };
  }
}

let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
const taskQueue = `fleet-tests-${randomUUID()}`;
const fleets = new Map<string, FakeFleet>();

/** Routes each activity call to the fleet of the calling workflow (`fleet-upgrade/<plan>`). */
function fleetOfCaller(): FakeFleet {
  const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
  const fleet = fleets.get(workflowId.slice('fleet-upgrade/'.length));
  if (!fleet) throw ApplicationFailure.nonRetryable(`no fleet for ${workflowId}`, 'Invalid');
  return fleet;
}

before(async () => {
  const [e, bundle] = await Promise.all([startTestEnv(), workflowBundle()]);
  env = e;
  const route = <K extends keyof FleetActivities>(name: K) => ((input: never) => (fleetOfCaller().activities()[name] as (i: never) => unknown)(input)) as FleetActivities[K];
  worker = await Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    workflowBundle: bundle,
    activities: { fleetInstances: route('fleetInstances'), startFleetUpdate: route('startFleetUpdate'), awaitFleetUpdate: route('awaitFleetUpdate') },
    sinks: { reconcileMetrics: { event: { fn: () => undefined, callDuringReplay: false } } },
    maxHeartbeatThrottleInterval: 0,
    defaultHeartbeatThrottleInterval: 0,
  });
  running = worker.run();
});
after(async () => {
  if (worker?.getState() === 'RUNNING') worker.shutdown();
  await running?.catch(() => undefined);
  await env?.teardown();
});

let next = 0;
function newFleet(count: number): FakeFleet {
  const fleet = new FakeFleet(`plan${++next}`, count);
  fleets.set(fleet.planId, fleet);
  return fleet;
}

async function startUpgrade(fleet: FakeFleet, over: Partial<FleetUpgradeInput> = {}): Promise<WorkflowHandle> {
  return env.client.workflow.start(FLEET_UPGRADE_WORKFLOW, {
    taskQueue,
    workflowId: fleetUpgradeWorkflowId(fleet.planId),
    args: [{ serviceId: 'svc', planId: fleet.planId, targetVersion: TARGET, maxInFlight: 2, ...over } satisfies FleetUpgradeInput],
  });
}

/** Asks the query until `ok` holds (the workflow moves on its own; this only waits to look). */
async function progressWhen(handle: WorkflowHandle, ok: (p: FleetProgress) => boolean, what: string): Promise<FleetProgress> {
  for (let i = 0; i < 400; i++) {
    const p = await handle.query(fleetProgressQuery);
    if (ok(p)) return p;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the fleet upgrade never reached: ${what} (last: ${JSON.stringify(await handle.query(fleetProgressQuery))})`);
}

const everyOnce = (fleet: FakeFleet) => assert.deepEqual([...fleet.updates.values()].filter((n) => n !== 1), [], 'each instance updated exactly once');

test('every instance of the plan is upgraded, at most N at a time, once each', async () => {
  const fleet = newFleet(7);
  fleet.versions.set(`${fleet.planId}.i06`, TARGET);
  const result = (await (await startUpgrade(fleet, { maxInFlight: 3 })).result()) as FleetResult;
  assert.equal(result.phase, 'succeeded');
  assert.deepEqual({ total: result.total, done: result.done, upgraded: result.upgraded, current: result.current, failed: result.failed, remaining: result.remaining, waiting: result.waiting }, {
    total: 7,
    done: 7,
    upgraded: 6,
    current: 1,
    failed: 0,
    remaining: 0,
    waiting: 0,
  });
  assert.ok(fleet.maxSeenInFlight <= 3, `at most 3 updates ran at a time (${fleet.maxSeenInFlight})`);
  assert.deepEqual([...fleet.versions.values()].filter((v) => v !== TARGET), []);
  everyOnce(fleet);
  assert.equal(fleet.updates.size, 6, 'the instance already at the target is not updated');
});

test('outside its window the upgrade waits on a durable timer and starts updates only once the window opens', async () => {
  const fleet = newFleet(3);
  const now = await env.currentTimeMs();
  // A window of one hour opening three hours from now (every day, so the test runs on any date).
  const opens = new Date(now + 3 * 3600_000);
  const hhmm = (d: Date) => `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
  const window = parseMaintenanceWindow(`daily ${hhmm(opens)}-${hhmm(new Date(opens.getTime() + 3600_000))} UTC`);
  const handle = await startUpgrade(fleet, { window });
  const waiting = await progressWhen(handle, (p) => p.phase === 'waiting-for-window', 'waiting for the window');
  assert.equal(waiting.remaining, 3);
  assert.ok(waiting.windowOpensAt !== undefined && waiting.windowOpensAt > now, 'says when the window opens');
  assert.equal(fleet.updates.size, 0, 'nothing is updated outside the window');
  const result = (await handle.result()) as FleetResult;
  assert.equal(result.phase, 'succeeded');
  assert.equal(result.upgraded, 3);
  const firstAsk = Math.min(...[...fleet.askedAt.values()].flat());
  assert.ok(firstAsk >= waiting.windowOpensAt!, `the first update was asked for when the window had opened (${new Date(firstAsk).toISOString()} ≥ ${new Date(waiting.windowOpensAt!).toISOString()})`);
  everyOnce(fleet);
});

test('a paused upgrade lets the running updates finish and starts no other until it is resumed', async () => {
  const fleet = newFleet(5);
  const held = deferred();
  fleet.hold = held.promise;
  const handle = await startUpgrade(fleet, { maxInFlight: 2 });
  await progressWhen(handle, (p) => p.inFlight.length === 2, 'two updates in flight');
  await handle.signal(fleetPauseSignal, { by: 'tester' });
  await progressWhen(handle, (p) => p.paused, 'paused');
  fleet.hold = undefined;
  held.resolve();
  const paused = await progressWhen(handle, (p) => p.phase === 'paused' && p.inFlight.length === 0, 'paused with nothing in flight');
  assert.equal(paused.upgraded, 2);
  assert.equal(paused.remaining, 3);
  // A workflow task after the pause has run (the query answers from the current state): nothing else started.
  assert.equal(fleet.updates.size, 2, 'no update starts while paused');
  await handle.signal(fleetResumeSignal, { by: 'tester' });
  const result = (await handle.result()) as FleetResult;
  assert.equal(result.phase, 'succeeded');
  assert.equal(result.upgraded, 5);
  everyOnce(fleet);
});

test('an aborted upgrade lets the running update finish, starts no other and ends as aborted, saying by whom', async () => {
  const fleet = newFleet(4);
  const held = deferred();
  fleet.hold = held.promise;
  const handle = await startUpgrade(fleet, { maxInFlight: 1 });
  await progressWhen(handle, (p) => p.inFlight.length === 1, 'one update in flight');
  await handle.signal(fleetAbortSignal, { by: 'alice (brokerflow CLI)' });
  await progressWhen(handle, (p) => p.abortedBy !== undefined, 'abort seen');
  fleet.hold = undefined;
  held.resolve();
  const result = (await handle.result()) as FleetResult;
  assert.equal(result.phase, 'aborted');
  assert.equal(result.abortedBy, 'alice (brokerflow CLI)');
  assert.match(result.stoppedBecause ?? '', /aborted by alice/);
  assert.deepEqual({ upgraded: result.upgraded, remaining: result.remaining, inFlight: result.inFlight.length }, { upgraded: 1, remaining: 3, inFlight: 0 });
  assert.equal(fleet.updates.size, 1);
});

test('a failed update does not stop the fleet; the failures are listed', async () => {
  const fleet = newFleet(4);
  fleet.failing.add(`${fleet.planId}.i01`);
  const result = (await (await startUpgrade(fleet)).result()) as FleetResult;
  assert.equal(result.phase, 'finished-with-failures');
  assert.equal(result.upgraded, 3);
  assert.deepEqual(result.failures, [{ instanceId: `${fleet.planId}.i01`, description: `keyspace: applyUpdateChange failed for ${fleet.planId}.i01` }]);
  everyOnce(fleet);
});

test('the upgrade stops starting updates once K have failed', async () => {
  const fleet = newFleet(6);
  for (const i of ['i00', 'i01', 'i02']) fleet.failing.add(`${fleet.planId}.${i}`);
  const result = (await (await startUpgrade(fleet, { maxInFlight: 1, stopAfterFailures: 2 })).result()) as FleetResult;
  assert.equal(result.phase, 'stopped');
  assert.equal(result.failed, 2);
  assert.equal(result.remaining, 4, 'the rest is left, not skipped: a new upgrade takes it');
  assert.match(result.stoppedBecause ?? '', /stopped after 2 failed updates/);
  assert.equal(fleet.updates.size, 2);
});

test('an instance busy with another operation is asked again later, never skipped', async () => {
  const fleet = newFleet(3);
  const busy = `${fleet.planId}.i01`;
  fleet.busyFor.set(busy, 2);
  const handle = await startUpgrade(fleet, { maxInFlight: 3, busyRetrySeconds: 60 });
  const waiting = await progressWhen(handle, (p) => p.waiting === 1 && p.done === 2, 'the busy instance waiting');
  assert.equal(waiting.phase, 'running');
  const result = (await handle.result()) as FleetResult;
  assert.equal(result.phase, 'succeeded');
  assert.equal(result.upgraded, 3);
  const asks = fleet.askedAt.get(busy)!;
  assert.equal(asks.length, 3, 'asked twice while busy, then updated');
  assert.ok(asks[1]! - asks[0]! >= 60_000 && asks[2]! - asks[1]! >= 60_000, `asked again only after the busy wait: ${asks.map((t) => new Date(t).toISOString()).join(', ')}`);
  everyOnce(fleet);
});

test('a long upgrade continues as new, carrying what is done and left, and updates each instance once', async () => {
  const fleet = newFleet(40);
  fleet.failing.add(`${fleet.planId}.i07`);
  const result = (await (await startUpgrade(fleet, { maxInFlight: 4, continueAsNewAfterEvents: 60 })).result()) as FleetResult;
  assert.ok(result.runs > 1, `continued as new (${result.runs} runs)`);
  assert.equal(result.phase, 'finished-with-failures');
  assert.deepEqual({ total: result.total, upgraded: result.upgraded, failed: result.failed }, { total: 40, upgraded: 39, failed: 1 });
  everyOnce(fleet);
  assert.equal(fleet.updates.size, 40);
});

test('a second upgrade of the same plan while one runs is refused by Temporal', async () => {
  const fleet = newFleet(2);
  const held = deferred();
  fleet.hold = held.promise;
  const handle = await startUpgrade(fleet);
  await assert.rejects(startUpgrade(fleet), (err: Error) => err.name === 'WorkflowExecutionAlreadyStartedError');
  fleet.hold = undefined;
  held.resolve();
  assert.equal(((await handle.result()) as FleetResult).phase, 'succeeded');
});
