// `brokerflow provision|update|bind … --dry-run`: what the operation would reconcile, against the current state,
// changing nothing. The request is checked and decided by the same OsbService code as the real one (which builds
// the same operation input), the plan is routed by the same function as the resolveResources activity, and each
// resource goes through the same step order (domain/reconcile.ts#reconcileResource) and the same driver calls
// (adapters/resources/steps.ts) as the workflow's activities; only the apply steps are recorded instead of run.
import { planResources, type ResourceDef, type ResourceSetDef } from '../../config/resource-sets';
import type { Catalog } from '../../config/catalog';
import { reconcileResource, type CrudStep, type Patch, type ResourceState, type StepArgs } from '../../domain/reconcile';
import { instanceInputs, type Registry } from '../../adapters/registry';
import { runResourceStep, type StepResult } from '../../adapters/resources/steps';
import type { DriverContext, ResourceDriver } from '../../adapters/resources/types';
import { ValidationError } from '../../adapters/errors';
import { reconcileObject, templateContext, type OperationInput } from '../../workflows/messages';
import { previewResource, type ResourcePreview } from './plan-diff';

/** What a dry run reads from. */
export interface DryRunDeps {
  catalog: Catalog;
  resourceSets: ResourceSetDef[];
  registry: Registry;
  /** The configured drivers; their apply steps are never called. */
  drivers: Map<string, ResourceDriver>;
}

/** What reconciling an operation's resources would do. */
export interface ReconcilePreview {
  resources: ResourcePreview[];
  /** Why nothing would be reconciled (no resource set handles the plan's version). */
  skipped?: string;
  /** A driver stopped the whole reconciliation at this resource; the resources after it would not run. */
  stoppedAt?: { resource: string; reason: string };
}

const APPLY_PARTS = { applyCreateChange: 'create', applyDeleteChange: 'delete', applyUpdateChange: 'update' } as const;

/** A step that failed, named as the workflow names it; the error keeps its class (the CLI's exit code). */
function stepFailure(resource: string, step: string, err: unknown): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  e.message = `resource "${resource}" step ${step} failed: ${e.message}`;
  return e;
}

/**
 * What the operation `input` would reconcile (an update reconciliation of the instance's or the binding's
 * resources, as provision, update and bind run), read against the current state. Nothing is written: only
 * getCurrentState, getDesiredState and newUpdatePatch run, and the parts of each patch are recorded.
 */
export async function previewReconciliation(deps: DryRunDeps, input: OperationInput): Promise<ReconcilePreview> {
  const part = input.bindingId ? 'binding' : 'instance';
  const routed = planResources(deps.catalog, deps.resourceSets, {
    serviceId: input.serviceId,
    planId: input.planId,
    ...(input.maintenanceVersion ? { maintenanceVersion: input.maintenanceVersion } : {}),
    part,
  });
  if ('skipped' in routed) return { resources: [], skipped: routed.skipped };
  const resources: ResourceDef[] = routed.resources;
  // A bind with no binding resources is its registry entry alone; an instance's resource set must have some.
  if (resources.length === 0) {
    if (part === 'binding') return { resources: [] };
    throw new ValidationError('execution failed: the resource set has no resources');
  }
  // Templates read what the workflow gives them: the instance's inputs for a binding, and the owner reference of
  // the operation's registry entry (on the Kubernetes backend) when the entry already exists.
  const instanceEntry = await deps.registry.open('service-instance', input.instanceId);
  const entry = input.bindingId ? await deps.registry.open('service-binding', input.bindingId, { instanceId: input.instanceId }) : instanceEntry;
  const owner = entry.exists() ? (entry.getOwnerReference() ?? null) : null;
  const object = reconcileObject(input);
  const template = templateContext(input, input.bindingId ? instanceInputs(instanceEntry) : undefined, owner);

  const out: ResourcePreview[] = [];
  for (const resource of resources) {
    const ctx: DriverContext = { object, resourceName: resource.name, heartbeat: () => undefined, signal: new AbortController().signal };
    const seen: { current: ResourceState; desired: ResourceState; patch: Patch | null; applied: Array<{ part: 'create' | 'delete' | 'update'; state: ResourceState }> } = {
      current: null,
      desired: null,
      patch: null,
      applied: [],
    };
    let stop: string | undefined;
    let canceled: string | undefined;
    const outcome = await reconcileResource('update', async <T>(step: CrudStep, args: StepArgs) => {
      if (step in APPLY_PARTS) {
        seen.applied.push({ part: APPLY_PARTS[step as keyof typeof APPLY_PARTS], state: args.state ?? null });
        return {};
      }
      let res: StepResult<unknown>;
      try {
        res = await runResourceStep(deps.drivers, step, { resource, object, template, ...args }, ctx);
      } catch (err) {
        throw stepFailure(resource.name, step, err);
      }
      if (res.cancel === 'reconciliation') {
        stop = res.reason ?? 'canceled';
        return 'resource';
      }
      if (res.cancel === 'resource') {
        canceled = res.reason ?? 'canceled';
        return 'resource';
      }
      if (step === 'getCurrentState') seen.current = (res.value as ResourceState) ?? null;
      if (step === 'getDesiredState') seen.desired = (res.value as ResourceState) ?? null;
      if (step === 'newUpdatePatch') seen.patch = (res.value as Patch) ?? {};
      return { value: res.value as T };
    });
    if (stop !== undefined) {
      out.push(previewResource(resource, { ...seen, applied: [], canceled: stop }));
      return { resources: out, stoppedAt: { resource: resource.name, reason: stop } };
    }
    out.push(previewResource(resource, outcome === 'canceled' ? { ...seen, applied: [], canceled: canceled ?? 'canceled' } : seen));
  }
  return { resources: out };
}
