// The CRUD steps of reconciliation, one activity each, dispatching to the resource's driver. Each renders the
// resource's spec template with the operation's context, so every step recomputes from current state.
import { Context } from '@temporalio/activity';
import type { ResourceDef } from '../config/resource-sets';
import type { Patch, ReconcileObject, ResourceState, TemplateContext } from '../domain/reconcile';
import { ReconciliationCanceled, ResourceCanceled, UnknownDriverError, type DriverContext, type ResourceDriver } from '../adapters/resources/types';
import { renderSpec } from '../adapters/resources/template';
import type { ReconcileMetrics } from './metrics';
import { asActivity } from './failures';

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

export type CrudStep =
  | 'getCurrentState'
  | 'getDesiredState'
  | 'newUpdatePatch'
  | 'newDeletePatch'
  | 'applyCreateChange'
  | 'applyDeleteChange'
  | 'applyUpdateChange';

/** What reconcile activities are built from. */
export interface ReconcileDeps {
  drivers: Map<string, ResourceDriver>;
  metrics?: ReconcileMetrics;
}

export function createReconcileActivities(deps: ReconcileDeps) {
  const driverFor = (kind: string): ResourceDriver => {
    const d = deps.drivers.get(kind);
    if (!d) throw new UnknownDriverError(kind);
    return d;
  };

  const driverContext = (input: StepInput): DriverContext => {
    let ctx: Context | undefined;
    try {
      ctx = Context.current();
    } catch {
      ctx = undefined;
    }
    return {
      object: input.object,
      resourceName: input.resource.name,
      heartbeat: (details) => ctx?.heartbeat(details),
      signal: ctx?.cancellationSignal ?? new AbortController().signal,
    };
  };

  async function run<T>(step: CrudStep, input: StepInput, body: (d: ResourceDriver, spec: Record<string, unknown>, ctx: DriverContext) => Promise<T>): Promise<StepResult<T>> {
    const started = process.hrtime.bigint();
    let failed = false;
    // Applies run under a heartbeat timeout: beat while the driver works so only a dead worker misses it.
    const beat = step.startsWith('apply') ? setInterval(() => heartbeatIfActivity(), 3000) : undefined;
    try {
      return await asActivity(`resource "${input.resource.name}" (${input.resource.driver}) ${step}`, async () => {
        try {
          const driver = driverFor(input.resource.driver);
          const spec = renderSpec(input.resource.name, input.resource.spec, input.template);
          return { value: await body(driver, spec, driverContext(input)) };
        } catch (err) {
          if (err instanceof ReconciliationCanceled) return { cancel: 'reconciliation' as const, reason: err.message };
          if (err instanceof ResourceCanceled) return { cancel: 'resource' as const, reason: err.message };
          throw err;
        }
      });
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      if (beat) clearInterval(beat);
      deps.metrics?.observeStep(input.resource.name, step, Number(process.hrtime.bigint() - started) / 1e9, failed);
    }
  }

  return {
    async getCurrentState(input: StepInput): Promise<StepResult<ResourceState>> {
      return run('getCurrentState', input, (d, spec, ctx) => d.getCurrentState(spec, ctx));
    },
    async getDesiredState(input: StepInput): Promise<StepResult<ResourceState>> {
      return run('getDesiredState', input, (d, spec, ctx) => d.getDesiredState(spec, ctx));
    },
    async newUpdatePatch(input: StepInput & { current: ResourceState; desired: ResourceState }): Promise<StepResult<Patch>> {
      return run('newUpdatePatch', input, async (d) => d.newUpdatePatch(input.current, input.desired));
    },
    async newDeletePatch(input: StepInput & { current: ResourceState; desired: ResourceState }): Promise<StepResult<Patch>> {
      return run('newDeletePatch', input, async (d) => d.newDeletePatch(input.current, input.desired));
    },
    async applyCreateChange(input: StepInput & { state: ResourceState }): Promise<StepResult<void>> {
      return run('applyCreateChange', input, (d, _spec, ctx) => d.applyCreateChange(input.state, ctx));
    },
    async applyDeleteChange(input: StepInput & { state: ResourceState }): Promise<StepResult<void>> {
      return run('applyDeleteChange', input, (d, _spec, ctx) => d.applyDeleteChange(input.state, ctx));
    },
    async applyUpdateChange(input: StepInput & { state: ResourceState }): Promise<StepResult<void>> {
      return run('applyUpdateChange', input, (d, _spec, ctx) => d.applyUpdateChange(input.state, ctx));
    },
  };
}

function heartbeatIfActivity(): void {
  try {
    Context.current().heartbeat();
  } catch {
    /* not inside an activity (direct calls in tests) */
  }
}

/** The reconcile activities, as workflows see them. */
export type ReconcileActivities = ReturnType<typeof createReconcileActivities>;
