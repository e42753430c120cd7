// The resource-driver contract (docs/design/contracts/resource-drivers.md, after operatorkit's CRUDResourceOps):
// what a driver implements so that the reconcile workflow can run it step by step, each step an activity.
// The data a reconciliation is about (ReconcileObject, ResourceState, Patch) is in domain/reconcile.ts, which the
// workflows share.
import type { Patch, ReconcileObject, ResourceState } from '../../domain/reconcile';
import { BrokerflowError } from '../errors';

/** Given to every driver call. */
export interface DriverContext {
  object: ReconcileObject;
  /** The resource's name in its resource set. */
  resourceName: string;
  /** Tells Temporal the call is alive during long waits (readiness); a no-op outside activities. */
  heartbeat(details?: unknown): void;
  /** Aborted when the activity is cancelled (deprovision during provision, timeouts). */
  signal: AbortSignal;
}

/** A resource driver: one kind of external object (Kubernetes object, etcd prefix, etcd user, registry entry). */
export interface ResourceDriver {
  readonly kind: string;
  /** What exists now for this rendered spec (null when absent or not owned by brokerflow). */
  getCurrentState(spec: Record<string, unknown>, ctx: DriverContext): Promise<ResourceState>;
  /** What should exist for this rendered spec (null when nothing should). */
  getDesiredState(spec: Record<string, unknown>, ctx: DriverContext): Promise<ResourceState>;
  /** Pure: the patch that turns current into desired. */
  newUpdatePatch(current: ResourceState, desired: ResourceState): Patch;
  /** Pure: the patch that removes what brokerflow owns. */
  newDeletePatch(current: ResourceState, desired: ResourceState): Patch;
  /** Create or adopt what brokerflow owns (idempotent). */
  applyCreateChange(state: ResourceState, ctx: DriverContext): Promise<void>;
  /** Delete if present (idempotent). */
  applyDeleteChange(state: ResourceState, ctx: DriverContext): Promise<void>;
  /** Bring an existing owned object to the given state (idempotent). */
  applyUpdateChange(state: ResourceState, ctx: DriverContext): Promise<void>;
  /** Values this resource contributes to binding credentials or the dashboard URL, once reconciled. */
  outputs?(spec: Record<string, unknown>, ctx: DriverContext): Promise<Record<string, unknown>>;
}

/** Thrown by a driver step: nothing further in this reconciliation runs, and the result is success. */
export class ReconciliationCanceled extends BrokerflowError {
  constructor(reason: string) {
    super('ReconciliationCanceled', reason);
  }
}

/** Thrown by a driver step: the rest of this resource is skipped; the next resource runs. */
export class ResourceCanceled extends BrokerflowError {
  constructor(reason: string) {
    super('ResourceCanceled', reason);
  }
}

/** A resource spec references a driver kind nobody registered. */
export class UnknownDriverError extends BrokerflowError {
  constructor(kind: string) {
    super('UnknownDriver', `no resource driver of kind "${kind}" is configured: the configuration file needs its settings (\`drivers\`, or \`kubernetes\` for Kubernetes resources), for the worker and for a CLI dry run alike`);
  }
}

/**
 * Where drivers keep generated secrets (passwords of etcd users, keys): created once per name and reused,
 * so a retried step finds the same value. Backed by the SecretPersistenceProvider (encrypted at rest).
 */
export interface SecretStore {
  /** Returns the secret stored under `name`, creating it with `generate()` first if absent. */
  ensure(name: string, generate: () => string): Promise<string>;
  get(name: string): Promise<string | undefined>;
  /** Deletes it if present. */
  delete(name: string): Promise<void>;
}
