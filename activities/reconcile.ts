// The CRUD steps of reconciliation, one activity each, dispatching to the resource's driver through
// adapters/resources/steps.ts (which dry runs share). Each renders the resource's spec template with the
// operation's context, so every step recomputes from current state.
import { Context } from '@temporalio/activity';
import type { CrudStep, Patch, ResourceState, StepArgs } from '../domain/reconcile';
import type { DriverContext, ResourceDriver } from '../adapters/resources/types';
import { runResourceStep, type StepInput, type StepResult } from '../adapters/resources/steps';
import type { ReconcileMetrics } from './metrics';
import { asActivity } from './failures';

export type { StepInput, StepResult } from '../adapters/resources/steps';
export type { CrudStep } from '../domain/reconcile';

/** What reconcile activities are built from. */
export interface ReconcileDeps {
  drivers: Map<string, ResourceDriver>;
  metrics?: ReconcileMetrics;
}

export function createReconcileActivities(deps: ReconcileDeps) {
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

  async function run<S extends CrudStep>(step: S, input: StepInput & StepArgs) {
    const started = process.hrtime.bigint();
    let failed = false;
    // Applies run under a heartbeat timeout: beat while the driver works so only a dead worker misses it.
    const beat = step.startsWith('apply') ? setInterval(() => heartbeatIfActivity(), 3000) : undefined;
    try {
      return await asActivity(`resource "${input.resource.name}" (${input.resource.driver}) ${step}`, () =>
        runResourceStep(deps.drivers, step, input, driverContext(input)),
      );
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
      return run('getCurrentState', input);
    },
    async getDesiredState(input: StepInput): Promise<StepResult<ResourceState>> {
      return run('getDesiredState', input);
    },
    async newUpdatePatch(input: StepInput & { current: ResourceState; desired: ResourceState }): Promise<StepResult<Patch>> {
      return run('newUpdatePatch', input);
    },
    async newDeletePatch(input: StepInput & { current: ResourceState; desired: ResourceState }): Promise<StepResult<Patch>> {
      return run('newDeletePatch', input);
    },
    async applyCreateChange(input: StepInput & { state: ResourceState }): Promise<StepResult<void>> {
      return run('applyCreateChange', input);
    },
    async applyDeleteChange(input: StepInput & { state: ResourceState }): Promise<StepResult<void>> {
      return run('applyDeleteChange', input);
    },
    async applyUpdateChange(input: StepInput & { state: ResourceState }): Promise<StepResult<void>> {
      return run('applyUpdateChange', input);
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
