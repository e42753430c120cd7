// Rolling upgrade: operations are in flight on a worker running the current workflow code when it is stopped as a
// rolling deploy stops it (SIGTERM), and a worker whose workflow code changed takes over — a "next build"
// (test/support/fixtures/next-build) in which provision and update route the plan before recording the begin, one
// more activity at the start of every run, guarded with patched() as docs/design/conventions.md#changing-workflow-code
// requires. Every operation must end as the platform was told, with no non-determinism anywhere, nothing stuck and
// nothing twice; the histories must show the old path for runs the old worker began and the new path (the patch
// marker) for runs the new worker began. The negative control replays the histories recorded at the moment of the
// upgrade against the same change without patched(): each must fail with a DeterminismViolationError, which shows
// that the scenario would catch an unguarded change.
//
// The plan's ConfigMap is ready only when the test says so (test/reliability/fixtures/resource-sets.gated.yaml), so
// which operations finish before the upgrade and which are mid-way is decided, not left to timing.
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { WorkflowHandle } from '@temporalio/client';
import type { History } from '@temporalio/common/lib/proto-utils';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { dataConverter } from '../../platform/temporal';
import { upgradeTestWorkflowsEnv, workflowsEntry } from '../../worker/workflows-entry';
import { repoRoot } from '../../scripts/lib/process';
import { requireTestEnv } from '../support/env';
import { startTestStack, type TestStack } from '../support/stack';
import { SERVICE, instancePath, provisionBody } from '../support/osb';
import { nextBuildPatchId } from '../support/fixtures/next-build/change';
import { startWorkerProcess, type ChildProcessHandle } from '../support/reliability/processes';
import { sharedTenantEtcd } from '../support/reliability/servers';
import { deleteTenantKeys, duplicatedRuns, prefixInventory, settledRuns, waitFor } from '../support/reliability/inspect';
import { Scenario, mapConcurrently, median, seconds } from '../support/reliability/scenario';

/**
 * Provisions and updates accepted while the current build runs, and how many of each finish before the upgrade.
 * The updates are of instances whose provision finished.
 */
const BEFORE = { provisions: 34, updates: 8 };
const FINISHED_BEFORE = { provisions: 10, updates: 2 };
/** Provisions and updates (of other instances whose provision finished) the platform sends once the current worker has stopped. */
const AFTER = { provisions: 6, updates: 2 };
const OPERATIONS = BEFORE.provisions + BEFORE.updates + AFTER.provisions + AFTER.updates;

const gatedResourceSets = resolve(__dirname, 'fixtures', 'resource-sets.gated.yaml');
const nextBuildEntry = resolve(__dirname, '..', 'support', 'fixtures', 'next-build', 'index.ts');
const unpatchedEntry = resolve(__dirname, '..', 'support', 'fixtures', 'next-build', 'unpatched.ts');

const scenario = new Scenario({
  id: 'rolling-upgrade',
  order: 8,
  title: 'Rolling upgrade of the worker to changed workflow code during provisions and updates',
  fault:
    `${BEFORE.provisions} provisions are accepted while one worker process runs the current workflow code; ${FINISHED_BEFORE.provisions} of them finish, ` +
    `then ${BEFORE.updates} of those instances are updated and ${FINISHED_BEFORE.updates} of the updates finish. The other operations wait mid-reconcile for ` +
    'their ConfigMap to become ready when the worker is stopped with SIGTERM, as a rolling deploy stops it, and a worker whose workflow code ' +
    'changed takes over: a next build (test/support/fixtures/next-build) in which provision and update route the plan before recording the ' +
    `begin, one more activity at the start of the run, guarded with patched('${nextBuildPatchId}'). As the old worker goes, the platform sends ` +
    `${AFTER.provisions} provisions and ${AFTER.updates} updates more. Negative control: the same change without patched() replays the histories recorded at the upgrade.`,
  claim:
    `All ${OPERATIONS} operations succeed (last_operation), none is stuck or runs twice, no history holds a workflow task that failed on ` +
    'non-determinism and no worker logged one; runs the old worker began carry no patch marker and kept the old path, runs the new worker ' +
    'began carry the marker and took the new one. Replayed against the change without patched(), every history recorded mid-way ' +
    'fails with a DeterminismViolationError; against the guarded build, every history replays; the runs of the new path do not replay on ' +
    'the build before the patch (a rollback would break them).',
});
after(() => scenario.save());

let stack: TestStack | undefined;
let oldWorker: ChildProcessHandle | undefined;
let newWorker: ChildProcessHandle | undefined;
const etcd = sharedTenantEtcd();
const tag = `ru${randomBytes(4).toString('hex')}`;
const kc = new KubeConfig();
kc.loadFromFile(requireTestEnv('kubeconfig'));
const core = kc.makeApiClient(CoreV1Api);
const configMapName = (id: string) => `bf-${id}`;
let gate: ReadinessGate | undefined;
after(async () => {
  await gate?.stop();
  await oldWorker?.kill();
  await newWorker?.kill();
  await stack?.close();
  await deleteTenantKeys(etcd, tag).catch(() => undefined);
  etcd.close();
  const left = await core.listNamespacedConfigMap({ namespace: 'default' }).catch(() => ({ items: [] }));
  for (const c of left.items.filter((i) => i.metadata?.name?.startsWith(`bf-${tag}-`))) {
    await core.deleteNamespacedConfigMap({ name: c.metadata!.name!, namespace: 'default' }).catch(() => undefined);
  }
});

/**
 * Plays the controller that makes the plan's ConfigMaps ready: sets `data.ready` to "true" on the ConfigMaps of
 * the instances it has been opened for, and to "false" when closed again (so that an update waits as well).
 */
class ReadinessGate {
  private readonly open = new Set<string>();
  private running = true;
  private current: Promise<void> = Promise.resolve();
  private readonly loop: Promise<void>;

  constructor() {
    this.loop = (async () => {
      while (this.running) {
        this.current = this.tick().catch(() => undefined);
        await this.current;
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
  }

  openFor(ids: Iterable<string>): void {
    for (const id of ids) this.open.add(id);
  }

  /** Closes the gate of idle instances: their next update waits until it is opened again. */
  async close(ids: string[]): Promise<void> {
    for (const id of ids) this.open.delete(id);
    await this.current;
    await Promise.all(ids.map((id) => this.set(id, 'false')));
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private async tick(): Promise<void> {
    const maps = await core.listNamespacedConfigMap({ namespace: 'default' });
    const due = maps.items.filter((c) => {
      const id = c.metadata?.name?.slice('bf-'.length) ?? '';
      return this.open.has(id) && c.data?.ready !== 'true';
    });
    await Promise.all(due.map((c) => this.set(c.metadata!.name!.slice('bf-'.length), 'true')));
  }

  private async set(id: string, value: 'true' | 'false'): Promise<void> {
    await core.patchNamespacedConfigMap({
      name: configMapName(id),
      namespace: 'default',
      fieldManager: 'upgrade-test-gate',
      body: [{ op: 'add', path: '/data/ready', value }],
    });
  }
}

/** One operation of the scenario, as the platform knows it, and what Temporal knows of it. */
interface Op {
  kind: 'provision' | 'update';
  id: string;
  /** Sent while the old worker ran, or after it stopped. */
  phase: 'before' | 'after';
  operation: string;
  runId: string;
  acceptedAt: number;
  finishedAt?: number;
  state?: string;
}

/** What one run's history shows. */
interface RunFacts {
  /** Identity of the worker that completed the run's first workflow task. */
  firstTaskBy?: string;
  /** Patch IDs of the patch markers. */
  patches: string[];
  /** The activity type of the first activity the run scheduled. */
  firstActivity?: string;
  taskFailures: Array<{ cause: string; message: string }>;
  /** Workflow tasks that timed out before a worker started them (left on the sticky queue of a worker that is gone). */
  taskScheduleTimeouts: number;
  nondeterministic: number;
  applyAttempts: number;
  /** What ended the apply attempt before the last one, when there was one. */
  applyRetriedAfter?: string;
}

const NONDETERMINISTIC = temporal.api.enums.v1.WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR;

function factsOf(history: History): RunFacts {
  const facts: RunFacts = { patches: [], taskFailures: [], taskScheduleTimeouts: 0, nondeterministic: 0, applyAttempts: 1 };
  const scheduled = new Map<string, string>();
  for (const e of history.events ?? []) {
    const done = e.workflowTaskCompletedEventAttributes;
    if (done && facts.firstTaskBy === undefined) facts.firstTaskBy = done.identity ?? '';
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName === 'core_patch') {
      const data = marker.details?.['patch-data']?.payloads?.[0]?.data;
      const text = data ? Buffer.from(data).toString('utf8') : '';
      try {
        facts.patches.push(String((JSON.parse(text) as { id?: unknown }).id));
      } catch {
        facts.patches.push(text);
      }
    }
    const act = e.activityTaskScheduledEventAttributes;
    if (act) {
      scheduled.set(String(e.eventId), act.activityType?.name ?? '');
      facts.firstActivity ??= act.activityType?.name ?? '';
    }
    // The current build runs its first steps as local activities (workflows/local-first.ts): their markers count.
    const local = marker?.markerName === 'core_local_activity' ? marker.details?.data?.payloads?.[0]?.data : undefined;
    if (local) facts.firstActivity ??= (JSON.parse(Buffer.from(local).toString('utf8')) as { activity_type?: string }).activity_type ?? '';
    const started = e.activityTaskStartedEventAttributes;
    if (started && /^apply/.test(scheduled.get(String(started.scheduledEventId)) ?? '')) {
      facts.applyAttempts = Math.max(facts.applyAttempts, started.attempt ?? 1);
      if ((started.attempt ?? 1) > 1) facts.applyRetriedAfter = started.lastFailure?.message ?? '';
    }
    if (e.workflowTaskTimedOutEventAttributes?.timeoutType === temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START) facts.taskScheduleTimeouts += 1;
    const failed = e.workflowTaskFailedEventAttributes;
    if (failed) {
      const message = failed.failure?.message ?? '';
      const cause = temporal.api.enums.v1.WorkflowTaskFailedCause[failed.cause ?? 0] ?? String(failed.cause);
      facts.taskFailures.push({ cause, message });
      if (failed.cause === NONDETERMINISTIC || /nondetermin|DeterminismViolation/i.test(message)) facts.nondeterministic += 1;
    }
  }
  return facts;
}

/** Builds a workflow bundle in a child process with `entry` as the upgrade test's build; `--cache` returns the cache file. */
async function buildBundle(entry: string, target: '--cache' | string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'worker', 'bundle.ts'), target], {
    cwd: repoRoot,
    env: { ...process.env, ...env, [upgradeTestWorkflowsEnv]: entry },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const code = await new Promise<number | null>((res) => child.once('exit', (c) => res(c)));
  if (code !== 0) throw new Error(`bundling ${entry} failed (exit ${code}): ${out.slice(-1000)}`);
  return target === '--cache' ? out.trim().split('\n').pop()! : target;
}

let runtimeInstalled = false;
/**
 * This process's SDK runtime, logging errors only: the negative control's failures are expected here (the worker
 * processes keep the SDK's warnings, where a workflow task that fails on non-determinism is reported).
 */
function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, console: {} } } });
}

/** Replays histories against a bundle; the error name of each that fails (keyed like the input). */
async function replay(code: string, histories: Array<{ key: string; history: History }>): Promise<{ replayed: number; errors: Map<string, string> }> {
  quietRuntime();
  const errors = new Map<string, string>();
  let replayed = 0;
  const results = Worker.runReplayHistories(
    {
      workflowBundle: { code },
      dataConverter: dataConverter(stack!.config),
      sinks: { reconcileMetrics: { event: { fn: () => undefined, callDuringReplay: false } } },
    },
    histories.map((h) => ({ workflowId: h.key, history: h.history })),
  );
  for await (const r of results) {
    replayed += 1;
    // The SDK's message wraps the cause (Core's "Nondeterminism error: ..." names the mismatch) in a paragraph.
    if (r.error) errors.set(r.workflowId, `${r.error.name}: ${(/Nondeterminism error: [^"]*/.exec(r.error.message)?.[0] ?? r.error.message.split('\n')[0]!).slice(0, 240)}`);
  }
  return { replayed, errors };
}

/** The workers log the SDK's warnings, where a workflow task that fails on non-determinism is reported. */
const workerLogs = { BROKERFLOW_SDK_LOG_LEVEL: 'WARN' };

/** Histories recorded at the moment of the upgrade, for the negative control. */
let midway: Array<{ key: string; history: History }> = [];
/** Final histories of the runs that took the new path, for the rollback check. */
let newPathFinals: Array<{ key: string; history: History }> = [];
/** The two bundles of the next build: as shipped (patched) and without the guard. */
let nextBuildBundle: Promise<string> | undefined;
let unpatchedBundle: Promise<string> | undefined;

scenario.test('the upgrade option runs only a build under test/: a worker told to run anything else does not start', { timeout: 60_000 }, async () => {
  assert.equal(workflowsEntry({}).upgradeTest, false);
  assert.equal(workflowsEntry({ [upgradeTestWorkflowsEnv]: nextBuildEntry }).path, nextBuildEntry);
  assert.throws(() => workflowsEntry({ [upgradeTestWorkflowsEnv]: 'workflows/index.ts' }), /for testing upgrades only .* is outside test\//);
  assert.throws(() => workflowsEntry({ [upgradeTestWorkflowsEnv]: 'test/support/fixtures/next-build/missing.ts' }), /is not a \.ts file/);
  // The worker checks it first, before it reads its configuration (there is none here) or connects anywhere. The
  // scenario's stack starts meanwhile.
  const refused = assert.rejects(
    startWorkerProcess(join(requireTestEnv('workDir'), 'no-such-config.yaml'), { [upgradeTestWorkflowsEnv]: 'workflows/index.ts' }),
    /exited \(code 1\) before it was ready[\s\S]*BROKERFLOW_UPGRADE_TEST_WORKFLOWS is for testing upgrades only[\s\S]*is outside test\//,
  );
  stack = await startTestStack({ worker: false, overrides: { resourceSets: gatedResourceSets } });
  await refused;
});

scenario.test(`${OPERATIONS} provisions and updates all complete across a rolling upgrade to patched workflow code`, { timeout: 240_000 }, async () => {
  const s = stack ?? (stack = await startTestStack({ worker: false, overrides: { resourceSets: gatedResourceSets } }));
  const workDir = requireTestEnv('workDir');
  const bundleDir = join(workDir, `next-build-bundles-${tag}`);
  mkdirSync(bundleDir, { recursive: true, mode: 0o700 });
  const g = (gate = new ReadinessGate());
  const registry = s.worker.registry.registry;
  const ops: Op[] = [];
  let requests = 0;
  const fiveXx: number[] = [];

  const send = async (kind: Op['kind'], id: string, phase: Op['phase'], quotaKeys: number): Promise<Op> => {
    requests += 1;
    const res =
      kind === 'provision'
        ? await s.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys } }))
        : await s.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys } });
    if (res.statusCode >= 500) fiveXx.push(res.statusCode);
    assert.equal(res.statusCode, 202, `${kind} ${id}: ${res.body}`);
    const desc = await s.client.workflow.getHandle(`instance/${id}`).describe();
    const op: Op = { kind, id, phase, operation: res.json().operation as string, runId: desc.runId, acceptedAt: Date.now() };
    ops.push(op);
    return op;
  };
  /** Polls the registry until every op given has ended; records when each did. */
  const waitEnded = async (what: string, wanted: Op[], timeoutMs: number) =>
    waitFor(
      what,
      async () => {
        const entries = new Map((await registry.list('service-instance')).map((e) => [e.id, e.operation]));
        const now = Date.now();
        for (const op of wanted) {
          const rec = entries.get(op.id);
          if (op.finishedAt === undefined && rec?.operationId === op.operation && rec.state !== 'in progress') {
            op.finishedAt = now;
            op.state = rec.state;
          }
        }
        return wanted.every((op) => op.finishedAt !== undefined) ? true : undefined;
      },
      timeoutMs,
      500,
    );
  const handleOf = (op: Op): WorkflowHandle => s.client.workflow.getHandle(`instance/${op.id}`, op.runId);

  oldWorker = await startWorkerProcess(s.configFile, workerLogs);
  const oldIdentity = `${oldWorker.pid}@${hostname()}`;
  // The next build is bundled while the current one runs, as a new image is built before it is rolled out (then
  // the same change without the guard, for the negative control).
  nextBuildBundle = buildBundle(nextBuildEntry, '--cache', { BROKERFLOW_BUNDLE_DIR: bundleDir });
  unpatchedBundle = nextBuildBundle.then(() => buildBundle(unpatchedEntry, join(bundleDir, 'unpatched.js')));
  unpatchedBundle.catch(() => undefined);

  /** Waits until every op given waits for readiness in its apply step: mid-way. */
  const waitMidway = (what: string, wanted: Op[]) =>
    waitFor(
      `${what} to wait in their apply step`,
      async () => {
        const waiting = await mapConcurrently(wanted, 10, async (op) => {
          const d = await handleOf(op).describe();
          return (d.raw.pendingActivities ?? []).some(
            (a) => /^apply(Create|Update)Change$/.test(a.activityType?.name ?? '') && a.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
          );
        });
        return waiting.every(Boolean) ? true : undefined;
      },
      90_000,
      500,
    );

  // While the current build runs: provisions, which all get mid-way; some are let finish.
  const ids = Array.from({ length: BEFORE.provisions + AFTER.provisions }, (_, i) => `${tag}-${String(i).padStart(2, '0')}`);
  const provisionsBefore = await mapConcurrently(ids.slice(0, BEFORE.provisions), 10, (id) => send('provision', id, 'before', 1000));
  await waitMidway(`the ${BEFORE.provisions} provisions`, provisionsBefore);
  const provisionsFinished = provisionsBefore.slice(0, FINISHED_BEFORE.provisions);
  g.openFor(provisionsFinished.map((o) => o.id));
  await waitEnded('the provisions let finish', provisionsFinished, 60_000);
  // Updates of some of the instances that exist now: their ConfigMap is made unready again, so they wait too.
  const updated = provisionsFinished.slice(0, BEFORE.updates).map((o) => o.id);
  await g.close(updated);
  const updatesBefore = await mapConcurrently(updated, 10, (id) => send('update', id, 'before', 2000));
  await waitMidway(`the ${BEFORE.updates} updates`, updatesBefore);
  const updatesFinished = updatesBefore.slice(0, FINISHED_BEFORE.updates);
  g.openFor(updatesFinished.map((o) => o.id));
  await waitEnded('the updates let finish', updatesFinished, 60_000);
  const before = [...provisionsBefore, ...updatesBefore];

  // The upgrade: the registry's view of what is in flight, then SIGTERM, as a rolling deploy stops a pod.
  const inRegistry = new Map((await registry.list('service-instance')).map((e) => [e.id, e.operation]));
  const inFlight = before.filter((op) => op.finishedAt === undefined && inRegistry.get(op.id)?.operationId === op.operation && inRegistry.get(op.id)?.state === 'in progress');
  const finishedBefore = before.filter((op) => op.finishedAt !== undefined);
  const stopAt = Date.now();
  await oldWorker.stop(20_000);
  const stoppedAt = Date.now();
  const graceful = /"msg":"worker stopped"/.test(oldWorker.output());
  // The histories as they stand at the upgrade: what the next build's worker has to replay.
  midway = await mapConcurrently(inFlight, 10, async (op) => ({ key: `${op.kind}-${op.id}`, history: await handleOf(op).fetchHistory() }));
  // The world goes on: every ConfigMap is ready from now on, and the platform keeps sending requests.
  g.openFor(ids);
  const nextBundleFile = await nextBuildBundle;
  const newWorkerStarting = startWorkerProcess(s.configFile, { ...workerLogs, [upgradeTestWorkflowsEnv]: nextBuildEntry, BROKERFLOW_BUNDLE_DIR: bundleDir });
  const afterOps = await mapConcurrently(
    [
      ...ids.slice(BEFORE.provisions).map((id) => ['provision', id] as const),
      ...provisionsFinished.slice(BEFORE.updates, BEFORE.updates + AFTER.updates).map((o) => ['update', o.id] as const),
    ],
    10,
    ([kind, id]) => send(kind, id, 'after', kind === 'provision' ? 1000 : 3000),
  );
  newWorker = await newWorkerStarting;
  const newIdentity = `${newWorker.pid}@${hostname()}`;
  const measured = [...before, ...afterOps];
  await waitEnded(`all ${OPERATIONS} operations to end`, measured, 120_000);
  const allDone = Math.max(...measured.map((o) => o.finishedAt!));

  // What the platform sees.
  const states = await mapConcurrently(measured, 10, async (op) => {
    requests += 1;
    const res = await s.osb('GET', `${instancePath(op.id)}/last_operation?operation=${encodeURIComponent(op.operation)}`);
    if (res.statusCode >= 500) fiveXx.push(res.statusCode);
    return res.statusCode === 200 ? (res.json().state as string) : `HTTP ${res.statusCode}`;
  });
  const succeeded = states.filter((x) => x === 'succeeded').length;
  const entries = (await registry.list('service-instance')).filter((e) => e.id.startsWith(`${tag}-`));
  const leftInProgress = entries.filter((e) => e.operation?.state === 'in progress').map((e) => e.id);
  const runs = await settledRuns(s.client, s.config.temporal.taskQueue, ops.length);
  const openRuns = runs.filter((r) => r.status === 'RUNNING');
  const duplicated = duplicatedRuns(runs, 'provision');
  const updateRuns = runs.filter((r) => r.type === 'update').length;
  const inventory = await prefixInventory(etcd, `${tag}-`);
  const duplicateKeyspaces = [...inventory.owners].filter(([, v]) => v.length > 1).length;
  const missingKeyspaces = ids.filter((id) => !inventory.owners.has(id));

  // What the histories show.
  const finals = await mapConcurrently(ops, 10, async (op) => ({ op, history: await handleOf(op).fetchHistory() }));
  const facts = new Map(finals.map(({ op, history }) => [op, factsOf(history)]));
  const byOld = ops.filter((op) => facts.get(op)!.firstTaskBy === oldIdentity);
  const byNew = ops.filter((op) => facts.get(op)!.firstTaskBy === newIdentity);
  const byOther = ops.filter((op) => !byOld.includes(op) && !byNew.includes(op));
  const marked = (op: Op) => facts.get(op)!.patches.includes(nextBuildPatchId);
  const oldPath = (op: Op) => !marked(op) && facts.get(op)!.firstActivity === 'recordBegin';
  const newPath = (op: Op) => marked(op) && facts.get(op)!.firstActivity === 'resolveResources';
  newPathFinals = finals.filter(({ op }) => byNew.includes(op)).map(({ op, history }) => ({ key: `${op.kind}-${op.id}`, history }));
  const nondeterministic = [...facts.values()].reduce((n, f) => n + f.nondeterministic, 0);
  const taskFailures = [...facts.values()].flatMap((f) => f.taskFailures);
  const logLines = (w: ChildProcessHandle) => w.output().split('\n').filter((l) => /nondetermin|DeterminismViolation/i.test(l));
  const nondeterministicLogs = [...logLines(oldWorker), ...logLines(newWorker)];
  const markers = [...facts.values()].reduce((n, f) => n + f.patches.filter((p) => p === nextBuildPatchId).length, 0);
  const retriedApplies = inFlight.filter((op) => facts.get(op)!.applyAttempts > 1).length;

  // Every history, recorded mid-way and final, replays on the build the new worker runs.
  const nextCode = readFileSync(nextBundleFile, 'utf8');
  const onNext = await replay(nextCode, [...midway.map((m) => ({ key: `midway/${m.key}`, history: m.history })), ...finals.map(({ op, history }) => ({ key: `final/${op.kind}-${op.id}`, history }))]);

  const latencies = inFlight.map((op) => op.finishedAt! - stopAt);
  scenario.summary.attempted = OPERATIONS;
  scenario.summary.completed = succeeded;
  scenario.summary.duplicated = duplicated.size + duplicateKeyspaces;
  scenario.summary.lost = OPERATIONS - succeeded + missingKeyspaces.length;
  scenario.summary.requests = requests;
  scenario.summary.fiveXx = fiveXx.length;
  scenario.summary.recovery = `${seconds(allDone - stopAt)} after the old worker was stopped`;
  scenario.figure('operations (provisions + updates)', `${BEFORE.provisions + AFTER.provisions} + ${BEFORE.updates + AFTER.updates}`);
  scenario.figure('finished on the old worker before the upgrade', finishedBefore.length);
  scenario.figure('in flight at the upgrade (in progress in the registry, waiting mid-reconcile)', inFlight.length);
  scenario.figure('sent after the old worker stopped', afterOps.length);
  scenario.figure('old worker stop, SIGTERM until exit', stoppedAt - stopAt, 'ms');
  scenario.figure('old worker shut down gracefully (logged "worker stopped")', graceful ? 'yes' : 'no');
  const bundleFrom = /"workflowBundle":"(\w+)"/.exec(newWorker.output())?.[1] ?? 'unknown';
  scenario.figure('new worker start-up, spawn to polling', `${seconds(newWorker.readyAt - newWorker.spawnedAt)} (workflow bundle: ${bundleFrom === 'cache' ? 'prebuilt' : bundleFrom})`);
  scenario.figure('old worker stopped (SIGTERM) to all operations complete', allDone - stopAt, 'ms');
  scenario.figure('new worker polling to all operations complete', allDone - newWorker.readyAt, 'ms');
  scenario.figure('operations in flight at the upgrade: SIGTERM to finished (median / max)', `${seconds(median(latencies))} / ${seconds(Math.max(...latencies))}`);
  scenario.figure('in-flight operations whose apply step was retried on the new worker', `${retriedApplies} of ${inFlight.length}`);
  const interrupted = new Map<string, number>();
  for (const op of inFlight) {
    const why = facts.get(op)!.applyRetriedAfter;
    if (why !== undefined) interrupted.set(why, (interrupted.get(why) ?? 0) + 1);
  }
  scenario.figure('how the interrupted apply attempts ended (history: last failure before the retry)', [...interrupted].map(([why, n]) => `${n}x "${why.slice(0, 120)}"`).join('; ') || '—');
  scenario.figure('operations succeeded (last_operation)', `${succeeded} of ${OPERATIONS}`);
  scenario.figure('runs still open / registry entries left in progress', `${openRuns.length} / ${leftInProgress.length}`);
  scenario.figure('workflow runs / provision runs per instance above one / update runs', `${runs.length} / ${duplicated.size} / ${updateRuns}`);
  scenario.figure('keyspaces owned twice / missing', `${duplicateKeyspaces} / ${missingKeyspaces.length}`);
  scenario.figure('workflow tasks failed on non-determinism (all histories) / worker log lines about it', `${nondeterministic} / ${nondeterministicLogs.length}`);
  scenario.figure('workflow tasks failed for any reason', taskFailures.length);
  scenario.figure('in-flight runs with a workflow task that waited out the old worker\'s sticky queue (10 s)', inFlight.filter((op) => facts.get(op)!.taskScheduleTimeouts > 0).length);
  scenario.figure('runs begun by the old worker: with the patch marker / old path (recordBegin first)', `${byOld.filter(marked).length} / ${byOld.filter(oldPath).length} of ${byOld.length}`);
  scenario.figure('runs begun by the new worker: with the patch marker / new path (resolveResources first)', `${byNew.filter(marked).length} / ${byNew.filter(newPath).length} of ${byNew.length}`);
  scenario.figure(`patch markers "${nextBuildPatchId}" found`, markers);
  scenario.figure('histories replayed on the next build (recorded at the upgrade + final) / failures', `${onNext.replayed} / ${onNext.errors.size}`);
  scenario.note(
    'patched() decides per run, when the run first reaches it: a run the old worker had begun replays on the new worker without the ' +
      'marker and keeps its old path to the end; a run whose first workflow task the new worker runs records the marker and takes the new path ' +
      '(docs/design/conventions.md#changing-workflow-code).',
  );
  scenario.note(
    'Which runs the old worker began is read from the histories: the identity on the first WorkflowTaskCompleted event. Operations in flight ' +
      'at the upgrade waited for readiness in their apply step; the SIGTERM cancels that attempt, and the new worker runs the step again.',
  );

  assert.deepEqual(states.filter((x) => x !== 'succeeded'), [], 'every operation succeeded');
  assert.equal(inFlight.length, BEFORE.provisions + BEFORE.updates - FINISHED_BEFORE.provisions - FINISHED_BEFORE.updates, 'the rest were in flight at the upgrade');
  assert.equal(finishedBefore.length, FINISHED_BEFORE.provisions + FINISHED_BEFORE.updates, 'only the released ones finished before the upgrade');
  assert.deepEqual(leftInProgress, [], 'no registry entry left in progress');
  assert.deepEqual(openRuns, [], 'no run left open');
  assert.equal(duplicated.size, 0, 'one provision run per instance');
  assert.equal(updateRuns, BEFORE.updates + AFTER.updates, 'one update run per update');
  assert.equal(runs.length, ops.length, 'one run per operation');
  assert.deepEqual(missingKeyspaces, [], 'every instance has its keyspace');
  assert.equal(duplicateKeyspaces, 0, 'no keyspace owned twice');
  assert.equal(nondeterministic, 0, `no workflow task failed on non-determinism: ${JSON.stringify(taskFailures.slice(0, 3))}`);
  assert.deepEqual(nondeterministicLogs, [], 'no worker logged non-determinism');
  assert.deepEqual(byOther.map((op) => `${op.kind} ${op.id}: ${facts.get(op)!.firstTaskBy}`), [], 'every run was begun by one of the two workers');
  assert.deepEqual(byOld.filter((op) => !oldPath(op)).map((op) => `${op.kind} ${op.id}`), [], 'runs the old worker began kept the old path, without the marker');
  assert.deepEqual(byNew.filter((op) => !newPath(op)).map((op) => `${op.kind} ${op.id}`), [], 'runs the new worker began took the new path, with the marker');
  assert.ok(inFlight.every((op) => byOld.includes(op)), 'the operations in flight at the upgrade were begun by the old worker');
  assert.ok(afterOps.every((op) => byNew.includes(op)), 'the operations sent after the upgrade were begun by the new worker');
  assert.equal(markers, byNew.length, 'one marker per run of the new path');
  assert.deepEqual([...onNext.errors], [], 'every history replays on the next build');
});

scenario.test('negative control: the same change without patched() fails to replay every history recorded at the upgrade', { timeout: 120_000 }, async () => {
  assert.ok(midway.length > 0, 'the live run recorded histories at the upgrade');
  const code = readFileSync(await unpatchedBundle!, 'utf8');
  const { replayed, errors } = await replay(code, midway);
  const violations = [...errors.values()].filter((e) => e.startsWith('DeterminismViolationError'));
  scenario.figure('negative control: histories recorded at the upgrade, replayed on the change without patched()', replayed);
  scenario.figure('negative control: of those, failed with a DeterminismViolationError', violations.length);
  if (violations[0]) scenario.note(`Negative control, for example: ${violations[0]}`);
  assert.equal(replayed, midway.length);
  assert.equal(violations.length, midway.length, `every one fails: ${[...errors.values()].slice(0, 3).join('; ')}`);
});

scenario.test('a rollback is a deploy too: the runs that took the new path do not replay on the current build', { timeout: 60_000 }, async () => {
  assert.ok(newPathFinals.length > 0, 'the live run had runs on the new path');
  const code = readFileSync(requireTestEnv('workflowBundle'), 'utf8');
  const { replayed, errors } = await replay(code, newPathFinals);
  const violations = [...errors.values()].filter((e) => e.startsWith('DeterminismViolationError'));
  scenario.figure('rollback: runs of the new path replayed on the current build / failed with a DeterminismViolationError', `${replayed} / ${violations.length}`);
  scenario.note(
    'Rolling back to the build before a patch breaks the runs that took the new path, as rolling forward without the patch breaks the runs ' +
      'in flight: once the new path has run, going back needs a build that still has the patch (docs/design/conventions.md#changing-workflow-code).',
  );
  assert.equal(violations.length, newPathFinals.length, `every one fails: ${[...errors.values()].slice(0, 3).join('; ')}`);
});
