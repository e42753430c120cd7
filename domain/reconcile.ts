// What a reconciliation is about, as plain data that workflows, activities and resource drivers share: who it is
// for, what templates read, a resource's state and the patch between two states
// (docs/design/contracts/resource-drivers.md#driver-interface), and the order of one resource's steps as a pure
// function. No imports and no I/O, so the workflow sandbox may import it.

/** A resource's state as its driver sees it: JSON-serialisable, never a secret in clear (use references). */
export type ResourceState = Record<string, unknown> | null;

/** What an update or delete reconciliation must change; only present parts are applied (create, delete, update). */
export interface Patch {
  create?: ResourceState;
  delete?: ResourceState;
  update?: ResourceState;
}

/** Who the reconciliation is for; drivers derive every name and identity from these IDs, never from randomness. */
export interface ReconcileObject {
  operationId: string;
  instanceId: string;
  bindingId?: string;
  serviceId: string;
  planId: string;
  /** The Kubernetes namespace (or other scope) the instance lives in, from the OSB context or the directory. */
  namespace?: string;
}

/**
 * What a resource's spec template can read: the instance, the binding (for binding resources) and the operation
 * (docs/design/contracts/resource-drivers.md#templates).
 */
export interface TemplateContext {
  instance: {
    id: string;
    serviceId: string;
    planId: string;
    parameters: Record<string, unknown>;
    context: Record<string, unknown>;
    namespace?: string;
  };
  binding?: { id: string; parameters: Record<string, unknown>; context: Record<string, unknown> };
  operation: { id: string; type: string };
  /**
   * The owner reference of this operation's registry entry (instance, or binding for binding resources) when
   * the registry is on Kubernetes, else null. `ownerReference: {$if: "owner", then: {$eval: "owner"}}` in a
   * Kubernetes resource makes the object garbage-collected with the entry.
   */
  owner?: { apiVersion: string; kind: string; name: string; uid: string } | null;
}

/** The CRUD steps of one resource, each an activity in a real reconciliation. */
export type CrudStep =
  | 'getCurrentState'
  | 'getDesiredState'
  | 'newUpdatePatch'
  | 'newDeletePatch'
  | 'applyCreateChange'
  | 'applyDeleteChange'
  | 'applyUpdateChange';

/** What a step is given beyond the resource itself: the states a patch is computed from, or the part to apply. */
export interface StepArgs {
  current?: ResourceState;
  desired?: ResourceState;
  state?: ResourceState;
}

/**
 * Runs one step and answers its value, or `'resource'` when the driver canceled the rest of this resource. The
 * workflow runs each step as an activity; a dry run runs the reads and the patch and only records the applies.
 */
export type StepRunner = <T>(step: CrudStep, args: StepArgs) => Promise<{ value?: T } | 'resource'>;

/** Which parts of a patch a reconciliation applies (operatorkit's context flags). */
export interface PatchFlags {
  /** Apply the delete part of an update patch (default true). */
  deletionAllowed?: boolean;
  /** Apply the update part of a patch (default true). */
  updateAllowed?: boolean;
}

/**
 * One resource's reconciliation (docs/design/contracts/reconciliation.md#step-order): current state, desired
 * state, the update (or delete) patch, then its create, delete and update parts in that order, each only when
 * present and allowed. `'canceled'` when a step canceled the rest of the resource. The operation workflows and
 * `brokerflow … --dry-run` both go through this function, so a preview cannot drift from what runs.
 */
export async function reconcileResource(mode: 'update' | 'delete', run: StepRunner, flags: PatchFlags = {}): Promise<'done' | 'canceled'> {
  const current = await run<ResourceState>('getCurrentState', {});
  if (current === 'resource') return 'canceled';
  const desired = await run<ResourceState>('getDesiredState', {});
  if (desired === 'resource') return 'canceled';
  const patchRes = await run<Patch>(mode === 'update' ? 'newUpdatePatch' : 'newDeletePatch', { current: current.value ?? null, desired: desired.value ?? null });
  if (patchRes === 'resource') return 'canceled';
  const patch = patchRes.value ?? {};
  if (patch.create !== undefined && (await run<void>('applyCreateChange', { state: patch.create })) === 'resource') return 'canceled';
  if (patch.delete !== undefined && flags.deletionAllowed !== false && (await run<void>('applyDeleteChange', { state: patch.delete })) === 'resource') {
    return 'canceled';
  }
  if (patch.update !== undefined && flags.updateAllowed !== false && (await run<void>('applyUpdateChange', { state: patch.update })) === 'resource') {
    return 'canceled';
  }
  return 'done';
}
