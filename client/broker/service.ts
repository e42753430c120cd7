// Long on purpose: one class whose nine OSB operations share the same read-facts, decide, carry-out steps.
// The OSB v2.17 semantics, free of HTTP: the broker's routes and the CLI both call this, so they behave the
// same. Every request is checked completely (catalog, plan parameter schema, maintenance_info, async rules)
// before anything starts, so an error answer changes nothing. Operations start through OperationsClient, whose
// workflow-ID rule makes concurrent requests on one instance resolve atomically.
import { BrokerflowKey, RegistryKey, operationOf, type Registry } from '../../adapters/registry';
import type { Entry } from '../../adapters/registry/entry';
import { credentialPolicy, findPlan, planAsynchrony, type Catalog } from '../../config/catalog';
import { PlanChecks } from './plan-checks';
import { operationIdFor, requestFingerprint, STEP_LOOKUP_DEADLINE_MS, type OperationsClient, type OperationStatus } from '../operations';
import type { OperationInput, OperationResult } from '../../workflows/messages';
import type { OperationType } from '../../domain/operations';
import { badRequest, gone, notFound, OsbError, unprocessable } from './errors';
import {
  decideBind,
  decideDeprovision,
  decideFetchBinding,
  decideFetchInstance,
  decideProvision,
  decideRotationRequest,
  decideUnbind,
  decideUpdate,
  decideUpdateInstance,
  type BindingFacts,
  type Decision,
  type InstanceFacts,
  type OperationFact,
} from './decide';
import type { BrokerMetrics } from './metrics';
import { acceptanceOf, recordAcceptance, withRequester, type AuditWarnings } from './audit';
import type { RequestOrigin } from '../../domain/audit';
import type { BindingBody, BindRequest, InstanceBody, LastOperationBody, OperationBody, ProvisionRequest, UpdateRequest } from './schemas';

type Json = Record<string, unknown>;

/** An answer: status code, body of the route's response schema, and extra headers (the routes send it as is). */
export interface OsbAnswer<B = Json> {
  status: number;
  body: B;
  headers?: Record<string, string>;
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
  /**
   * How long a last_operation poll waits for a worker to report the running step (default
   * STEP_LOOKUP_DEADLINE_MS; 0: never asked, the registry's answer only).
   */
  stepLookupDeadlineMs?: number;
  /** Where a failed audit-trail write is reported (the operation runs all the same). */
  auditWarnings?: AuditWarnings;
}

/** What an asynchronous request is answered with: the operation to poll. */
type AcceptedBody = Required<Pick<OperationBody, 'operation'>>;

const answer = <B>(status: number, body: B, headers?: Record<string, string>): OsbAnswer<B> => ({ status, body, ...(headers ? { headers } : {}) });

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

/** A request about to be carried out: how to build its operation input, and what a synchronous success returns. */
interface Intent<B> {
  build: () => OperationInput;
  sync: { status: number; body: () => Promise<B> };
}

/** Decides a request on fresh facts: the decision, how to carry it out, and how to render an answer. */
type DecideNow<B> = () => Promise<{ decision: Decision; plan: Intent<B>; answer: (body: 'empty' | 'dashboard' | 'instance' | 'binding') => B }>;

/** A checked request (catalog, parameters, maintenance_info), ready to be decided and carried out or previewed. */
interface CheckedRequest<B> {
  type: OperationType;
  ref: { instanceId: string; bindingId?: string };
  decideNow: DecideNow<B>;
}

/**
 * What a request would do, decided on the current facts exactly as the request itself is, but carried out nowhere
 * (`brokerflow … --dry-run`): start the operation with this input, answer without starting anything (an identical
 * request that already succeeded), or join the identical operation that runs. A refused request throws its OsbError.
 */
export type RequestPreview =
  | { kind: 'start'; input: OperationInput }
  | { kind: 'answer'; status: number; body: Json }
  | { kind: 'join'; operationId: string };

export class OsbService {
  private readonly plans: PlanChecks;

  constructor(private readonly deps: OsbServiceDeps) {
    this.plans = new PlanChecks(deps.catalog);
  }

  private count(type: OperationType, outcome: string): void {
    this.deps.metrics?.operations.inc({ type, outcome });
  }

  private withRetry(input: OperationInput): OperationInput {
    return this.deps.stepRetry ? { ...input, stepRetry: this.deps.stepRetry } : input;
  }

  // ---- facts --------------------------------------------------------------------------------------------

  /**
   * The running operation of the entry, and the operation of its latest closed run when that run recorded nothing
   * (it was refused: the state moved before its first activity). Such a run still took its operation ID as its
   * start request ID, so an identical retry must derive a new one: with the same ID, Temporal would hand back the
   * closed run and the retry would never run.
   */
  private async runs(
    ref: { instanceId: string; bindingId?: string },
    record: OperationFact | undefined,
  ): Promise<{ running?: OperationFact & { fingerprint: string; instanceId?: string }; unrecorded?: string }> {
    const { running: memo, closed } = await this.deps.operations.latest(ref);
    const unrecorded = closed && (closed.instanceId ?? ref.instanceId) === ref.instanceId && closed.operationId !== record?.operationId ? closed.operationId : undefined;
    if (!memo) return unrecorded ? { unrecorded } : {};
    if (record && record.operationId === memo.operationId && record.state !== 'in progress') return {};
    return { running: { operation: memo.operation, operationId: memo.operationId, state: 'in progress', fingerprint: memo.fingerprint, ...(memo.instanceId ? { instanceId: memo.instanceId } : {}) } };
  }

  private async instanceFacts(instanceId: string): Promise<{ entry: Entry; facts: InstanceFacts; unrecorded?: string }> {
    const entry = await this.deps.registry.open('service-instance', instanceId);
    let record: OperationFact | undefined = entry.exists() ? operationOf(entry) : await this.deps.registry.readOperation('service-instance', instanceId);
    const { running, unrecorded } = await this.runs({ instanceId }, record);
    // An operation recorded as in progress whose run is gone ended without completing: it failed.
    if (record?.state === 'in progress' && running?.operationId !== record.operationId) record = { ...record, state: 'failed' };
    return {
      entry,
      facts: {
        exists: entry.exists(),
        provisioned:
          entry.exists() && entry.get(BrokerflowKey.ProvisionPending) !== true && !(record?.operation === 'provision' && record.state !== 'succeeded'),
        ...(record ? { record } : {}),
        ...(running ? { running } : {}),
        ...optional('fingerprint', entry.get<string>(BrokerflowKey.Fingerprint)),
        ...optional('serviceId', entry.get<string>(RegistryKey.ServiceID)),
        ...optional('planId', entry.get<string>(RegistryKey.PlanID)),
        ...optional('maintenanceVersion', entry.get<string>(BrokerflowKey.MaintenanceVersion)),
        bindingOperations: entry.exists() ? Object.keys(await this.deps.registry.runningBindingShares(entry)).length : 0,
      },
      ...(unrecorded ? { unrecorded } : {}),
    };
  }

  private async bindingFacts(instanceId: string, bindingId: string): Promise<{ entry: Entry; facts: BindingFacts; unrecorded?: string }> {
    const entry = await this.deps.registry.open('service-binding', bindingId, { instanceId });
    const ownerOfEntry = entry.get<string>(RegistryKey.InstanceID);
    let ownedByAnotherInstance = entry.exists() && ownerOfEntry !== undefined && ownerOfEntry !== instanceId;
    const exists = entry.exists() && !ownedByAnotherInstance;
    let record: OperationFact | undefined;
    if (exists) record = operationOf(entry);
    else if (!entry.exists()) {
      const tomb = await this.deps.registry.readOperation('service-binding', bindingId, { instanceId });
      if (tomb && (tomb.instanceId === undefined || tomb.instanceId === instanceId)) record = tomb;
    }
    const runs = await this.runs({ instanceId, bindingId }, record);
    let running = runs.running;
    if (running && running.instanceId !== undefined && running.instanceId !== instanceId) {
      ownedByAnotherInstance = true;
      running = undefined;
    }
    if (record?.state === 'in progress' && running?.operationId !== record.operationId) record = { ...record, state: 'failed' };
    return {
      entry,
      facts: {
        exists,
        ownedByAnotherInstance,
        ...(record ? { record } : {}),
        ...(running ? { running } : {}),
        ...optional('fingerprint', exists ? entry.get<string>(BrokerflowKey.Fingerprint) : undefined),
        ...optional('expiredAt', exists ? entry.get<string>(BrokerflowKey.ExpiredAt) : undefined),
      },
      ...(runs.unrecorded && !ownedByAnotherInstance ? { unrecorded: runs.unrecorded } : {}),
    };
  }

  // ---- carrying a decision out --------------------------------------------------------------------------

  /**
   * Decides on fresh facts and carries the decision out. A start that loses a race (another run took the
   * workflow ID between our read and our start), or an interruption of a provision that has just ended, decides
   * again on the new facts, a few times at most.
   */
  private async carryOut<B>(
    type: OperationType,
    ref: { instanceId: string; bindingId?: string },
    accepts: boolean,
    decideNow: DecideNow<B>,
    origin?: RequestOrigin,
  ): Promise<OsbAnswer<B | AcceptedBody>> {
    for (let round = 0; round < 3; round++) {
      const { decision, plan, answer: render } = await decideNow();
      switch (decision.kind) {
        case 'error':
          if (decision.error === 'ConcurrencyError') this.count(type, 'concurrency_error');
          throw refusal(decision);
        case 'answer':
          return answer(decision.status, render(decision.body));
        case 'join':
          this.count(type, 'identical');
          return accepts ? answer(202, { operation: decision.operationId }) : this.answerSync(type, ref, decision.operationId, plan.sync);
        case 'interrupt': {
          const input = this.withRetry(withRequester(plan.build(), origin));
          const operationId = await this.deps.operations.interruptProvision(decision.provisionOperationId, input);
          // The provision ended between the decision and the signal: decide again (a deprovision starts now).
          if (operationId === undefined) continue;
          await this.recordAccepted({ ...input, operationId });
          this.count('deprovision', 'interrupted_provision');
          return accepts ? answer(202, { operation: operationId }) : this.answerSync(type, ref, operationId, plan.sync);
        }
        case 'start': {
          const input = this.withRetry(withRequester(plan.build(), origin));
          const accepted = await acceptanceOf(this.deps.registry, input, this.deps.auditWarnings);
          const outcome = await this.deps.operations.start(input);
          // Busy, or the facts moved under the decision (a run closed meanwhile): decide again.
          if (outcome.kind === 'busy' || outcome.kind === 'changed') continue;
          if (outcome.kind === 'started' && (await this.deps.operations.createdMeanwhile(input))) {
            // Another create ran whole between the decision and the start: this run will find the entry created and
            // record nothing. Once it has ended, the fresh facts give the answer (409, or 200 when identical).
            await this.deps.operations.waitForResult(ref, this.deps.syncTimeoutMs).catch(() => undefined);
            continue;
          }
          if (outcome.kind === 'started') await recordAcceptance(this.deps.registry, input.instanceId, accepted, this.deps.auditWarnings);
          this.count(type, outcome.kind === 'started' ? 'accepted' : 'identical');
          return accepts ? answer(202, { operation: outcome.operationId }) : this.answerSync(type, ref, outcome.operationId, plan.sync);
        }
      }
    }
    this.count(type, 'concurrency_error');
    throw unprocessable('ConcurrencyError', `another operation is in progress on ${ref.bindingId ? `binding ${ref.bindingId}` : `instance ${ref.instanceId}`}`);
  }

  /** Records a started operation's acceptance in the audit trail (docs/design/contracts/registry.md#audit-trail). */
  private async recordAccepted(input: OperationInput): Promise<void> {
    await recordAcceptance(this.deps.registry, input.instanceId, await acceptanceOf(this.deps.registry, input, this.deps.auditWarnings), this.deps.auditWarnings);
  }

  /** Decides once on fresh facts and says what carrying the decision out would do, changing nothing. */
  private async preview<B>(req: CheckedRequest<B>): Promise<RequestPreview> {
    const { decision, plan, answer: render } = await req.decideNow();
    switch (decision.kind) {
      case 'error':
        throw refusal(decision);
      case 'answer':
        return { kind: 'answer', status: decision.status, body: render(decision.body) as Json };
      case 'join':
        return { kind: 'join', operationId: decision.operationId };
      case 'start':
        return { kind: 'start', input: plan.build() };
      case 'interrupt':
        // Only a DELETE interrupts a provision, and deletes are not previewed.
        throw new Error(`a ${req.type} request cannot interrupt a provision`);
    }
  }

  /** What a provision would do (a dry run): the same checks and decision as {@link provision}, nothing started. */
  async previewProvision(instanceId: string, b: ProvisionRequest): Promise<RequestPreview> {
    return this.preview(this.provisionRequest(instanceId, b, true));
  }

  /** What an update would do (a dry run): the same checks and decision as {@link update}, nothing started. */
  async previewUpdate(instanceId: string, b: UpdateRequest): Promise<RequestPreview> {
    return this.preview(this.updateRequest(instanceId, b, true));
  }

  /** What a bind would do (a dry run): the same checks and decision as {@link bind}, nothing started. */
  async previewBind(instanceId: string, bindingId: string, b: BindRequest): Promise<RequestPreview> {
    return this.preview(this.bindRequest(instanceId, bindingId, b, true));
  }

  /** Waits for the operation; answers the synchronous success, or 500 when it failed, was interrupted or is slow. */
  private async answerSync<B>(type: OperationType, ref: { instanceId: string; bindingId?: string }, operationId: string, sync: Intent<B>['sync']): Promise<OsbAnswer<B>> {
    let result: OperationResult | undefined;
    try {
      result = await this.deps.operations.waitForResult(ref, this.deps.syncTimeoutMs);
    } catch (err) {
      // The run closed without a result: terminated after it had recorded its end (the next operation superseded
      // it, docs/design/osb-semantics.md "Races"), or failed outright. The registry's record says how it ended.
      const recorded = await this.deps.operations.status({ ...ref, operationId });
      if (!recorded || recorded.operationId !== operationId || recorded.state === 'in progress') {
        throw new OsbError(500, `${type} did not complete: ${(err as Error).message}`);
      }
      result = { operation: recorded.operation, operationId, state: recorded.state, ...(recorded.description ? { description: recorded.description } : {}) };
    }
    if (!result) {
      throw new OsbError(
        500,
        `the operation did not finish within ${Math.round(this.deps.syncTimeoutMs / 1000)} s and continues (operation ${operationId}): repeat the request with accepts_incomplete=true, or delete to undo it`,
      );
    }
    if (result.operationId !== operationId) {
      // The run continued as another operation (a provision stopped by a DELETE): ours did not complete.
      throw new OsbError(500, `${type} did not complete: it was interrupted by ${result.operation} ${result.operationId}`);
    }
    if (result.state === 'failed') throw new OsbError(500, `${type} failed: ${result.description ?? 'unknown error'}`);
    return answer(sync.status, await sync.body());
  }

  // ---- instances ----------------------------------------------------------------------------------------

  async provision(instanceId: string, b: ProvisionRequest, accepts: boolean, origin?: RequestOrigin): Promise<OsbAnswer<OperationBody>> {
    const { type, ref, decideNow } = this.provisionRequest(instanceId, b, accepts);
    return this.carryOut(type, ref, accepts, decideNow, origin);
  }

  private provisionRequest(instanceId: string, b: ProvisionRequest, accepts: boolean): CheckedRequest<OperationBody> {
    const { plan } = this.plans.planOf(b.service_id, b.plan_id);
    // Common checks (parameters, 400) come before the rows of the table (maintenance_info, 422).
    this.plans.checkParameters(plan, 'create', b.parameters);
    this.plans.checkMaintenance(plan, b.maintenance_info);
    const fingerprint = instanceFingerprint({
      serviceId: b.service_id,
      planId: b.plan_id,
      parameters: b.parameters ?? {},
      organizationGuid: b.organization_guid,
      spaceGuid: b.space_guid,
    });
    const sync = { status: 201, body: async () => dashboard(await this.deps.registry.open('service-instance', instanceId)) };
    const decideNow: DecideNow<OperationBody> = async () => {
      const { entry, facts, unrecorded } = await this.instanceFacts(instanceId);
      return {
        decision: decideProvision({ accepts, asyncOnly: planAsynchrony(plan).instances === 'required', fingerprint }, facts),
        answer: () => dashboard(entry),
        plan: {
          sync,
          build: () => ({
            operation: 'provision',
            ...pollingBound(plan),
            operationId: operationIdFor('provision', { instanceId, fingerprint, ...retryBase(facts.record, unrecorded) }),
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
          }),
        },
      };
    };
    return { type: 'provision', ref: { instanceId }, decideNow };
  }

  async update(instanceId: string, b: UpdateRequest, accepts: boolean, origin?: RequestOrigin): Promise<OsbAnswer<OperationBody>> {
    const { type, ref, decideNow } = this.updateRequest(instanceId, b, accepts);
    return this.carryOut(type, ref, accepts, decideNow, origin);
  }

  private updateRequest(instanceId: string, b: UpdateRequest, accepts: boolean): CheckedRequest<OperationBody> {
    // Common check 4, before any state is read: the service, the plan when one is named, and the parameters
    // against that plan's schema (without a plan_id the schema is the instance's plan's, known only below).
    if (!this.deps.catalog.services.some((s) => s.id === b.service_id)) throw badRequest(`service_id "${b.service_id}" is not in the catalog`);
    if (b.plan_id !== undefined) this.plans.checkParameters(this.plans.planOf(b.service_id, b.plan_id).plan, 'update', b.parameters);
    const decideNow: DecideNow<OperationBody> = async () => {
      const { entry, facts, unrecorded } = await this.instanceFacts(instanceId);
      const currentPlan = facts.planId;
      const targetPlanId = b.plan_id ?? currentPlan ?? '';
      // The rows that need only the instance come first; the target plan is known once the instance is.
      const first = decideUpdateInstance(b.service_id, facts);
      if (first) return { decision: first, plan: noPlan, answer: () => ({}) };
      const { service, plan } = this.plans.planOf(b.service_id, targetPlanId);
      const planChange = targetPlanId !== currentPlan;
      // Common checks (parameters, 400) come before the rows of the table (maintenance_info, 422).
      this.plans.checkParameters(plan, 'update', b.parameters);
      this.plans.checkMaintenance(plan, b.maintenance_info);
      const applied = entry.get<Json>(RegistryKey.Parameters) ?? {};
      // Absent parameters mean unchanged; present ones are merged over the applied ones (shallow).
      const parameters = b.parameters ? { ...applied, ...b.parameters } : applied;
      // No maintenance upgrade unless asked for: the applied version stays, a plan change takes the new plan's.
      const targetVersion = b.maintenance_info?.version ?? (planChange ? plan.maintenance_info?.version : (facts.maintenanceVersion ?? plan.maintenance_info?.version));
      const ctx = entry.get<Json>(RegistryKey.Context) ?? {};
      const fingerprint = instanceFingerprint({ serviceId: b.service_id, planId: targetPlanId, parameters, organizationGuid: ctx.organization_guid, spaceGuid: ctx.space_guid });
      // Context is not compared (docs/design/osb-semantics.md): a PATCH that only sends context changes nothing.
      const unchanged = fingerprint === facts.fingerprint && targetVersion === facts.maintenanceVersion;
      const decision = decideUpdate(
        {
          accepts,
          asyncOnly: planAsynchrony(plan).instances === 'required',
          fingerprint,
          serviceId: b.service_id,
          planChange,
          planUpdateable: plan.plan_updateable ?? service.plan_updateable ?? false,
          unchanged,
        },
        facts,
      );
      return {
        decision,
        answer: () => ({}),
        plan: {
          sync: { status: 200, body: async () => ({}) },
          build: () => ({
            operation: 'update',
            ...pollingBound(plan),
            operationId: operationIdFor('update', { instanceId, fingerprint, ...previousOf(facts.record, unrecorded) }),
            instanceId,
            serviceId: b.service_id,
            planId: targetPlanId,
            ...(targetVersion ? { maintenanceVersion: targetVersion } : {}),
            parameters,
            context: b.context ? { ...ctx, ...b.context } : ctx,
            fingerprint,
          }),
        },
      };
    };
    return { type: 'update', ref: { instanceId }, decideNow };
  }

  async deprovision(instanceId: string, q: { service_id: string; plan_id: string }, accepts: boolean, origin?: RequestOrigin): Promise<OsbAnswer<OperationBody>> {
    const { plan } = this.plans.planOf(q.service_id, q.plan_id);
    const fingerprint = requestFingerprint({ deprovision: instanceId });
    return this.carryOut('deprovision', { instanceId }, accepts, async () => {
      const { entry, facts, unrecorded } = await this.instanceFacts(instanceId);
      const version = facts.maintenanceVersion ?? plan.maintenance_info?.version;
      return {
        decision: decideDeprovision({ accepts, asyncOnly: planAsynchrony(plan).instances === 'required', fingerprint }, facts),
        answer: () => ({}),
        plan: {
          sync: { status: 200, body: async () => ({}) },
          build: () => ({
            operation: 'deprovision',
            operationId: operationIdFor('deprovision', { instanceId, fingerprint, ...previousOf(facts.record, unrecorded) }),
            instanceId,
            serviceId: facts.serviceId ?? q.service_id,
            planId: facts.planId ?? q.plan_id,
            ...(version ? { maintenanceVersion: version } : {}),
            parameters: entry.get<Json>(RegistryKey.Parameters) ?? {},
            context: entry.get<Json>(RegistryKey.Context) ?? {},
            fingerprint,
          }),
        },
      };
    }, origin);
  }

  async fetchInstance(instanceId: string): Promise<OsbAnswer<InstanceBody>> {
    const { entry, facts } = await this.instanceFacts(instanceId);
    const decision = decideFetchInstance(facts);
    if (decision.kind === 'error') throw decision.error ? unprocessable(decision.error, decision.description) : new OsbError(decision.status, decision.description);
    const found = findPlan(this.deps.catalog, facts.serviceId ?? '', facts.planId ?? '');
    if (found && !found.service.instances_retrievable) throw badRequest('instances of this service are not retrievable');
    return answer(200, {
      service_id: facts.serviceId,
      plan_id: facts.planId,
      parameters: entry.get(RegistryKey.Parameters) ?? {},
      ...dashboard(entry),
      ...(facts.maintenanceVersion ? { maintenance_info: { version: facts.maintenanceVersion } } : {}),
    });
  }

  async lastOperation(ref: { instanceId: string; bindingId?: string; operation?: string }): Promise<OsbAnswer<LastOperationBody>> {
    // While it runs, the description names the resource, step, attempt and last error
    // (docs/design/contracts/osb-api.md#what-a-running-operations-description-says).
    const status = await this.deps.operations.status(
      {
        instanceId: ref.instanceId,
        ...(ref.bindingId ? { bindingId: ref.bindingId } : {}),
        ...opFilter(ref.operation),
      },
      { live: { deadlineMs: this.deps.stepLookupDeadlineMs ?? STEP_LOOKUP_DEADLINE_MS } },
    );
    const what = ref.bindingId ? `binding ${ref.bindingId}` : `instance ${ref.instanceId}`;
    if (!status) throw notFound(`${what} has no operation`);
    if (ref.bindingId && status.operation === 'bind' && status.state === 'succeeded' && !status.gone) {
      // The bind succeeded; its credentials' expiry is not an operation of the platform's, only said in the description
      // (docs/design/osb-semantics.md#credential-expiry).
      const entry = await this.deps.registry.open('service-binding', ref.bindingId, { instanceId: ref.instanceId });
      const expiredAt = entry.exists() && entry.get<string>(RegistryKey.InstanceID) === ref.instanceId ? entry.get<string>(BrokerflowKey.ExpiredAt) : undefined;
      if (expiredAt) return answerLastOperation({ ...status, description: expiredDescription(expiredAt) }, String(this.deps.retryAfterSeconds ?? 2));
    }
    return answerLastOperation(status, String(this.deps.retryAfterSeconds ?? 2));
  }

  // ---- bindings -----------------------------------------------------------------------------------------

  async bind(instanceId: string, bindingId: string, b: BindRequest, accepts: boolean, origin?: RequestOrigin): Promise<OsbAnswer<BindingBody>> {
    const { type, ref, decideNow } = this.bindRequest(instanceId, bindingId, b, accepts);
    return this.carryOut(type, ref, this.bindingAccepts(b, accepts), decideNow, origin);
  }

  /**
   * Whether a binding request is answered asynchronously: a plan whose bindings are `never` asynchronous serves
   * them synchronously even to `accepts_incomplete=true` (OSB lets a broker answer 201/200 then).
   */
  private bindingAccepts(b: { service_id: string; plan_id: string }, accepts: boolean): boolean {
    const found = findPlan(this.deps.catalog, b.service_id, b.plan_id);
    return accepts && !(found && planAsynchrony(found.plan).bindings === 'never');
  }

  private bindRequest(instanceId: string, bindingId: string, b: BindRequest, accepts: boolean): CheckedRequest<BindingBody> {
    const { service, plan } = this.plans.planOf(b.service_id, b.plan_id);
    if (!(plan.bindable ?? service.bindable)) throw badRequest(`plan "${plan.name}" is not bindable`);
    const predecessorId = b.predecessor_binding_id;
    // A rotation takes the predecessor's parameters and application (docs/design/osb-semantics.md#binding-rotation).
    const rotatable = plan.binding_rotatable ?? false;
    if (predecessorId !== undefined) {
      const refused = decideRotationRequest({ rotatable, bindingId, predecessorId });
      if (refused) throw refusal(refused as Extract<Decision, { kind: 'error' }>);
    }
    const appGuid = b.app_guid ?? (typeof b.bind_resource?.app_guid === 'string' ? b.bind_resource.app_guid : undefined);
    if (predecessorId === undefined && plan.brokerflow.requiresApp && !appGuid) throw unprocessable('RequiresApp', 'this plan binds to applications only: send bind_resource.app_guid');
    this.plans.checkParameters(plan, 'bind', b.parameters);
    const fingerprint =
      predecessorId !== undefined
        ? requestFingerprint({ instance: instanceId, predecessor_binding_id: predecessorId })
        : requestFingerprint({ instance: instanceId, parameters: b.parameters ?? {}, app_guid: appGuid, bind_resource: b.bind_resource });
    const policy = credentialPolicy(plan);
    const view = async () => bindingView(await this.deps.registry.open('service-binding', bindingId, { instanceId }));
    const decideNow: DecideNow<BindingBody> = async () => {
      const inst = await this.instanceFacts(instanceId);
      const { entry, facts, unrecorded } = await this.bindingFacts(instanceId, bindingId);
      const predecessor = predecessorId !== undefined ? await this.bindingFacts(instanceId, predecessorId) : undefined;
      const inherited = predecessor
        ? {
            parameters: predecessor.entry.get<Json>(RegistryKey.Parameters) ?? {},
            bindResource: predecessor.entry.get<Json>(BrokerflowKey.BindResource),
            context: predecessor.entry.get<Json>(RegistryKey.Context) ?? {},
          }
        : undefined;
      const bindResource = inherited ? inherited.bindResource : b.bind_resource || appGuid ? { ...(b.bind_resource ?? {}), ...(appGuid ? { app_guid: appGuid } : {}) } : undefined;
      return {
        decision: decideBind(
          {
            accepts,
            asyncOnly: planAsynchrony(plan).bindings === 'required',
            fingerprint,
            matchesInstance: inst.facts.serviceId === b.service_id && inst.facts.planId === b.plan_id,
            ...(predecessor && predecessorId !== undefined ? { rotation: { rotatable, bindingId, predecessorId, predecessor: predecessor.facts } } : {}),
          },
          inst.facts,
          facts,
        ),
        answer: () => bindingView(entry),
        plan: {
          sync: { status: 201, body: view },
          build: () => ({
            operation: 'bind',
            ...pollingBound(plan),
            operationId: operationIdFor('bind', { instanceId, bindingId, fingerprint, ...retryBase(facts.record, unrecorded) }),
            instanceId,
            bindingId,
            serviceId: b.service_id,
            planId: b.plan_id,
            parameters: inherited ? inherited.parameters : (b.parameters ?? {}),
            context: { ...(inherited?.context ?? {}), ...(b.context ?? {}) },
            fingerprint,
            ...(bindResource ? { bindResource } : {}),
            ...(predecessorId !== undefined ? { predecessorBindingId: predecessorId } : {}),
            ...(policy ? { credentialPolicy: policy } : {}),
          }),
        },
      };
    };
    return { type: 'bind', ref: { instanceId, bindingId }, decideNow };
  }

  async unbind(instanceId: string, bindingId: string, q: { service_id: string; plan_id: string }, accepts: boolean, origin?: RequestOrigin): Promise<OsbAnswer<OperationBody>> {
    const { plan } = this.plans.planOf(q.service_id, q.plan_id);
    const fingerprint = requestFingerprint({ unbind: bindingId });
    return this.carryOut('unbind', { instanceId, bindingId }, this.bindingAccepts(q, accepts), async () => {
      const { entry, facts, unrecorded } = await this.bindingFacts(instanceId, bindingId);
      return {
        decision: decideUnbind({ accepts, asyncOnly: planAsynchrony(plan).bindings === 'required', fingerprint }, facts),
        answer: () => ({}),
        plan: {
          sync: { status: 200, body: async () => ({}) },
          build: () => ({
            operation: 'unbind',
            operationId: operationIdFor('unbind', { instanceId, bindingId, fingerprint, ...previousOf(facts.record, unrecorded) }),
            instanceId,
            bindingId,
            serviceId: entry.get<string>(RegistryKey.ServiceID) ?? q.service_id,
            planId: entry.get<string>(RegistryKey.PlanID) ?? q.plan_id,
            parameters: entry.get<Json>(RegistryKey.Parameters) ?? {},
            context: entry.get<Json>(RegistryKey.Context) ?? {},
            fingerprint,
            ...optional('expiryWorkflowId', entry.get<string>(BrokerflowKey.ExpiryWorkflowID)),
          }),
        },
      };
    }, origin);
  }

  async fetchBinding(instanceId: string, bindingId: string): Promise<OsbAnswer<BindingBody>> {
    const { entry, facts } = await this.bindingFacts(instanceId, bindingId);
    const decision = decideFetchBinding(facts);
    if (decision.kind === 'error') throw refusal(decision);
    const found = findPlan(this.deps.catalog, entry.get<string>(RegistryKey.ServiceID) ?? '', entry.get<string>(RegistryKey.PlanID) ?? '');
    if (found && !found.service.bindings_retrievable) throw badRequest('bindings of this service are not retrievable');
    return answer(200, bindingView(entry));
  }
}

const noPlan: Intent<OperationBody> = {
  sync: { status: 200, body: async () => ({}) },
  build: () => {
    throw new Error('no operation to build for a refused request');
  },
};

/** The OSB error a refusing decision answers with. */
function refusal(decision: Extract<Decision, { kind: 'error' }>): OsbError {
  return decision.error ? unprocessable(decision.error, decision.description) : new OsbError(decision.status, decision.description);
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

/**
 * What a create (provision, bind) derives its operation ID from: a later run that recorded nothing (refused), the
 * failed attempt it retries, or the deleted incarnation it replaces. An in-progress or successful one is answered
 * before an ID is needed.
 */
function retryBase(current: OperationFact | undefined, unrecorded: string | undefined): { previousOperationId?: string } {
  if (unrecorded) return { previousOperationId: unrecorded };
  return current && (current.state === 'failed' || current.gone) ? { previousOperationId: current.operationId } : {};
}

/**
 * What an update, deprovision or unbind derives its operation ID from: the entry's last operation, or a later run
 * that recorded nothing (a refused one), so that an identical retry after it gets a new ID and runs.
 */
function previousOf(record: OperationFact | undefined, unrecorded: string | undefined): { previousOperationId?: string } {
  if (unrecorded) return { previousOperationId: unrecorded };
  return record ? { previousOperationId: record.operationId } : {};
}

/** Pollers may send no operation, or a type name instead of the ID: only a real ID narrows the lookup. */
function opFilter(operation: string | undefined): { operationId?: string } {
  if (!operation || /^(provision|update|deprovision|bind|unbind)$/.test(operation)) return {};
  return { operationId: operation };
}

function answerLastOperation(s: OperationStatus, retryAfter: string): OsbAnswer<LastOperationBody> {
  if (s.gone && s.state === 'succeeded') throw gone(`${s.operation === 'unbind' ? 'binding' : 'instance'} was deleted by operation ${s.operationId}`);
  const body: LastOperationBody = { state: s.state, ...(s.description ? { description: s.description } : {}) };
  if (s.state === 'failed' && s.operation === 'update') Object.assign(body, { instance_usable: true, update_repeatable: true });
  if (s.state === 'failed' && s.operation === 'deprovision') Object.assign(body, { instance_usable: false });
  return answer(200, body, s.state === 'in progress' ? { 'Retry-After': retryAfter } : undefined);
}

function dashboard(e: Entry): OperationBody {
  const url = e.get<string>('dashboard-url');
  return url ? { dashboard_url: url } : {};
}

function bindingView(e: Entry): BindingBody {
  const expiresAt = e.get<string>(BrokerflowKey.ExpiresAt);
  const renewBefore = e.get<string>(BrokerflowKey.RenewBefore);
  return {
    credentials: e.get<Json>('credentials') ?? {},
    parameters: e.get<Json>('parameters') ?? {},
    ...(expiresAt ? { metadata: { expires_at: expiresAt, ...(renewBefore ? { renew_before: renewBefore } : {}) } } : {}),
  };
}

/** What last_operation says of a bind whose credentials have since expired. */
function expiredDescription(expiredAt: string): string {
  return `the binding's credentials expired at ${expiredAt} and were revoked`;
}

/** The plan's maximum_polling_duration, which the workflow keeps (docs/design/contracts/operations.md#polling-bounds). */
function pollingBound(plan: { maximum_polling_duration?: number }): Pick<OperationInput, 'maximumPollingSeconds'> {
  return plan.maximum_polling_duration ? { maximumPollingSeconds: plan.maximum_polling_duration } : {};
}
