// The OSB v2.17 instance and binding routes, as one plugin. Each route names its schemas (headers, path IDs,
// query, body, the answers it may give); the TypeBox type provider derives the request types from them, and
// OsbService (shared with the CLI) does the work and returns the answer to send.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import type { OsbAnswer, OsbService } from '../service';
import {
  AsyncQuery,
  BindingBody,
  BindingParams,
  BindRequest,
  DeleteQuery,
  errorResponses,
  InstanceBody,
  InstanceParams,
  LastOperationBody,
  LastOperationQuery,
  OperationBody,
  OsbHeaders,
  ProvisionRequest,
  UpdateRequest,
} from '../schemas';

const instance = '/v2/service_instances/:instance_id';
const binding = `${instance}/service_bindings/:binding_id`;

const onInstance = { headers: OsbHeaders, params: InstanceParams };
const onBinding = { headers: OsbHeaders, params: BindingParams };

/** The schema of every OSB route, by what the route does: what it reads besides headers and IDs, what it answers. */
const schemas = {
  provision: { ...onInstance, querystring: AsyncQuery, body: ProvisionRequest, response: { 200: OperationBody, 201: OperationBody, 202: OperationBody, ...errorResponses } },
  update: { ...onInstance, querystring: AsyncQuery, body: UpdateRequest, response: { 200: OperationBody, 202: OperationBody, ...errorResponses } },
  deprovision: { ...onInstance, querystring: DeleteQuery, response: { 200: OperationBody, 202: OperationBody, ...errorResponses } },
  fetchInstance: { ...onInstance, response: { 200: InstanceBody, ...errorResponses } },
  instanceLastOperation: { ...onInstance, querystring: LastOperationQuery, response: { 200: LastOperationBody, ...errorResponses } },
  bind: { ...onBinding, querystring: AsyncQuery, body: BindRequest, response: { 200: BindingBody, 201: BindingBody, 202: BindingBody, ...errorResponses } },
  unbind: { ...onBinding, querystring: DeleteQuery, response: { 200: OperationBody, 202: OperationBody, ...errorResponses } },
  fetchBinding: { ...onBinding, response: { 200: BindingBody, ...errorResponses } },
  bindingLastOperation: { ...onBinding, querystring: LastOperationQuery, response: { 200: LastOperationBody, ...errorResponses } },
};

/** Sends what OsbService answered, and ties the request (reqId, principal, originating identity) to its operation. */
function send(reply: FastifyReply, a: OsbAnswer<OperationBody | InstanceBody | LastOperationBody | BindingBody>): FastifyReply {
  for (const [k, v] of Object.entries(a.headers ?? {})) void reply.header(k, v);
  if ('operation' in a.body && typeof a.body.operation === 'string') reply.request.log.info({ operationId: a.body.operation, status: a.status }, 'operation');
  return reply.code(a.status).send(a.body);
}

const acceptsIncomplete = (q: AsyncQuery) => q.accepts_incomplete === 'true';
/** Pollers may leave `operation` out or send it empty: both mean the latest operation. */
const operationOf = (q: LastOperationQuery) => (q.operation ? { operation: q.operation } : {});

export const osbRoutes: FastifyPluginAsyncTypebox<{ osb: OsbService }> = async (app, { osb }) => {
  app.put(instance, { schema: schemas.provision }, async (req, reply) =>
    send(reply, await osb.provision(req.params.instance_id, req.body, acceptsIncomplete(req.query), req.originatingIdentity)),
  );
  app.patch(instance, { schema: schemas.update }, async (req, reply) =>
    send(reply, await osb.update(req.params.instance_id, req.body, acceptsIncomplete(req.query), req.originatingIdentity)),
  );
  app.delete(instance, { schema: schemas.deprovision }, async (req, reply) =>
    send(reply, await osb.deprovision(req.params.instance_id, req.query, acceptsIncomplete(req.query), req.originatingIdentity)),
  );
  app.get(instance, { schema: schemas.fetchInstance }, async (req, reply) =>
    send(reply, await osb.fetchInstance(req.params.instance_id)),
  );
  app.get(`${instance}/last_operation`, { schema: schemas.instanceLastOperation }, async (req, reply) =>
    send(reply, await osb.lastOperation({ instanceId: req.params.instance_id, ...operationOf(req.query) })),
  );

  app.put(binding, { schema: schemas.bind }, async (req, reply) =>
    send(reply, await osb.bind(req.params.instance_id, req.params.binding_id, req.body, acceptsIncomplete(req.query), req.originatingIdentity)),
  );
  app.delete(binding, { schema: schemas.unbind }, async (req, reply) =>
    send(reply, await osb.unbind(req.params.instance_id, req.params.binding_id, req.query, acceptsIncomplete(req.query), req.originatingIdentity)),
  );
  app.get(binding, { schema: schemas.fetchBinding }, async (req, reply) =>
    send(reply, await osb.fetchBinding(req.params.instance_id, req.params.binding_id)),
  );
  app.get(`${binding}/last_operation`, { schema: schemas.bindingLastOperation }, async (req, reply) =>
    send(reply, await osb.lastOperation({ instanceId: req.params.instance_id, bindingId: req.params.binding_id, ...operationOf(req.query) })),
  );
};
