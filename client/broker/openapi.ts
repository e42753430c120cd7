// The broker's OpenAPI 3.0 document, built from the same JSON Schemas the routes validate with, so it cannot
// drift. Served at /openapi.json and kept in the repo as docs/openapi.json (a test checks they match).
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as S from './schemas';

type Schema = Record<string, unknown>;

/**
 * JSON Schema -> OpenAPI 3.0 schema: a plain copy (without TypeBox's symbol keys; the shapes we use need nothing
 * else), each `type` first, as people read schemas.
 */
function oas(schema: Schema): Schema {
  return JSON.parse(JSON.stringify(schema), (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) && 'type' in v ? Object.assign({ type: (v as Schema).type }, v) : v,
  ) as Schema;
}

function params(where: 'path' | 'query' | 'header', schema: { properties: Record<string, unknown>; required?: readonly string[] }): Schema[] {
  return Object.entries(schema.properties).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || (schema.required ?? []).includes(name),
    schema: oas(s as Schema),
  }));
}

const versionHeader = { name: 'X-Broker-API-Version', in: 'header', required: true, schema: { type: 'string', pattern: '^2\\.\\d+$', example: '2.17' } };
const identityHeaders = [
  { name: 'X-Broker-API-Originating-Identity', in: 'header', required: false, schema: { type: 'string' } },
  { name: 'X-Broker-API-Request-Identity', in: 'header', required: false, schema: { type: 'string' } },
];

function responses(codes: Record<number, Schema>, describe: Record<number, string>): Schema {
  const out: Schema = {};
  for (const [code, schema] of Object.entries(codes)) {
    out[code] = { description: describe[Number(code)] ?? 'error', content: { 'application/json': { schema: oas(schema) } } };
  }
  return out;
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, S.ErrorBody]));

/** The OpenAPI document for the OSB routes brokerflow serves. */
export function openApiDocument(): Schema {
  const common = [versionHeader, ...identityHeaders];
  const inst = params('path', S.InstanceParams);
  const bind = params('path', S.BindingParams);
  const words: Record<number, string> = {
    200: 'OK', 201: 'Created', 202: 'Accepted (asynchronous; poll last_operation)', 400: 'Bad request', 401: 'Unauthorized',
    404: 'Not found', 409: 'Conflict', 410: 'Gone', 412: 'Unsupported or missing X-Broker-API-Version', 413: 'Body too large',
    422: 'Unprocessable (AsyncRequired, ConcurrencyError, RequiresApp, MaintenanceInfoConflict)', 500: 'Operation failed',
    503: 'Not known right now (Temporal did not answer); poll again after Retry-After',
  };
  const body = (schema: Schema) => ({ required: true, content: { 'application/json': { schema: oas(schema) } } });
  return {
    openapi: '3.0.3',
    info: { title: 'brokerflow Open Service Broker API', version: '2.17', description: 'OSB v2.17 served by brokerflow; every route but /healthz needs authentication.' },
    components: { securitySchemes: { basic: { type: 'http', scheme: 'basic' }, bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ basic: [] }, { bearer: [] }],
    paths: {
      '/v2/catalog': { get: { summary: 'The catalog', parameters: common, responses: { 200: { description: 'OK' }, ...responses(errors(401, 412), words) } } },
      '/v2/service_instances/{instance_id}': {
        put: { summary: 'Provision', parameters: [...common, ...inst, ...params('query', S.AsyncQuery)], requestBody: body(S.ProvisionRequest), responses: responses({ 200: S.OperationBody, 201: S.OperationBody, 202: S.OperationBody, ...errors(400, 401, 409, 412, 413, 422, 500) }, words) },
        patch: { summary: 'Update', parameters: [...common, ...inst, ...params('query', S.AsyncQuery)], requestBody: body(S.UpdateRequest), responses: responses({ 200: S.OperationBody, 202: S.OperationBody, ...errors(400, 401, 404, 412, 413, 422, 500) }, words) },
        delete: { summary: 'Deprovision', parameters: [...common, ...inst, ...params('query', S.DeleteQuery)], responses: responses({ 200: S.OperationBody, 202: S.OperationBody, ...errors(400, 401, 410, 412, 422, 500) }, words) },
        get: { summary: 'Fetch instance', parameters: [...common, ...inst], responses: responses({ 200: S.InstanceBody, ...errors(400, 401, 404, 412, 422) }, words) },
      },
      '/v2/service_instances/{instance_id}/last_operation': {
        get: { summary: 'Instance last operation', parameters: [...common, ...inst, ...params('query', S.LastOperationQuery)], responses: responses({ 200: S.LastOperationBody, ...errors(401, 404, 410, 412, 503) }, words) },
      },
      '/v2/service_instances/{instance_id}/service_bindings/{binding_id}': {
        put: { summary: 'Bind', parameters: [...common, ...bind, ...params('query', S.AsyncQuery)], requestBody: body(S.BindRequest), responses: responses({ 200: S.BindingBody, 201: S.BindingBody, 202: S.BindingBody, ...errors(400, 401, 404, 409, 412, 413, 422, 500) }, words) },
        delete: { summary: 'Unbind', parameters: [...common, ...bind, ...params('query', S.DeleteQuery)], responses: responses({ 200: S.OperationBody, 202: S.OperationBody, ...errors(400, 401, 410, 412, 422, 500) }, words) },
        get: { summary: 'Fetch binding', parameters: [...common, ...bind], responses: responses({ 200: S.BindingBody, ...errors(400, 401, 404, 412) }, words) },
      },
      '/v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation': {
        get: { summary: 'Binding last operation', parameters: [...common, ...bind, ...params('query', S.LastOperationQuery)], responses: responses({ 200: S.LastOperationBody, ...errors(401, 404, 410, 412, 503) }, words) },
      },
      '/healthz': { get: { summary: 'Liveness (no authentication)', security: [], responses: { 200: { description: 'alive' } } } },
      '/readyz': { get: { summary: 'Readiness: Temporal and the registry answer', responses: { 200: { description: 'ready' }, 503: { description: 'not ready' } } } },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { 200: { description: 'text exposition format' } } } },
    },
  };
}

/** Where the committed copy lives. */
export const openApiFile = resolve(__dirname, '..', '..', 'docs', 'openapi.json');

if (require.main === module) {
  writeFileSync(openApiFile, `${JSON.stringify(openApiDocument(), null, 2)}\n`);
  process.stdout.write(`wrote ${openApiFile}\n`);
}
