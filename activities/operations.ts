// The registry side of OSB operations: record begin and end, route the plan to its resource set, read what
// bindings need from their instance, and write binding credentials straight into the registry's secret store
// (so they never pass through workflow history). Every function is idempotent under retries.
import type { Catalog } from '../config/catalog';
import { findPlan } from '../config/catalog';
import { routeResourceSet, type ResourceDef, type ResourceSetDef } from '../config/resource-sets';
import type { Registry } from '../adapters/registry';
import type { OwnerReference } from '../adapters/persistence';
import type { Entry } from '../adapters/registry/entry';
import type { ReconcileObject, ResourceDriver } from '../adapters/resources/types';
import { renderSpec, type TemplateContext } from '../adapters/resources/template';
import { NotFoundError, ValidationError } from '../adapters/errors';
import type { OperationInput, OperationType } from '../workflows/messages';
import { asActivity } from './failures';

/** Registry keys brokerflow adds to the seed's system keys. */
export const ExtraKeys = {
  Fingerprint: 'fingerprint',
  MaintenanceVersion: 'maintenance-version',
  BindResource: 'bind-resource',
} as const;

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

function currentOperation(entry: Entry): { operation?: string; operationId?: string; status?: string } {
  return {
    operation: entry.get<string>('operation'),
    operationId: entry.get<string>('operation-id'),
    status: entry.get<string>('operation-status'),
  };
}

export function createOperationActivities(deps: OperationDeps) {
  const { registry } = deps;
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
    async recordBegin(input: OperationInput): Promise<{ alreadySucceeded: boolean; owner?: OwnerReference }> {
      return asActivity(`recording ${input.operation} ${input.operationId}`, async () => {
        const entry = await open(input);
        const cur = currentOperation(entry);
        if (
          (input.operation === 'provision' || input.operation === 'bind') &&
          entry.exists() &&
          cur.operation === input.operation &&
          cur.status === '' &&
          cur.operationId !== input.operationId &&
          entry.get(ExtraKeys.Fingerprint) === input.fingerprint
        ) {
          return { alreadySucceeded: true };
        }
        if (entry.exists() && cur.operationId && cur.operationId !== input.operationId && cur.status === undefined) {
          await registry.completeOperation(entry, {
            operationId: cur.operationId,
            error: 'superseded: the workflow running this operation ended without completing it',
          });
        }
        if (input.operation === 'provision' || input.operation === 'update') {
          if (input.operation === 'provision') {
            entry.set('instance-id', input.instanceId);
            entry.set('service-id', input.serviceId);
            entry.set('context', input.context);
          }
          entry.set('plan-id', input.planId);
          entry.set('parameters', input.parameters);
          entry.set(ExtraKeys.Fingerprint, input.fingerprint);
          if (input.maintenanceVersion) entry.set(ExtraKeys.MaintenanceVersion, input.maintenanceVersion);
          if (typeof input.context.namespace === 'string' && input.operation === 'provision') entry.set('namespace', input.context.namespace);
        } else if (input.operation === 'bind' && !entry.exists()) {
          const instance = await registry.open('service-instance', input.instanceId);
          if (!instance.exists()) throw new NotFoundError(`instance ${input.instanceId} does not exist`);
          entry.inherit(instance);
          entry.set('binding-id', input.bindingId);
          entry.set('parameters', input.parameters);
          entry.set('context', input.context);
          entry.set(ExtraKeys.Fingerprint, input.fingerprint);
          if (input.bindResource) entry.set(ExtraKeys.BindResource, input.bindResource);
        }
        await registry.beginOperation(entry, { operation: input.operation, operationId: input.operationId });
        // On the Kubernetes registry backend, objects that name this entry as their owner are garbage-collected
        // with it; templates pass it on as `owner`.
        const owner = entry.getOwnerReference();
        return { alreadySucceeded: false, ...(owner ? { owner } : {}) };
      });
    },

    /** Records the end: no error = succeeded (a deprovision/unbind then deletes the entry, leaving a tombstone). */
    async recordComplete(input: EntryRef & { error?: string }): Promise<void> {
      return asActivity(`completing ${input.operation} ${input.operationId}`, async () => {
        const entry = await open(input);
        await registry.completeOperation(entry, { operationId: input.operationId, ...(input.error !== undefined ? { error: input.error } : {}) });
      });
    },

    /** Routes a plan (at a maintenance version) to its resource set's instance or binding resources. */
    async resolveResources(input: {
      serviceId: string;
      planId: string;
      maintenanceVersion?: string;
      part: 'instance' | 'binding';
    }): Promise<{ resources: ResourceDef[] } | { skipped: string }> {
      return asActivity('resolving the resource set', async () => {
        const found = findPlan(deps.catalog, input.serviceId, input.planId);
        if (!found) throw new ValidationError(`plan ${input.planId} of service ${input.serviceId} is not in this worker's catalog`);
        const route = routeResourceSet(deps.resourceSets, found.plan.brokerflow.resourceSet, input.maintenanceVersion ?? found.plan.maintenance_info?.version);
        if (route.kind === 'skipped') return { skipped: route.reason };
        return { resources: route.set[input.part] ?? [] };
      });
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

    /** Deletes a binding's entry when its instance is deprovisioned (its resources are already gone). */
    async removeBindingEntry(input: { instanceId: string; bindingId: string }): Promise<void> {
      return asActivity(`removing binding ${input.bindingId}`, async () => {
        const entry = await registry.open('service-binding', input.bindingId, { instanceId: input.instanceId });
        await entry.delete();
      });
    },

    /** The parameters and context an instance was provisioned (or last updated) with, for binding templates. */
    async readInstanceInputs(input: { instanceId: string }): Promise<{ parameters: Record<string, unknown>; context: Record<string, unknown> }> {
      return asActivity('reading the instance', async () => {
        const entry = await registry.open('service-instance', input.instanceId);
        if (!entry.exists()) throw new NotFoundError(`instance ${input.instanceId} does not exist`);
        return { parameters: entry.get('parameters') ?? {}, context: entry.get('context') ?? {} };
      });
    },

    /** Collects the binding resources' outputs and stores them as the binding's credentials (encrypted at rest). */
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
        entry.set('credentials', credentials);
        await entry.commit();
      });
    },
  };
}

/** The operation activities, as workflows see them. */
export type OperationActivities = ReturnType<typeof createOperationActivities>;
