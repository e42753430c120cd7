// `brokerflow upgrade [start|status|pause|resume|abort] --plan <id|name>`: the fleet upgrade of a plan
// (docs/design/osb-semantics.md#fleet-upgrades). `start` (the default) starts the plan's one durable fleet upgrade
// workflow, `fleet-upgrade/<plan id>`, which updates every instance of the plan to the catalog's maintenance
// version as a platform's PATCH would; `--dry-run` lists what would change and touches nothing; `--watch` follows
// it. The other actions read it (a query) or signal it.
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { planInstances } from '../../adapters/registry';
import { formatMaintenanceWindow, parseMaintenanceWindow, planFleetUpgrade, type MaintenanceWindow } from '../../domain/fleet';
import type { Catalog } from '../../config/catalog';
import {
  FLEET_END_PHASES,
  FLEET_UPGRADE_WORKFLOW,
  fleetAbortSignal,
  fleetPauseSignal,
  fleetProgressQuery,
  fleetResumeSignal,
  fleetUpgradeWorkflowId,
  type FleetProgress,
  type FleetUpgradeInput,
} from '../../workflows/fleet-messages';
import { OperationStateKey, OperationTypeKey, OriginatingUserKey, PlanIdKey, ServiceIdKey } from '../../workflows/searchAttributes';
import type { CliContext } from './context';
import { cliCancelIdentity } from './cancel';

/** Exit codes `upgrade` uses (client/cli/main.ts EXIT). */
export interface UpgradeExitCodes {
  ok: number;
  failed: number;
  usage: number;
  notFound: number;
  conflict: number;
  unreachable: number;
}

/** An error `upgrade` reports with its exit code (client/cli/main.ts turns it into output). */
export class UpgradeRefused extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

/** What `upgrade` was asked. */
export interface UpgradeOptions {
  plan: string;
  service?: string;
  maxInFlight?: string;
  stopAfterFailures?: string;
  window?: string;
  busyRetrySeconds?: string;
  dryRun?: boolean;
  watch?: boolean;
  json: boolean;
  /** How often --watch asks (tests). */
  watchIntervalMs?: number;
}

/** The plan named by ID (unique in a catalog) or by name (with `--service` when two services have one of that name). */
export function resolveFleetPlan(catalog: Catalog, plan: string, service: string | undefined, usage: number) {
  const services = catalog.services.filter((s) => service === undefined || s.id === service || s.name === service);
  if (service !== undefined && services.length === 0) throw new UpgradeRefused(`no service "${service}" in the catalog (try \`brokerflow catalog\`)`, usage);
  const found = services.flatMap((s) => s.plans.filter((p) => p.id === plan).map((p) => ({ service: s, plan: p })));
  const byName = found.length > 0 ? found : services.flatMap((s) => s.plans.filter((p) => p.name === plan).map((p) => ({ service: s, plan: p })));
  if (byName.length === 0) throw new UpgradeRefused(`no plan "${plan}" in the catalog${service ? ` for service "${service}"` : ''} (try \`brokerflow catalog\`)`, usage);
  if (byName.length > 1) throw new UpgradeRefused(`plan name "${plan}" is in several services (${byName.map((x) => x.service.name).join(', ')}): name one with --service, or give the plan ID`, usage);
  return byName[0]!;
}

function positiveInt(value: string | undefined, option: string, usage: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UpgradeRefused(`${option} must be a whole number of at least 1, not "${value}"`, usage);
  return Number(value);
}

/** One line of progress, as --watch and status print it. */
export function progressLine(p: FleetProgress): string {
  const parts = [
    `${p.done}/${p.total} done (${p.upgraded} upgraded, ${p.current} already current)`,
    `${p.failed} failed`,
    `${p.waiting} waiting`,
    `${p.inFlight.length} in flight`,
    `${p.remaining} remaining`,
  ];
  if (p.skipped.length) parts.push(`${p.skipped.length} skipped`);
  const extra = [
    p.windowOpensAt !== undefined ? `window opens ${new Date(p.windowOpensAt).toISOString()}` : undefined,
    p.stoppedBecause,
  ].filter((x): x is string => !!x);
  return `fleet upgrade of plan ${p.planId} to ${p.targetVersion}: ${p.phase}: ${parts.join(', ')}${extra.length ? ` (${extra.join('; ')})` : ''}`;
}

function endLines(p: FleetProgress): string[] {
  return [
    ...p.failures.map((f) => `  failed: ${f.instanceId}: ${f.description}`),
    ...p.skipped.map((s) => `  skipped: ${s.instanceId}: ${s.reason}`),
  ];
}

const write = (line: string) => process.stdout.write(`${line}\n`);

/** How long a query waits for a worker to answer (a running upgrade is only read through a worker). */
const QUERY_DEADLINE_MS = 10_000;

/** No worker answered the upgrade's query in time (all workers down, or busy restarting). */
class NoWorkerAnswered extends Error {}

/** The plan's fleet upgrade as it stands: the query while it runs, its result once closed; undefined when none ever ran. */
async function readProgress(handle: WorkflowHandle): Promise<{ progress: FleetProgress; running: boolean } | undefined> {
  let status: string;
  try {
    status = (await handle.describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
  if (status === 'RUNNING') {
    try {
      return { progress: await handle.client.connection.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => handle.query(fleetProgressQuery)), running: true };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw new NoWorkerAnswered(`the fleet upgrade runs, but no worker answered its progress query within ${QUERY_DEADLINE_MS / 1000} s (is a worker running?): ${(err as Error).message}`);
    }
  }
  try {
    return { progress: (await handle.result()) as FleetProgress, running: false };
  } catch (err) {
    throw new Error(`the fleet upgrade ended without a result (${status}): ${(err as Error).message}`);
  }
}

/** Follows the upgrade, printing a line whenever its progress changes, until it ends; the exit code says how. */
async function watch(handle: WorkflowHandle, opts: UpgradeOptions, exit: UpgradeExitCodes): Promise<number> {
  let last = '';
  for (;;) {
    let read: Awaited<ReturnType<typeof readProgress>>;
    try {
      read = await readProgress(handle);
    } catch (err) {
      // A worker restarting (or all down for a while): the upgrade waits for one, and so does the watch.
      if (!(err instanceof NoWorkerAnswered)) throw err;
      await new Promise((r) => setTimeout(r, opts.watchIntervalMs ?? 1000));
      continue;
    }
    if (!read) throw new UpgradeRefused('the fleet upgrade is gone', exit.notFound);
    const { progress } = read;
    const line = progressLine(progress);
    if (line !== last) {
      write(opts.json ? JSON.stringify(progress) : line);
      last = line;
    }
    if (!read.running || FLEET_END_PHASES.includes(progress.phase)) {
      if (!read.running && !opts.json) endLines(progress).forEach(write);
      if (!read.running) return progress.phase === 'succeeded' ? exit.ok : exit.failed;
    }
    await new Promise((r) => setTimeout(r, opts.watchIntervalMs ?? 1000));
  }
}

/** Runs one `upgrade` action; returns the exit code (5 when no worker answers the running upgrade's query). */
export async function runUpgrade(ctx: CliContext, action: string, opts: UpgradeOptions, exit: UpgradeExitCodes): Promise<number> {
  try {
    return await runAction(ctx, action, opts, exit);
  } catch (err) {
    throw err instanceof NoWorkerAnswered ? new UpgradeRefused(err.message, exit.unreachable) : err;
  }
}

async function runAction(ctx: CliContext, action: string, opts: UpgradeOptions, exit: UpgradeExitCodes): Promise<number> {
  const { service, plan } = resolveFleetPlan(ctx.config.catalogData, opts.plan, opts.service, exit.usage);
  const handle = ctx.client.workflow.getHandle(fleetUpgradeWorkflowId(plan.id));
  const identity = cliCancelIdentity();
  switch (action) {
    case 'start':
      return start(ctx, { service, plan }, opts, exit);
    case 'status': {
      if (opts.watch) return watch(handle, opts, exit);
      const read = await readProgress(handle);
      if (!read) throw new UpgradeRefused(`no fleet upgrade of plan ${plan.name} (${plan.id}) has run`, exit.notFound);
      write(opts.json ? JSON.stringify({ ...read.progress, running: read.running }) : [progressLine(read.progress), ...endLines(read.progress)].join('\n'));
      return exit.ok;
    }
    case 'pause':
    case 'resume':
    case 'abort': {
      const read = await readProgress(handle);
      if (!read?.running) throw new UpgradeRefused(`no fleet upgrade of plan ${plan.name} (${plan.id}) is running: nothing to ${action}`, exit.notFound);
      const signal = action === 'pause' ? fleetPauseSignal : action === 'resume' ? fleetResumeSignal : fleetAbortSignal;
      await handle.signal(signal, { by: identity });
      const said =
        action === 'pause'
          ? 'paused: no more updates start until `brokerflow upgrade resume`; the running ones finish'
          : action === 'resume'
            ? 'resumed'
            : 'aborted: no more updates start; the running ones finish, then the upgrade ends';
      write(opts.json ? JSON.stringify({ planId: plan.id, action, requestedBy: identity }) : `fleet upgrade of plan ${plan.name} ${said} (by ${identity})`);
      return opts.watch ? watch(handle, opts, exit) : exit.ok;
    }
    default:
      throw new UpgradeRefused(`unknown upgrade action "${action}" (start, status, pause, resume, abort)`, exit.usage);
  }
}

async function start(
  ctx: CliContext,
  { service, plan }: ReturnType<typeof resolveFleetPlan>,
  opts: UpgradeOptions,
  exit: UpgradeExitCodes,
): Promise<number> {
  const targetVersion = plan.maintenance_info?.version;
  if (!targetVersion) throw new UpgradeRefused(`plan ${plan.name} (${plan.id}) has no maintenance_info in the catalog: there is nothing to upgrade to`, exit.usage);
  const maxInFlight = positiveInt(opts.maxInFlight, '--max-in-flight', exit.usage) ?? 1;
  const stopAfterFailures = positiveInt(opts.stopAfterFailures, '--stop-after-failures', exit.usage);
  const busyRetrySeconds = positiveInt(opts.busyRetrySeconds, '--busy-retry-seconds', exit.usage);
  let window: MaintenanceWindow | undefined;
  try {
    window = opts.window === undefined ? undefined : parseMaintenanceWindow(opts.window);
  } catch (err) {
    throw new UpgradeRefused((err as Error).message, exit.usage);
  }
  if (opts.dryRun) {
    const p = planFleetUpgrade(await planInstances(ctx.registry, { serviceId: service.id, planId: plan.id }), targetVersion);
    const result = { dryRun: true, serviceId: service.id, planId: plan.id, targetVersion, changes: p.changes, current: p.current, skipped: p.skipped };
    if (opts.json) write(JSON.stringify(result));
    else {
      write(`dry run: fleet upgrade of plan ${plan.name} (${plan.id}) to maintenance version ${targetVersion}: ${p.changes.length} to update, ${p.current.length} already current, ${p.skipped.length} skipped; nothing was changed`);
      p.changes.forEach((c) => write(`  ${c.instanceId}: ${c.from ?? '(none)'} -> ${c.to}`));
      p.skipped.forEach((s) => write(`  skipped: ${s.instanceId}: ${s.reason}`));
    }
    return exit.ok;
  }
  const requestedBy = cliCancelIdentity();
  const input: FleetUpgradeInput = {
    serviceId: service.id,
    planId: plan.id,
    targetVersion,
    maxInFlight,
    ...(stopAfterFailures !== undefined ? { stopAfterFailures } : {}),
    ...(window ? { window } : {}),
    ...(busyRetrySeconds !== undefined ? { busyRetrySeconds } : {}),
    requestedBy,
  };
  const workflowId = fleetUpgradeWorkflowId(plan.id);
  const summary = `fleet upgrade of plan ${plan.name} (${plan.id}) to maintenance version ${targetVersion}, ${maxInFlight} at a time${window ? `, in ${formatMaintenanceWindow(window)}` : ''}${stopAfterFailures ? `, stop after ${stopAfterFailures} failures` : ''}`;
  let runId: string;
  try {
    const handle = await ctx.client.workflow.start(FLEET_UPGRADE_WORKFLOW, {
      taskQueue: ctx.config.temporal.taskQueue,
      workflowId,
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      args: [input],
      staticSummary: summary,
      typedSearchAttributes: new TypedSearchAttributes([
        { key: ServiceIdKey, value: service.id },
        { key: PlanIdKey, value: plan.id },
        { key: OperationTypeKey, value: 'fleet-upgrade' },
        { key: OperationStateKey, value: 'in progress' },
        { key: OriginatingUserKey, value: `brokerflow-cli/${requestedBy}` },
      ]),
    });
    runId = handle.firstExecutionRunId;
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const running = await readProgress(ctx.client.workflow.getHandle(workflowId)).catch(() => undefined);
    throw new UpgradeRefused(
      `a fleet upgrade of plan ${plan.name} is already running (workflow ${workflowId}${running ? `: ${progressLine(running.progress)}` : ''}); follow it with \`brokerflow upgrade status --plan ${plan.id} --watch\`, or abort it first`,
      exit.conflict,
    );
  }
  write(
    opts.json
      ? JSON.stringify({ started: true, workflowId, runId, serviceId: service.id, planId: plan.id, targetVersion, maxInFlight, ...(stopAfterFailures ? { stopAfterFailures } : {}), ...(window ? { window: formatMaintenanceWindow(window) } : {}) })
      : `started: ${summary} (workflow ${workflowId})${opts.watch ? '' : `\n  follow it with: brokerflow upgrade status --plan ${plan.id} --watch`}`,
  );
  return opts.watch ? watch(ctx.client.workflow.getHandle(workflowId), opts, exit) : exit.ok;
}
