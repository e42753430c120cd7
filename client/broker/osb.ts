// The OSB v2.17 instance and binding routes: schemas on every route (IDs, bodies, queries), from which the TypeBox
// type provider derives the request types; then the OsbService does the work, so the HTTP face and the CLI share
// one implementation.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { OsbAnswer, OsbService } from './service';
import * as S from './schemas';

const send = (reply: FastifyReply, a: OsbAnswer<S.OperationBody | S.InstanceBody | S.LastOperationBody | S.BindingBody>) => {
  for (const [k, v] of Object.entries(a.headers ?? {})) void reply.header(k, v);
  // Ties the request (reqId, principal, originating identity) to the operation it started or joined.
  if ('operation' in a.body && typeof a.body.operation === 'string') reply.log.info({ operationId: a.body.operation, status: a.status }, 'operation');
  return reply.code(a.status).send(a.body);
};
const accepts = (q: S.AsyncQuery) => q.accepts_incomplete === 'true';

export async function registerOsbRoutes(server: FastifyInstance, osb: OsbService): Promise<void> {
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  const h = { headers: S.OsbHeaders };
  const instance = '/v2/service_instances/:instance_id';
  const binding = `${instance}/service_bindings/:binding_id`;

  app.put(
    instance,
    { schema: { ...h, params: S.InstanceParams, querystring: S.AsyncQuery, body: S.ProvisionRequest, response: { 200: S.OperationBody, 201: S.OperationBody, 202: S.OperationBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.provision(req.params.instance_id, req.body, accepts(req.query))),
  );
  app.patch(
    instance,
    { schema: { ...h, params: S.InstanceParams, querystring: S.AsyncQuery, body: S.UpdateRequest, response: { 200: S.OperationBody, 202: S.OperationBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.update(req.params.instance_id, req.body, accepts(req.query))),
  );
  app.delete(
    instance,
    { schema: { ...h, params: S.InstanceParams, querystring: S.DeleteQuery, response: { 200: S.OperationBody, 202: S.OperationBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.deprovision(req.params.instance_id, req.query, accepts(req.query))),
  );
  app.get(
    instance,
    { schema: { ...h, params: S.InstanceParams, response: { 200: S.InstanceBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.fetchInstance(req.params.instance_id)),
  );
  app.get(
    `${instance}/last_operation`,
    { schema: { ...h, params: S.InstanceParams, querystring: S.LastOperationQuery, response: { 200: S.LastOperationBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.lastOperation({ instanceId: req.params.instance_id, ...(req.query.operation ? { operation: req.query.operation } : {}) })),
  );
  app.put(
    binding,
    { schema: { ...h, params: S.BindingParams, querystring: S.AsyncQuery, body: S.BindRequest, response: { 200: S.BindingBody, 201: S.BindingBody, 202: S.BindingBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.bind(req.params.instance_id, req.params.binding_id, req.body, accepts(req.query))),
  );
  app.delete(
    binding,
    { schema: { ...h, params: S.BindingParams, querystring: S.DeleteQuery, response: { 200: S.OperationBody, 202: S.OperationBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.unbind(req.params.instance_id, req.params.binding_id, req.query, accepts(req.query))),
  );
  app.get(
    binding,
    { schema: { ...h, params: S.BindingParams, response: { 200: S.BindingBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.fetchBinding(req.params.instance_id, req.params.binding_id)),
  );
  app.get(
    `${binding}/last_operation`,
    { schema: { ...h, params: S.BindingParams, querystring: S.LastOperationQuery, response: { 200: S.LastOperationBody, ...S.errorResponses } } },
    async (req, reply) =>
      send(reply, await osb.lastOperation({ instanceId: req.params.instance_id, bindingId: req.params.binding_id, ...(req.query.operation ? { operation: req.query.operation } : {}) })),
  );
}
