// What a reconciliation is about, as plain data that workflows, activities and resource drivers share: who it is
// for, what templates read, a resource's state and the patch between two states
// (docs/design/contracts/resource-drivers.md#driver-interface). Types only, so the workflow sandbox may import it.

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
