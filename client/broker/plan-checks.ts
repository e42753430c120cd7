// The checks of a request against the catalog that need no state: the service and plan exist, the parameters
// match the plan's schema for the operation, and maintenance_info names the plan's version
// (docs/design/osb-semantics.md, "Checks common to all requests"). Each fails with the OSB error the platform sees.
import type { ValidateFunction } from 'ajv';
import { createParameterAjv, findPlan, withoutMetaSchema, type Catalog, type JsonSchema, type Plan, type Service } from '../../config/catalog';
import { badRequest, unprocessable } from './errors';

type Json = Record<string, unknown>;

export class PlanChecks {
  /** One compiled validator per plan and operation kind that has a parameter schema: `<plan id>/<kind>`. */
  private readonly validators: Map<string, ValidateFunction>;

  constructor(private readonly catalog: Catalog) {
    this.validators = compileParameterValidators(catalog);
  }

  planOf(serviceId: string, planId: string): { service: Service; plan: Plan } {
    const found = findPlan(this.catalog, serviceId, planId);
    if (!found) {
      if (!this.catalog.services.some((s) => s.id === serviceId)) throw badRequest(`service_id "${serviceId}" is not in the catalog`);
      throw badRequest(`plan_id "${planId}" is not a plan of service "${serviceId}"`);
    }
    return found;
  }

  checkParameters(plan: Plan, kind: 'create' | 'update' | 'bind', parameters: Json | undefined): void {
    const v = this.validators.get(`${plan.id}/${kind}`);
    if (v && !v(parameters ?? {})) {
      const e = v.errors?.[0];
      throw badRequest(`parameters${e?.instancePath ?? ''} ${e?.message ?? 'are invalid'} (the plan's ${kind} parameter schema)`);
    }
  }

  checkMaintenance(plan: Plan, requested: { version: string } | undefined): void {
    if (requested && plan.maintenance_info?.version !== requested.version) {
      throw unprocessable(
        'MaintenanceInfoConflict',
        `maintenance_info.version "${requested.version}" does not match the plan's version "${plan.maintenance_info?.version ?? '(none)'}"`,
      );
    }
  }
}

function compileParameterValidators(catalog: Catalog): Map<string, ValidateFunction> {
  const ajv = createParameterAjv();
  const out = new Map<string, ValidateFunction>();
  for (const svc of catalog.services) {
    for (const plan of svc.plans) {
      const schemas: Array<[string, JsonSchema | undefined]> = [
        ['create', plan.schemas?.service_instance?.create?.parameters],
        ['update', plan.schemas?.service_instance?.update?.parameters],
        ['bind', plan.schemas?.service_binding?.create?.parameters],
      ];
      for (const [kind, schema] of schemas) if (schema) out.set(`${plan.id}/${kind}`, ajv.compile(withoutMetaSchema(schema)));
    }
  }
  return out;
}
