// The OSB v2.17 semantics, free of HTTP: the broker's routes and the CLI both call this, so they behave the
// same. Every request is checked completely (catalog, plan parameter schema, maintenance_info, async rules)
// before anything starts, so an error answer changes nothing. Operations start through OperationsClient, whose
// workflow-ID rule makes concurrent requests on one instance resolve atomically.
import type { ValidateFunction } from 'ajv';
import type { Registry } from '../../adapters/registry';
import type { Entry } from '../../adapters/registry/entry';
import { createParameterAjv, findPlan, withoutMetaSchema, type Catalog, type JsonSchema, type Plan, type Service } from '../../config/catalog';
import { ExtraKeys } from '../../activities/operations';
import { operationIdFor, requestFingerprint, type OperationsClient, type OperationStatus } from '../operations';
import type { OperationInput, OperationMemo, OperationType } from '../../workflows/messages';
import { badRequest, conflict, gone, notFound, OsbError, unprocessable } from './errors';
import type { BrokerMetrics } from './metrics';

type Json = Record<string, unknown>;

/** An answer: status code, body and extra headers (the routes send it as is). */
export interface OsbAnswer {
  status: number;
  body: Json;
  headers?: Record<string, string>;
}

/** The body of a provision request. */
export interface ProvisionRequest {
  service_id: string;
  plan_id: string;
  context?: Json;
  organization_guid?: string;
  space_guid?: string;
  parameters?: Json;
  maintenance_info?: { version: string };
}

/** The body of an update request. */
export interface UpdateRequest {
  service_id: string;
  plan_id?: string;
  context?: Json;
  parameters?: Json;
  maintenance_info?: { version: string };
}

/** The body of a bind request. */
export interface BindRequest {
  service_id: string;
  plan_id: string;
  context?: Json;
  app_guid?: string;
  bind_resource?: Json;
  parameters?: Json;
}

/** What the service is built from. */
export interface OsbServiceDeps {
  catalog: Catalog;
  registry: Registry;
  operations: OperationsClient;
  metrics?: BrokerMetrics;
  /** How long a request without `accepts_incomplete=true` waits for its workflow. */
  syncTimeoutMs: number;
  /** Seconds platforms should wait between last_operation polls. */
  retryAfterSeconds?: number;
  /** Retry overrides passed to operation workflows (tests, slow environments). */
  stepRetry?: OperationInput['stepRetry'];
}

const answer = (status: number, body: Json, headers?: Record<string, string>): OsbAnswer => ({ status, body, ...(headers ? { headers } : {}) });

/**
 * What makes two instance requests identical: service, plan, parameters and the platform's org/space. The
 * maintenance version is left out: a request naming another version than the plan's is refused anyway.
 */
function instanceFingerprint(a: { serviceId: string; planId: string; parameters: Json; organizationGuid?: unknown; spaceGuid?: unknown }): string {
  return requestFingerprint({
    service_id: a.serviceId,
    plan_id: a.planId,
    parameters: a.parameters,
    organization_guid: a.organizationGuid,
    space_guid: a.spaceGuid,
  });
}

export class OsbService {
  private readonly validators: Map<string, ValidateFunction>;

  constructor(private readonly deps: OsbServiceDeps) {
    this.validators = compileParameterValidators(deps.catalog);
  }

  // ---- checks -------------------------------------------------------------------------------------------

  private planOf(serviceId: string, planId: string): { service: Service; plan: Plan } {
    const found = findPlan(this.deps.catalog, serviceId, planId);
    if (!found) {
      if (!this.deps.catalog.services.some((s) => s.id === serviceId)) throw badRequest(`service_id "${serviceId}" is not in the catalog`);
      throw badRequest(`plan_id "${planId}" is not a plan of service "${serviceId}"`);
    }
    return found;
  }

  private checkParameters(plan: Plan, kind: 'create' | 'update' | 'bind', parameters: Json | undefined): void {
    const v = this.validators.get(`${plan.id}/${kind}`);
    if (v && !v(parameters ?? {})) {
      const e = v.errors?.[0];
      throw badRequest(`parameters${e?.instancePath ?? ''} ${e?.message ?? 'are invalid'} (the plan's ${kind} parameter schema)`);
    }
  }

  private checkMaintenance(plan: Plan, requested: { version: string } | undefined): void {
    if (requested && plan.maintenance_info?.version !== requested.version) {
      throw unprocessable(
        'MaintenanceInfoConflict',
        `maintenance_info.version "${requested.version}" does not match the plan's version "${plan.maintenance_info?.version ?? '(none)'}"`,
      );
    }
  }

  private requireAsyncAllowed(plan: Plan, accepts: boolean): void {
    if (plan.brokerflow.asyncOnly && !accepts) {
      throw unprocessable('AsyncRequired', 'this plan is asynchronous only: retry with accepts_incomplete=true');
    }
  }

  private openInstance(id: string): Promise<Entry> {
    return this.deps.registry.open('service-instance', id);
  }

  private openBinding(instanceId: string, bindingId: string): Promise<Entry> {
    return this.deps.registry.open('service-binding', bindingId, { instanceId });
  }

  private count(type: OperationType, outcome: string): void {
    this.deps.metrics?.operations.inc({ type, outcome });
  }

  private withRetry(input: OperationInput): OperationInput {
    return this.deps.stepRetry ? { ...input, stepRetry: this.deps.stepRetry } : input;
  }

  // ---- starting -----------------------------------------------------------------------------------------

  /** Starts an operation and answers: 202 for async, or the synchronous answer after waiting for the workflow. */
  private async startAndAnswer(
    input: OperationInput,
    accepts: boolean,
    sync: { status: number; body: () => Promise<Json> },
    onBusy: (running: OperationMemo) => Promise<OsbAnswer | undefined>,
  ): Promise<OsbAnswer> {
    const outcome = await this.deps.operations.start(this.withRetry(input));
    if (outcome.kind === 'busy') {
      const handled = await onBusy(outcome.running);
      if (handled) return handled;
      this.count(input.operation, 'concurrency_error');
      throw unprocessable('ConcurrencyError', `another operation (${outcome.running.operation}) is in progress on instance ${input.instanceId}`);
    }
    this.count(input.operation, outcome.kind === 'started' ? 'accepted' : 'identical');
    if (accepts) return answer(202, { operation: outcome.operationId });
    return this.answerSync(input, outcome.operationId, sync);
  }

  private async answerSync(input: OperationInput, operationId: string, sync: { status: number; body: () => Promise<Json> }): Promise<OsbAnswer> {
    const result = await this.deps.operations.waitForResult(input.instanceId, this.deps.syncTimeoutMs);
    if (!result) {
      throw new OsbError(
        500,
        `the operation did not finish within ${Math.round(this.deps.syncTimeoutMs / 1000)} s and continues (operation ${operationId}): repeat the request with accepts_incomplete=true, or delete to undo it`,
      );
    }
    if (result.state === 'failed') throw new OsbError(500, `${input.operation} failed: ${result.description ?? 'unknown error'}`);
    return answer(sync.status, await sync.body());
  }

  // ---- instances ----------------------------------------------------------------------------------------

  async provision(instanceId: string, b: ProvisionRequest, accepts: boolean): Promise<OsbAnswer> {
    const { plan } = this.planOf(b.service_id, b.plan_id);
    this.checkMaintenance(plan, b.maintenance_info);
    this.checkParameters(plan, 'create', b.parameters);
    this.requireAsyncAllowed(plan, accepts);
    const fingerprint = instanceFingerprint({
      serviceId: b.service_id,
      planId: b.plan_id,
      parameters: b.parameters ?? {},
      organizationGuid: b.organization_guid,
      spaceGuid: b.space_guid,
    });
    const entry = await this.openInstance(instanceId);
    if (isProvisioned(entry)) {
      if (entry.get(ExtraKeys.Fingerprint) === fingerprint) return answer(200, dashboard(entry));
      throw conflict(`instance ${instanceId} already exists with different attributes`);
    }
    const current = await this.deps.operations.status({ instanceId });
    if (current?.state === 'in progress' && current.operation === 'provision' && entry.exists()) {
      if (entry.get(ExtraKeys.Fingerprint) !== fingerprint) throw conflict(`instance ${instanceId} is being provisioned with different attributes`);
      return accepts ? answer(202, { operation: current.operationId }) : this.answerSync({ instanceId } as OperationInput, current.operationId, this.provisionSync(instanceId));
    }
    const input: OperationInput = {
      operation: 'provision',
      operationId: operationIdFor('provision', { instanceId, fingerprint, ...retryBase(current) }),
      instanceId,
      serviceId: b.service_id,
      planId: b.plan_id,
      ...(plan.maintenance_info ? { maintenanceVersion: plan.maintenance_info.version } : {}),
      parameters: b.parameters ?? {},
      context: {
        ...(b.context ?? {}),
        ...(b.organization_guid ? { organization_guid: b.organization_guid } : {}),
        ...(b.space_guid ? { space_guid: b.space_guid } : {}),
      },
      fingerprint,
    };
    return this.startAndAnswer(input, accepts, this.provisionSync(instanceId), async (running) => {
      if (running.operation === 'provision') throw conflict(`instance ${instanceId} is being provisioned with different attributes`);
      return undefined;
    });
  }

  private provisionSync(instanceId: string): { status: number; body: () => Promise<Json> } {
    return { status: 201, body: async () => dashboard(await this.openInstance(instanceId)) };
  }

  async update(instanceId: string, b: UpdateRequest, accepts: boolean): Promise<OsbAnswer> {
    const entry = await this.openInstance(instanceId);
    if (!isProvisioned(entry)) {
      const running = await this.deps.operations.running(instanceId);
      if (running) throw unprocessable('ConcurrencyError', `instance ${instanceId} is still being provisioned`);
      throw notFound(`instance ${instanceId} does not exist`);
    }
    const currentPlan = entry.get<string>('plan-id')!;
    if (b.service_id !== entry.get<string>('service-id')) throw badRequest(`service_id "${b.service_id}" is not the instance's service`);
    const targetPlanId = b.plan_id ?? currentPlan;
    const { service, plan } = this.planOf(b.service_id, targetPlanId);
    if (targetPlanId !== currentPlan && !(plan.plan_updateable ?? service.plan_updateable ?? false)) {
      throw badRequest(`plan changes are not supported for service "${service.name}"`);
    }
    this.checkMaintenance(plan, b.maintenance_info);
    this.checkParameters(plan, 'update', b.parameters);
    this.requireAsyncAllowed(plan, accepts);
    const currentParams = entry.get<Json>('parameters') ?? {};
    // Absent parameters mean unchanged; present ones are merged over the current ones (shallow).
    const parameters = b.parameters ? { ...currentParams, ...b.parameters } : currentParams;
    const targetVersion = plan.maintenance_info?.version;
    const ctx = entry.get<Json>('context') ?? {};
    const previous = await this.deps.operations.status({ instanceId });
    const fingerprint = instanceFingerprint({
      serviceId: b.service_id,
      planId: targetPlanId,
      parameters,
      organizationGuid: ctx.organization_guid,
      spaceGuid: ctx.space_guid,
    });
    const input: OperationInput = {
      operation: 'update',
      operationId: operationIdFor('update', { instanceId, fingerprint, ...(previous ? { previousOperationId: previous.operationId } : {}) }),
      instanceId,
      serviceId: b.service_id,
      planId: targetPlanId,
      ...(targetVersion ? { maintenanceVersion: targetVersion } : {}),
      parameters,
      context: b.context ? { ...ctx, ...b.context } : ctx,
      fingerprint,
    };
    const unchanged = input.fingerprint === entry.get(ExtraKeys.Fingerprint) && !b.context && (!targetVersion || entry.get(ExtraKeys.MaintenanceVersion) === targetVersion);
    if (unchanged) {
      const running = await this.deps.operations.running(instanceId);
      if (!running || (await this.deps.operations.isFinishing(running, instanceId))) return answer(200, {});
    }
    return this.startAndAnswer(input, accepts, { status: 200, body: async () => ({}) }, async () => undefined);
  }

  async deprovision(instanceId: string, q: { service_id: string; plan_id: string }, accepts: boolean): Promise<OsbAnswer> {
    const { plan } = this.planOf(q.service_id, q.plan_id);
    this.requireAsyncAllowed(plan, accepts);
    const entry = await this.openInstance(instanceId);
    if (!entry.exists()) {
      // Only a provision that has not recorded itself yet makes a DELETE of an unrecorded instance meaningful.
      const running = await this.deps.operations.running(instanceId);
      if (running?.operation !== 'provision') throw gone(`instance ${instanceId} does not exist`);
    }
    const previous = await this.deps.operations.status({ instanceId });
    const fingerprint = requestFingerprint({ deprovision: instanceId });
    const input: OperationInput = {
      operation: 'deprovision',
      operationId: operationIdFor('deprovision', { instanceId, fingerprint, ...(previous ? { previousOperationId: previous.operationId } : {}) }),
      instanceId,
      serviceId: entry.get<string>('service-id') ?? q.service_id,
      planId: entry.get<string>('plan-id') ?? q.plan_id,
      ...(entry.get<string>(ExtraKeys.MaintenanceVersion) ?? plan.maintenance_info?.version
        ? { maintenanceVersion: entry.get<string>(ExtraKeys.MaintenanceVersion) ?? plan.maintenance_info!.version }
        : {}),
      parameters: entry.get<Json>('parameters') ?? {},
      context: entry.get<Json>('context') ?? {},
      fingerprint,
    };
    const sync = { status: 200, body: async () => ({}) };
    return this.startAndAnswer(input, accepts, sync, async (busy) => {
      if (busy.operation !== 'provision') return undefined;
      // A delete during provisioning stops creation and deprovisions what was made.
      const operationId = await this.deps.operations.interruptProvision(busy, this.withRetry(input));
      this.count('deprovision', 'interrupted_provision');
      if (accepts) return answer(202, { operation: operationId });
      return this.answerSync(input, operationId, sync);
    });
  }

  async fetchInstance(instanceId: string): Promise<OsbAnswer> {
    const entry = await this.openInstance(instanceId);
    if (!isProvisioned(entry)) throw notFound(`instance ${instanceId} does not exist or is still being provisioned`);
    const found = findPlan(this.deps.catalog, entry.get<string>('service-id')!, entry.get<string>('plan-id')!);
    if (found && !found.service.instances_retrievable) throw badRequest('instances of this service are not retrievable');
    const op = lastOp(entry);
    if (op.operation === 'update' && op.status === undefined) throw unprocessable('ConcurrencyError', `instance ${instanceId} is being updated`);
    const version = entry.get<string>(ExtraKeys.MaintenanceVersion);
    return answer(200, {
      service_id: entry.get('service-id'),
      plan_id: entry.get('plan-id'),
      parameters: entry.get('parameters') ?? {},
      ...dashboard(entry),
      ...(version ? { maintenance_info: { version } } : {}),
    });
  }

  async lastOperation(ref: { instanceId: string; bindingId?: string; operation?: string }): Promise<OsbAnswer> {
    const status = await this.deps.operations.status({
      instanceId: ref.instanceId,
      ...(ref.bindingId ? { bindingId: ref.bindingId } : {}),
      ...opFilter(ref.operation),
    });
    const what = ref.bindingId ? `binding ${ref.bindingId}` : `instance ${ref.instanceId}`;
    if (!status) throw notFound(`${what} has no operation`);
    return answerLastOperation(status, String(this.deps.retryAfterSeconds ?? 2));
  }

  // ---- bindings -----------------------------------------------------------------------------------------

  async bind(instanceId: string, bindingId: string, b: BindRequest, accepts: boolean): Promise<OsbAnswer> {
    const { service, plan } = this.planOf(b.service_id, b.plan_id);
    if (!(plan.bindable ?? service.bindable)) throw badRequest(`plan "${plan.name}" is not bindable`);
    const appGuid = b.app_guid ?? (typeof b.bind_resource?.app_guid === 'string' ? b.bind_resource.app_guid : undefined);
    if (plan.brokerflow.requiresApp && !appGuid) throw unprocessable('RequiresApp', 'this plan binds to applications only: send bind_resource.app_guid');
    this.checkParameters(plan, 'bind', b.parameters);
    this.requireAsyncAllowed(plan, accepts);
    const instance = await this.openInstance(instanceId);
    if (!isProvisioned(instance)) {
      if (await this.deps.operations.running(instanceId)) throw unprocessable('ConcurrencyError', `instance ${instanceId} is still being provisioned`);
      throw notFound(`instance ${instanceId} does not exist`);
    }
    if (instance.get('service-id') !== b.service_id || instance.get('plan-id') !== b.plan_id) {
      throw badRequest(`service_id/plan_id do not match instance ${instanceId}`);
    }
    const fingerprint = requestFingerprint({ instance: instanceId, parameters: b.parameters ?? {}, app_guid: appGuid, bind_resource: b.bind_resource });
    const binding = await this.openBinding(instanceId, bindingId);
    if (binding.exists() && !(lastOp(binding).operation === 'bind' && lastOp(binding).status !== '')) {
      if (binding.get(ExtraKeys.Fingerprint) === fingerprint) return answer(200, bindingView(binding));
      throw conflict(`binding ${bindingId} already exists with different attributes`);
    }
    const bindSync = { status: 201, body: async () => bindingView(await this.openBinding(instanceId, bindingId)) };
    const current = await this.deps.operations.status({ instanceId, bindingId });
    if (current?.state === 'in progress' && current.operation === 'bind' && binding.exists()) {
      if (binding.get(ExtraKeys.Fingerprint) !== fingerprint) throw conflict(`binding ${bindingId} is being created with different attributes`);
      return accepts ? answer(202, { operation: current.operationId }) : this.answerSync({ instanceId } as OperationInput, current.operationId, bindSync);
    }
    const input: OperationInput = {
      operation: 'bind',
      operationId: operationIdFor('bind', { instanceId, bindingId, fingerprint, ...retryBase(current) }),
      instanceId,
      bindingId,
      serviceId: b.service_id,
      planId: b.plan_id,
      parameters: b.parameters ?? {},
      context: { ...(b.context ?? {}) },
      fingerprint,
      ...(b.bind_resource || appGuid ? { bindResource: { ...(b.bind_resource ?? {}), ...(appGuid ? { app_guid: appGuid } : {}) } } : {}),
    };
    return this.startAndAnswer(
      input,
      accepts,
      bindSync,
      async (running) => {
        if (running.operation === 'bind' && running.bindingId === bindingId) throw conflict(`binding ${bindingId} is being created with different attributes`);
        return undefined;
      },
    );
  }

  async unbind(instanceId: string, bindingId: string, q: { service_id: string; plan_id: string }, accepts: boolean): Promise<OsbAnswer> {
    const { plan } = this.planOf(q.service_id, q.plan_id);
    this.requireAsyncAllowed(plan, accepts);
    const binding = await this.openBinding(instanceId, bindingId);
    if (!binding.exists()) {
      // A bind that has not recorded itself yet is about to create the binding: the platform must come back.
      const running = await this.deps.operations.running(instanceId);
      if (running?.operation === 'bind' && running.bindingId === bindingId) throw unprocessable('ConcurrencyError', `binding ${bindingId} is still being created`);
      throw gone(`binding ${bindingId} does not exist`);
    }
    const previous = await this.deps.operations.status({ instanceId, bindingId });
    const fingerprint = requestFingerprint({ unbind: bindingId });
    const input: OperationInput = {
      operation: 'unbind',
      operationId: operationIdFor('unbind', { instanceId, bindingId, fingerprint, ...(previous ? { previousOperationId: previous.operationId } : {}) }),
      instanceId,
      bindingId,
      serviceId: binding.get<string>('service-id') ?? q.service_id,
      planId: binding.get<string>('plan-id') ?? q.plan_id,
      parameters: binding.get<Json>('parameters') ?? {},
      context: binding.get<Json>('context') ?? {},
      fingerprint,
    };
    return this.startAndAnswer(input, accepts, { status: 200, body: async () => ({}) }, async () => undefined);
  }

  async fetchBinding(instanceId: string, bindingId: string): Promise<OsbAnswer> {
    const binding = await this.openBinding(instanceId, bindingId);
    const op = lastOp(binding);
    if (!binding.exists() || (op.operation === 'bind' && op.status !== '')) throw notFound(`binding ${bindingId} does not exist or is still being created`);
    const found = findPlan(this.deps.catalog, binding.get<string>('service-id')!, binding.get<string>('plan-id')!);
    if (found && !found.service.bindings_retrievable) throw badRequest('bindings of this service are not retrievable');
    return answer(200, bindingView(binding));
  }
}

/**
 * What a create (provision, bind) derives its operation ID from: the failed attempt it retries, or the deleted
 * incarnation it replaces. An in-progress or successful one is answered before an ID is needed.
 */
function retryBase(current: OperationStatus | undefined): { previousOperationId?: string } {
  return current && (current.state === 'failed' || current.gone) ? { previousOperationId: current.operationId } : {};
}

function lastOp(e: Entry): { operation?: OperationType; operationId?: string; status?: string } {
  return { operation: e.get<OperationType>('operation'), operationId: e.get<string>('operation-id'), status: e.get<string>('operation-status') };
}

/** The instance exists for the platform: stored, and not only a provision that is running or failed. */
function isProvisioned(e: Entry): boolean {
  const op = lastOp(e);
  return e.exists() && !(op.operation === 'provision' && op.status !== '');
}

/** Pollers may send no operation, or a type name instead of the ID: only a real ID narrows the lookup. */
function opFilter(operation: string | undefined): { operationId?: string } {
  if (!operation || /^(provision|update|deprovision|bind|unbind)$/.test(operation)) return {};
  return { operationId: operation };
}

function answerLastOperation(s: OperationStatus, retryAfter: string): OsbAnswer {
  if (s.gone && s.state === 'succeeded') throw gone(`${s.operation === 'unbind' ? 'binding' : 'instance'} was deleted by operation ${s.operationId}`);
  const body: Json = { state: s.state, ...(s.description ? { description: s.description } : {}) };
  if (s.state === 'failed' && s.operation === 'update') Object.assign(body, { instance_usable: true, update_repeatable: true });
  if (s.state === 'failed' && s.operation === 'deprovision') Object.assign(body, { instance_usable: false });
  return answer(200, body, s.state === 'in progress' ? { 'Retry-After': retryAfter } : undefined);
}

function dashboard(e: Entry): Json {
  const url = e.get<string>('dashboard-url');
  return url ? { dashboard_url: url } : {};
}

function bindingView(e: Entry): Json {
  return { credentials: e.get<Json>('credentials') ?? {}, parameters: e.get<Json>('parameters') ?? {} };
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
