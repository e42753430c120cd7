// JSON Schemas of the OSB v2.17 requests and responses: fastify validates and serialises with them, and
// /openapi.json is built from the same objects, so the document cannot drift from what the broker does.

/** IDs: RFC 3986 unreserved characters, bounded (they become registry names and workflow IDs). */
export const idSchema = { type: 'string', pattern: '^[A-Za-z0-9._~-]{1,200}$' } as const;

const object = { type: 'object' } as const;
const maintenanceInfo = {
  type: 'object',
  required: ['version'],
  properties: { version: { type: 'string', minLength: 1, maxLength: 100 }, description: { type: 'string' } },
} as const;

export const headersSchema = {
  type: 'object',
  properties: {
    'x-broker-api-version': { type: 'string' },
    'x-broker-api-originating-identity': { type: 'string' },
    'x-broker-api-request-identity': { type: 'string' },
  },
} as const;

export const instanceParams = {
  type: 'object',
  required: ['instance_id'],
  properties: { instance_id: idSchema },
} as const;

export const bindingParams = {
  type: 'object',
  required: ['instance_id', 'binding_id'],
  properties: { instance_id: idSchema, binding_id: idSchema },
} as const;

const acceptsIncomplete = { type: 'string', enum: ['true', 'false'] } as const;

export const provisionBody = {
  type: 'object',
  // v2.17: organization_guid and space_guid are REQUIRED and MUST be non-empty strings.
  required: ['service_id', 'plan_id', 'organization_guid', 'space_guid'],
  properties: {
    service_id: idSchema,
    plan_id: idSchema,
    context: object,
    organization_guid: { type: 'string', minLength: 1, maxLength: 255 },
    space_guid: { type: 'string', minLength: 1, maxLength: 255 },
    parameters: object,
    maintenance_info: maintenanceInfo,
  },
} as const;

export const updateBody = {
  type: 'object',
  required: ['service_id'],
  properties: {
    service_id: idSchema,
    plan_id: idSchema,
    context: object,
    parameters: object,
    previous_values: object,
    maintenance_info: maintenanceInfo,
  },
} as const;

export const bindBody = {
  type: 'object',
  required: ['service_id', 'plan_id'],
  properties: {
    service_id: idSchema,
    plan_id: idSchema,
    context: object,
    app_guid: { type: 'string', maxLength: 255 },
    bind_resource: object,
    parameters: object,
  },
} as const;

export const asyncQuery = {
  type: 'object',
  properties: { accepts_incomplete: acceptsIncomplete },
} as const;

export const deleteQuery = {
  type: 'object',
  required: ['service_id', 'plan_id'],
  properties: { service_id: idSchema, plan_id: idSchema, accepts_incomplete: acceptsIncomplete },
} as const;

export const lastOperationQuery = {
  type: 'object',
  properties: { service_id: idSchema, plan_id: idSchema, operation: { type: 'string', maxLength: 10000 } },
} as const;

export const errorBody = {
  type: 'object',
  required: ['description'],
  properties: {
    error: { type: 'string' },
    description: { type: 'string' },
    instance_usable: { type: 'boolean' },
    update_repeatable: { type: 'boolean' },
  },
} as const;

export const operationBody = {
  type: 'object',
  properties: { operation: { type: 'string' }, dashboard_url: { type: 'string' } },
} as const;

export const lastOperationBody = {
  type: 'object',
  required: ['state'],
  properties: {
    state: { type: 'string', enum: ['in progress', 'succeeded', 'failed'] },
    description: { type: 'string' },
    instance_usable: { type: 'boolean' },
    update_repeatable: { type: 'boolean' },
  },
} as const;

export const instanceBody = {
  type: 'object',
  properties: {
    service_id: { type: 'string' },
    plan_id: { type: 'string' },
    dashboard_url: { type: 'string' },
    parameters: { type: 'object', additionalProperties: true },
    maintenance_info: maintenanceInfo,
  },
} as const;

export const bindingBody = {
  type: 'object',
  properties: {
    credentials: { type: 'object', additionalProperties: true },
    parameters: { type: 'object', additionalProperties: true },
    operation: { type: 'string' },
  },
} as const;

/** The response schemas every OSB route shares. */
export const errorResponses = {
  400: errorBody,
  401: errorBody,
  404: errorBody,
  409: errorBody,
  410: errorBody,
  412: errorBody,
  422: errorBody,
  500: errorBody,
} as const;
