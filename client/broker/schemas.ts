// JSON Schemas of the OSB v2.17 requests and responses, written with TypeBox: fastify validates and serialises
// with them, /openapi.json is built from the same objects, and the request and response types are derived from
// them (`Static`), so none of the three can drift from the others. Each schema and its type share one name.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { OPERATION_STATES } from '../../domain/operations';

/** A string that is one of `values`: `{type: 'string', enum}`, the shape OSB documents and ajv checks fastest. */
const StringEnum = <const T extends readonly string[]>(values: T) => Type.Unsafe<T[number]>({ type: 'string', enum: values });

/** A JSON object whose keys the broker does not prescribe (context, parameters, bind_resource). */
const JsonObject = Type.Unsafe<Record<string, unknown>>({ type: 'object' });

/** The same, and serialised with every key it holds (a response field with no `properties` listed). */
const OpenObject = Type.Unsafe<Record<string, unknown>>({ type: 'object', additionalProperties: true });

/** The states an operation can be in, as `last_operation` reports them and the registry records them. */
export const LastOperationState = StringEnum([...OPERATION_STATES]);
export type LastOperationState = Static<typeof LastOperationState>;

/** IDs: RFC 3986 unreserved characters, bounded (they become registry names and workflow IDs). */
export const Id = Type.String({ pattern: '^[A-Za-z0-9._~-]{1,200}$' });

const MaintenanceInfo = Type.Object({
  version: Type.String({ minLength: 1, maxLength: 100 }),
  description: Type.Optional(Type.String()),
});

/** The OSB headers every route reads (the version is checked by a hook, so that a 401 comes before a 412). */
export const OsbHeaders = Type.Object({
  'x-broker-api-version': Type.Optional(Type.String()),
  'x-broker-api-originating-identity': Type.Optional(Type.String()),
  'x-broker-api-request-identity': Type.Optional(Type.String()),
});

export const InstanceParams = Type.Object({ instance_id: Id });
export type InstanceParams = Static<typeof InstanceParams>;

export const BindingParams = Type.Object({ instance_id: Id, binding_id: Id });
export type BindingParams = Static<typeof BindingParams>;

const AcceptsIncomplete = StringEnum(['true', 'false']);

/** The body of a provision request. */
export const ProvisionRequest = Type.Object({
  service_id: Id,
  plan_id: Id,
  context: Type.Optional(JsonObject),
  // v2.17: organization_guid and space_guid are REQUIRED and MUST be non-empty strings.
  organization_guid: Type.String({ minLength: 1, maxLength: 255 }),
  space_guid: Type.String({ minLength: 1, maxLength: 255 }),
  parameters: Type.Optional(JsonObject),
  maintenance_info: Type.Optional(MaintenanceInfo),
});
export type ProvisionRequest = Static<typeof ProvisionRequest>;

/** The body of an update request. */
export const UpdateRequest = Type.Object({
  service_id: Id,
  plan_id: Type.Optional(Id),
  context: Type.Optional(JsonObject),
  parameters: Type.Optional(JsonObject),
  previous_values: Type.Optional(JsonObject),
  maintenance_info: Type.Optional(MaintenanceInfo),
});
export type UpdateRequest = Static<typeof UpdateRequest>;

/** The body of a bind request. */
export const BindRequest = Type.Object({
  service_id: Id,
  plan_id: Id,
  context: Type.Optional(JsonObject),
  app_guid: Type.Optional(Type.String({ maxLength: 255 })),
  bind_resource: Type.Optional(JsonObject),
  parameters: Type.Optional(JsonObject),
  /** OSB v2.17 binding rotation: the binding whose parameters the new one takes, with new credentials. */
  predecessor_binding_id: Type.Optional(Id),
});
export type BindRequest = Static<typeof BindRequest>;

/** The query of a provision, update or bind. */
export const AsyncQuery = Type.Object({ accepts_incomplete: Type.Optional(AcceptsIncomplete) });
export type AsyncQuery = Static<typeof AsyncQuery>;

/** The query of a deprovision or unbind: OSB sends the IDs of service and plan there, as there is no body. */
export const DeleteQuery = Type.Object({ service_id: Id, plan_id: Id, accepts_incomplete: Type.Optional(AcceptsIncomplete) });
export type DeleteQuery = Static<typeof DeleteQuery>;

export const LastOperationQuery = Type.Object({
  service_id: Type.Optional(Id),
  plan_id: Type.Optional(Id),
  operation: Type.Optional(Type.String({ maxLength: 10000 })),
});
export type LastOperationQuery = Static<typeof LastOperationQuery>;

/** The OSB error body. */
export const ErrorBody = Type.Object({
  error: Type.Optional(Type.String()),
  description: Type.String(),
  instance_usable: Type.Optional(Type.Boolean()),
  update_repeatable: Type.Optional(Type.Boolean()),
});
export type ErrorBody = Static<typeof ErrorBody>;

/** The answer to a provision, update, deprovision or unbind. */
export const OperationBody = Type.Object({ operation: Type.Optional(Type.String()), dashboard_url: Type.Optional(Type.String()) });
export type OperationBody = Static<typeof OperationBody>;

/** The answer to a last_operation poll. */
export const LastOperationBody = Type.Object({
  state: LastOperationState,
  description: Type.Optional(Type.String()),
  instance_usable: Type.Optional(Type.Boolean()),
  update_repeatable: Type.Optional(Type.Boolean()),
});
export type LastOperationBody = Static<typeof LastOperationBody>;

/** The answer to fetching an instance. */
export const InstanceBody = Type.Object({
  service_id: Type.Optional(Type.String()),
  plan_id: Type.Optional(Type.String()),
  dashboard_url: Type.Optional(Type.String()),
  parameters: Type.Optional(OpenObject),
  maintenance_info: Type.Optional(MaintenanceInfo),
});
export type InstanceBody = Static<typeof InstanceBody>;

/** The answer to a bind or to fetching a binding. */
export const BindingBody = Type.Object({
  credentials: Type.Optional(OpenObject),
  parameters: Type.Optional(OpenObject),
  /** OSB v2.17: when the credentials expire and from when the platform should rotate them. */
  metadata: Type.Optional(
    Type.Object({ expires_at: Type.Optional(Type.String()), renew_before: Type.Optional(Type.String()) }),
  ),
  operation: Type.Optional(Type.String()),
});
export type BindingBody = Static<typeof BindingBody>;

/** The response schemas every OSB route shares. */
export const errorResponses = {
  400: ErrorBody,
  401: ErrorBody,
  404: ErrorBody,
  409: ErrorBody,
  410: ErrorBody,
  412: ErrorBody,
  422: ErrorBody,
  500: ErrorBody,
} satisfies Record<number, TSchema>;
