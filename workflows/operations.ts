// The OSB operations as workflows. Each reads like its story: record the operation in the registry, reconcile
// the plan's resource set, record how it ended. Provision, update and deprovision of an instance share the
// workflow ID `instance/<id>`, so at most one runs at a time; each binding's bind and unbind share
// `binding/<id>`, and the registry's binding lock shares keep them and the instance's own operations apart
// (docs/design/osb-semantics.md). The registry is the record that last_operation reads.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  getExternalWorkflowHandle,
  isCancellation,
  ParentClosePolicy,
  makeContinueAsNewFunc,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { CredentialExpiry, OperationActivities } from '../activities/operations';
import type { CancellationActivities } from '../activities/cancellation';
import type { ResourceDef } from '../config/resource-sets';
import type { TemplateContext } from '../domain/reconcile';
import { LOCAL_FIRST_PATCH, reconcile, type ReconcileProgress } from './reconcile';
import { describeFailure, recordOptions, recordPlacement } from './activity-policies';
import { placedActivities } from './local-first';
import { OperationStateKey, OperationTypeKey, OriginatingUserKey } from './searchAttributes';
import { requesterLabel } from '../domain/audit';
import {
  bindingExpiryWorkflowId,
  cancelledDescription,
  credentialTimes,
  cancelledUndoFailedDescription,
  undoFailedDescription,
  deprovisionAfterProvisionId,
  deprovisionRequestedSignal,
  operationSummary,
  pollingBoundDescription,
  progressQuery,
  reconcileObject,
  templateContext,
  type BindingExpiryInput,
  type BindingExpiryResult,
  type OperationInput,
  type OperationMemo,
  type OperationProgress,
  type OperationResult,
} from './messages';

/** The registry activities of an operation. */
type Records = OperationActivities;

/**
 * Who cancelled: always a regular activity. It reads the run's history through the worker's client, and it runs
 * only when an operation is undone, where a task-queue round trip costs nothing that matters.
 */
const cancellation = proxyActivities<CancellationActivities>(recordOptions);

/**
 * The registry activities of a run: local first when the run records its steps that way (the patch
 * {@link LOCAL_FIRST_PATCH}, asked once per run before its first activity), else regular activities, as runs
 * recorded before it did.
 */
function recordsOf(local: boolean): Records {
  return placedActivities<Records>(local ? recordPlacement : { regular: recordOptions }).activities;
}

/**
 * Whether a failure before the begin was recorded ends without a registry write. Histories from before this
 * rule recorded every failure (a recordComplete activity), so they replay on the old path.
 */
function refusesUnrecorded(): boolean {
  return patched('refuse-unrecorded-failures');
}

/**
 * The deprovision a DELETE asked for is searchable by whoever sent the DELETE, not by who provisioned. Runs that
 * continued before this rule carried the provision's search attributes over, so they replay on that path.
 */
function deprovisionRequester(d: OperationInput): Array<{ key: typeof OriginatingUserKey; value: string }> {
  return patched('originating-user-of-continued-deprovision') ? [{ key: OriginatingUserKey, value: requesterLabel(d.requestedBy) }] : [];
}

/**
 * Whether a cancelled operation undoes its work and records "cancelled by <who>" (provision, update, bind).
 * Asked only once the workflow is cancelled: histories cancelled before this rule recorded the cancellation as an
 * ordinary failure and replay on that path, while a run in flight when the rule is deployed takes it.
 */
function cancellationCompensates(): boolean {
  return patched('cancel-compensates');
}

/**
 * Whether a deprovision or unbind ignores a cancellation and runs to completion. Asked at its start, since a
 * cancellation stops the activities of a cancellable scope at once: runs started before the rule keep their old,
 * cancellable path.
 */
function deletesIgnoreCancellation(): boolean {
  return patched('deletes-ignore-cancellation');
}

/** The registry entry and operation an input names. */
function operationRef(input: OperationInput): { instanceId: string; bindingId?: string; operationId: string } {
  return { instanceId: input.instanceId, ...(input.bindingId ? { bindingId: input.bindingId } : {}), operationId: input.operationId };
}

/**
 * Whether a compensation first reads the registry for an end the run did not learn of (see {@link compensate}).
 * Asked when a compensation starts: histories compensated before this rule replay on their old path.
 */
function compensationChecksRecordedEnd(): boolean {
  return patched('compensation-checks-recorded-end');
}

/**
 * Whether closing an interrupted provision's record may find it already closed and go on to the deprovision. A
 * local activity that recorded the provision's end runs inside a workflow task; when the DELETE's signal arrives
 * during that task, Temporal refuses the task's completion (UnhandledCommand) and the activity's result is lost
 * with it, while its registry write stays. The next task sees the signal first, and its "provisioning was stopped"
 * then meets the recorded success (Conflict). Asked only on that conflict: histories that failed on it replay on
 * their old path.
 */
function interruptMayFindEndRecorded(err: unknown): boolean {
  // A local activity's failure arrives as its own ApplicationFailure, a regular one's wrapped in an ActivityFailure.
  const failure = err instanceof ActivityFailure ? err.cause : err;
  return failure instanceof ApplicationFailure && failure.type === 'Conflict' && patched('interrupt-after-recorded-end');
}

/**
 * The plan's maximum_polling_duration, kept (docs/design/contracts/operations.md#polling-bounds): a durable timer
 * from the operation's start races its work; when it fires first, `stops` is cancelled and the operation is undone
 * like a cancelled one and recorded as failed, "stopped after the plan's maximum_polling_duration of N s".
 */
class PollingBound {
  /** The timer fired while the work was still running. */
  expired = false;
  /** The work is over (succeeded, failed or stopped): a timer firing now changes nothing. */
  settled = false;

  constructor(
    readonly seconds: number,
    stops: CancellationScope,
  ) {
    // Started in the operation's own scope: a cancellation of the workflow cancels the timer too.
    sleep(seconds * 1000).then(
      () => {
        if (this.settled) return;
        this.expired = true;
        stops.cancel();
      },
      () => undefined,
    );
  }

  get description(): string {
    return pollingBoundDescription(this.seconds);
  }

  /** Runs the work the bound may stop, in `scope` (the one the bound cancels). */
  async run<T>(scope: CancellationScope, work: () => Promise<T>): Promise<T> {
    try {
      return await scope.run(work);
    } finally {
      this.settled = true;
    }
  }
}

/**
 * The bound of an operation whose plan has a maximum_polling_duration (provision, update, bind), started first
 * thing. Runs started before the bound existed issued no timer at their start and replay without one; so do
 * runs whose plan has no maximum_polling_duration (no marker either).
 */
function pollingBound(input: OperationInput, stops: CancellationScope): PollingBound | undefined {
  const seconds = input.maximumPollingSeconds;
  if (seconds === undefined || seconds <= 0) return undefined;
  return patched('maximum-polling-duration') ? new PollingBound(seconds, stops) : undefined;
}

/** Shared bookkeeping of every operation: progress query, search attributes, begin and complete records. */
class OperationRun {
  readonly progress: OperationProgress;
  /** Whether this run's short steps run local first (workflows/local-first.ts); decided at its start. */
  readonly local: boolean;
  /** The registry activities, placed as {@link local} says. */
  readonly records: Records;

  constructor(readonly input: OperationInput) {
    this.local = patched(LOCAL_FIRST_PATCH);
    this.records = recordsOf(this.local);
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
  /** What the begin found, once it answered (a begin a cancellation interrupted has not). */
  began?: { alreadySucceeded: boolean; refused?: string };
  /** The registry entry's owner reference (Kubernetes registry backend), for templates. */
  owner: TemplateContext['owner'] = null;
  /** A bind's credential lifetime, written with its success (plans with a credential policy). */
  expiry?: CredentialExpiry;

  /**
   * Records the operation as begun. `refused`: the state moved since the broker decided (instance or binding
   * gone, instance busy); nothing was recorded and the operation ends at once as failed (see {@link refuse}).
   */
  async begin(): Promise<{ alreadySucceeded: boolean; refused?: string }> {
    const res = await this.records.recordBegin(this.input);
    this.began = { alreadySucceeded: res.alreadySucceeded, ...(res.refused !== undefined ? { refused: res.refused } : {}) };
    this.begun = !res.alreadySucceeded && res.refused === undefined;
    this.owner = res.owner ?? null;
    this.progress.phase = 'reconciling';
    return res;
  }

  /** Ends a failed operation: recorded as failed when it had begun, else (its begin failed) without a write. */
  async end(err: unknown): Promise<OperationResult> {
    return this.begun || !refusesUnrecorded() ? this.finish(describeFailure(err)) : this.refuse(describeFailure(err));
  }

  /** Ends without a registry write: the operation was refused at its start. */
  refuse(reason: string): OperationResult {
    this.progress.state = 'failed';
    this.progress.phase = 'done';
    this.progress.description = reason;
    upsertSearchAttributes([{ key: OperationStateKey, value: 'failed' }]);
    return { operation: this.input.operation, operationId: this.input.operationId, state: 'failed', description: reason };
  }

  async resources(part: 'instance' | 'binding', planId = this.input.planId, maintenanceVersion = this.input.maintenanceVersion): Promise<ResourceDef[] | { skipped: string }> {
    const routed = await this.records.resolveResources({
      serviceId: this.input.serviceId,
      planId,
      ...(maintenanceVersion ? { maintenanceVersion } : {}),
      part,
    });
    return 'skipped' in routed ? routed : routed.resources;
  }

  /** Records the end in the registry (even when the workflow is being cancelled) and returns the result. */
  async finish(error: string | undefined): Promise<OperationResult> {
    this.progress.phase = 'completing';
    await CancellationScope.nonCancellable(() =>
      this.records.recordComplete({
        operation: this.input.operation,
        operationId: this.input.operationId,
        instanceId: this.input.instanceId,
        ...(this.input.bindingId ? { bindingId: this.input.bindingId } : {}),
        ...(error !== undefined ? { error } : {}),
        ...(error === undefined && this.expiry ? { expiry: this.expiry } : {}),
      }),
    );
    const state = error === undefined ? 'succeeded' : 'failed';
    this.progress.state = state;
    this.progress.phase = 'done';
    if (error !== undefined) this.progress.description = error;
    upsertSearchAttributes([{ key: OperationStateKey, value: state }]);
    return { operation: this.input.operation, operationId: this.input.operationId, state, ...(error !== undefined ? { description: error } : {}) };
  }

  /** Ends without a registry write: the same request had already succeeded. */
  done(): OperationResult {
    this.progress.state = 'succeeded';
    this.progress.phase = 'done';
    upsertSearchAttributes([{ key: OperationStateKey, value: 'succeeded' }]);
    return { operation: this.input.operation, operationId: this.input.operationId, state: 'succeeded', description: 'already done' };
  }

  /**
   * Reconciles the resources for this operation, or — `as` — for another entry on its behalf (a deprovision
   * deleting its bindings' resources), reporting into this operation's progress either way.
   */
  async reconcile(
    resources: ResourceDef[],
    mode: 'update' | 'delete',
    instance?: Pick<OperationInput, 'parameters' | 'context'>,
    as: OperationInput = this.input,
  ): Promise<void> {
    await reconcile(
      {
        resources,
        object: reconcileObject(as),
        template: templateContext(as, instance, this.owner),
        mode,
        ...(this.input.stepRetry ? { options: { retry: this.input.stepRetry } } : {}),
      },
      this.progress.reconcile,
      this.local,
    );
  }
}

/** What a cancelled operation does to undo its work; it runs in a non-cancellable scope. */
type Undo = (run: OperationRun) => Promise<void>;

/**
 * Ends a cancelled operation (docs/design/contracts/operations.md#cancellation-and-compensation): learns who
 * cancelled it, makes sure its begin is settled (a cancellation may have interrupted it), undoes its work with
 * `undo` and records it as failed, "cancelled by <who>". Nothing here can be cancelled again, and all of it is
 * workflow code: a worker that dies meanwhile leaves it to the next one. An identical operation that had already
 * succeeded has nothing of its own to undo, and one refused at its start had done nothing.
 * `stopped`: the operation was stopped by its polling bound, not cancelled; that is its description.
 */
async function compensate(run: OperationRun, undo: Undo, stopped?: string): Promise<OperationResult> {
  return CancellationScope.nonCancellable(async () => {
    let description: string;
    let undoFailed: (reason: string) => string;
    if (stopped !== undefined) {
      description = stopped;
      undoFailed = (reason) => undoFailedDescription(stopped, reason);
    } else {
      const { identity } = await cancellation.cancellationRequester();
      description = cancelledDescription(identity);
      undoFailed = (reason) => cancelledUndoFailedDescription(identity, reason);
    }
    // The begin's activity was cancelled without waiting for it, so it may have written; another begin (the same
    // operation ID, so idempotent) tells where the entry stands.
    const began = run.began ?? (await run.begin());
    if (began.refused !== undefined) return run.refuse(description);
    if (began.alreadySucceeded) return run.done();
    // The cancellation (or the bound's timer) may have come while a local activity recorded the operation's end:
    // Temporal then refused that workflow task, and the run takes it again without the result but with the write
    // done. An operation that has succeeded is not undone (the request came too late); it ends as done.
    if (run.began !== undefined && compensationChecksRecordedEnd() && (await run.records.readOperationState(operationRef(run.input))) === 'succeeded') {
      return run.done();
    }
    run.progress.phase = 'compensating';
    try {
      await undo(run);
    } catch (err) {
      return run.finish(undoFailed(describeFailure(err)));
    }
    return run.finish(description);
  });
}

/**
 * The story of every operation but provision (which a DELETE may interrupt): record the begin, then `body`, then
 * the end. A refused operation ends at once without a write, a request identical to one that already succeeded
 * ends as done, and a failure anywhere is recorded as the operation's end (docs/design/contracts/operations.md#failures).
 */
async function runOperation(input: OperationInput, body: (run: OperationRun) => Promise<void>, undo?: Undo): Promise<OperationResult> {
  const run = new OperationRun(input);
  const root = CancellationScope.current();
  const cancelled = () => undo !== undefined && root.consideredCancelled && cancellationCompensates();
  // Only operations that can be undone are bounded: a deprovision or an unbind runs to completion.
  const scope = new CancellationScope();
  const bound = undo !== undefined ? pollingBound(input, scope) : undefined;
  const expired = () => bound?.expired === true;
  const work = async (): Promise<OperationResult | undefined> => {
    const { alreadySucceeded, refused } = await run.begin();
    if (refused !== undefined) return run.refuse(refused);
    if (alreadySucceeded) return run.done();
    await body(run);
    return undefined;
  };
  try {
    const ended = bound ? await bound.run(scope, work) : await work();
    if (ended) return ended;
    // Cancelled after its last step but before its end was recorded: still cancelled, and undone.
    if (cancelled()) return compensate(run, undo!);
    if (expired()) return compensate(run, undo!, bound!.description);
    // Not awaited on purpose: a failure to record the end fails the run instead of being recorded as another end
    // (an await here would send it to end(), a second recordComplete, and old histories would no longer replay).
    return run.finish(undefined);
  } catch (err) {
    if (cancelled()) return compensate(run, undo!);
    if (expired()) return compensate(run, undo!, bound!.description);
    return run.end(err);
  }
}

/**
 * An operation that deletes (deprovision, unbind) ignores a cancellation: stopped halfway, it would leave an
 * instance or binding neither usable nor gone (docs/design/contracts/operations.md#cancellation-and-compensation).
 */
async function runToCompletion(input: OperationInput, body: (run: OperationRun) => Promise<void>): Promise<OperationResult> {
  if (!deletesIgnoreCancellation()) return runOperation(input, body);
  return CancellationScope.nonCancellable(() => runOperation(input, body));
}

/** Provision: create everything the plan's resource set describes. A DELETE meanwhile stops it and deprovisions. */
export async function provision(input: OperationInput): Promise<OperationResult> {
  const run = new OperationRun(input);
  const root = CancellationScope.current();
  let deprovisionInput: OperationInput | undefined;
  const scope = new CancellationScope();
  const bound = pollingBound(input, scope);
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
    const work = async () => {
      let refused: string | undefined;
      ({ alreadySucceeded, refused } = await run.begin());
      if (refused !== undefined) {
        error = refused;
        return;
      }
      if (alreadySucceeded) return;
      const resources = await run.resources('instance');
      if (Array.isArray(resources)) await run.reconcile(resources, 'update');
    };
    await (bound ? bound.run(scope, work) : scope.run(work));
  } catch (err) {
    if (!(deprovisionInput && isCancellation(err))) error = describeFailure(err);
  }
  const continueAsDeprovision = (d: OperationInput) => {
    const next = makeContinueAsNewFunc<typeof deprovision>({
      workflowType: 'deprovision',
      memo: { operation: 'deprovision', operationId: d.operationId, fingerprint: d.fingerprint, summary: operationSummary(d) },
      typedSearchAttributes: workflowInfo().typedSearchAttributes.updateCopy([
        { key: OperationTypeKey, value: 'deprovision' },
        { key: OperationStateKey, value: 'in progress' },
        ...deprovisionRequester(d),
      ]),
    });
    return next(d);
  };
  if (deprovisionInput) {
    // A provision interrupted before it recorded anything has nothing to close in the registry.
    if (run.begun) {
      try {
        await run.finish('provisioning was stopped: the platform deleted the instance');
      } catch (err) {
        if (!interruptMayFindEndRecorded(err)) throw err;
      }
    }
    return continueAsDeprovision(deprovisionInput);
  }
  if (root.consideredCancelled && cancellationCompensates()) {
    const result = await compensate(run, undoProvision);
    // A DELETE while it undid its work was answered 202: the deprovision still follows.
    const late = deprovisionInput as OperationInput | undefined;
    return late ? continueAsDeprovision(late) : result;
  }
  if (bound?.expired) {
    const result = await compensate(run, undoProvision, bound.description);
    const late = deprovisionInput as OperationInput | undefined;
    return late ? continueAsDeprovision(late) : result;
  }
  // An identical provision that already succeeded (a re-PUT racing the previous run's end) records nothing new;
  // a refused one recorded nothing to close.
  const result = alreadySucceeded ? run.done() : !run.begun && error !== undefined && refusesUnrecorded() ? run.refuse(error) : await run.finish(error);
  // A DELETE that arrived while the end was being recorded was answered 202: it must still happen.
  const late = deprovisionInput as OperationInput | undefined;
  if (late) return continueAsDeprovision(late);
  return result;
}

/** A cancelled provision removes what it created: its plan's `instance` resources, in delete mode. */
async function undoProvision(run: OperationRun): Promise<void> {
  const resources = await run.resources('instance');
  if (Array.isArray(resources) && resources.length > 0) await run.reconcile(resources, 'delete');
}

/** Update: reconcile the (possibly new) plan's resource set with the new parameters. */
export async function update(input: OperationInput): Promise<OperationResult> {
  return runOperation(
    input,
    async (run) => {
      const resources = await run.resources('instance');
      if (Array.isArray(resources)) await run.reconcile(resources, 'update');
    },
    undoUpdate,
  );
}

/**
 * A cancelled update restores what was applied before it: the registry keeps the applied plan, parameters and
 * maintenance version until an update succeeds, and the applied plan's `instance` resources are reconciled back
 * to them in update mode.
 */
async function undoUpdate(run: OperationRun): Promise<void> {
  const applied = await run.records.readAppliedInstance({ instanceId: run.input.instanceId });
  const { maintenanceVersion: _target, ...rest } = run.input;
  const previous: OperationInput = {
    ...rest,
    planId: applied.planId,
    parameters: applied.parameters,
    context: applied.context,
    ...(applied.maintenanceVersion ? { maintenanceVersion: applied.maintenanceVersion } : {}),
  };
  const resources = await run.resources('instance', previous.planId, previous.maintenanceVersion);
  if (Array.isArray(resources) && resources.length > 0) await run.reconcile(resources, 'update', undefined, previous);
}

/** Deprovision: delete every binding's resources, then the instance's; the entry goes only when all succeeded. */
export async function deprovision(input: OperationInput): Promise<OperationResult> {
  return runToCompletion(input, async (run) => {
    const bindings = await run.records.listBindings({ instanceId: input.instanceId });
    if (bindings.length > 0) {
      const bindingResources = await run.resources('binding');
      const hasResources = Array.isArray(bindingResources) && bindingResources.length > 0;
      for (const b of bindings) {
        if (hasResources) await run.reconcile(bindingResources, 'delete', input, { ...input, bindingId: b.bindingId, parameters: b.parameters, context: b.context });
        // Bindings without resources still have entries and credentials to remove (added later: histories
        // recorded before it never removed them, hence the patch marker).
        if (hasResources || patched('deprovision-removes-resourceless-bindings')) {
          await run.records.removeBindingEntry({ instanceId: input.instanceId, bindingId: b.bindingId, operationId: input.operationId });
        }
      }
    }
    const resources = await run.resources('instance');
    if (Array.isArray(resources)) await run.reconcile(resources, 'delete');
  });
}

/**
 * Bind: reconcile the binding resources; their outputs become credentials, written straight to the registry. On a
 * plan with a credential policy the credentials expire a TTL after the bind succeeded: the success records
 * expires_at, and a workflow of the binding's own keeps the timer and revokes them then
 * (docs/design/osb-semantics.md#credential-expiry).
 */
export async function bind(input: OperationInput): Promise<OperationResult> {
  let expiry: CredentialExpiry | undefined;
  const result = await runOperation(
    input,
    async (run) => {
      const instance = await run.records.readInstanceInputs({ instanceId: input.instanceId });
      const resources = await run.resources('binding');
      // A plan may have no binding resources: the binding is then its registry entry, with empty credentials.
      if (Array.isArray(resources) && resources.length > 0) {
        await run.reconcile(resources, 'update', instance);
        await run.records.storeCredentials({
          resources,
          object: reconcileObject(input),
          template: templateContext(input, instance, run.owner),
        });
      }
      if (input.credentialPolicy && input.bindingId) {
        // Workflow time: the same on replay. The lifetime starts when the credentials are there.
        expiry = { ...credentialTimes(Date.now(), input.credentialPolicy), workflowId: bindingExpiryWorkflowId(input.bindingId, input.operationId) };
        run.expiry = expiry;
      }
    },
    undoBind,
  );
  // Only binds on plans with a credential policy (all started after this rule) reach the marker.
  if (expiry && result.state === 'succeeded' && input.bindingId && patched('binding-expiry-timer')) {
    const expiryInput: BindingExpiryInput = {
      instanceId: input.instanceId,
      bindingId: input.bindingId,
      serviceId: input.serviceId,
      planId: input.planId,
      bindOperationId: input.operationId,
      expiresAt: expiry.expiresAt,
      ...(input.stepRetry ? { stepRetry: input.stepRetry } : {}),
    };
    // Abandoned, not tied to this run: the bind is over for the platform, the timer lives until expires_at.
    await CancellationScope.nonCancellable(() =>
      startChild(bindingExpiry, {
        workflowId: expiry!.workflowId,
        args: [expiryInput],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        memo: { summary: `expiry of binding ${input.bindingId} of instance ${input.instanceId} at ${expiry!.expiresAt}` },
      }),
    );
  }
  return result;
}

/**
 * The expiry of one binding's credentials: a durable timer until expires_at (it survives worker and Temporal
 * restarts, and shows in the Web UI as `binding-expiry/<binding>/<bind operation>`), then the revocation: the binding
 * resources are deleted (for an etcd-user resource the user and its role) and the registry records the binding as
 * expired, without credentials. An unbind cancels the timer; a binding unbound or deprovisioned meanwhile has
 * nothing left to revoke. A rotation's new binding has a timer of its own; the predecessor keeps its own.
 */
export async function bindingExpiry(input: BindingExpiryInput): Promise<BindingExpiryResult> {
  const wait = Date.parse(input.expiresAt) - Date.now();
  if (wait > 0) await sleep(wait);
  // From here on the revocation runs to its end: stopped halfway it would leave credentials neither valid nor gone.
  return CancellationScope.nonCancellable(async () => {
    // Asked where this run's first activity comes: a timer that was waiting when local-first steps were deployed
    // takes them; one that had already reached its revocation keeps regular activities.
    const records = recordsOf(patched(LOCAL_FIRST_PATCH));
    const due = await records.expiryDue({ instanceId: input.instanceId, bindingId: input.bindingId, bindOperationId: input.bindOperationId });
    if (!due.due) return { bindingId: input.bindingId, revoked: false, reason: due.reason };
    const as: OperationInput = {
      operation: 'unbind',
      operationId: `expire-${input.bindOperationId}`,
      instanceId: input.instanceId,
      bindingId: input.bindingId,
      serviceId: input.serviceId,
      planId: input.planId,
      parameters: due.parameters,
      context: due.context,
      fingerprint: '',
      ...(input.stepRetry ? { stepRetry: input.stepRetry } : {}),
    };
    const run = new OperationRun(as);
    run.progress.phase = 'reconciling';
    const resources = await run.resources('binding');
    if (Array.isArray(resources) && resources.length > 0) {
      const instance = await records.readInstanceInputs({ instanceId: input.instanceId });
      await run.reconcile(resources, 'delete', instance);
    }
    const revokedAt = Date.now();
    // They expired at expires_at, as the platform was told; the revocation follows it by the steps above.
    await records.recordExpired({ instanceId: input.instanceId, bindingId: input.bindingId, bindOperationId: input.bindOperationId, expiredAt: input.expiresAt });
    run.progress.phase = 'done';
    run.progress.state = 'succeeded';
    return { bindingId: input.bindingId, revoked: true, revokedAt };
  });
}

/**
 * A cancelled bind removes what it created: its `binding` resources, in delete mode (for an etcd-user resource the
 * user, its role and its password). Credentials it may have stored go with the write that records its end.
 */
async function undoBind(run: OperationRun): Promise<void> {
  const instance = await run.records.readInstanceInputs({ instanceId: run.input.instanceId });
  const resources = await run.resources('binding');
  if (Array.isArray(resources) && resources.length > 0) await run.reconcile(resources, 'delete', instance);
}

/** Unbind: delete the binding resources; the binding entry goes (a tombstone keeps the last operation). */
export async function unbind(input: OperationInput): Promise<OperationResult> {
  const result = await runToCompletion(input, async (run) => {
    const instance = await run.records.readInstanceInputs({ instanceId: input.instanceId });
    const resources = await run.resources('binding');
    if (Array.isArray(resources) && resources.length > 0) await run.reconcile(resources, 'delete', instance);
  });
  // The binding is gone: its expiry timer has nothing left to do. Only unbinds of bindings with a timer (all started
  // after this rule) reach the marker.
  if (input.expiryWorkflowId && result.state === 'succeeded' && patched('unbind-cancels-expiry-timer')) {
    const timer = input.expiryWorkflowId;
    await CancellationScope.nonCancellable(async () => {
      try {
        await getExternalWorkflowHandle(timer).cancel();
      } catch {
        // Already closed (it fired, or was cancelled before): nothing to stop.
      }
    });
  }
  return result;
}
