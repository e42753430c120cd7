// The OSB v2.17 instance and binding routes: schemas on every route (IDs, bodies, queries), then the
// OsbService does the work, so the HTTP face and the CLI share one implementation.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { OsbService, type BindRequest, type OsbAnswer, type ProvisionRequest, type UpdateRequest } from './service';
import * as S from './schemas';

const send = (reply: FastifyReply, a: OsbAnswer) => {
  for (const [k, v] of Object.entries(a.headers ?? {})) void reply.header(k, v);
  // Ties the request (reqId, principal, originating identity) to the operation it started or joined.
  if (typeof a.body.operation === 'string') reply.log.info({ operationId: a.body.operation, status: a.status }, 'operation');
  return reply.code(a.status).send(a.body);
};
const accepts = (q: { accepts_incomplete?: string }) => q.accepts_incomplete === 'true';

type InstanceParams = { Params: { instance_id: string } };
type BindingParams = { Params: { instance_id: string; binding_id: string } };
type AsyncQuery = { Querystring: { accepts_incomplete?: string } };
type DeleteQuery = { Querystring: { service_id: string; plan_id: string; accepts_incomplete?: string } };
type LastOpQuery = { Querystring: { operation?: string } };

export async function registerOsbRoutes(app: FastifyInstance, osb: OsbService): Promise<void> {
  const h = { headers: S.headersSchema };
  const instance = '/v2/service_instances/:instance_id';
  const binding = `${instance}/service_bindings/:binding_id`;

  app.put<InstanceParams & AsyncQuery & { Body: ProvisionRequest }>(
    instance,
    { schema: { ...h, params: S.instanceParams, querystring: S.asyncQuery, body: S.provisionBody, response: { 200: S.operationBody, 201: S.operationBody, 202: S.operationBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.provision(req.params.instance_id, req.body, accepts(req.query))),
  );
  app.patch<InstanceParams & AsyncQuery & { Body: UpdateRequest }>(
    instance,
    { schema: { ...h, params: S.instanceParams, querystring: S.asyncQuery, body: S.updateBody, response: { 200: S.operationBody, 202: S.operationBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.update(req.params.instance_id, req.body, accepts(req.query))),
  );
  app.delete<InstanceParams & DeleteQuery>(
    instance,
    { schema: { ...h, params: S.instanceParams, querystring: S.deleteQuery, response: { 200: S.operationBody, 202: S.operationBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.deprovision(req.params.instance_id, req.query, accepts(req.query))),
  );
  app.get<InstanceParams>(
    instance,
    { schema: { ...h, params: S.instanceParams, response: { 200: S.instanceBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.fetchInstance(req.params.instance_id)),
  );
  app.get<InstanceParams & LastOpQuery>(
    `${instance}/last_operation`,
    { schema: { ...h, params: S.instanceParams, querystring: S.lastOperationQuery, response: { 200: S.lastOperationBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.lastOperation({ instanceId: req.params.instance_id, ...(req.query.operation ? { operation: req.query.operation } : {}) })),
  );
  app.put<BindingParams & AsyncQuery & { Body: BindRequest }>(
    binding,
    { schema: { ...h, params: S.bindingParams, querystring: S.asyncQuery, body: S.bindBody, response: { 200: S.bindingBody, 201: S.bindingBody, 202: S.bindingBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.bind(req.params.instance_id, req.params.binding_id, req.body, accepts(req.query))),
  );
  app.delete<BindingParams & DeleteQuery>(
    binding,
    { schema: { ...h, params: S.bindingParams, querystring: S.deleteQuery, response: { 200: S.operationBody, 202: S.operationBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.unbind(req.params.instance_id, req.params.binding_id, req.query, accepts(req.query))),
  );
  app.get<BindingParams>(
    binding,
    { schema: { ...h, params: S.bindingParams, response: { 200: S.bindingBody, ...S.errorResponses } } },
    async (req, reply) => send(reply, await osb.fetchBinding(req.params.instance_id, req.params.binding_id)),
  );
  app.get<BindingParams & LastOpQuery>(
    `${binding}/last_operation`,
    { schema: { ...h, params: S.bindingParams, querystring: S.lastOperationQuery, response: { 200: S.lastOperationBody, ...S.errorResponses } } },
    async (req, reply) =>
      send(reply, await osb.lastOperation({ instanceId: req.params.instance_id, bindingId: req.params.binding_id, ...(req.query.operation ? { operation: req.query.operation } : {}) })),
  );
}
