// The OSB catalog: loaded from YAML, checked once at start-up against a JSON Schema and the rules the spec
// adds (unique IDs and names, at least one plan, parameter schemas that compile and have no external refs).
import { readFileSync } from 'node:fs';
import Ajv, { type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { ValidationError } from '../adapters/errors';

/** A configuration file or field that cannot be used; the message names the file and the field. */
export class ConfigError extends ValidationError {
  constructor(message: string, field?: string) {
    super(message, field);
    this.name = 'ConfigError';
  }
}

/** A JSON Schema object (plan parameter schemas). */
export type JsonSchema = Record<string, unknown>;

/** The OSB `maintenance_info` of a plan. */
export interface MaintenanceInfo {
  version: string;
  description?: string;
}

/** How a plan's instance operations may run: `required` answers 422 AsyncRequired without `accepts_incomplete=true`. */
export type InstancesAsync = 'required' | 'optional';
/** How a plan's binding operations may run; `never` serves them synchronously whatever the platform accepts. */
export type BindingsAsync = 'required' | 'optional' | 'never';

/** A plan's asynchrony with the `asyncOnly` shorthand and the defaults resolved. */
export interface PlanAsynchrony {
  instances: InstancesAsync;
  bindings: BindingsAsync;
}

/** Resolves a plan's asynchrony: `asyncOnly: true` is both `required`; each field defaults to `optional`. */
export function planAsynchrony(plan: Pick<Plan, 'brokerflow'>): PlanAsynchrony {
  const b = plan.brokerflow;
  if (b.asyncOnly) return { instances: 'required', bindings: 'required' };
  return { instances: b.instancesAsync ?? 'optional', bindings: b.bindingsAsync ?? 'optional' };
}

/** brokerflow's own per-plan settings; never served in `GET /v2/catalog`. */
export interface PlanBehaviour {
  /** The resource set that reconciles instances of this plan. */
  resourceSet: string;
  /**
   * Shorthand kept for existing catalogs: `true` means `instancesAsync: required` and `bindingsAsync: required`.
   * It cannot be combined with either of them.
   */
  asyncOnly?: boolean;
  /** Whether provision, update and deprovision require `accepts_incomplete=true` (default `optional`). */
  instancesAsync?: InstancesAsync;
  /**
   * Whether bind and unbind require `accepts_incomplete=true` (`required`), may run either way (`optional`,
   * the default), or are always answered synchronously, even to `accepts_incomplete=true` (`never`).
   */
  bindingsAsync?: BindingsAsync;
  /** True when bindings must name an application (`bind_resource.app_guid`), else 422 RequiresApp. */
  requiresApp?: boolean;
  /**
   * The credential policy of the plan's bindings: they expire `ttl` after their bind succeeded and are revoked then
   * (docs/design/osb-semantics.md#credential-expiry); the platform is told to rotate `renewBefore` ahead of that.
   */
  credentials?: CredentialPolicyDef;
}

/** A plan's credential policy as written: durations such as `90s`, `15m`, `24h`, `7d`. */
export interface CredentialPolicyDef {
  ttl: string;
  renewBefore?: string;
}

/** A credential policy resolved to seconds. */
export interface CredentialPolicy {
  ttlSeconds: number;
  renewBeforeSeconds: number;
}

const DURATION = /^(\d+)(s|m|h|d)$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/** Parses `90s`, `15m`, `24h`, `7d` into seconds; undefined when the text is not such a duration. */
export function durationSeconds(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * UNIT_SECONDS[m[2] as keyof typeof UNIT_SECONDS];
}

/** The plan's credential policy in seconds (validated at start-up), or undefined when its credentials never expire. */
export function credentialPolicy(plan: Pick<Plan, 'brokerflow'>): CredentialPolicy | undefined {
  const c = plan.brokerflow.credentials;
  if (!c) return undefined;
  return { ttlSeconds: durationSeconds(c.ttl) ?? 0, renewBeforeSeconds: c.renewBefore !== undefined ? (durationSeconds(c.renewBefore) ?? 0) : 0 };
}

/** An OSB service plan. */
export interface Plan {
  id: string;
  name: string;
  description: string;
  free?: boolean;
  bindable?: boolean;
  plan_updateable?: boolean;
  metadata?: Record<string, unknown>;
  maintenance_info?: MaintenanceInfo;
  maximum_polling_duration?: number;
  /** OSB v2.17: bindings of the plan can be rotated (a bind naming `predecessor_binding_id`). */
  binding_rotatable?: boolean;
  schemas?: {
    service_instance?: { create?: { parameters?: JsonSchema }; update?: { parameters?: JsonSchema } };
    service_binding?: { create?: { parameters?: JsonSchema } };
  };
  brokerflow: PlanBehaviour;
}

/** An OSB service offering. */
export interface Service {
  id: string;
  name: string;
  description: string;
  bindable: boolean;
  tags?: string[];
  requires?: string[];
  metadata?: Record<string, unknown>;
  instances_retrievable?: boolean;
  bindings_retrievable?: boolean;
  allow_context_updates?: boolean;
  plan_updateable?: boolean;
  plans: Plan[];
}

/** The whole catalog. */
export interface Catalog {
  services: Service[];
}

const idPattern = '^[A-Za-z0-9._~-]{1,255}$';
const namePattern = '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$';

const planSchema = {
  type: 'object',
  required: ['id', 'name', 'description', 'brokerflow'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', pattern: idPattern },
    name: { type: 'string', pattern: namePattern },
    description: { type: 'string', minLength: 1 },
    free: { type: 'boolean' },
    bindable: { type: 'boolean' },
    plan_updateable: { type: 'boolean' },
    metadata: { type: 'object' },
    maintenance_info: {
      type: 'object',
      required: ['version'],
      additionalProperties: false,
      properties: {
        version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$' },
        description: { type: 'string' },
      },
    },
    maximum_polling_duration: { type: 'integer', minimum: 1 },
    binding_rotatable: { type: 'boolean' },
    schemas: {
      type: 'object',
      additionalProperties: false,
      properties: {
        service_instance: {
          type: 'object',
          additionalProperties: false,
          properties: {
            create: { $ref: '#/definitions/parametersHolder' },
            update: { $ref: '#/definitions/parametersHolder' },
          },
        },
        service_binding: {
          type: 'object',
          additionalProperties: false,
          properties: { create: { $ref: '#/definitions/parametersHolder' } },
        },
      },
    },
    brokerflow: {
      type: 'object',
      required: ['resourceSet'],
      additionalProperties: false,
      properties: {
        resourceSet: { type: 'string', pattern: namePattern },
        asyncOnly: { type: 'boolean' },
        instancesAsync: { enum: ['required', 'optional'] },
        bindingsAsync: { enum: ['required', 'optional', 'never'] },
        requiresApp: { type: 'boolean' },
        credentials: {
          type: 'object',
          required: ['ttl'],
          additionalProperties: false,
          properties: { ttl: { type: 'string' }, renewBefore: { type: 'string' } },
        },
      },
    },
  },
} as const;

const catalogSchema = {
  type: 'object',
  required: ['services'],
  additionalProperties: false,
  definitions: {
    parametersHolder: {
      type: 'object',
      additionalProperties: false,
      properties: { parameters: { type: 'object' } },
    },
  },
  properties: {
    services: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['id', 'name', 'description', 'bindable', 'plans'],
        additionalProperties: false,
        properties: {
          id: { type: 'string', pattern: idPattern },
          name: { type: 'string', pattern: namePattern },
          description: { type: 'string', minLength: 1 },
          bindable: { type: 'boolean' },
          tags: { type: 'array', items: { type: 'string' } },
          requires: { type: 'array', items: { enum: ['syslog_drain', 'route_forwarding', 'volume_mount'] } },
          metadata: { type: 'object' },
          instances_retrievable: { type: 'boolean' },
          bindings_retrievable: { type: 'boolean' },
          allow_context_updates: { type: 'boolean' },
          plan_updateable: { type: 'boolean' },
          dashboard_client: { type: 'object' },
          plans: { type: 'array', minItems: 1, items: planSchema },
        },
      },
    },
  },
} as const;

/** Turns an ajv error into `services[0].plans[1].name: must match pattern …`. */
export function describeSchemaError(e: ErrorObject, root = ''): string {
  const path = e.instancePath
    .split('/')
    .slice(1)
    .map((seg) => (/^\d+$/.test(seg) ? `[${seg}]` : `.${seg.replace(/~1/g, '/').replace(/~0/g, '~')}`))
    .join('');
  const where = (root + path).replace(/^\./, '') || '(top level)';
  if (e.keyword === 'additionalProperties') {
    return `${where}: unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  }
  if (e.keyword === 'required') {
    return `${where}: missing required field "${(e.params as { missingProperty: string }).missingProperty}"`;
  }
  return `${where}: ${e.message ?? 'is invalid'}`;
}

/** A JSON Schema validator for request parameters, shared by catalog checks and the broker. */
export function createParameterAjv(): Ajv {
  return new Ajv({ allErrors: true, strict: false, useDefaults: false, validateSchema: true });
}

function externalRefs(schema: unknown, path: string, found: string[]): string[] {
  if (Array.isArray(schema)) schema.forEach((s, i) => externalRefs(s, `${path}[${i}]`, found));
  else if (schema && typeof schema === 'object') {
    for (const [k, v] of Object.entries(schema)) {
      if (k === '$ref' && typeof v === 'string' && !v.startsWith('#')) found.push(`${path}.$ref = ${v}`);
      else externalRefs(v, `${path}.${k}`, found);
    }
  }
  return found;
}

/** Checks a parsed catalog; throws a ConfigError listing every problem with its field path. */
export function validateCatalog(raw: unknown, source = 'catalog'): Catalog {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile<Catalog>(catalogSchema);
  if (!validate(raw)) {
    const problems = (validate.errors ?? []).map((e) => describeSchemaError(e));
    throw new ConfigError(`${source} is invalid:\n  - ${problems.join('\n  - ')}`, problems[0]);
  }
  const catalog = raw;
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const claim = (kind: string, value: string, where: string) => {
    const key = `${kind}:${value}`;
    const prior = seen.get(key);
    if (prior) problems.push(`${where}: duplicate ${kind} "${value}" (also at ${prior})`);
    else seen.set(key, where);
  };
  const paramAjv = createParameterAjv();
  catalog.services.forEach((svc, si) => {
    claim('service id', svc.id, `services[${si}].id`);
    claim('service name', svc.name, `services[${si}].name`);
    const planNames = new Set<string>();
    svc.plans.forEach((plan, pi) => {
      const where = `services[${si}].plans[${pi}]`;
      claim('plan id', plan.id, `${where}.id`);
      if (planNames.has(plan.name)) problems.push(`${where}.name: duplicate plan name "${plan.name}" in service "${svc.name}"`);
      planNames.add(plan.name);
      const holders: Array<[string, JsonSchema | undefined]> = [
        ['schemas.service_instance.create.parameters', plan.schemas?.service_instance?.create?.parameters],
        ['schemas.service_instance.update.parameters', plan.schemas?.service_instance?.update?.parameters],
        ['schemas.service_binding.create.parameters', plan.schemas?.service_binding?.create?.parameters],
      ];
      for (const [field, schema] of holders) {
        if (!schema) continue;
        const refs = externalRefs(schema, `${where}.${field}`, []);
        if (refs.length) problems.push(...refs.map((r) => `${r}: external $ref is not allowed`));
        else {
          try {
            paramAjv.compile(withoutMetaSchema(schema));
          } catch (err) {
            problems.push(`${where}.${field}: not a valid JSON Schema: ${(err as Error).message}`);
          }
        }
      }
      if (plan.schemas?.service_binding && !(plan.bindable ?? svc.bindable)) {
        problems.push(`${where}.schemas.service_binding: the plan is not bindable`);
      }
      const b = plan.brokerflow;
      if (b.asyncOnly !== undefined && (b.instancesAsync !== undefined || b.bindingsAsync !== undefined)) {
        problems.push(
          `${where}.brokerflow.asyncOnly: cannot be combined with instancesAsync or bindingsAsync (asyncOnly: true is shorthand for both "required"; give one or the other)`,
        );
      }
      if (b.credentials) problems.push(...credentialPolicyProblems(b.credentials, `${where}.brokerflow.credentials`));
      if (plan.binding_rotatable && !(plan.bindable ?? svc.bindable)) problems.push(`${where}.binding_rotatable: the plan is not bindable`);
      // OSB: a broker that may answer a bind 202 must let the platform fetch the binding once it is done.
      if ((plan.bindable ?? svc.bindable) && planAsynchrony(plan).bindings !== 'never' && svc.bindings_retrievable !== true) {
        problems.push(
          `${where}.brokerflow.bindingsAsync: bindings of this plan can be asynchronous ("${planAsynchrony(plan).bindings}"), so service "${svc.name}" must set bindings_retrievable: true (or the plan bindingsAsync: never)`,
        );
      }
    });
  });
  if (problems.length) throw new ConfigError(`${source} is invalid:\n  - ${problems.join('\n  - ')}`, problems[0]);
  return catalog;
}

/** What is wrong with a credential policy: durations that do not parse, a zero TTL, a margin longer than the TTL. */
function credentialPolicyProblems(c: CredentialPolicyDef, where: string): string[] {
  const problems: string[] = [];
  const ttl = durationSeconds(c.ttl);
  const renew = c.renewBefore !== undefined ? durationSeconds(c.renewBefore) : 0;
  const form = 'a whole number followed by s, m, h or d (for example "90s", "15m", "24h", "7d")';
  if (ttl === undefined) problems.push(`${where}.ttl: "${c.ttl}" is not a duration: write ${form}`);
  else if (ttl <= 0) problems.push(`${where}.ttl: must be longer than 0`);
  if (renew === undefined) problems.push(`${where}.renewBefore: "${c.renewBefore}" is not a duration: write ${form}`);
  if (ttl !== undefined && ttl > 0 && renew !== undefined && renew > ttl) {
    problems.push(`${where}.renewBefore: "${c.renewBefore}" is longer than the ttl "${c.ttl}" (renew_before must not come before the bind)`);
  }
  return problems;
}

/**
 * Drops `$schema` so draft-04/06/07 schemas (which OSB catalogs declare) compile with one validator;
 * the keywords used in parameter schemas mean the same in those drafts.
 */
export function withoutMetaSchema(schema: JsonSchema): JsonSchema {
  const { $schema: _ignored, ...rest } = schema;
  return rest;
}

/** Reads and validates a catalog YAML (or JSON) file. */
export function loadCatalog(file: string): Catalog {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read catalog file ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`catalog file ${file} is not valid YAML: ${(err as Error).message}`);
  }
  return validateCatalog(raw, `catalog file ${file}`);
}

/** The catalog as `GET /v2/catalog` serves it: brokerflow's own plan settings removed. */
export function publicCatalog(catalog: Catalog): { services: Array<Omit<Service, 'plans'> & { plans: Array<Omit<Plan, 'brokerflow'>> }> } {
  return {
    services: catalog.services.map((svc) => ({
      ...svc,
      plans: svc.plans.map(({ brokerflow: _internal, ...plan }) => plan),
    })),
  };
}

/** Finds a service and plan by their IDs. */
export function findPlan(catalog: Catalog, serviceId: string, planId: string): { service: Service; plan: Plan } | undefined {
  const service = catalog.services.find((s) => s.id === serviceId);
  const plan = service?.plans.find((p) => p.id === planId);
  return service && plan ? { service, plan } : undefined;
}
