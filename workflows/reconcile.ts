// Reconciliation as workflow steps: resources strictly in order; per resource current state, desired state, the
// update (or delete) patch, then its create, delete and update parts (domain/reconcile.ts#reconcileResource, which
// dry runs share) — in that order, as operatorkit's ProcessUpdate does (its Patch comment says otherwise; the code and
// docs/design/contracts/reconciliation.md#step-order agree on create, delete, update). Each step is an activity
// whose retries and backoff come from the step policies in workflows/activity-policies.ts. The first failure
// stops the chain and names the resource and step.
import { ApplicationFailure, patched, proxySinks, type Sinks } from '@temporalio/workflow';
import type { RetryPolicy } from '@temporalio/common';
import { causeMessage, defaultStepRetry, stepPlacement } from './activity-policies';
import { placedActivities } from './local-first';
import type { ReconcileActivities, StepInput, StepResult } from '../activities/reconcile';
import type { ResourceDef } from '../config/resource-sets';
import { reconcileResource, type CrudStep, type PatchFlags, type ReconcileObject, type StepArgs, type TemplateContext } from '../domain/reconcile';

/** Per-reconciliation settings (operatorkit's context flags that a caller may set up front). */
export interface ReconcileOptions extends PatchFlags {
  /** Overrides of the step retry policy (tests, operators with slow dependencies). */
  retry?: Partial<Pick<RetryPolicy, 'initialInterval' | 'backoffCoefficient' | 'maximumInterval' | 'maximumAttempts'>>;
}

/** Input of {@link reconcileWorkflow} and {@link reconcile}. */
export interface ReconcileInput {
  resources: ResourceDef[];
  object: ReconcileObject;
  template: TemplateContext;
  mode: 'update' | 'delete';
  options?: ReconcileOptions;
}

/** How a reconciliation ended when it did not fail. */
export type ReconcileOutcome =
  | { status: 'completed'; resources: string[]; canceledResources: string[] }
  | { status: 'canceled'; at: string; reason: string; resources: string[] };

/** Where a running reconciliation is, for progress queries. */
export interface ReconcileProgress {
  resource?: string;
  step?: CrudStep;
  /**
   * The failure of the step's local attempt (workflows/local-first.ts), shown as its last error until the regular
   * activity that continues it has one of its own; query answers only, never in history.
   */
  lastFailure?: string;
  done: number;
  total: number;
}

/** Workflow sink the worker implements to record reconcile metrics (never called during replay). */
export interface ReconcileSinks extends Sinks {
  reconcileMetrics: { event(event: 'update' | 'delete', seconds: number): void };
}

/**
 * The patch under which reads, patches, registry records and the applies of quick drivers run local first
 * (workflows/local-first.ts). Asked once per run, before its first activity: runs recorded before it keep regular
 * activities to their end.
 */
export const LOCAL_FIRST_PATCH = 'local-first-steps';

/** Thrown (as the failure type) when a resource step fails for good. */
export const ReconcileFailedType = 'ReconcileFailed';

/** Which group's placement each step takes (workflows/activity-policies.ts#stepPlacement). */
const stepGroup: Record<CrudStep, 'reads' | 'pure' | 'applies'> = {
  getCurrentState: 'reads',
  getDesiredState: 'reads',
  newUpdatePatch: 'pure',
  newDeletePatch: 'pure',
  applyCreateChange: 'applies',
  applyDeleteChange: 'applies',
  applyUpdateChange: 'applies',
};

/** The step activities of a resource of driver `driver`, with their options per group (workflows/activity-policies.ts). */
function stepActivities(retry: RetryPolicy, waitForCancelledApplies: boolean, driver: string, local: boolean) {
  const placement = stepPlacement(retry, waitForCancelledApplies, driver, local);
  const groups = {
    reads: placedActivities<ReconcileActivities>(placement.reads),
    pure: placedActivities<ReconcileActivities>(placement.pure),
    applies: placedActivities<ReconcileActivities>(placement.applies),
  };
  return <T>(name: CrudStep, args: StepInput & StepArgs, opts: { summary: string; onLocalFailure: (err: unknown) => void }): Promise<StepResult<T>> =>
    groups[stepGroup[name]].run(name, [args as never], opts) as Promise<StepResult<T>>;
}

/**
 * Runs a resource set. Returns how it ended; throws an ApplicationFailure of type `ReconcileFailed` (with
 * details `{resource, step}`) on the first step that fails after its retries.
 */
export async function reconcile(input: ReconcileInput, progress: ReconcileProgress = { done: 0, total: 0 }, local = false): Promise<ReconcileOutcome> {
  if (input.resources.length === 0) {
    throw ApplicationFailure.nonRetryable('execution failed: the resource set has no resources', 'ExecutionFailed');
  }
  const opts = input.options ?? {};
  const retry = { ...defaultStepRetry, ...opts.retry };
  // An apply that a cancellation interrupts (a DELETE stopping a provision) may have a call in flight: the
  // workflow waits until the apply has stopped before it goes on, so the deprovision that follows never races a
  // create that lands after its delete (the resource would be left behind). Histories from before this rule keep
  // their old path (they did not wait).
  const waitForCancelledApplies = patched('wait-for-cancelled-applies');
  const { reconcileMetrics } = proxySinks<ReconcileSinks>();
  const startedAt = Date.now();
  progress.total = input.resources.length;
  progress.done = 0;
  const done: string[] = [];
  const canceledResources: string[] = [];

  for (const resource of input.resources) {
    progress.resource = resource.name;
    const acts = stepActivities(retry, waitForCancelledApplies, resource.driver, local);
    const base: StepInput = { resource, object: input.object, template: input.template };
    const step = async <T>(name: CrudStep, call: () => Promise<StepResult<T>>): Promise<StepResult<T>> => {
      progress.step = name;
      progress.lastFailure = undefined;
      try {
        return await call();
      } catch (err) {
        throw ApplicationFailure.create({
          type: ReconcileFailedType,
          message: `resource "${resource.name}" step ${name} failed: ${causeMessage(err)}`,
          nonRetryable: true,
          details: [{ resource: resource.name, step: name }],
        });
      }
    };
    const summary = (name: CrudStep) => ({ summary: `${resource.name}: ${name}` });

    // Each call carries a summary so the Web UI names the resource next to the step (local activities' markers too).
    const onLocalFailure = (err: unknown) => (progress.lastFailure = causeMessage(err));
    const run = async <T>(name: CrudStep, args: StepInput & StepArgs): Promise<StepResult<T> | 'resource'> => {
      const res = await step(name, () => acts<T>(name, args, { ...summary(name), onLocalFailure }));
      if (res.cancel === 'reconciliation') {
        throw new ReconciliationStop(resource.name, res.reason ?? 'canceled');
      }
      if (res.cancel === 'resource') return 'resource';
      return res;
    };

    try {
      const outcome = await reconcileResource(input.mode, (name, args) => run(name, { ...base, ...args }), opts);
      if (outcome === 'canceled') canceledResources.push(resource.name);
      else done.push(resource.name);
    } catch (err) {
      if (err instanceof ReconciliationStop) {
        reconcileMetrics.event(input.mode, (Date.now() - startedAt) / 1000);
        return { status: 'canceled', at: err.resource, reason: err.reason, resources: done };
      }
      throw err;
    } finally {
      progress.done += 1;
    }
  }
  progress.resource = undefined;
  progress.step = undefined;
  progress.lastFailure = undefined;
  reconcileMetrics.event(input.mode, (Date.now() - startedAt) / 1000);
  return { status: 'completed', resources: done, canceledResources };
}

class ReconciliationStop extends Error {
  constructor(readonly resource: string, readonly reason: string) {
    super(reason);
  }
}

/**
 * A standalone reconciliation (operators and tests); operation workflows call {@link reconcile} inline. Runs
 * recorded before steps ran local first replay on the regular path (the patch is asked before the first step).
 */
export async function reconcileWorkflow(input: ReconcileInput): Promise<ReconcileOutcome> {
  return reconcile(input, undefined, patched(LOCAL_FIRST_PATCH));
}
