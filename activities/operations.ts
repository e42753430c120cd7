// The registry side of OSB operations: record begin and end, route the plan to its resource set, read what
// bindings need from their instance, and write binding credentials straight into the registry's secret store
// (so they never pass through workflow history). Every function is idempotent under retries.
import type { Catalog } from '../config/catalog';
import { planResources, type ResourceDef, type ResourceSetDef } from '../config/resource-sets';
import { BindingOperationsRunningError, BrokerflowKey, InstanceBusyError, instanceInputs, OperationInProgressError, OperationMismatchError, operationOf, type Registry } from '../adapters/registry';
import type { OwnerReference } from '../adapters/persistence';
import type { ReconcileObject, TemplateContext } from '../domain/reconcile';
import type { ResourceDriver } from '../adapters/resources/types';
import { renderSpec } from '../adapters/resources/template';
import { ConflictError, NotFoundError, ValidationError } from '../adapters/errors';
import { RegistryKey } from '../adapters/registry/keys';
import type { Entry } from '../adapters/registry/entry';
import { deprovisionAfterProvisionId, type OperationInput } from '../workflows/messages';
import type { OperationType } from '../domain/operations';
import { asActivity } from './failures';
import { operationAudit } from './audit';

/**
 * Registry keys brokerflow adds to the system keys (defined with the registry's keys;
 * docs/design/contracts/registry.md#brokerflow-keys).
 */
export const ExtraKeys = BrokerflowKey;

/** What the operation activities are built from. */
export interface OperationDeps {
  registry: Registry;
  catalog: Catalog;
  resourceSets: ResourceSetDef[];
  drivers: Map<string, ResourceDriver>;
}

/** Identifies the entry an operation records on. */
export interface EntryRef {
  operation: OperationType;
  operationId: string;
  instanceId: string;
  bindingId?: string;
}

function entryOf(ref: Pick<EntryRef, 'instanceId' | 'bindingId'>): ['service-instance' | 'service-binding', string] {
  return ref.bindingId ? ['service-binding', ref.bindingId] : ['service-instance', ref.instanceId];
}

/** What recordBegin found. `refused`: the state moved since the broker decided (the instance or binding is gone,
 *  or the instance is busy); the operation records nothing and ends as failed with that reason. */
export interface BeginOutcome {
  alreadySucceeded: boolean;
  owner?: OwnerReference;
  refused?: string;
}

/** A bind's credential lifetime, written with its success (docs/design/osb-semantics.md#credential-expiry). */
export interface CredentialExpiry {
  expiresAt: string;
  renewBefore: string;
  /** The workflow that revokes the credentials at expiresAt. */
  workflowId: string;
}

/** The target of an update, kept on the instance while it runs and applied only when it succeeds. */
interface PendingUpdate {
  planId: string;
  parameters: Record<string, unknown>;
  fingerprint: string;
  maintenanceVersion?: string;
}

export function createOperationActivities(deps: OperationDeps) {
  const { registry } = deps;
  const audit = operationAudit(registry);
  const open = (ref: Pick<EntryRef, 'instanceId' | 'bindingId'>) => {
    const [type, id] = entryOf(ref);
    return registry.open(type, id, ref.bindingId ? { instanceId: ref.instanceId } : {});
  };

  return {
    /**
     * Records the operation as begun, storing the request's attributes. A request identical to one that already
     * succeeded reports `alreadySucceeded` and changes nothing. An operation left open by a run that ended
     * without completing it is closed as failed first: only one run per instance exists at a time, so it is stale.
     */
    async recordBegin(input: OperationInput): Promise<BeginOutcome> {
      return asActivity(`recording ${input.operation} ${input.operationId}`, async () => auditedBegin(await onFreshCopies(async () => {
        const entry = await open(input);
        const cur = operationOf(entry);
        const refused = (reason: string): BeginOutcome => ({ alreadySucceeded: false, refused: reason });
        const provisioned = entry.exists() && !!cur && !(cur.operation === 'provision' && cur.state !== 'succeeded');
        switch (input.operation) {
          case 'provision':
          case 'bind': {
            if (input.operation === 'bind' && entry.exists() && entry.get(RegistryKey.InstanceID) !== input.instanceId) {
              return refused(`binding ${input.bindingId} belongs to another instance`);
            }
            if (entry.exists() && cur?.operation === input.operation && cur.state === 'succeeded' && cur.operationId !== input.operationId) {
              // An identical request that already succeeded (a re-PUT racing the previous run's end) records nothing;
              // a different one lost a race against it.
              if (entry.get(ExtraKeys.Fingerprint) === input.fingerprint) return { alreadySucceeded: true };
              return refused(`${input.bindingId ? `binding ${input.bindingId}` : `instance ${input.instanceId}`} already exists with different attributes`);
            }
            if (input.operation === 'provision' && provisioned && cur?.operationId !== input.operationId) {
              return refused(`instance ${input.instanceId} already exists`);
            }
            break;
          }
          case 'update':
            if (!provisioned) return refused(`instance ${input.instanceId} does not exist`);
            break;
          case 'unbind':
            if (!entry.exists() || entry.get(RegistryKey.InstanceID) !== input.instanceId) return refused(`binding ${input.bindingId} does not exist`);
            break;
          case 'deprovision':
            break;
        }
        if ((input.operation === 'update' || input.operation === 'deprovision') && cur?.operationId !== input.operationId) {
          // Instance operations exclude binding operations: wait (retryable) until every share is given back.
          const running = Object.keys(await registry.runningBindingShares(entry));
          if (running.length > 0) throw new BindingOperationsRunningError(running, entry.name);
        }
        const share = input.bindingId && (input.operation === 'bind' || input.operation === 'unbind') ? input.bindingId : undefined;
        if (share) {
          try {
            await registry.acquireBindingShare(input.instanceId, share, input.operationId);
          } catch (err) {
            if (err instanceof InstanceBusyError) return refused(err.message);
            throw err;
          }
        }
        try {
          return await begin(entry, cur);
        } catch (err) {
          // The begin did not happen: give the share back (a retry takes it again), so no lock leaks.
          if (share) await registry.releaseBindingShare(input.instanceId, share, input.operationId).catch(() => undefined);
          throw err;
        }
      })));

      /** Records the operation in its instance's audit trail; one that ends here (refused, already done) with its end. */
      async function auditedBegin(outcome: BeginOutcome & { applied?: Entry }): Promise<BeginOutcome> {
        const { applied, ...result } = outcome;
        await audit.accepted(input, applied);
        if (result.refused !== undefined) await audit.ended(input.instanceId, input.operationId, { error: result.refused });
        else if (result.alreadySucceeded) await audit.ended(input.instanceId, input.operationId, { note: 'already done' });
        return result;
      }

      async function begin(entry: Entry, cur: ReturnType<typeof operationOf>): Promise<BeginOutcome & { applied?: Entry }> {
        // What an update changes is compared with what the instance has applied before it begins.
        const applied = input.operation === 'update' ? entry.clone() : undefined;
        if (entry.exists() && cur && cur.operationId !== input.operationId && cur.state === 'in progress') {
          const superseded = 'superseded: the workflow running this operation ended without completing it';
          await registry.completeOperation(entry, { operationId: cur.operationId, error: superseded });
          await audit.ended(input.instanceId, cur.operationId, { error: superseded });
        }
        if (cur?.operationId !== input.operationId) {
          if (input.operation === 'provision') {
            entry.set('instance-id', input.instanceId);
            entry.set('service-id', input.serviceId);
            entry.set('context', input.context);
            entry.set('plan-id', input.planId);
            entry.set('parameters', input.parameters);
            entry.set(ExtraKeys.Fingerprint, input.fingerprint);
            entry.set(ExtraKeys.ProvisionPending, true);
            if (input.maintenanceVersion) entry.set(ExtraKeys.MaintenanceVersion, input.maintenanceVersion);
            if (typeof input.context.namespace === 'string') entry.set('namespace', input.context.namespace);
          } else if (input.operation === 'update') {
            const pending: PendingUpdate = {
              planId: input.planId,
              parameters: input.parameters,
              fingerprint: input.fingerprint,
              ...(input.maintenanceVersion ? { maintenanceVersion: input.maintenanceVersion } : {}),
            };
            entry.set(ExtraKeys.PendingUpdate, pending);
          } else if (input.operation === 'bind') {
            const instance = await registry.open('service-instance', input.instanceId);
            if (!entry.exists()) entry.inherit(instance);
            entry.set('instance-id', input.instanceId);
            entry.set('binding-id', input.bindingId);
            entry.set('parameters', input.parameters);
            entry.set('context', input.context);
            entry.set(ExtraKeys.Fingerprint, input.fingerprint);
            if (input.bindResource) entry.set(ExtraKeys.BindResource, input.bindResource);
            else entry.unset(ExtraKeys.BindResource);
            if (input.predecessorBindingId) entry.set(ExtraKeys.PredecessorBindingID, input.predecessorBindingId);
            else entry.unset(ExtraKeys.PredecessorBindingID);
            // A bind again after a failed one starts a new credential lifetime, written when it succeeds.
            for (const k of [ExtraKeys.ExpiresAt, ExtraKeys.RenewBefore, ExtraKeys.ExpiryWorkflowID, ExtraKeys.ExpiredAt]) entry.unset(k);
          }
        }
        try {
          await registry.beginOperation(entry, { operation: input.operation, operationId: input.operationId });
        } catch (err) {
          // The provision this deprovision continues (a DELETE stopped it) wrote its begin after this entry was read:
          // the DELETE cut off that begin's answer, so the provision never records an end. Read the entry again, and
          // the rule above closes it as superseded. Found by a PUT/DELETE race on a loaded machine, whose deprovision
          // failed "provision … is still in progress".
          if (err instanceof OperationInProgressError && input.operation === 'deprovision' && deprovisionAfterProvisionId(err.operationId) === input.operationId) {
            throw new ConflictError(`${entry.name}: the provision ${err.operationId.slice(0, 80)} began meanwhile; reading the entry again`);
          }
          throw err;
        }
        // On the Kubernetes registry backend, objects that name this entry as their owner are garbage-collected
        // with it; templates pass it on as `owner`.
        const owner = entry.getOwnerReference();
        return { alreadySucceeded: false, ...(owner ? { owner } : {}), ...(applied ? { applied } : {}) };
      }
    },

    /**
     * Records the end: no error = succeeded (a deprovision/unbind then deletes the entry, leaving a tombstone).
     * A successful update applies its target in the same write; a binding operation gives back its share of the
     * instance's lock.
     */
    async recordComplete(input: EntryRef & { error?: string; expiry?: CredentialExpiry }): Promise<void> {
      return asActivity(`completing ${input.operation} ${input.operationId}`, () => onFreshCopies(async () => {
        const entry = await open(input);
        if (input.operation === 'bind' && !entry.exists()) {
          // A repeat of a completion that was written but whose report got lost (a worker stopped): meanwhile the
          // instance's deprovision, which begins only once this end is recorded, removed the binding.
          const record = await registry.readOperation('service-binding', input.bindingId!, { instanceId: input.instanceId });
          if (record?.gone && record.operationId.endsWith(`/${input.bindingId}`)) {
            await audit.ended(input.instanceId, input.operationId, input.error !== undefined ? { error: input.error } : {});
            return;
          }
        }
        if (input.operation === 'update' && entry.exists()) {
          const pending = entry.get<PendingUpdate>(ExtraKeys.PendingUpdate);
          if (pending && input.error === undefined && operationOf(entry)?.operationId === input.operationId) {
            entry.set('plan-id', pending.planId);
            entry.set('parameters', pending.parameters);
            entry.set(ExtraKeys.Fingerprint, pending.fingerprint);
            if (pending.maintenanceVersion) entry.set(ExtraKeys.MaintenanceVersion, pending.maintenanceVersion);
          }
          entry.unset(ExtraKeys.PendingUpdate);
        }
        if (input.operation === 'provision' && input.error === undefined && entry.exists() && operationOf(entry)?.operationId === input.operationId) {
          entry.unset(ExtraKeys.ProvisionPending);
        }
        if (input.operation === 'bind' && input.error !== undefined && entry.exists() && operationOf(entry)?.operationId === input.operationId) {
          // A failed bind leaves no credentials: a cancelled one may have stored them just before it was stopped
          // (docs/design/contracts/operations.md#cancellation-and-compensation). Same write as the failure.
          entry.unset(RegistryKey.Credentials);
        }
        if (input.operation === 'bind' && input.error === undefined && input.expiry && entry.exists() && operationOf(entry)?.operationId === input.operationId) {
          // The credentials' lifetime starts with the bind's success, in the same write (docs/design/osb-semantics.md#credential-expiry).
          entry.set(ExtraKeys.ExpiresAt, input.expiry.expiresAt);
          entry.set(ExtraKeys.RenewBefore, input.expiry.renewBefore);
          entry.set(ExtraKeys.ExpiryWorkflowID, input.expiry.workflowId);
        }
        await registry.completeOperation(entry, { operationId: input.operationId, ...(input.error !== undefined ? { error: input.error } : {}) });
        if (input.bindingId && (input.operation === 'bind' || input.operation === 'unbind')) {
          await registry.releaseBindingShare(input.instanceId, input.bindingId, input.operationId);
        }
        await audit.ended(input.instanceId, input.operationId, input.error !== undefined ? { error: input.error } : {});
      }));
    },

    /**
     * Whether a binding's credentials are due for revocation at their expiry: the binding still exists under its
     * instance, its last operation is the bind that created them (succeeded), and they were not revoked yet. Else the
     * reason there is nothing to revoke (unbound, deprovisioned, bound again, an unbind runs).
     */
    async expiryDue(input: { instanceId: string; bindingId: string; bindOperationId: string }): Promise<
      { due: true; parameters: Record<string, unknown>; context: Record<string, unknown> } | { due: false; reason: string }
    > {
      return asActivity(`checking the expiry of binding ${input.bindingId}`, async () => {
        const entry = await registry.open('service-binding', input.bindingId, { instanceId: input.instanceId });
        if (!entry.exists() || entry.get(RegistryKey.InstanceID) !== input.instanceId) return { due: false, reason: 'the binding no longer exists' };
        const cur = operationOf(entry);
        if (cur?.operationId !== input.bindOperationId) return { due: false, reason: `the binding's last operation is ${cur?.operation ?? 'none'} ${cur?.operationId ?? ''}`.trim() };
        if (cur.state !== 'succeeded') return { due: false, reason: `bind ${cur.operationId} did not succeed` };
        if (entry.get(ExtraKeys.ExpiredAt) !== undefined) return { due: false, reason: 'already revoked' };
        return { due: true, parameters: entry.get<Record<string, unknown>>(RegistryKey.Parameters) ?? {}, context: entry.get<Record<string, unknown>>(RegistryKey.Context) ?? {} };
      });
    },

    /**
     * Records a binding's credentials as expired once its resources are gone: the credentials leave the entry and
     * `expired-at` says when, only while the entry is still the bind's (an unbind or deprovision meanwhile wins).
     */
    async recordExpired(input: { instanceId: string; bindingId: string; bindOperationId: string; expiredAt: string }): Promise<void> {
      return asActivity(`recording the expiry of binding ${input.bindingId}`, () => onFreshCopies(async () => {
        const entry = await registry.open('service-binding', input.bindingId, { instanceId: input.instanceId });
        if (!entry.exists() || operationOf(entry)?.operationId !== input.bindOperationId) return;
        if (entry.get(ExtraKeys.ExpiredAt) !== undefined) return;
        entry.unset(RegistryKey.Credentials);
        entry.set(ExtraKeys.ExpiredAt, input.expiredAt);
        await entry.commit();
      }));
    },

    /** Routes a plan (at a maintenance version) to its resource set's instance or binding resources. */
    async resolveResources(input: {
      serviceId: string;
      planId: string;
      maintenanceVersion?: string;
      part: 'instance' | 'binding';
    }): Promise<{ resources: ResourceDef[] } | { skipped: string }> {
      return asActivity('resolving the resource set', async () => planResources(deps.catalog, deps.resourceSets, input));
    },

    /** The bindings recorded for an instance, with what their resources are rendered from. */
    async listBindings(input: { instanceId: string }): Promise<Array<{ bindingId: string; parameters: Record<string, unknown>; context: Record<string, unknown> }>> {
      return asActivity('listing bindings', async () => {
        const all = await registry.list('service-binding');
        return all
          .filter((b) => b.values['instance-id'] === input.instanceId)
          .map((b) => ({
            bindingId: b.id,
            parameters: (b.values.parameters as Record<string, unknown>) ?? {},
            context: (b.values.context as Record<string, unknown>) ?? {},
          }));
      });
    },

    /**
     * Deletes a binding's entry and credentials when its instance is deprovisioned (its resources are already
     * gone), leaving a tombstone so the binding's last_operation answers 410 Gone.
     */
    async removeBindingEntry(input: { instanceId: string; bindingId: string; operationId?: string }): Promise<void> {
      return asActivity(`removing binding ${input.bindingId}`, async () => {
        await registry.removeBinding(input.instanceId, input.bindingId, input.operationId ?? 'deprovision');
      });
    },

    /** The parameters and context an instance was provisioned (or last updated) with, for binding templates. */
    async readInstanceInputs(input: { instanceId: string }): Promise<{ parameters: Record<string, unknown>; context: Record<string, unknown> }> {
      return asActivity('reading the instance', async () => {
        const entry = await registry.open('service-instance', input.instanceId);
        if (!entry.exists()) throw new NotFoundError(`instance ${input.instanceId} does not exist`);
        return instanceInputs(entry);
      });
    },

    /**
     * Whether the registry records this operation as ended, and how. A run may not know it: a local activity that
     * wrote the end ran in a workflow task Temporal then refused (an event came meanwhile), so the run takes the
     * task again without that result. `other`: the entry's current operation is another one, or there is none.
     */
    async readOperationState(input: { instanceId: string; bindingId?: string; operationId: string }): Promise<'in progress' | 'succeeded' | 'failed' | 'other'> {
      return asActivity(`reading operation ${input.operationId}`, async () => {
        const cur = operationOf(await open(input));
        return cur?.operationId === input.operationId ? cur.state : 'other';
      });
    },

    /**
     * What an instance has applied: the plan, parameters, context and maintenance version its last successful
     * provision or update left (an update's target is applied only when it succeeds). A cancelled update
     * reconciles back to these.
     */
    async readAppliedInstance(input: { instanceId: string }): Promise<{
      planId: string;
      parameters: Record<string, unknown>;
      context: Record<string, unknown>;
      maintenanceVersion?: string;
    }> {
      return asActivity('reading the applied instance', async () => {
        const entry = await registry.open('service-instance', input.instanceId);
        if (!entry.exists()) throw new NotFoundError(`instance ${input.instanceId} does not exist`);
        const maintenanceVersion = entry.get<string>(ExtraKeys.MaintenanceVersion);
        return { planId: entry.get<string>(RegistryKey.PlanID) ?? '', ...instanceInputs(entry), ...(maintenanceVersion ? { maintenanceVersion } : {}) };
      });
    },

    /**
     * Collects the binding resources' outputs and stores them as the binding's credentials (encrypted at rest),
     * only while the binding's record still shows this bind in progress: a call that outlives its bind's end (a
     * cancelled bind records its end without waiting for it) must not bring credentials back.
     */
    async storeCredentials(input: { resources: ResourceDef[]; object: ReconcileObject; template: TemplateContext }): Promise<void> {
      return asActivity('storing credentials', async () => {
        if (!input.object.bindingId) throw new ValidationError('storeCredentials needs a binding');
        const credentials: Record<string, unknown> = {};
        for (const r of input.resources) {
          const driver = deps.drivers.get(r.driver);
          if (!driver?.outputs) continue;
          const spec = renderSpec(r.name, r.spec, input.template);
          Object.assign(
            credentials,
            await driver.outputs(spec, { object: input.object, resourceName: r.name, heartbeat: () => undefined, signal: new AbortController().signal }),
          );
        }
        const entry = await registry.open('service-binding', input.object.bindingId, { instanceId: input.object.instanceId });
        if (!entry.exists()) throw new NotFoundError(`binding ${input.object.bindingId} does not exist`);
        const record = operationOf(entry);
        if (record?.operationId !== input.object.operationId || record.state !== 'in progress') {
          throw new ConflictError(`binding ${input.object.bindingId}: bind ${input.object.operationId} is no longer in progress; its credentials are not stored`);
        }
        entry.set('credentials', credentials);
        await entry.commit();
      });
    },
  };
}

/** The operation activities, as workflows see them. */
export type OperationActivities = ReturnType<typeof createOperationActivities>;

/**
 * Runs a read-decide-write step again on a fresh copy when its write lost to another writer of the same entry
 * (binding operations of one instance update its lock shares concurrently). The step re-reads everything, so a
 * retry decides on the state that won. Bounded: every lost round means another writer made progress.
 */
async function onFreshCopies<T>(step: () => Promise<T>, attempts = 50): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (!(err instanceof ConflictError) || err instanceof OperationMismatchError || attempt >= attempts) throw err;
    }
  }
}
