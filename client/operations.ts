// Starting and reading OSB operations, shared by the broker and the CLI. The operations on an instance share the
// workflow ID `instance/<id>`, those on a binding `binding/<id>`, started with conflict policy FAIL, so Temporal
// decides atomically which request wins; the loser reads the running operation's memo to tell an identical
// request from a conflicting one. Instance and binding operations exclude each other through the registry.
// State comes from the registry (it answers without a worker); Temporal only fills the short gap between a
// start and the workflow's first registry write, and unmasks operations whose run died while open.
import { UnavailableError } from '../adapters/errors';
import { createHash, randomUUID } from 'node:crypto';
import { status as grpcStatus } from '@grpc/grpc-js';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
// The start request ID is how Temporal deduplicates starts; the SDK exposes it only through this symbol.
import { InternalWorkflowStartOptionsSymbol, type InternalWorkflowStartOptions } from '@temporalio/client/lib/internal';
import type { Registry, OperationRecord } from '../adapters/registry';
import {
  CANCELLABLE_OPERATIONS,
  instanceWorkflowId,
  operationWorkflowId,
  operationSummary,
  deprovisionRequestedSignal,
  deprovisionAfterProvisionId,
  progressQuery,
  type OperationInput,
  type OperationMemo,
  type OperationProgress,
  type OperationResult,
} from '../workflows/messages';
import { liveStep, stepDescription, type LiveStep, type PendingActivity } from './operation-progress';
import type { OperationState, OperationType } from '../domain/operations';
import { BindingIdKey, InstanceIdKey, OperationStateKey, OperationTypeKey, OriginatingUserKey, PlanIdKey, ServiceIdKey } from '../workflows/searchAttributes';
import { requesterLabel } from '../domain/audit';

/**
 * The ID of an operation: readable in the Web UI, and derived from what was asked (instance, binding, request
 * fingerprint) and from the entry's previous operation. Identical requests against the same state therefore get
 * the same ID, and since it is also the start request ID, Temporal starts at most one run for them — even when
 * one of them arrives after the first run has already finished. A retry after a failure, or a new request after
 * the state moved on, has another previous operation and so a new ID.
 */
export function operationIdFor(
  operation: OperationType,
  parts: { instanceId: string; bindingId?: string; fingerprint: string; previousOperationId?: string },
): string {
  const digest = createHash('sha256')
    .update(canonicalJson({ operation, ...parts }))
    .digest('hex')
    .slice(0, 32);
  return `${operation}-${digest}`;
}

/** A digest of the attributes that make two requests "identical" in the OSB sense. */
export function requestFingerprint(attrs: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(attrs)).digest('hex');
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

/**
 * How long a start waits for a run that has recorded its end to close before it supersedes it. With a worker
 * running that takes milliseconds; longer means no worker is there to take the run's last step.
 */
const FINISHING_GRACE_MS = 2_000;
/** How long a request that must decide waits for Temporal to describe a workflow before it answers 503. */
const DECIDE_DEADLINE_MS = 10_000;
/** How long a last_operation poll waits for that before it answers from the registry's record. */
const POLL_DEADLINE_MS = 3_000;
/**
 * How long a last_operation poll waits for the workflow's progress query (a worker must answer it) before it
 * answers without the resource and step: the poll's target is p99 ≤ 20 ms, and the query runs beside Temporal's
 * description of the run, which the poll waits for anyway (for an operation this process knows to be running, beside
 * the registry read too), so at most this much is added
 * (docs/design/contracts/osb-api.md#what-a-running-operations-description-says).
 * `broker.lastOperationStepDeadlineMs` overrides it.
 */
export const STEP_LOOKUP_DEADLINE_MS = 10;

/**
 * What an operation's workflow carries from its start: the memo a later request reads to tell an identical
 * request from a conflicting one, and the search attributes the Web UI and the CLI filter on. The broker and the
 * workflow tests start operations with exactly this.
 */
export function operationStartRecord(input: OperationInput): { memo: OperationMemo; typedSearchAttributes: TypedSearchAttributes } {
  return {
    memo: {
      operation: input.operation,
      operationId: input.operationId,
      instanceId: input.instanceId,
      fingerprint: input.fingerprint,
      ...(input.bindingId ? { bindingId: input.bindingId } : {}),
      summary: operationSummary(input),
    },
    typedSearchAttributes: new TypedSearchAttributes([
      { key: InstanceIdKey, value: input.instanceId },
      ...(input.bindingId ? [{ key: BindingIdKey, value: input.bindingId }] : []),
      { key: ServiceIdKey, value: input.serviceId },
      { key: PlanIdKey, value: input.planId },
      { key: OperationTypeKey, value: input.operation },
      { key: OperationStateKey, value: 'in progress' },
      { key: OriginatingUserKey, value: requesterLabel(input.requestedBy) },
    ]),
  };
}

/** What happened when asked to start an operation. */
export type StartOutcome =
  | { kind: 'started'; operationId: string }
  /** The same request is already running: answer with its operation. */
  | { kind: 'same'; operationId: string }
  /** Another operation runs on this instance. */
  | { kind: 'busy'; running: OperationMemo }
  /** The run holding the workflow ID closed (or was closing) since the decision: decide again on fresh facts. */
  | { kind: 'changed' };

/** What happened when asked to cancel the operation running on an instance or binding. */
export type CancelOutcome =
  /** Temporal recorded the request; the operation stops and undoes its work. */
  | { kind: 'requested'; running: OperationMemo }
  /** No operation runs (or the running one has already recorded its end). */
  | { kind: 'nothing-runs' }
  /** A deprovision or unbind runs: it runs to completion. */
  | { kind: 'not-cancellable'; running: OperationMemo };

/** The state of an operation as last_operation reports it. */
export interface OperationStatus {
  operation: OperationType;
  operationId: string;
  state: OperationState;
  description?: string;
  /** A finished deprovision or unbind: the resource is gone. */
  gone?: boolean;
  /** While it runs, when asked for (`live`): where it stands; `description` then says the same in one line. */
  live?: LiveStep;
}

/** Asks {@link OperationsClient.status} for the step of a running operation, waiting at most `deadlineMs` for a worker. */
export interface LiveLookup {
  deadlineMs: number;
}

/** How many operations {@link OperationsClient} remembers as running (a bound on its memory; the oldest go first). */
const RUNNING_HINTS = 10_000;
/** What the process knows of an operation it last saw running: its ID, and the worker's latest progress report. */
interface RunningHint {
  operationId: string;
  /**
   * The worker's latest report, with the IDs of the run's pending activities when it was taken. While a description
   * shows the same activities pending, the report still says where the operation stands (a retried activity keeps
   * its ID), so a poll answers with it; the worker is asked again only once the report is older than
   * PROGRESS_REPORT_REFRESH_MS.
   */
  report?: { progress: OperationProgress; pending: string; at: number };
}

/**
 * How long a poll that can answer with the kept report does without asking the worker again: the report is asked for
 * at most this often per operation while its activity stays pending (each query is work for the Temporal server and
 * a worker, which a loaded machine feels in every poll's latency).
 */
export const PROGRESS_REPORT_REFRESH_MS = 1_000;

/** Starts, inspects and waits for operations. */
export class OperationsClient {
  /**
   * Operations this process started or last reported as in progress (by workflow ID, the operation ID as value): a
   * poll of one of these asks for its step at once, beside the registry read, instead of after it. Only a hint: a
   * poll of an operation not in it (started by another broker process) asks the same things one after the other.
   */
  private readonly runningHints = new Map<string, RunningHint>();

  constructor(
    readonly client: Client,
    readonly taskQueue: string,
    readonly registry: Registry,
  ) {}

  private hintRunning(ref: { instanceId: string; bindingId?: string | undefined }, operationId: string | undefined): void {
    const id = operationWorkflowId(ref);
    const known = this.runningHints.get(id);
    this.runningHints.delete(id);
    if (operationId === undefined) return;
    // Kept (and moved to the young end) while it is the same operation; a new operation starts without a report.
    this.runningHints.set(id, known?.operationId === operationId ? known : { operationId });
    if (this.runningHints.size > RUNNING_HINTS) this.runningHints.delete(this.runningHints.keys().next().value!);
  }

  /** The memo of the operation running on an instance (or, with `bindingId`, on that binding), if one runs. */
  async running(ref: { instanceId: string; bindingId?: string | undefined }): Promise<OperationMemo | undefined> {
    return (await this.latest(ref)).running;
  }

  /** The latest run of the entry's workflow ID: running, or closed (its memo either way). */
  async latest(ref: { instanceId: string; bindingId?: string | undefined }): Promise<{ running?: OperationMemo; closed?: OperationMemo }> {
    const d = await this.describe(ref);
    if (!d) return {};
    const memo = d.memo as unknown as OperationMemo;
    if (d.status.name !== 'RUNNING') return { closed: memo };
    // A provision that a DELETE asked to stop is a deprovision from that moment on, although its memo names the
    // provision until a worker handles the signal (with no worker up, for as long as it takes): a repeated PUT
    // must not join the provision the platform has deleted.
    if (memo.operation === 'provision' && (await this.deprovisionRequested(d))) {
      const operationId = deprovisionAfterProvisionId(memo.operationId);
      return { running: { ...memo, operation: 'deprovision', operationId, summary: `deprovision instance ${memo.instanceId ?? ref.instanceId}, requested during provision ${memo.operationId}` } };
    }
    return { running: memo };
  }

  /** True when the run's history holds a DELETE's request to stop its provision and deprovision instead. */
  private async deprovisionRequested(d: WorkflowExecutionDescription): Promise<boolean> {
    let history: Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;
    try {
      history = await this.client.connection.withDeadline(Date.now() + DECIDE_DEADLINE_MS, () => this.client.workflow.getHandle(d.workflowId, d.runId).fetchHistory());
    } catch (err) {
      // As for the description: nothing can be decided without it, and the platform may repeat the request.
      throw new UnavailableError(`Temporal did not answer: ${(err as Error).message}`, err);
    }
    return (history.events ?? []).some((e) => e.workflowExecutionSignaledEventAttributes?.signalName === deprovisionRequestedSignal.name);
  }

  /**
   * The entry's workflow as Temporal describes it. A Temporal that is down fails at once (the connection is
   * refused); the deadline is for one that is slow. A request that decides something waits up to
   * DECIDE_DEADLINE_MS, since without the answer it can only say 503; a last_operation poll waits
   * POLL_DEADLINE_MS, then answers from the registry's record.
   */
  private async describe(ref: { instanceId: string; bindingId?: string | undefined }, deadlineMs = DECIDE_DEADLINE_MS): Promise<WorkflowExecutionDescription | undefined> {
    try {
      return await this.client.connection.withDeadline(Date.now() + deadlineMs, () => this.client.workflow.getHandle(operationWorkflowId(ref)).describe());
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      // Nothing can be decided without it; the platform may repeat the request (503, not an internal error).
      throw new UnavailableError(`Temporal did not answer: ${(err as Error).message}`, err);
    }
  }

  /**
   * Starts the operation unless another runs on the instance. Identical means same operation type, same binding
   * and same request fingerprint.
   */
  async start(input: OperationInput): Promise<StartOutcome> {
    const { memo, typedSearchAttributes } = operationStartRecord(input);
    try {
      const options: InternalWorkflowStartOptions & { taskQueue: string; args: unknown[] } = {
        taskQueue: this.taskQueue,
        workflowId: operationWorkflowId(input),
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        [InternalWorkflowStartOptionsSymbol]: { requestId: input.operationId },
        args: [input],
        memo: memo as unknown as Record<string, unknown>,
        staticSummary: memo.summary,
        typedSearchAttributes,
      };
      await this.client.workflow.start(input.operation, options);
      this.hintRunning(input, input.operationId);
      return { kind: 'started', operationId: input.operationId };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    // Another run holds the workflow ID. When it has closed since, or is closing, the facts the request was
    // decided on are out of date (that run may have created the instance this request would create): the caller
    // decides again on fresh facts rather than starting on the old decision.
    const d = await this.describe(input);
    if (!d || d.status.name !== 'RUNNING') return { kind: 'changed' };
    const running = d.memo as unknown as OperationMemo;
    if (await this.isFinishing(running, input.instanceId)) {
      // The running operation has recorded its end and is about to close: wait a moment for that. When it does
      // not close, no worker is taking its last step (workers down or crashed): its work and its end are
      // recorded, so it is terminated and the next decision can start in its place (see supersedeFinishedRun).
      const closed = await this.waitForResult(input, FINISHING_GRACE_MS).catch(() => undefined);
      if (closed === undefined && !(await this.supersedeFinishedRun(input, d, running))) return { kind: 'busy', running };
      return { kind: 'changed' };
    }
    if (
      running.operation === input.operation &&
      running.bindingId === input.bindingId &&
      (running.instanceId ?? input.instanceId) === input.instanceId &&
      running.fingerprint === input.fingerprint
    ) {
      return { kind: 'same', operationId: running.operationId };
    }
    return { kind: 'busy', running };
  }

  /**
   * After a provision or bind has started: whether another operation of the same kind recorded its success on
   * the entry meanwhile, i.e. it ran whole between this request's decision (which saw no such success: a create
   * is never decided on one) and its start. The new run's first step then finds the entry created and records
   * nothing (osb-semantics.md "Races"); the caller waits for that run to end and decides again.
   */
  async createdMeanwhile(input: OperationInput): Promise<boolean> {
    if (input.operation !== 'provision' && input.operation !== 'bind') return false;
    const r = input.bindingId
      ? await this.registry.readOperation('service-binding', input.bindingId, { instanceId: input.instanceId })
      : await this.registry.readOperation('service-instance', input.instanceId);
    return r !== undefined && r.operation === input.operation && r.state === 'succeeded' && r.operationId !== input.operationId;
  }

  /**
   * Terminates a run whose operation has recorded its end but which no worker has closed, so that `next` can
   * start; false (nothing done) when the run still has work to do: a provision that a DELETE asked to continue as
   * a deprovision (its signal is in the history). Only that exact run is terminated: if it closed meanwhile, or
   * another run took the workflow ID, nothing else is touched.
   */
  private async supersedeFinishedRun(next: OperationInput, d: WorkflowExecutionDescription, running: OperationMemo): Promise<boolean> {
    if (await this.deprovisionRequested(d)) return false;
    const handle = this.client.workflow.getHandle(d.workflowId, d.runId);
    try {
      await handle.terminate(`${running.operation} ${running.operationId} had recorded its end; superseded by ${next.operation} ${next.operationId} while no worker closed it`);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    return true;
  }

  /** True when the registry already holds the final state of the running operation (its run is closing). */
  async isFinishing(running: OperationMemo, instanceId: string): Promise<boolean> {
    const record = running.bindingId
      ? await this.registry.readOperation('service-binding', running.bindingId, { instanceId })
      : await this.registry.readOperation('service-instance', instanceId);
    return record?.operationId === running.operationId && record.state !== 'in progress';
  }

  /**
   * Asks the operation running on an instance (or, with `bindingId`, on that binding) to stop and undo its work
   * (docs/design/contracts/operations.md#cancellation-and-compensation): a Temporal cancellation of that exact
   * run, recorded with `identity`, which the operation's description names. Only a provision, update or bind is
   * cancelled; nothing is sent when nothing runs or a deprovision or unbind runs (also a provision a DELETE has
   * turned into one).
   */
  async requestCancel(ref: { instanceId: string; bindingId?: string | undefined }, identity: string): Promise<CancelOutcome> {
    const d = await this.describe(ref);
    if (!d || d.status.name !== 'RUNNING') return { kind: 'nothing-runs' };
    const running = d.memo as unknown as OperationMemo;
    // A binding workflow of another instance (the same binding ID under another path) is not this binding's.
    if ((running.instanceId ?? ref.instanceId) !== ref.instanceId || (ref.bindingId ? running.bindingId !== ref.bindingId : !!running.bindingId)) {
      return { kind: 'nothing-runs' };
    }
    if (!CANCELLABLE_OPERATIONS.includes(running.operation)) return { kind: 'not-cancellable', running };
    if (running.operation === 'provision' && (await this.deprovisionRequested(d))) {
      return { kind: 'not-cancellable', running: { ...running, operation: 'deprovision', operationId: deprovisionAfterProvisionId(running.operationId) } };
    }
    if (await this.isFinishing(running, ref.instanceId)) return { kind: 'nothing-runs' };
    try {
      await this.client.workflowService.requestCancelWorkflowExecution({
        namespace: this.client.options.namespace,
        workflowExecution: { workflowId: d.workflowId, runId: d.runId },
        identity,
        requestId: randomUUID(),
        reason: `cancel ${running.operation} ${running.operationId}`,
      });
    } catch (err) {
      // The run closed between the description and the request.
      if ((err as { code?: number }).code === grpcStatus.NOT_FOUND) return { kind: 'nothing-runs' };
      throw err;
    }
    return { kind: 'requested', running };
  }

  /**
   * Asks a running provision to stop and deprovision instead. Returns the deprovision's operation ID, the same
   * for every request that interrupts the same provision; undefined when the provision's run closed after the
   * request saw it running, or another run (or another request's interruption) took its place: the caller then
   * decides again on the new facts. The signal names the provision's run, so it never reaches a later run.
   */
  async interruptProvision(provisionOperationId: string, input: OperationInput): Promise<string | undefined> {
    const d = await this.describe({ instanceId: input.instanceId });
    if (!d || d.status.name !== 'RUNNING' || (d.memo as unknown as OperationMemo | undefined)?.operationId !== provisionOperationId) return undefined;
    try {
      await this.client.workflow.getHandle(instanceWorkflowId(input.instanceId), d.runId).signal(deprovisionRequestedSignal, input);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
    return deprovisionAfterProvisionId(provisionOperationId);
  }

  /**
   * Waits up to `timeoutMs` for the current run of the instance's (or binding's) workflow to end, following a
   * provision that continued as a deprovision; undefined on timeout. Callers compare the result's operation ID
   * with the one they wait for.
   */
  async waitForResult(ref: { instanceId: string; bindingId?: string | undefined }, timeoutMs: number): Promise<OperationResult | undefined> {
    const handle = this.client.workflow.getHandle(operationWorkflowId(ref));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), timeoutMs)));
    try {
      return await Promise.race([handle.result() as Promise<OperationResult>, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The state of an instance's or binding's operation. With `operationId`, that operation; without, the latest.
   * Undefined when nothing is known.
   */
  async status(ref: { instanceId: string; bindingId?: string; operationId?: string }, opts: { live?: LiveLookup } = {}): Promise<OperationStatus | undefined> {
    const lookup = opts.live && opts.live.deadlineMs > 0 ? opts.live : undefined;
    // An operation this process knows to be running: its step is asked for together with the registry read and the
    // description, so the poll waits for the slowest of the three, not for their sum (its target is p99 ≤ 20 ms).
    // With a young enough report of the worker's, it is not asked at all before answering.
    const hint = this.runningHints.get(operationWorkflowId(ref));
    const expectRunning = hint !== undefined && (!ref.operationId || ref.operationId === hint.operationId);
    const kept = expectRunning ? hint.report : undefined;
    const young = kept !== undefined && Date.now() - kept.at <= PROGRESS_REPORT_REFRESH_MS;
    let asked = Date.now();
    let progress: Promise<OperationProgress | undefined> | undefined = lookup && expectRunning && !young ? this.progress(ref, lookup.deadlineMs) : undefined;
    const askProgress = lookup && !expectRunning ? () => ((asked = Date.now()), (progress = this.progress(ref, lookup.deadlineMs))) : undefined;
    const seen: { described?: WorkflowExecutionDescription } = {};
    const s = await this.recordedStatus(ref, seen, askProgress, expectRunning);
    this.hintRunning(ref, s?.state === 'in progress' ? s.operationId : undefined);
    const described = seen.described;
    if (!s || s.state !== 'in progress' || !opts.live) return s;
    // Only what the run holding this very operation reports (not a provision a DELETE is turning into a deprovision).
    const memo = described?.memo as unknown as OperationMemo | undefined;
    const ours = described?.status.name === 'RUNNING' && memo?.operationId === s.operationId;
    if (!ours) return s;
    const pending = described.raw.pendingActivities ?? [];
    const pendingKey = pendingActivityKey(pending);
    const operationId = s.operationId;
    // The query's answer is kept for the next polls when it names the step that is pending now.
    const keep = (p: OperationProgress | undefined): OperationProgress | undefined => {
      if (p?.operationId !== operationId) return undefined;
      const h = this.runningHints.get(operationWorkflowId(ref));
      if (pendingKey && h?.operationId === operationId && reportMatches(p, pending)) h.report = { progress: p, pending: pendingKey, at: asked };
      return p;
    };
    let reported: OperationProgress | undefined;
    if (pendingKey && kept?.pending === pendingKey && kept.progress.operationId === operationId) {
      // The activity the kept report was about is still the pending one: answered with it. A query asked for this
      // poll (the report is older than PROGRESS_REPORT_REFRESH_MS) replaces it when it comes, for the next poll.
      reported = kept.progress;
      void progress?.then(keep);
    } else {
      // No report, or one about an earlier step: the worker is asked (if not yet) and waited for, up to the deadline.
      if (lookup && !progress) {
        asked = Date.now();
        progress = this.progress(ref, lookup.deadlineMs);
      }
      reported = keep(await progress);
    }
    const live = liveStep(reported, pending);
    const description = stepDescription(live);
    return { ...s, ...(live ? { live } : {}), ...(description ? { description } : {}) };
  }

  /** The workflow's answer to the progress query, or undefined when no worker answers within the deadline. */
  private async progress(ref: { instanceId: string; bindingId?: string }, deadlineMs: number): Promise<OperationProgress | undefined> {
    try {
      return await this.client.connection.withDeadline(Date.now() + deadlineMs, () => this.client.workflow.getHandle(operationWorkflowId(ref)).query(progressQuery));
    } catch {
      return undefined;
    }
  }

  /**
   * The state from the registry and, where it needs it, from Temporal; `seen` gets the description of the run when
   * one was read, and `whileDescribing` is called as it is asked for, when the registry says in progress.
   */
  private async recordedStatus(
    ref: { instanceId: string; bindingId?: string; operationId?: string },
    seen: { described?: WorkflowExecutionDescription },
    whileDescribing?: () => void,
    describeFirst = false,
  ): Promise<OperationStatus | undefined> {
    const [type, id] = ref.bindingId ? (['service-binding', ref.bindingId] as const) : (['service-instance', ref.instanceId] as const);
    const read = async (): Promise<OperationRecord | undefined> => {
      const r = await this.registry.readOperation(type, id, ref.bindingId ? { instanceId: ref.instanceId } : {});
      // A binding is only ever seen under its own instance's path.
      return r && ref.bindingId && r.instanceId !== undefined && r.instanceId !== ref.instanceId ? undefined : r;
    };
    // Described beside the registry read when the operation is expected to run (the poll needs both then); else after.
    const early = describeFirst ? this.describe(ref, POLL_DEADLINE_MS) : undefined;
    early?.catch(() => undefined);
    const record = await read();
    const wanted = ref.operationId;
    const recordMatches = record && (!wanted || record.operationId === wanted);
    // A terminal record answers a poll for its own operation; a poll naming none must also see a newer run.
    if (recordMatches && record.state !== 'in progress' && wanted) return fromRecord(record);

    // In progress per the registry, or not recorded yet: ask Temporal whether a run holds this operation.
    let d: WorkflowExecutionDescription | undefined;
    try {
      const describing = early ?? this.describe(ref, POLL_DEADLINE_MS);
      if (recordMatches && record.state === 'in progress') whileDescribing?.();
      d = seen.described = await describing;
    } catch (err) {
      // Temporal unreachable or slow: the registry's word is all we have. Without a record of this operation the
      // answer is unknown, not "no operation": a 404 would tell the platform its accepted operation vanished.
      if (recordMatches) return fromRecord(record);
      throw new UnavailableError(`the state of the operation is not known right now (${(err as Error).message}); poll again`, err);
    }
    const described = d?.memo as unknown as OperationMemo | undefined;
    // A binding workflow of another instance (the same binding ID under another path) is not this binding's.
    const memo = described && (described.instanceId ?? ref.instanceId) === ref.instanceId ? described : undefined;
    const running = d?.status.name === 'RUNNING' ? memo : undefined;
    const sameEntry = (m: OperationMemo) => (ref.bindingId ? m.bindingId === ref.bindingId : !m.bindingId);
    // No operation asked and a newer run than the record's holds this entry: the gap before its first write.
    if (!wanted && running && running.operationId !== record?.operationId && sameEntry(running)) {
      return { operation: running.operation, operationId: running.operationId, state: 'in progress' };
    }
    if (recordMatches) {
      if (record.state !== 'in progress' || running?.operationId === record.operationId) return fromRecord(record);
      // Described before the read, the run may have started after the description: describe it again, in order.
      if (early) {
        const after = await this.describe(ref, POLL_DEADLINE_MS).catch(() => undefined);
        const m = after?.memo as unknown as OperationMemo | undefined;
        if (after?.status.name === 'RUNNING' && m?.operationId === record.operationId) {
          seen.described = after;
          return fromRecord(record);
        }
      }
      // The run is gone: it may have recorded its end between our two reads — read the registry again.
      const again = await read();
      if (again && again.operationId === record.operationId && again.state !== 'in progress') return fromRecord(again);
      // The run that opened this operation ended without completing it (terminated, timed out).
      return { ...fromRecord(record), state: 'failed', description: 'the operation ended without completing; retry it' };
    }
    // A deprovision requested during a provision: until the workflow handles the signal, the memo names the provision.
    if (wanted && running && wanted === deprovisionAfterProvisionId(running.operationId)) {
      return { operation: 'deprovision', operationId: wanted, state: 'in progress' };
    }
    if (wanted && memo?.operationId === wanted && (!ref.bindingId || memo.bindingId === ref.bindingId)) {
      if (running) return { operation: memo.operation, operationId: wanted, state: 'in progress' };
      const result = await this.client.workflow
        .getHandle(operationWorkflowId(ref), d!.runId)
        .result()
        .then((r) => r as OperationResult)
        .catch((err: Error) => ({ operation: memo.operation, operationId: wanted, state: 'failed' as const, description: err.message }));
      return { operation: result.operation, operationId: wanted, state: result.state, ...(result.description ? { description: result.description } : {}) };
    }
    // An operation ID we never issued for this instance (or a poller that sends a type name): report the latest.
    return record ? fromRecord(record) : undefined;
  }
}

/** The IDs of a run's pending activities, as one key ('' when none is pending). */
function pendingActivityKey(pending: ReadonlyArray<{ activityId?: string | null }>): string {
  return pending
    .map((p) => p.activityId ?? '')
    .sort()
    .join(',');
}

/** True when a worker's report names a step that is pending (its type) in the run's description. */
function reportMatches(progress: OperationProgress, pending: readonly PendingActivity[]): boolean {
  const step = progress.reconcile.step;
  return step !== undefined && pending.some((p) => p.activityType?.name === step);
}

function fromRecord(r: OperationRecord): OperationStatus {
  return {
    operation: r.operation,
    operationId: r.operationId,
    state: r.state,
    ...(r.description ? { description: r.description } : {}),
    ...(r.gone ? { gone: true } : {}),
  };
}
