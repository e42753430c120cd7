// Resource sets: what reconciling an instance or binding of a plan means — an ordered list of resources, each a
// driver kind and a json-e template rendered from the request. A plan names its set; the set's
// `maintenanceVersions` say which plan versions it handles, so an upgrade is a new resource set.
import { readFileSync } from 'node:fs';
import Ajv from 'ajv';
import { parse as parseYaml } from 'yaml';
import { ValidationError } from '../adapters/errors';
import { ConfigError, describeSchemaError, findPlan, type Catalog } from './catalog';

/** One resource of a set: its name (unique in the set), its driver kind and its spec template. */
export interface ResourceDef {
  name: string;
  driver: string;
  /** A json-e template rendered with the operation's context into the driver's spec. */
  spec: Record<string, unknown>;
}

/** A named, versioned set of resources for instances and for bindings of the plans that name it. */
export interface ResourceSetDef {
  name: string;
  /** Plan `maintenance_info.version`s this set handles; absent = every version. */
  maintenanceVersions?: string[];
  instance: ResourceDef[];
  binding?: ResourceDef[];
}

const nameRe = '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$';
const resourceDefSchema = {
  type: 'object',
  required: ['name', 'driver', 'spec'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: nameRe },
    driver: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$' },
    spec: { type: 'object' },
  },
} as const;

const schema = {
  type: 'object',
  required: ['resourceSets'],
  additionalProperties: false,
  properties: {
    resourceSets: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'instance'],
        additionalProperties: false,
        properties: {
          name: { type: 'string', pattern: nameRe },
          maintenanceVersions: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
          instance: { type: 'array', items: resourceDefSchema },
          binding: { type: 'array', items: resourceDefSchema },
        },
      },
    },
  },
} as const;

/** Validates resource sets (and, given a catalog, that every plan finds exactly one set). */
export function validateResourceSets(raw: unknown, source: string, catalog?: Catalog): ResourceSetDef[] {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile<{ resourceSets: ResourceSetDef[] }>(schema);
  if (!validate(raw)) {
    const problems = (validate.errors ?? []).map((e) => describeSchemaError(e));
    throw new ConfigError(`${source} is invalid:\n  - ${problems.join('\n  - ')}`, problems[0]);
  }
  const sets = raw.resourceSets;
  const problems: string[] = [];
  sets.forEach((set, i) => {
    for (const part of ['instance', 'binding'] as const) {
      const names = new Set<string>();
      (set[part] ?? []).forEach((r, j) => {
        if (names.has(r.name)) problems.push(`resourceSets[${i}].${part}[${j}].name: duplicate resource name "${r.name}"`);
        names.add(r.name);
      });
    }
  });
  if (catalog) {
    for (const svc of catalog.services) {
      for (const plan of svc.plans) {
        const version = plan.maintenance_info?.version;
        const matches = matchingSets(sets, plan.brokerflow.resourceSet, version);
        if (matches.length > 1) {
          problems.push(`plan "${svc.name}/${plan.name}": ${matches.length} resource sets named "${plan.brokerflow.resourceSet}" handle version ${version ?? '(none)'}`);
        } else if (matches.length === 0) {
          problems.push(`plan "${svc.name}/${plan.name}": no resource set named "${plan.brokerflow.resourceSet}" handles version ${version ?? '(none)'}`);
        } else if ((plan.bindable ?? svc.bindable) && !matches[0]!.binding) {
          problems.push(`plan "${svc.name}/${plan.name}" is bindable but resource set "${matches[0]!.name}" has no binding resources`);
        }
      }
    }
  }
  if (problems.length) throw new ConfigError(`${source} is invalid:\n  - ${problems.join('\n  - ')}`, problems[0]);
  return sets;
}

function matchingSets(sets: ResourceSetDef[], name: string, version: string | undefined): ResourceSetDef[] {
  return sets.filter(
    (s) => s.name === name && (!s.maintenanceVersions || (version !== undefined && s.maintenanceVersions.includes(version))),
  );
}

/** The router's answer: the one set that handles a plan at a version, or skipped when none does. */
export type RouteResult = { kind: 'set'; set: ResourceSetDef } | { kind: 'skipped'; reason: string };

/** Thrown when more than one resource set claims the same plan and version. */
export class AmbiguousResourceSetError extends ConfigError {}

/** Picks the resource set for a plan's set name and an instance's maintenance version. */
export function routeResourceSet(sets: ResourceSetDef[], setName: string, maintenanceVersion: string | undefined): RouteResult {
  const matches = matchingSets(sets, setName, maintenanceVersion);
  if (matches.length > 1) {
    throw new AmbiguousResourceSetError(`${matches.length} resource sets named "${setName}" handle version ${maintenanceVersion ?? '(none)'}`);
  }
  if (matches.length === 0) {
    return { kind: 'skipped', reason: `no resource set named "${setName}" handles version ${maintenanceVersion ?? '(none)'}` };
  }
  return { kind: 'set', set: matches[0]! };
}

/** Reads resource sets from a YAML file. */
export function loadResourceSets(file: string, catalog?: Catalog): ResourceSetDef[] {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read resource sets file ${file}: ${(err as Error).message}`);
  }
  return validateResourceSets(raw, `resource sets file ${file}`, catalog);
}

/**
 * The resources an operation reconciles: the plan's resource set at the maintenance version (the plan's own when
 * none is given), its instance or binding part. The resolveResources activity and dry runs both answer with this.
 */
export function planResources(
  catalog: Catalog,
  sets: ResourceSetDef[],
  input: { serviceId: string; planId: string; maintenanceVersion?: string; part: 'instance' | 'binding' },
): { resources: ResourceDef[] } | { skipped: string } {
  const found = findPlan(catalog, input.serviceId, input.planId);
  if (!found) throw new ValidationError(`plan ${input.planId} of service ${input.serviceId} is not in this worker's catalog`);
  const route = routeResourceSet(sets, found.plan.brokerflow.resourceSet, input.maintenanceVersion ?? found.plan.maintenance_info?.version);
  if (route.kind === 'skipped') return { skipped: route.reason };
  return { resources: route.set[input.part] ?? [] };
}
