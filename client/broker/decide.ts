// The OSB v2.17 rules in one place, free of I/O: given a request and the facts about the instance and binding it
// names (from the registry, and from Temporal for the gap before an operation's first registry write), decide
// the answer. docs/design/osb-semantics.md is the table this module implements row by row; OsbService gathers
// the facts and carries the decision out; the unit tests cover every row in milliseconds.
import type { OperationType } from '../../domain/operations';
import type { LastOperationState } from './schemas';

/** An operation as recorded (registry) or running (Temporal memo). */
export interface OperationFact {
  operation: OperationType;
  operationId: string;
  state: LastOperationState;
  /** A successful deprovision/unbind: the entry is gone (tombstone). */
  gone?: boolean;
}

/** What the registry and Temporal say about an instance. */
export interface InstanceFacts {
  /** The registry entry exists (not only a tombstone). */
  exists: boolean;
  /**
   * A provision of the entry has succeeded: something is applied. False for an instance whose provision failed or
   * was stopped by a DELETE, also while the deprovision that follows runs.
   */
  provisioned: boolean;
  /** The last operation recorded on the entry (or its tombstone). */
  record?: OperationFact;
  /** The operation whose workflow runs now and has not recorded its end, with its request fingerprint. */
  running?: OperationFact & { fingerprint: string };
  /** What is applied: the fingerprint of service, plan, parameters, org and space. */
  fingerprint?: string;
  serviceId?: string;
  planId?: string;
  maintenanceVersion?: string;
  /** Binding operations holding a share of the instance's lock. */
  bindingOperations: number;
}

/** What the registry and Temporal say about a binding, seen from one instance's path. */
export interface BindingFacts {
  /** The entry exists under this instance. */
  exists: boolean;
  /** The binding ID is taken by another instance (live entry, or a running bind). */
  ownedByAnotherInstance: boolean;
  record?: OperationFact;
  running?: OperationFact & { fingerprint: string };
  fingerprint?: string;
  /** When the binding's credentials expired and were revoked (ISO 8601); absent while they are valid. */
  expiredAt?: string;
}

export type InstanceState = 'absent' | 'provisioning' | 'provision-failed' | 'ready' | 'updating' | 'deprovisioning';
/** `expired`: bound, but its credentials reached their expires_at and were revoked (docs/design/osb-semantics.md#credential-expiry). */
export type BindingState = 'absent' | 'binding' | 'bind-failed' | 'bound' | 'expired' | 'unbinding';

/** What to do. `start`: start the operation; `join`: answer with the running operation; `interrupt`: stop the
 *  running provision and continue it as a deprovision. */
export type Decision =
  | { kind: 'answer'; status: number; body: 'empty' | 'dashboard' | 'instance' | 'binding' }
  | { kind: 'error'; status: 400 | 404 | 409 | 410 | 422; error?: 'ConcurrencyError' | 'AsyncRequired' | 'MaintenanceInfoConflict' | 'RequiresApp'; description: string }
  | { kind: 'start' }
  | { kind: 'join'; operationId: string }
  | { kind: 'interrupt'; provisionOperationId: string };

const err = (status: 400 | 404 | 409 | 410 | 422, description: string, error?: 'ConcurrencyError' | 'AsyncRequired' | 'MaintenanceInfoConflict' | 'RequiresApp'): Decision => ({
  kind: 'error',
  status,
  ...(error ? { error } : {}),
  description,
});
const busy = (description: string) => err(422, description, 'ConcurrencyError');
const asyncRequired = (what: 'instance' | 'binding') =>
  err(422, `this plan's ${what} operations are asynchronous only: retry with accepts_incomplete=true`, 'AsyncRequired');

/** Where an instance stands. A running operation that has not recorded itself yet wins over the record. */
export function instanceState(f: InstanceFacts): InstanceState {
  const op = f.running ?? (f.record?.state === 'in progress' ? f.record : undefined);
  if (op) {
    if (op.operation === 'provision') return 'provisioning';
    if (op.operation === 'update') return 'updating';
    if (op.operation === 'deprovision') return 'deprovisioning';
  }
  if (!f.exists) return 'absent';
  const last = f.record;
  if (!last) return 'absent';
  if (last.operation === 'provision' && last.state !== 'succeeded') return 'provision-failed';
  return 'ready';
}

/** Where a binding stands under one instance's path (another instance's binding is absent from it). */
export function bindingState(f: BindingFacts): BindingState {
  const op = f.running ?? (f.record?.state === 'in progress' ? f.record : undefined);
  if (op) return op.operation === 'bind' ? 'binding' : 'unbinding';
  if (!f.exists || !f.record) return 'absent';
  if (f.record.operation === 'bind' && f.record.state !== 'succeeded') return 'bind-failed';
  return f.expiredAt !== undefined ? 'expired' : 'bound';
}

/** The request facts every instance and binding decision needs. */
export interface RequestFacts {
  /** `accepts_incomplete=true`. */
  accepts: boolean;
  /** The plan (of the request, or the target plan) requires `accepts_incomplete=true` for this kind of operation. */
  asyncOnly: boolean;
  /** The request's fingerprint (identical requests have the same one). */
  fingerprint: string;
}

/** PUT /v2/service_instances/:id, after the body, catalog, parameters and maintenance_info were checked. */
export function decideProvision(req: RequestFacts, f: InstanceFacts): Decision {
  switch (instanceState(f)) {
    case 'ready':
      return f.fingerprint === req.fingerprint ? { kind: 'answer', status: 200, body: 'dashboard' } : err(409, 'the instance already exists with different attributes');
    case 'updating':
    case 'deprovisioning':
      return busy(`another operation (${f.running?.operation ?? f.record?.operation}) is in progress on the instance`);
    case 'provisioning': {
      const running = f.running ?? f.record!;
      const same = (f.running?.fingerprint ?? f.fingerprint) === req.fingerprint;
      if (!same) return err(409, 'the instance is being provisioned with different attributes');
      return { kind: 'join', operationId: running.operationId };
    }
    case 'absent':
    case 'provision-failed':
      return req.asyncOnly && !req.accepts ? asyncRequired('instance') : { kind: 'start' };
  }
}

/** What an update request asks, compared with what is applied. */
export interface UpdateFacts extends RequestFacts {
  serviceId: string;
  /** The target plan differs from the applied one. */
  planChange: boolean;
  /** The target plan may be changed to (plan_updateable). */
  planUpdateable: boolean;
  /** The target (plan, parameters, maintenance version, context) equals what is applied. */
  unchanged: boolean;
}

/**
 * The update rows that need only the instance (the target plan is known only once the instance is): 404 for an
 * instance that does not exist, 422 while it is being provisioned, 400 for another service. Undefined: go on.
 */
export function decideUpdateInstance(serviceId: string, f: InstanceFacts): Decision | undefined {
  const state = instanceState(f);
  if (state === 'absent' || state === 'provision-failed') return err(404, 'the instance does not exist');
  if (state === 'provisioning') return busy('the instance is still being provisioned');
  if (serviceId !== f.serviceId) return err(400, `service_id "${serviceId}" is not the instance's service`);
  return undefined;
}

/** PATCH /v2/service_instances/:id, after the body, the target plan, parameters and maintenance_info were checked. */
export function decideUpdate(req: UpdateFacts, f: InstanceFacts): Decision {
  const first = decideUpdateInstance(req.serviceId, f);
  if (first) return first;
  const state = instanceState(f);
  if (req.planChange && !req.planUpdateable) return err(400, 'plan changes are not supported for this service');
  if (state === 'updating') {
    const running = f.running ?? f.record!;
    if (f.running && f.running.fingerprint === req.fingerprint) return { kind: 'join', operationId: running.operationId };
    return busy('another update is in progress on the instance');
  }
  if (state === 'deprovisioning') return busy('the instance is being deprovisioned');
  if (f.bindingOperations > 0) return busy('binding operations are in progress on the instance');
  if (req.unchanged) return { kind: 'answer', status: 200, body: 'empty' };
  return req.asyncOnly && !req.accepts ? asyncRequired('instance') : { kind: 'start' };
}

/** DELETE /v2/service_instances/:id, after the query was checked. Existence comes before asynchrony. */
export function decideDeprovision(req: RequestFacts, f: InstanceFacts): Decision {
  switch (instanceState(f)) {
    case 'absent':
      return err(410, 'the instance does not exist');
    case 'deprovisioning': {
      const running = f.running ?? f.record!;
      return { kind: 'join', operationId: running.operationId };
    }
    case 'provisioning':
      return req.asyncOnly && !req.accepts ? asyncRequired('instance') : { kind: 'interrupt', provisionOperationId: (f.running ?? f.record!).operationId };
    case 'updating':
      return busy('an update is in progress on the instance');
    case 'ready':
    case 'provision-failed':
      if (f.bindingOperations > 0) return busy('binding operations are in progress on the instance');
      return req.asyncOnly && !req.accepts ? asyncRequired('instance') : { kind: 'start' };
  }
}

/** GET /v2/service_instances/:id. */
export function decideFetchInstance(f: InstanceFacts): Decision {
  const state = instanceState(f);
  if (state === 'updating') return busy('the instance is being updated');
  if (state === 'ready' || (state === 'deprovisioning' && f.provisioned)) return { kind: 'answer', status: 200, body: 'instance' };
  // A deprovision of an instance that was never provisioned (failed, or stopped by a DELETE) has nothing to show.
  return err(404, 'the instance does not exist or is still being provisioned');
}

/** What a bind request carries beyond the common facts. */
export interface BindFacts extends RequestFacts {
  /** service_id and plan_id are the instance's. */
  matchesInstance: boolean;
  /** A rotation: the request names `predecessor_binding_id` (docs/design/osb-semantics.md#binding-rotation). */
  rotation?: RotationFacts;
}

/** What a rotating bind needs to know: whether the plan allows it, and the predecessor as seen from this instance. */
export interface RotationFacts {
  /** The plan's `binding_rotatable`. */
  rotatable: boolean;
  /** The new binding (the successor). */
  bindingId: string;
  predecessorId: string;
  /** The predecessor binding, seen from the instance's path (another instance's binding is absent from it). */
  predecessor: BindingFacts;
}

/**
 * The rows of a rotation that come before any state of the new binding: a plan that is not rotatable, or a binding
 * that names itself. Undefined: go on.
 */
export function decideRotationRequest(r: Pick<RotationFacts, 'rotatable' | 'bindingId' | 'predecessorId'>): Decision | undefined {
  if (!r.rotatable) return err(400, 'bindings of this plan cannot be rotated (the plan is not binding_rotatable): create a new binding instead');
  if (r.predecessorId === r.bindingId) return err(400, `predecessor_binding_id "${r.predecessorId}" names the binding itself`);
  return undefined;
}

/** Whether the predecessor of a rotation can be rotated: it must be bound under this instance and not expired. */
export function decidePredecessor(r: RotationFacts): Decision | undefined {
  const p = r.predecessor;
  if (p.ownedByAnotherInstance) return err(400, `predecessor binding "${r.predecessorId}" belongs to another service instance`);
  switch (bindingState(p)) {
    case 'bound':
      return undefined;
    case 'expired':
      return err(400, `predecessor binding "${r.predecessorId}" expired at ${p.expiredAt} and its credentials were revoked: create a new binding instead`);
    case 'binding':
      return err(400, `predecessor binding "${r.predecessorId}" is still being created: rotate it once its bind has succeeded`);
    case 'unbinding':
      return err(400, `predecessor binding "${r.predecessorId}" is being deleted`);
    case 'absent':
    case 'bind-failed':
      return err(400, `predecessor binding "${r.predecessorId}" does not exist under this service instance`);
  }
}

/** PUT .../service_bindings/:id, after the body, plan (bindable, RequiresApp) and parameters were checked. */
export function decideBind(req: BindFacts, inst: InstanceFacts, f: BindingFacts): Decision {
  const rotation = req.rotation ? decideRotationRequest(req.rotation) : undefined;
  if (rotation) return rotation;
  const state = instanceState(inst);
  if (state === 'absent' || state === 'provision-failed') return err(404, 'the instance does not exist');
  if (state !== 'ready') return busy(`the instance is busy (${state})`);
  if (!req.matchesInstance) return err(400, 'service_id/plan_id do not match the instance');
  if (f.ownedByAnotherInstance) return err(409, 'the binding ID is taken by another instance');
  switch (bindingState(f)) {
    case 'bound':
      return f.fingerprint === req.fingerprint ? { kind: 'answer', status: 200, body: 'binding' } : err(409, 'the binding already exists with different attributes');
    case 'expired':
      return err(409, `the binding exists, but its credentials expired at ${f.expiredAt} and were revoked: delete it and bind anew`);
    case 'binding': {
      const same = (f.running?.fingerprint ?? f.fingerprint) === req.fingerprint;
      if (!same) return err(409, 'the binding is being created with different attributes');
      return { kind: 'join', operationId: (f.running ?? f.record!).operationId };
    }
    case 'unbinding':
      return busy('the binding is being deleted');
    case 'absent':
    case 'bind-failed': {
      if (req.asyncOnly && !req.accepts) return asyncRequired('binding');
      // The predecessor counts only for a bind that starts: a repeated rotation that already succeeded is answered
      // above even when the platform has deleted the predecessor since.
      return (req.rotation && decidePredecessor(req.rotation)) || { kind: 'start' };
    }
  }
}

/** DELETE .../service_bindings/:id. Existence comes before asynchrony. */
export function decideUnbind(req: RequestFacts, f: BindingFacts): Decision {
  switch (bindingState(f)) {
    case 'absent':
      return err(410, 'the binding does not exist');
    case 'binding':
      return busy('the binding is still being created');
    case 'unbinding':
      return { kind: 'join', operationId: (f.running ?? f.record!).operationId };
    case 'bound':
    case 'expired':
    case 'bind-failed':
      return req.asyncOnly && !req.accepts ? asyncRequired('binding') : { kind: 'start' };
  }
}

/** GET .../service_bindings/:id. An expired binding has no credentials left to hand out: 404, saying why. */
export function decideFetchBinding(f: BindingFacts): Decision {
  const state = bindingState(f);
  if (state === 'expired') return err(404, `the binding's credentials expired at ${f.expiredAt} and were revoked`);
  return state === 'bound' ? { kind: 'answer', status: 200, body: 'binding' } : err(404, 'the binding does not exist or is still being created');
}
