// The typed messages and inputs of the operation workflows, defined once for workflows, broker and CLI.
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { ReconcileProgress } from './reconcile';
import type { OperationState, OperationType } from '../domain/operations';
import type { ReconcileObject, TemplateContext } from '../domain/reconcile';
import type { RequestOrigin } from '../domain/audit';

/** What the platform asked for, as the operation workflows receive it. Parameters may hold secrets: the
 *  payload codec encrypts them in history; search attributes and IDs never carry them. */
export interface OperationInput {
  operation: OperationType;
  /** Chosen by the broker before start, returned to the platform in the 202; unique per operation. */
  operationId: string;
  instanceId: string;
  bindingId?: string;
  serviceId: string;
  planId: string;
  /** The plan's maintenance_info.version the instance is (to be) at. */
  maintenanceVersion?: string;
  parameters: Record<string, unknown>;
  context: Record<string, unknown>;
  /** A digest of the request attributes; identical re-requests have the same fingerprint. */
  fingerprint: string;
  /** For bind: the app GUID / bind resource, kept for fetch binding. */
  bindResource?: Record<string, unknown>;
  /** Who asked (the platform's originating identity, or the CLI); absent when the request named nobody. */
  requestedBy?: RequestOrigin;
  /** When the broker accepted the request (ISO 8601), for the audit trail. */
  acceptedAt?: string;
  /**
   * The plan's maximum_polling_duration in seconds (provision, update, bind): past it the operation is stopped,
   * undone and recorded as failed (docs/design/contracts/operations.md#polling-bounds).
   */
  maximumPollingSeconds?: number;
  /** For a rotating bind: the binding it rotates (recorded on the new binding; docs/design/osb-semantics.md#binding-rotation). */
  predecessorBindingId?: string;
  /**
   * For a bind on a plan with a credential policy: the credentials expire `ttlSeconds` after the bind succeeded, and
   * a timer per binding revokes them then (docs/design/osb-semantics.md#credential-expiry).
   */
  credentialPolicy?: { ttlSeconds: number; renewBeforeSeconds: number };
  /** For an unbind of a binding with an expiry timer: that timer's workflow, which the unbind cancels once it succeeded. */
  expiryWorkflowId?: string;
  /** Retry overrides for reconcile steps (tests and slow environments). */
  stepRetry?: { initialInterval?: string; maximumAttempts?: number; backoffCoefficient?: number };
}

/** Where an operation stands, as the progress query and `brokerflow status --watch` show it. */
export interface OperationProgress {
  operation: OperationType;
  operationId: string;
  instanceId: string;
  bindingId?: string;
  state: OperationState;
  description?: string;
  /** `compensating`: cancelled, undoing what the operation did (docs/design/contracts/operations.md#cancellation-and-compensation). */
  phase: 'recording' | 'reconciling' | 'compensating' | 'completing' | 'done';
  reconcile: ReconcileProgress;
  /** Epoch milliseconds (workflow time). */
  startedAt: number;
}

/** The final answer of an operation workflow. */
export interface OperationResult {
  operation: OperationType;
  operationId: string;
  state: 'succeeded' | 'failed';
  description?: string;
}

/** The memo every operation run carries: the broker decides identical / conflicting requests from it. */
export interface OperationMemo {
  operation: OperationType;
  operationId: string;
  /** The instance the operation is on (absent in memos written before binding workflows had their own IDs). */
  instanceId?: string;
  fingerprint: string;
  bindingId?: string;
  /** One line for humans in the Web UI. */
  summary: string;
}

export const progressQuery = defineQuery<OperationProgress>('progress');

/** Sent to a running provision when the platform deletes the instance: creation stops and deprovision follows. */
export const deprovisionRequestedSignal = defineSignal<[OperationInput]>('deprovisionRequested');

/** The operations a cancellation stops and undoes; a deprovision and an unbind run to completion. */
export const CANCELLABLE_OPERATIONS: readonly OperationType[] = ['provision', 'update', 'bind'];

/** The description a cancelled operation ends with; `requester` is the cancel request's identity. */
export function cancelledDescription(requester: string): string {
  return `cancelled by ${requester || 'an unnamed requester'}`;
}

/** The description of a cancelled operation whose undo failed (what is left is described by `reason`). */
export function cancelledUndoFailedDescription(requester: string, reason: string): string {
  return undoFailedDescription(cancelledDescription(requester), reason);
}

/** The description of a stopped operation (`description`: why it stopped) whose undo failed. */
export function undoFailedDescription(description: string, reason: string): string {
  return `${description}; undoing it failed: ${reason}`;
}

/** The description of an operation stopped and undone at its plan's maximum_polling_duration. */
export function pollingBoundDescription(seconds: number): string {
  return `stopped after the plan's maximum_polling_duration of ${seconds} s`;
}

/** Whether an operation's description says it was cancelled and its work undone. */
export function isCancelledAndUndone(description: string | undefined): boolean {
  return description !== undefined && description.startsWith('cancelled by ') && !description.includes('; undoing it failed: ');
}

/** The workflow ID the operations on one instance (provision, update, deprovision) share, so one runs at a time. */
export function instanceWorkflowId(instanceId: string): string {
  return `instance/${instanceId}`;
}

/**
 * The workflow ID the operations on one binding (bind, unbind) share. Binding IDs are unique across
 * instances, so requests for one binding ID under two instances still race for one workflow; bindings of
 * one instance run concurrently and take shares of the instance's lock in the registry instead.
 */
export function bindingWorkflowId(bindingId: string): string {
  return `binding/${bindingId}`;
}

/**
 * The workflow that keeps one binding's expiry: a durable timer until expires_at, then the revocation. Named after
 * the bind that created the credentials, so a binding ID bound again after an unbind gets a timer of its own.
 */
export function bindingExpiryWorkflowId(bindingId: string, bindOperationId: string): string {
  return `binding-expiry/${bindingId}/${bindOperationId}`;
}

/** What the expiry workflow of one binding needs: which credentials, and when they expire. */
export interface BindingExpiryInput {
  instanceId: string;
  bindingId: string;
  serviceId: string;
  planId: string;
  /** The bind that created the credentials: only its credentials are revoked (a later bind of the ID is not). */
  bindOperationId: string;
  /** ISO 8601, as the platform was told. */
  expiresAt: string;
  stepRetry?: OperationInput['stepRetry'];
}

/** How an expiry ended: the credentials were revoked, or there was nothing left to revoke (unbound, deprovisioned). */
export interface BindingExpiryResult {
  bindingId: string;
  revoked: boolean;
  /** Workflow time at which the revocation was recorded (epoch ms). */
  revokedAt?: number;
  reason?: string;
}

/** When credentials granted at `grantedAtMs` expire, and from when the platform should rotate them (OSB format). */
export function credentialTimes(grantedAtMs: number, policy: { ttlSeconds: number; renewBeforeSeconds: number }): { expiresAt: string; renewBefore: string } {
  const expires = grantedAtMs + policy.ttlSeconds * 1000;
  return { expiresAt: new Date(expires).toISOString(), renewBefore: new Date(expires - policy.renewBeforeSeconds * 1000).toISOString() };
}

/** The workflow that runs (or ran) the operations of an instance, or of a binding when one is named. */
export function operationWorkflowId(ref: { instanceId: string; bindingId?: string | undefined }): string {
  return ref.bindingId ? bindingWorkflowId(ref.bindingId) : instanceWorkflowId(ref.instanceId);
}

/** The operation ID a deprovision gets when it interrupts a running provision (the same for every retry). */
export function deprovisionAfterProvisionId(provisionOperationId: string): string {
  return `deprovision-after-${provisionOperationId}`;
}

/** A one-line description of an operation for memos and logs (never parameters or credentials). */
export function operationSummary(i: Pick<OperationInput, 'operation' | 'instanceId' | 'bindingId' | 'serviceId' | 'planId'>): string {
  return i.bindingId
    ? `${i.operation} binding ${i.bindingId} of instance ${i.instanceId} (service ${i.serviceId}, plan ${i.planId})`
    : `${i.operation} instance ${i.instanceId} (service ${i.serviceId}, plan ${i.planId})`;
}

/** The object reconcile drivers see, built from the operation input (operation workflows and dry runs). */
export function reconcileObject(i: OperationInput): ReconcileObject {
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

/**
 * What templates can read: pure data from the operation input (the instance's inputs for a binding, the registry
 * entry's owner reference when there is one). Operation workflows and dry runs render with exactly this.
 */
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
