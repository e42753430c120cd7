// One reconcile step of one resource, as both the reconcile activities and a dry run run it: render the
// resource's spec template with the operation's context, call the driver's method for the step, and turn the
// drivers' cancellation errors into flags (docs/design/contracts/reconciliation.md#cancellation-and-flags).
import type { ResourceDef } from '../../config/resource-sets';
import type { CrudStep, Patch, ReconcileObject, ResourceState, StepArgs, TemplateContext } from '../../domain/reconcile';
import { renderSpec } from './template';
import { ReconciliationCanceled, ResourceCanceled, UnknownDriverError, type DriverContext, type ResourceDriver } from './types';

/** What every step receives: which resource, for whom, and the template context. */
export interface StepInput {
  resource: ResourceDef;
  object: ReconcileObject;
  template: TemplateContext;
}

/** A step's answer: its value, or a cancellation flag raised by the driver. */
export interface StepResult<T> {
  value?: T;
  cancel?: 'resource' | 'reconciliation';
  reason?: string;
}

/** The value each step answers. */
export interface StepValues {
  getCurrentState: ResourceState;
  getDesiredState: ResourceState;
  newUpdatePatch: Patch;
  newDeletePatch: Patch;
  applyCreateChange: void;
  applyDeleteChange: void;
  applyUpdateChange: void;
}

/** The driver of a resource's kind; UnknownDriverError (never retried) when none is configured. */
export function driverFor(drivers: Map<string, ResourceDriver>, kind: string): ResourceDriver {
  const d = drivers.get(kind);
  if (!d) throw new UnknownDriverError(kind);
  return d;
}

/**
 * Runs `step` for `input.resource` with its driver. Driver errors other than the two cancellations are thrown
 * as they are (typed adapter errors), so the caller decides about retries.
 */
export async function runResourceStep<S extends CrudStep>(
  drivers: Map<string, ResourceDriver>,
  step: S,
  input: StepInput & StepArgs,
  ctx: DriverContext,
): Promise<StepResult<StepValues[S]>> {
  try {
    const driver = driverFor(drivers, input.resource.driver);
    const spec = renderSpec(input.resource.name, input.resource.spec, input.template);
    return { value: (await callDriver(driver, step, spec, input, ctx)) as StepValues[S] };
  } catch (err) {
    if (err instanceof ReconciliationCanceled) return { cancel: 'reconciliation', reason: err.message };
    if (err instanceof ResourceCanceled) return { cancel: 'resource', reason: err.message };
    throw err;
  }
}

async function callDriver(d: ResourceDriver, step: CrudStep, spec: Record<string, unknown>, input: StepArgs, ctx: DriverContext): Promise<unknown> {
  switch (step) {
    case 'getCurrentState':
      return d.getCurrentState(spec, ctx);
    case 'getDesiredState':
      return d.getDesiredState(spec, ctx);
    case 'newUpdatePatch':
      return d.newUpdatePatch(input.current ?? null, input.desired ?? null);
    case 'newDeletePatch':
      return d.newDeletePatch(input.current ?? null, input.desired ?? null);
    case 'applyCreateChange':
      return d.applyCreateChange(input.state ?? null, ctx);
    case 'applyDeleteChange':
      return d.applyDeleteChange(input.state ?? null, ctx);
    case 'applyUpdateChange':
      return d.applyUpdateChange(input.state ?? null, ctx);
  }
}
