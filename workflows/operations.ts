// The OSB operations as workflows. Each reads like its story: record the operation in the registry, reconcile
// the plan's resource set, record how it ended. All operations on an instance share the workflow ID
// `instance/<id>`, so at most one runs at a time; the registry is the record that last_operation reads.
import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  makeContinueAsNewFunc,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { OperationActivities } from '../activities/operations';
import type { ResourceDef } from '../config/resource-sets';
import type { ReconcileObject } from '../adapters/resources/types';
import type { TemplateContext } from '../adapters/resources/template';
import { reconcile, type ReconcileProgress } from './reconcile';
import { OperationState, OperationType } from './searchAttributes';
import {
  deprovisionAfterProvisionId,
  deprovisionRequestedSignal,
  operationSummary,
  progressQuery,
  type OperationInput,
  type OperationMemo,
  type OperationProgress,
  type OperationResult,
} from './messages';

// Registry calls are single reads and writes: a 10 s limit lets a dead worker's call be retried elsewhere soon.
const records = proxyActivities<OperationActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 12, nonRetryableErrorTypes: ['Invalid', 'Permission', 'OperationInProgress', 'AmbiguousResourceSet'] },
});

/** The object reconcile drivers see, built from the operation input. */
function reconcileObject(i: OperationInput): ReconcileObject {
  const ns = typeof i.context.namespace === 'string' ? i.context.namespace : undefined;
  return {
    operationId: i.operationId,
    instanceId: i.instanceId,
    ...(i.bindingId ? { bindingId: i.bindingId } : {}),
    serviceId: i.serviceId,
    planId: i.planId,
    ...(ns ? { namespace: ns } : {}),
  };
}

/** What templates can read: pure data from the operation input. */
export function templateContext(
  i: OperationInput,
  instance?: Pick<OperationInput, 'parameters' | 'context'>,
  owner: TemplateContext['owner'] = null,
): TemplateContext {
  const ns = typeof i.context.namespace === 'string' ? i.context.namespace : undefined;
  const inst = i.bindingId ? instance ?? { parameters: {}, context: {} } : i;
  return {
    instance: {
      id: i.instanceId,
      serviceId: i.serviceId,
      planId: i.planId,
      parameters: inst.parameters,
      context: inst.context,
      ...(ns ? { namespace: ns } : {}),
    },
    ...(i.bindingId ? { binding: { id: i.bindingId, parameters: i.parameters, context: i.context } } : {}),
    operation: { id: i.operationId, type: i.operation },
    owner,
  };
}

/** Shared bookkeeping of every operation: progress query, search attributes, begin and complete records. */
class OperationRun {
  readonly progress: OperationProgress;

  constructor(readonly input: OperationInput) {
    this.progress = {
      operation: input.operation,
      operationId: input.operationId,
      instanceId: input.instanceId,
      ...(input.bindingId ? { bindingId: input.bindingId } : {}),
      state: 'in progress',
      phase: 'recording',
      reconcile: { done: 0, total: 0 },
      startedAt: Date.now(),
    };
    setHandler(progressQuery, () => this.progress);
  }

  get reconcileProgress(): ReconcileProgress {
    return this.progress.reconcile;
  }

  /** Whether the registry has recorded this operation as begun (so its end must be recorded too). */
  begun = false;
  /** The registry entry's owner reference (Kubernetes registry backend), for templates. */
  owner: TemplateContext['owner'] = null;

  async begin(): Promise<{ alreadySucceeded: boolean }> {
    const res = await records.recordBegin(this.input);
    this.begun = !res.alreadySucceeded;
    this.owner = res.owner ?? null;
    this.progress.phase = 'reconciling';
    return res;
  }

  async resources(part: 'instance' | 'binding', planId = this.input.planId): Promise<ResourceDef[] | { skipped: string }> {
    const routed = await records.resolveResources({
      serviceId: this.input.serviceId,
      planId,
      ...(this.input.maintenanceVersion ? { maintenanceVersion: this.input.maintenanceVersion } : {}),
      part,
    });
    return 'skipped' in routed ? routed : routed.resources;
  }

  /** Records the end in the registry (even when the workflow is being cancelled) and returns the result. */
  async finish(error: string | undefined): Promise<OperationResult> {
    this.progress.phase = 'completing';
    await CancellationScope.nonCancellable(() =>
      records.recordComplete({
        operation: this.input.operation,
        operationId: this.input.operationId,
        instanceId: this.input.instanceId,
        ...(this.input.bindingId ? { bindingId: this.input.bindingId } : {}),
        ...(error !== undefined ? { error } : {}),
      }),
    );
    const state = error === undefined ? 'succeeded' : 'failed';
    this.progress.state = state;
    this.progress.phase = 'done';
    if (error !== undefined) this.progress.description = error;
    upsertSearchAttributes([{ key: OperationState, value: state }]);
    return { operation: this.input.operation, operationId: this.input.operationId, state, ...(error !== undefined ? { description: error } : {}) };
  }

  /** Ends without a registry write: the same request had already succeeded. */
  done(): OperationResult {
    this.progress.state = 'succeeded';
    this.progress.phase = 'done';
    upsertSearchAttributes([{ key: OperationState, value: 'succeeded' }]);
    return { operation: this.input.operation, operationId: this.input.operationId, state: 'succeeded', description: 'already done' };
  }

  async reconcile(resources: ResourceDef[], mode: 'update' | 'delete', instance?: Pick<OperationInput, 'parameters' | 'context'>): Promise<void> {
    await reconcile(
      {
        resources,
        object: reconcileObject(this.input),
        template: templateContext(this.input, instance, this.owner),
        mode,
        ...(this.input.stepRetry ? { options: { retry: this.input.stepRetry } } : {}),
      },
      this.progress.reconcile,
    );
  }
}

/** The description a platform sees for a failed operation: the failure's message, never its stack. */
function describeFailure(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && 'cause' in e && e.cause instanceof Error && !(e instanceof ApplicationFailure && e.type === 'ReconcileFailed')) {
    e = e.cause;
  }
  return e instanceof Error ? e.message : String(e);
}

/** Provision: create everything the plan's resource set describes. A DELETE meanwhile stops it and deprovisions. */
export async function provision(input: OperationInput): Promise<OperationResult> {
  const run = new OperationRun(input);
  let deprovisionInput: OperationInput | undefined;
  const scope = new CancellationScope();
  setHandler(deprovisionRequestedSignal, (req) => {
    if (deprovisionInput) return;
    deprovisionInput = { ...req, operationId: deprovisionAfterProvisionId(input.operationId) };
    const memo: OperationMemo = {
      operation: 'deprovision',
      operationId: deprovisionInput.operationId,
      fingerprint: req.fingerprint,
      summary: operationSummary(deprovisionInput),
    };
    upsertMemo(memo as unknown as Record<string, unknown>);
    scope.cancel();
  });

  let error: string | undefined;
  let alreadySucceeded = false;
  try {
    await scope.run(async () => {
      ({ alreadySucceeded } = await run.begin());
      if (alreadySucceeded) return;
      const resources = await run.resources('instance');
      if (Array.isArray(resources)) await run.reconcile(resources, 'update');
    });
  } catch (err) {
    if (!(deprovisionInput && isCancellation(err))) error = describeFailure(err);
  }
  const continueAsDeprovision = (d: OperationInput) => {
    const next = makeContinueAsNewFunc<typeof deprovision>({
      workflowType: 'deprovision',
      memo: { operation: 'deprovision', operationId: d.operationId, fingerprint: d.fingerprint, summary: operationSummary(d) },
      typedSearchAttributes: workflowInfo().typedSearchAttributes.updateCopy([
        { key: OperationType, value: 'deprovision' },
        { key: OperationState, value: 'in progress' },
      ]),
    });
    return next(d);
  };
  if (deprovisionInput) {
    // A provision interrupted before it recorded anything has nothing to close in the registry.
    if (run.begun) await run.finish('provisioning was stopped: the platform deleted the instance');
    return continueAsDeprovision(deprovisionInput);
  }
  // An identical provision that already succeeded (a re-PUT racing the previous run's end) records nothing new.
  const result = alreadySucceeded ? run.done() : await run.finish(error);
  // A DELETE that arrived while the end was being recorded was answered 202: it must still happen.
  const late = deprovisionInput as OperationInput | undefined;
  if (late) return continueAsDeprovision(late);
  return result;
}

/** Update: reconcile the (possibly new) plan's resource set with the new parameters. */
export async function update(input: OperationInput): Promise<OperationResult> {
  const run = new OperationRun(input);
  try {
    await run.begin();
    const resources = await run.resources('instance');
    if (Array.isArray(resources)) await run.reconcile(resources, 'update');
    return run.finish(undefined);
  } catch (err) {
    return run.finish(describeFailure(err));
  }
}

/** Deprovision: delete every binding's resources, then the instance's; the entry goes only when all succeeded. */
export async function deprovision(input: OperationInput): Promise<OperationResult> {
  const run = new OperationRun(input);
  try {
    await run.begin();
    const bindings = await records.listBindings({ instanceId: input.instanceId });
    if (bindings.length > 0) {
      const bindingResources = await run.resources('binding');
      if (Array.isArray(bindingResources) && bindingResources.length > 0) {
        for (const b of bindings) {
          const child = new OperationRun({ ...input, bindingId: b.bindingId, parameters: b.parameters, context: b.context });
          await child.reconcile(bindingResources, 'delete', input);
          await records.removeBindingEntry({ instanceId: input.instanceId, bindingId: b.bindingId });
        }
      }
    }
    const resources = await run.resources('instance');
    if (Array.isArray(resources)) await run.reconcile(resources, 'delete');
    return run.finish(undefined);
  } catch (err) {
    return run.finish(describeFailure(err));
  }
}

/** Bind: reconcile the binding resources; their outputs become credentials, written straight to the registry. */
export async function bind(input: OperationInput): Promise<OperationResult> {
  const run = new OperationRun(input);
  try {
    const { alreadySucceeded } = await run.begin();
    if (alreadySucceeded) return run.done();
    const instance = await records.readInstanceInputs({ instanceId: input.instanceId });
    const resources = await run.resources('binding');
    if (Array.isArray(resources)) {
      await run.reconcile(resources, 'update', instance);
      await records.storeCredentials({
        resources,
        object: reconcileObject(input),
        template: templateContext(input, instance, run.owner),
      });
    }
    return run.finish(undefined);
  } catch (err) {
    return run.finish(describeFailure(err));
  }
}

/** Unbind: delete the binding resources; the binding entry goes (a tombstone keeps the last operation). */
export async function unbind(input: OperationInput): Promise<OperationResult> {
  const run = new OperationRun(input);
  try {
    await run.begin();
    const instance = await records.readInstanceInputs({ instanceId: input.instanceId });
    const resources = await run.resources('binding');
    if (Array.isArray(resources)) await run.reconcile(resources, 'delete', instance);
    return run.finish(undefined);
  } catch (err) {
    return run.finish(describeFailure(err));
  }
}
