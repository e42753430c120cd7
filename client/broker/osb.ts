// The OSB v2.17 instance and binding routes. Every request is checked completely (IDs, body, catalog, plan
// parameter schema, maintenance_info, async rules) before anything starts, so a 4xx changes nothing. Operations
// start through OperationsClient, whose workflow-ID rule makes concurrent requests resolve atomically.
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ValidateFunction } from 'ajv';
import type { Registry } from '../../adapters/registry';
import type { Entry } from '../../adapters/registry/entry';
import { createParameterAjv, findPlan, withoutMetaSchema, type Catalog, type JsonSchema, type Plan, type Service } from '../../config/catalog';
import { ExtraKeys } from '../../activities/operations';
import { newOperationId, requestFingerprint, type OperationsClient, type OperationStatus } from '../operations';
import type { OperationInput, OperationType } from '../../workflows/messages';
import { badRequest, conflict, gone, notFound, OsbError, unprocessable } from './errors';
import type { BrokerMetrics } from './metrics';
import * as S from './schemas';

/** What the OSB routes are built from. */
export interface OsbRouteDeps {
  catalog: Catalog;
  registry: Registry;
  operations: OperationsClient;
  metrics: BrokerMetrics;
  /** How long a request without `accepts_incomplete=true` waits for its workflow. */
  syncTimeoutMs: number;
  /** Seconds platforms should wait between last_operation polls. */
  retryAfterSeconds?: number;
}

type Json = Record<string, unknown>;
interface ProvisionBody {
  service_id: string;
  plan_id: string;
  context?: Json;
  organization_guid?: string;
  space_guid?: string;
  parameters?: Json;
  maintenance_info?: { version: string };
}
interface UpdateBody {
  service_id: string;
  plan_id?: string;
  context?: Json;
  parameters?: Json;
  maintenance_info?: { version: string };
}
interface BindBody {
  service_id: string;
  plan_id: string;
  context?: Json;
  app_guid?: string;
  bind_resource?: Json;
  parameters?: Json;
}

export async function registerOsbRoutes(app: FastifyInstance, deps: OsbRouteDeps): Promise<void> {
  const { catalog, registry, operations, metrics } = deps;
  const validators = compileParameterValidators(catalog);
  const retryAfter = String(deps.retryAfterSeconds ?? 2);

  const planOf = (serviceId: string, planId: string): { service: Service; plan: Plan } => {
    const found = findPlan(catalog, serviceId, planId);
    if (!found) {
      if (!catalog.services.some((s) => s.id === serviceId)) throw badRequest(`service_id "${serviceId}" is not in the catalog`);
      throw badRequest(`plan_id "${planId}" is not a plan of service "${serviceId}"`);
    }
    return found;
  };

  const checkParameters = (plan: Plan, kind: 'create' | 'update' | 'bind', parameters: Json | undefined) => {
    const v = validators.get(`${plan.id}/${kind}`);
    if (v && !v(parameters ?? {})) {
      const e = v.errors?.[0];
      throw badRequest(`parameters${e?.instancePath ?? ''} ${e?.message ?? 'are invalid'} (the plan's ${kind} parameter schema)`);
    }
  };

  const checkMaintenance = (plan: Plan, requested: { version: string } | undefined) => {
    if (!requested) return;
    if (plan.maintenance_info?.version !== requested.version) {
      throw unprocessable(
        'MaintenanceInfoConflict',
        `maintenance_info.version "${requested.version}" does not match the plan's version "${plan.maintenance_info?.version ?? '(none)'}"`,
      );
    }
  };

  const acceptsIncomplete = (q: { accepts_incomplete?: string }) => q.accepts_incomplete === 'true';
  const requireAsyncAllowed = (plan: Plan, accepts: boolean) => {
    if (plan.brokerflow.asyncOnly && !accepts) {
      throw unprocessable('AsyncRequired', 'this plan is provisioned asynchronously only: retry with accepts_incomplete=true');
    }
  };

  const openInstance = (id: string) => registry.open('service-instance', id);
  const openBinding = (instanceId: string, bindingId: string) => registry.open('service-binding', bindingId, { instanceId });
  const lastOp = (e: Entry) => ({
    operation: e.get<OperationType>('operation'),
    operationId: e.get<string>('operation-id'),
    status: e.get<string>('operation-status'),
  });
  /** The instance exists for the platform: provisioned successfully at least once and not deleted. */
  const isProvisioned = (e: Entry) => e.exists() && !(lastOp(e).operation === 'provision' && lastOp(e).status !== '');

  const count = (type: OperationType, outcome: string) => metrics.operations.inc({ type, outcome });

  /** Starts an operation and answers: 202 for async, or the sync answer after waiting for the workflow. */
  async function startAndAnswer(
    reply: FastifyReply,
    input: OperationInput,
    accepts: boolean,
    answers: { asyncBody?: Json; syncStatus: number; syncBody: () => Promise<Json> },
    onBusy: (running: { operation: OperationType; operationId: string; fingerprint: string; bindingId?: string }) => Promise<FastifyReply | undefined>,
  ) {
    const outcome = await operations.start(input);
    let operationId: string;
    if (outcome.kind === 'busy') {
      const handled = await onBusy(outcome.running);
      if (handled) return handled;
      count(input.operation, 'concurrency_error');
      throw unprocessable('ConcurrencyError', `another operation (${outcome.running.operation}) is in progress on instance ${input.instanceId}`);
    }
    operationId = outcome.operationId;
    count(input.operation, outcome.kind === 'started' ? 'accepted' : 'identical');
    if (accepts) return reply.code(202).send({ ...(answers.asyncBody ?? {}), operation: operationId });
    return answerSync(reply, input, operationId, answers);
  }

  async function answerSync(reply: FastifyReply, input: OperationInput, operationId: string, answers: { syncStatus: number; syncBody: () => Promise<Json> }) {
    const result = await operations.waitForResult(input.instanceId, deps.syncTimeoutMs);
    if (!result) {
      throw unprocessable('AsyncRequired', `the operation did not finish within ${Math.round(deps.syncTimeoutMs / 1000)} s; retry with accepts_incomplete=true (operation ${operationId} continues)`);
    }
    if (result.state === 'failed') throw new OsbError(500, `${input.operation} failed: ${result.description ?? 'unknown error'}`);
    return reply.code(answers.syncStatus).send(await answers.syncBody());
  }

  const common = { headers: S.headersSchema };

  // ---- provision ----------------------------------------------------------------------------------------
  app.put<{ Params: { instance_id: string }; Querystring: { accepts_incomplete?: string }; Body: ProvisionBody }>(
    '/v2/service_instances/:instance_id',
    { schema: { ...common, params: S.instanceParams, querystring: S.asyncQuery, body: S.provisionBody, response: { 200: S.operationBody, 201: S.operationBody, 202: S.operationBody, ...S.errorResponses } } },
    async (req, reply) => {
      const id = req.params.instance_id;
      const b = req.body;
      const { plan } = planOf(b.service_id, b.plan_id);
      checkMaintenance(plan, b.maintenance_info);
      checkParameters(plan, 'create', b.parameters);
      const accepts = acceptsIncomplete(req.query);
      requireAsyncAllowed(plan, accepts);
      const fingerprint = requestFingerprint({
        service_id: b.service_id,
        plan_id: b.plan_id,
        parameters: b.parameters ?? {},
        organization_guid: b.organization_guid,
        space_guid: b.space_guid,
        maintenance: b.maintenance_info?.version,
      });
      const entry = await openInstance(id);
      if (entry.exists()) {
        const op = lastOp(entry);
        const provisioned = isProvisioned(entry);
        if (provisioned || (op.operation === 'provision' && op.status === undefined)) {
          const same = entry.get(ExtraKeys.Fingerprint) === fingerprint;
          if (provisioned && same) return reply.code(200).send(dashboard(entry));
          if (provisioned) throw conflict(`instance ${id} already exists with different attributes`);
        }
      }
      const input: OperationInput = {
        operation: 'provision',
        operationId: newOperationId('provision'),
        instanceId: id,
        serviceId: b.service_id,
        planId: b.plan_id,
        ...(plan.maintenance_info ? { maintenanceVersion: plan.maintenance_info.version } : {}),
        parameters: b.parameters ?? {},
        context: contextOf(b),
        fingerprint,
      };
      return startAndAnswer(
        reply,
        input,
        accepts,
        { syncStatus: 201, syncBody: async () => dashboard(await openInstance(id)) },
        async (running) => {
          if (running.operation === 'provision') throw conflict(`instance ${id} is being provisioned with different attributes`);
          return undefined;
        },
      );
    },
  );

  // ---- update -------------------------------------------------------------------------------------------
  app.patch<{ Params: { instance_id: string }; Querystring: { accepts_incomplete?: string }; Body: UpdateBody }>(
    '/v2/service_instances/:instance_id',
    { schema: { ...common, params: S.instanceParams, querystring: S.asyncQuery, body: S.updateBody, response: { 200: S.operationBody, 202: S.operationBody, ...S.errorResponses } } },
    async (req, reply) => {
      const id = req.params.instance_id;
      const b = req.body;
      const entry = await openInstance(id);
      if (!entry.exists() || !isProvisioned(entry)) {
        const running = await operations.running(id);
        if (running) throw unprocessable('ConcurrencyError', `instance ${id} is still being ${running.operation === 'provision' ? 'provisioned' : 'changed'}`);
        throw notFound(`instance ${id} does not exist`);
      }
      const currentService = entry.get<string>('service-id')!;
      const currentPlan = entry.get<string>('plan-id')!;
      if (b.service_id !== currentService) throw badRequest(`service_id "${b.service_id}" is not the instance's service`);
      const targetPlanId = b.plan_id ?? currentPlan;
      const { service, plan } = planOf(b.service_id, targetPlanId);
      if (targetPlanId !== currentPlan && !(plan.plan_updateable ?? service.plan_updateable ?? false)) {
        throw badRequest(`plan changes are not supported for service "${service.name}"`);
      }
      checkMaintenance(plan, b.maintenance_info);
      checkParameters(plan, 'update', b.parameters);
      const accepts = acceptsIncomplete(req.query);
      requireAsyncAllowed(plan, accepts);
      const currentParams = entry.get<Json>('parameters') ?? {};
      const parameters = b.parameters ? { ...currentParams, ...b.parameters } : currentParams;
      const targetVersion = plan.maintenance_info?.version;
      const unchanged =
        targetPlanId === currentPlan &&
        !b.parameters &&
        (targetVersion === undefined || entry.get(ExtraKeys.MaintenanceVersion) === targetVersion) &&
        !b.context;
      const running = await operations.running(id);
      if (unchanged && !running) return reply.code(200).send({});
      const ctx = entry.get<Json>('context') ?? {};
      const input: OperationInput = {
        operation: 'update',
        operationId: newOperationId('update'),
        instanceId: id,
        serviceId: b.service_id,
        planId: targetPlanId,
        ...(targetVersion ? { maintenanceVersion: targetVersion } : {}),
        parameters,
        context: b.context ? { ...ctx, ...b.context } : ctx,
        fingerprint: requestFingerprint({
          service_id: b.service_id,
          plan_id: targetPlanId,
          parameters,
          organization_guid: ctx.organization_guid,
          space_guid: ctx.space_guid,
          maintenance: targetVersion,
        }),
      };
      return startAndAnswer(reply, input, accepts, { syncStatus: 200, syncBody: async () => ({}) }, async () => undefined);
    },
  );

  // ---- deprovision --------------------------------------------------------------------------------------
  app.delete<{ Params: { instance_id: string }; Querystring: { service_id: string; plan_id: string; accepts_incomplete?: string } }>(
    '/v2/service_instances/:instance_id',
    { schema: { ...common, params: S.instanceParams, querystring: S.deleteQuery, response: { 200: S.operationBody, 202: S.operationBody, ...S.errorResponses } } },
    async (req, reply) => {
      const id = req.params.instance_id;
      const accepts = acceptsIncomplete(req.query);
      const { plan } = planOf(req.query.service_id, req.query.plan_id);
      const entry = await openInstance(id);
      const running = await operations.running(id);
      if (!entry.exists() && !running) throw gone(`instance ${id} does not exist`);
      const input: OperationInput = {
        operation: 'deprovision',
        operationId: newOperationId('deprovision'),
        instanceId: id,
        serviceId: entry.get<string>('service-id') ?? req.query.service_id,
        planId: entry.get<string>('plan-id') ?? req.query.plan_id,
        ...(plan.maintenance_info ? { maintenanceVersion: entry.get<string>(ExtraKeys.MaintenanceVersion) ?? plan.maintenance_info.version } : {}),
        parameters: entry.get<Json>('parameters') ?? {},
        context: entry.get<Json>('context') ?? {},
        fingerprint: requestFingerprint({ deprovision: id }),
      };
      requireAsyncAllowed(plan, accepts);
      return startAndAnswer(reply, input, accepts, { syncStatus: 200, syncBody: async () => ({}) }, async (busy) => {
        if (busy.operation === 'provision') {
          // A delete during provisioning stops creation and deprovisions what was made.
          const operationId = await operations.interruptProvision(busy, input);
          count('deprovision', 'interrupted_provision');
          if (accepts) return reply.code(202).send({ operation: operationId });
          return answerSync(reply, { ...input, operationId }, operationId, { syncStatus: 200, syncBody: async () => ({}) });
        }
        return undefined;
      });
    },
  );

  // ---- fetch instance -----------------------------------------------------------------------------------
  app.get<{ Params: { instance_id: string } }>(
    '/v2/service_instances/:instance_id',
    { schema: { ...common, params: S.instanceParams, response: { 200: S.instanceBody, ...S.errorResponses } } },
    async (req) => {
      const id = req.params.instance_id;
      const entry = await openInstance(id);
      if (!entry.exists() || !isProvisioned(entry)) throw notFound(`instance ${id} does not exist or is still being provisioned`);
      const found = findPlan(catalog, entry.get<string>('service-id')!, entry.get<string>('plan-id')!);
      if (found && !found.service.instances_retrievable) throw badRequest('instances of this service are not retrievable');
      const op = lastOp(entry);
      if (op.operation === 'update' && op.status === undefined) throw unprocessable('ConcurrencyError', `instance ${id} is being updated`);
      const version = entry.get<string>(ExtraKeys.MaintenanceVersion);
      return {
        service_id: entry.get('service-id'),
        plan_id: entry.get('plan-id'),
        parameters: entry.get('parameters') ?? {},
        ...dashboard(entry),
        ...(version ? { maintenance_info: { version } } : {}),
      };
    },
  );

  // ---- instance last_operation --------------------------------------------------------------------------
  app.get<{ Params: { instance_id: string }; Querystring: { operation?: string } }>(
    '/v2/service_instances/:instance_id/last_operation',
    { schema: { ...common, params: S.instanceParams, querystring: S.lastOperationQuery, response: { 200: S.lastOperationBody, ...S.errorResponses } } },
    async (req, reply) => {
      const id = req.params.instance_id;
      const status = await operations.status({ instanceId: id, ...opFilter(req.query.operation) });
      if (!status) throw notFound(`instance ${id} has no operation`);
      return answerLastOperation(reply, status, retryAfter);
    },
  );

  // ---- bind ---------------------------------------------------------------------------------------------
  app.put<{ Params: { instance_id: string; binding_id: string }; Querystring: { accepts_incomplete?: string }; Body: BindBody }>(
    '/v2/service_instances/:instance_id/service_bindings/:binding_id',
    { schema: { ...common, params: S.bindingParams, querystring: S.asyncQuery, body: S.bindBody, response: { 200: S.bindingBody, 201: S.bindingBody, 202: S.bindingBody, ...S.errorResponses } } },
    async (req, reply) => {
      const { instance_id: iid, binding_id: bid } = req.params;
      const b = req.body;
      const { service, plan } = planOf(b.service_id, b.plan_id);
      if (!(plan.bindable ?? service.bindable)) throw badRequest(`plan "${plan.name}" is not bindable`);
      const appGuid = b.app_guid ?? (b.bind_resource?.app_guid as string | undefined);
      if (plan.brokerflow.requiresApp && !appGuid) throw unprocessable('RequiresApp', 'this plan binds to applications only: send bind_resource.app_guid');
      checkParameters(plan, 'bind', b.parameters);
      const accepts = acceptsIncomplete(req.query);
      requireAsyncAllowed(plan, accepts);
      const instance = await openInstance(iid);
      if (!instance.exists() || !isProvisioned(instance)) {
        const running = await operations.running(iid);
        if (running) throw unprocessable('ConcurrencyError', `instance ${iid} is still being provisioned`);
        throw notFound(`instance ${iid} does not exist`);
      }
      if (instance.get('service-id') !== b.service_id || instance.get('plan-id') !== b.plan_id) {
        throw badRequest(`service_id/plan_id do not match instance ${iid}`);
      }
      const fingerprint = requestFingerprint({ instance: iid, parameters: b.parameters ?? {}, app_guid: appGuid, bind_resource: b.bind_resource });
      const binding = await openBinding(iid, bid);
      if (binding.exists()) {
        const op = lastOp(binding);
        const bound = !(op.operation === 'bind' && op.status !== '');
        const same = binding.get(ExtraKeys.Fingerprint) === fingerprint;
        if (bound && same) return reply.code(200).send(bindingView(binding, true));
        if (bound) throw conflict(`binding ${bid} already exists with different attributes`);
      }
      const input: OperationInput = {
        operation: 'bind',
        operationId: newOperationId('bind'),
        instanceId: iid,
        bindingId: bid,
        serviceId: b.service_id,
        planId: b.plan_id,
        parameters: b.parameters ?? {},
        context: { ...(b.context ?? {}) },
        fingerprint,
        ...(b.bind_resource || appGuid ? { bindResource: { ...(b.bind_resource ?? {}), ...(appGuid ? { app_guid: appGuid } : {}) } } : {}),
      };
      return startAndAnswer(
        reply,
        input,
        accepts,
        { syncStatus: 201, syncBody: async () => bindingView(await openBinding(iid, bid), true) },
        async (running) => {
          if (running.operation === 'bind' && running.bindingId === bid) throw conflict(`binding ${bid} is being created with different attributes`);
          return undefined;
        },
      );
    },
  );

  // ---- unbind -------------------------------------------------------------------------------------------
  app.delete<{ Params: { instance_id: string; binding_id: string }; Querystring: { service_id: string; plan_id: string; accepts_incomplete?: string } }>(
    '/v2/service_instances/:instance_id/service_bindings/:binding_id',
    { schema: { ...common, params: S.bindingParams, querystring: S.deleteQuery, response: { 200: S.operationBody, 202: S.operationBody, ...S.errorResponses } } },
    async (req, reply) => {
      const { instance_id: iid, binding_id: bid } = req.params;
      const { plan } = planOf(req.query.service_id, req.query.plan_id);
      const accepts = acceptsIncomplete(req.query);
      requireAsyncAllowed(plan, accepts);
      const binding = await openBinding(iid, bid);
      if (!binding.exists()) throw gone(`binding ${bid} does not exist`);
      const input: OperationInput = {
        operation: 'unbind',
        operationId: newOperationId('unbind'),
        instanceId: iid,
        bindingId: bid,
        serviceId: binding.get<string>('service-id') ?? req.query.service_id,
        planId: binding.get<string>('plan-id') ?? req.query.plan_id,
        parameters: binding.get<Json>('parameters') ?? {},
        context: binding.get<Json>('context') ?? {},
        fingerprint: requestFingerprint({ unbind: bid }),
      };
      return startAndAnswer(reply, input, accepts, { syncStatus: 200, syncBody: async () => ({}) }, async () => undefined);
    },
  );

  // ---- fetch binding ------------------------------------------------------------------------------------
  app.get<{ Params: { instance_id: string; binding_id: string } }>(
    '/v2/service_instances/:instance_id/service_bindings/:binding_id',
    { schema: { ...common, params: S.bindingParams, response: { 200: S.bindingBody, ...S.errorResponses } } },
    async (req) => {
      const { instance_id: iid, binding_id: bid } = req.params;
      const binding = await openBinding(iid, bid);
      const op = binding.exists() ? lastOp(binding) : undefined;
      if (!binding.exists() || (op?.operation === 'bind' && op.status !== '')) throw notFound(`binding ${bid} does not exist or is still being created`);
      const found = findPlan(catalog, binding.get<string>('service-id')!, binding.get<string>('plan-id')!);
      if (found && !found.service.bindings_retrievable) throw badRequest('bindings of this service are not retrievable');
      return bindingView(binding, true);
    },
  );

  // ---- binding last_operation ---------------------------------------------------------------------------
  app.get<{ Params: { instance_id: string; binding_id: string }; Querystring: { operation?: string } }>(
    '/v2/service_instances/:instance_id/service_bindings/:binding_id/last_operation',
    { schema: { ...common, params: S.bindingParams, querystring: S.lastOperationQuery, response: { 200: S.lastOperationBody, ...S.errorResponses } } },
    async (req, reply) => {
      const { instance_id: iid, binding_id: bid } = req.params;
      const status = await operations.status({ instanceId: iid, bindingId: bid, ...opFilter(req.query.operation) });
      if (!status) throw notFound(`binding ${bid} has no operation`);
      return answerLastOperation(reply, status, retryAfter);
    },
  );
}

/** Pollers may send no operation, or a type name instead of the ID: only a real ID narrows the lookup. */
function opFilter(operation: string | undefined): { operationId?: string } {
  if (!operation || /^(provision|update|deprovision|bind|unbind)$/.test(operation)) return {};
  return { operationId: operation };
}

function answerLastOperation(reply: FastifyReply, s: OperationStatus, retryAfter: string) {
  if (s.gone && s.state === 'succeeded') throw gone(`${s.operation === 'unbind' ? 'binding' : 'instance'} was deleted by operation ${s.operationId}`);
  if (s.state === 'in progress') void reply.header('Retry-After', retryAfter);
  const body: Record<string, unknown> = { state: s.state, ...(s.description ? { description: s.description } : {}) };
  if (s.state === 'failed' && s.operation === 'update') Object.assign(body, { instance_usable: true, update_repeatable: true });
  if (s.state === 'failed' && s.operation === 'deprovision') Object.assign(body, { instance_usable: false });
  return reply.code(200).send(body);
}

function contextOf(b: ProvisionBody): Json {
  return {
    ...(b.context ?? {}),
    ...(b.organization_guid ? { organization_guid: b.organization_guid } : {}),
    ...(b.space_guid ? { space_guid: b.space_guid } : {}),
  };
}

function dashboard(e: Entry): Json {
  const url = e.get<string>('dashboard-url');
  return url ? { dashboard_url: url } : {};
}

function bindingView(e: Entry, withCredentials: boolean): Json {
  return {
    ...(withCredentials ? { credentials: e.get<Json>('credentials') ?? {} } : {}),
    parameters: e.get<Json>('parameters') ?? {},
  };
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
