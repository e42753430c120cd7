// Reconciliation as workflow steps: resources strictly in order; per resource current state, desired state, the
// update (or delete) patch, then its create, delete and update parts (domain/reconcile.ts#reconcileResource, which
// dry runs share) — in that order, as operatorkit's ProcessUpdate does (its Patch comment says otherwise; the code and
// docs/design/contracts/reconciliation.md#step-order agree on create, delete, update). Each step is an activity
// whose retries and backoff come from the step policies in workflows/activity-policies.ts. The first failure
// stops the chain and names the resource and step.
import { ApplicationFailure, patched, proxyActivities, proxySinks, type Sinks } from '@temporalio/workflow';
import type { RetryPolicy } from '@temporalio/common';
import { causeMessage, defaultStepRetry, stepOptions } from './activity-policies';
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
  done: number;
  total: number;
}

/** Workflow sink the worker implements to record reconcile metrics (never called during replay). */
export interface ReconcileSinks extends Sinks {
  reconcileMetrics: { event(event: 'update' | 'delete', seconds: number): void };
}

/** Thrown (as the failure type) when a resource step fails for good. */
export const ReconcileFailedType = 'ReconcileFailed';

/** The step activities, with their options per group (workflows/activity-policies.ts). */
function stepActivities(retry: RetryPolicy) {
  // An apply that a cancellation interrupts (a DELETE stopping a provision) may have a call in flight: the
  // workflow waits until the apply has stopped before it goes on, so the deprovision that follows never races a
  // create that lands after its delete (the resource would be left behind). Histories from before this rule keep
  // their old path (they did not wait).
  const options = stepOptions(retry, patched('wait-for-cancelled-applies'));
  const reads = proxyActivities<ReconcileActivities>(options.reads);
  const pure = proxyActivities<ReconcileActivities>(options.pure);
  const applies = proxyActivities<ReconcileActivities>(options.applies);
  return {
    getCurrentState: reads.getCurrentState,
    getDesiredState: reads.getDesiredState,
    newUpdatePatch: pure.newUpdatePatch,
    newDeletePatch: pure.newDeletePatch,
    applyCreateChange: applies.applyCreateChange,
    applyDeleteChange: applies.applyDeleteChange,
    applyUpdateChange: applies.applyUpdateChange,
  };
}

/**
 * Runs a resource set. Returns how it ended; throws an ApplicationFailure of type `ReconcileFailed` (with
 * details `{resource, step}`) on the first step that fails after its retries.
 */
export async function reconcile(input: ReconcileInput, progress: ReconcileProgress = { done: 0, total: 0 }): Promise<ReconcileOutcome> {
  if (input.resources.length === 0) {
    throw ApplicationFailure.nonRetryable('execution failed: the resource set has no resources', 'ExecutionFailed');
  }
  const opts = input.options ?? {};
  const acts = stepActivities({ ...defaultStepRetry, ...opts.retry });
  const { reconcileMetrics } = proxySinks<ReconcileSinks>();
  const startedAt = Date.now();
  progress.total = input.resources.length;
  progress.done = 0;
  const done: string[] = [];
  const canceledResources: string[] = [];

  for (const resource of input.resources) {
    progress.resource = resource.name;
    const base: StepInput = { resource, object: input.object, template: input.template };
    const step = async <T>(name: CrudStep, call: () => Promise<StepResult<T>>): Promise<StepResult<T>> => {
      progress.step = name;
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

    // Each call goes through executeWithOptions so the Web UI names the resource next to the step.
    const run = async <T>(name: CrudStep, args: StepInput & StepArgs): Promise<StepResult<T> | 'resource'> => {
      const fn = acts[name] as unknown as { executeWithOptions(o: object, a: unknown[]): Promise<StepResult<T>> };
      const res = await step(name, () => fn.executeWithOptions(summary(name), [args]));
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
  reconcileMetrics.event(input.mode, (Date.now() - startedAt) / 1000);
  return { status: 'completed', resources: done, canceledResources };
}

class ReconciliationStop extends Error {
  constructor(readonly resource: string, readonly reason: string) {
    super(reason);
  }
}

/** A standalone reconciliation (operators and tests); operation workflows call {@link reconcile} inline. */
export async function reconcileWorkflow(input: ReconcileInput): Promise<ReconcileOutcome> {
  return reconcile(input);
}
