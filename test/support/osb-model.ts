// A pure reference model of the OSB v2.17 semantics brokerflow promises (docs/design/osb-semantics.md). No I/O and
// nothing from the product: the catalog facts it needs are restated below, and every contract row is encoded
// again, independently of client/broker. For a request and a world it lists the allowed answers (status, body
// shape, state afterwards); `explain` then finds the worlds that account for observed answers, including answers
// to concurrent requests (some order of the requests, plus the completions of operations that ran meanwhile).
//
// The model is nondeterministic only where the contract is: callers keep a *set* of candidate worlds and every
// observation narrows it. The places where timing decides are few and each is commented with ALLOWANCE.
import { APP_BOUND_PLAN, ASYNC_ONLY_PLAN, PLAN, SERVICE } from './osb';

export type Json = Record<string, unknown>;
export type OpType = 'provision' | 'update' | 'deprovision' | 'bind' | 'unbind';
export type OpState = 'in progress' | 'succeeded' | 'failed';

// ---- the catalog, restated (config/catalog.example.yaml) ------------------------------------------------------

/** What the model knows about a plan. */
export interface PlanFacts {
  id: string;
  name: 'standard' | 'async-only' | 'app-bound';
  asyncOnly: boolean;
  requiresApp: boolean;
  maintenance: string;
  /** Parameter schemas: true = valid. Absent = the plan has none (anything goes). */
  create?: (p: Json) => boolean;
  update?: (p: Json) => boolean;
  bind?: (p: Json) => boolean;
}

const onlyKeys = (p: Json, keys: string[]) => Object.keys(p).every((k) => keys.includes(k));
/** `quotaKeys: integer 1..100000`, nothing else. */
const quotaSchema = (p: Json) =>
  onlyKeys(p, ['quotaKeys']) && (p.quotaKeys === undefined || (Number.isInteger(p.quotaKeys) && (p.quotaKeys as number) >= 1 && (p.quotaKeys as number) <= 100000));
/** `readOnly: boolean`, nothing else. */
const readOnlySchema = (p: Json) => onlyKeys(p, ['readOnly']) && (p.readOnly === undefined || typeof p.readOnly === 'boolean');

export const PLANS: readonly PlanFacts[] = [
  { id: PLAN, name: 'standard', asyncOnly: false, requiresApp: false, maintenance: '1.0.0', create: quotaSchema, update: quotaSchema, bind: readOnlySchema },
  { id: ASYNC_ONLY_PLAN, name: 'async-only', asyncOnly: true, requiresApp: false, maintenance: '1.0.0' },
  { id: APP_BOUND_PLAN, name: 'app-bound', asyncOnly: false, requiresApp: true, maintenance: '1.0.0' },
];
export const planById = (id: unknown): PlanFacts | undefined => PLANS.find((p) => p.id === id);
const planOf = (id: string): PlanFacts => {
  const p = planById(id);
  if (!p) throw new Error(`model: unknown plan ${id}`);
  return p;
};
/** The one service of the catalog (bindable, plan_updateable, instances and bindings retrievable). */
export const SERVICE_ID = SERVICE;

// ---- requests and answers --------------------------------------------------------------------------------------

/** Request headers as the harness varies them. */
export interface WireHeaders {
  auth: 'ok' | 'none' | 'wrong';
  /** X-Broker-API-Version, or null to leave it out. */
  version: string | null;
  /** `Content-Type: application/json` on a request without a body (DELETE, GET). */
  jsonNoBody?: boolean;
}

interface Base {
  headers: WireHeaders;
  instance: string;
}
export type Request =
  | (Base & { kind: 'provision'; async: boolean; body: unknown })
  | (Base & { kind: 'update'; async: boolean; body: unknown })
  | (Base & { kind: 'deprovision'; async: boolean; query: Record<string, string> })
  | (Base & { kind: 'fetchInstance' })
  | (Base & { kind: 'instanceLastOp'; operation?: string })
  | (Base & { kind: 'bind'; binding: string; async: boolean; body: unknown })
  | (Base & { kind: 'unbind'; binding: string; async: boolean; query: Record<string, string> })
  | (Base & { kind: 'fetchBinding'; binding: string })
  | (Base & { kind: 'bindingLastOp'; binding: string; operation?: string });

/** What the broker answered: status and parsed JSON body (undefined when the body is not JSON). */
export interface Answer {
  status: number;
  body: unknown;
}

// ---- the world -------------------------------------------------------------------------------------------------

export type InstanceState = 'absent' | 'provisioning' | 'provision-failed' | 'ready' | 'updating' | 'deprovisioning';
export type BindingState = 'absent' | 'binding' | 'bind-failed' | 'bound' | 'unbinding';

/** What makes two provisions identical (service is the catalog's only one). */
export interface InstanceAttrs {
  planId: string;
  parameters: Json;
  org: string;
  space: string;
}
/** The applied (or an update's target) values of an instance. */
export interface Applied extends InstanceAttrs {
  maintenance: string;
}
/** An operation as last_operation reports it. */
export interface OpRecord {
  id: string;
  type: OpType;
  state: OpState;
  /** A successful deprovision/unbind (or a deprovision that removed the binding): 410 Gone. */
  gone?: boolean;
}

export interface InstanceModel {
  state: InstanceState;
  /** The attributes of the running or failed provision (provisioning, provision-failed). */
  requested?: InstanceAttrs;
  /** What a successful provision or update applied (ready, updating, deprovisioning). */
  applied?: Applied;
  /** The running update's target (updating). */
  pending?: Applied;
  /** The last instance operation that ran. */
  last?: OpRecord;
  /** A newer operation that was refused at its start (records nothing; see ALLOWANCE "refused"). */
  refused?: OpRecord;
  /** Someone else's key sits in the instance's etcd prefix: its provision fails (harness fault injection). */
  poisoned: boolean;
}

export interface BindAttrs {
  parameters: Json;
  appGuid?: string;
  bindResource?: Json;
}
export interface BindingModel {
  /** The instance the binding belongs to (state other than absent). */
  owner?: string;
  state: BindingState;
  attrs?: BindAttrs;
  /** The credentials as first seen (a GET or a 200/201 answer); unknown until then. */
  credentials?: Json;
  /** The last binding operation, with the instance path it ran under. */
  last?: OpRecord & { instance: string };
  refused?: OpRecord & { instance: string };
}

/** A sync request of a burst waiting for an operation (index into the burst's requests). */
export interface Waiter {
  req: number;
  joined: boolean;
}

/** An operation that runs (a Temporal run that has not ended). */
export interface InFlight {
  /** The operation ID; `?<n>` until an answer names it (a synchronous start never does). */
  id: string;
  type: OpType;
  instance: string;
  binding?: string;
  /** The op will end at once as failed without effect (ALLOWANCE "refused"); `noop`: succeeds without effect. */
  fate?: 'refused' | 'noop';
  provision?: InstanceAttrs;
  target?: Applied;
  bind?: BindAttrs;
  /** The binding as it was before the op started (restored when the op loses the instance's lock). */
  prior?: BindingModel;
  waiters: Waiter[];
}

export interface World {
  instances: Record<string, InstanceModel>;
  bindings: Record<string, BindingModel>;
  ops: Record<string, InFlight>;
  /** False while the harness holds the worker stopped: nothing completes. */
  workerRunning: boolean;
  nextPlaceholder: number;
}

export function emptyWorld(): World {
  return { instances: {}, bindings: {}, ops: {}, workerRunning: true, nextPlaceholder: 0 };
}

const clone = <T>(v: T): T => structuredClone(v);
export const inst = (w: World, id: string): InstanceModel => w.instances[id] ?? { state: 'absent', poisoned: false };
export const bnd = (w: World, id: string): BindingModel => w.bindings[id] ?? { state: 'absent' };

/** Stable JSON (sorted keys) for equality and de-duplication. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Json;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}
const same = (a: unknown, b: unknown) => canonical(a) === canonical(b);

/** In-flight operations on an instance's workflow (`instance/<id>`), or on a binding's (`binding/<id>`). */
const instanceOps = (w: World, id: string) => Object.values(w.ops).filter((o) => !o.binding && o.instance === id);
const bindingOpsOfInstance = (w: World, id: string) => Object.values(w.ops).filter((o) => o.binding && o.instance === id);
const bindingWorkflowOps = (w: World, bid: string) => Object.values(w.ops).filter((o) => o.binding === bid);

// ---- expected answers ------------------------------------------------------------------------------------------

/** How an answer's body must look. */
export type BodyRule =
  | { t: 'error'; code?: string }
  /** Exactly `{}`. */
  | { t: 'empty' }
  /** `{}` or `{dashboard_url}`, never an operation. */
  | { t: 'dashboard' }
  /** A JSON object (410 Gone: OSB says `{}`, an error body is fine too). */
  | { t: 'object' }
  | { t: 'instance'; view: Json }
  /** Credentials of a binding (recorded when first seen, equal afterwards), and its parameters if shown. */
  | { t: 'credentials'; binding: string; parameters: Json }
  | { t: 'lastop'; state: OpState; updateFlags?: boolean };

export interface Expect {
  status: number;
  body: BodyRule;
}

/** One way the contract lets the broker handle a request in a world. */
export type Decision =
  | { kind: 'reply'; row: string; expect: Expect[] }
  | { kind: 'start'; row: string; op: StartSpec }
  | { kind: 'join'; row: string; opId: string }
  | { kind: 'interrupt'; row: string; provisionOp: string };

/** What an operation start needs. */
export interface StartSpec {
  type: OpType;
  instance: string;
  binding?: string;
  provision?: InstanceAttrs;
  target?: Applied;
  bind?: BindAttrs;
}

const err = (status: number, code?: string): Expect => ({ status, body: code ? { t: 'error', code } : { t: 'error' } });
const reply = (row: string, ...expect: Expect[]): Decision => ({ kind: 'reply', row, expect });

// ---- checks common to all requests ------------------------------------------------------------------------------

const ID = /^[A-Za-z0-9._~-]{1,200}$/;
const isObj = (v: unknown): v is Json => !!v && typeof v === 'object' && !Array.isArray(v);
const nonEmptyStr = (v: unknown) => typeof v === 'string' && v.length > 0;
const optObj = (b: Json, k: string) => b[k] === undefined || isObj(b[k]);
const maintenanceOk = (b: Json) =>
  b.maintenance_info === undefined || (isObj(b.maintenance_info) && nonEmptyStr(b.maintenance_info.version) && (b.maintenance_info.version as string).length <= 100);

/** Rows 1–4 of "Checks common to all requests": 401, 412, 400 for IDs, bodies, queries, catalog and parameters. */
function commonChecks(r: Request): Decision | undefined {
  if (r.headers.auth !== 'ok') return reply('common 1: authentication', err(401));
  const v = r.headers.version === null ? null : /^2\.(\d+)$/.exec(r.headers.version);
  if (!v || Number(v[1]) < 13 || Number(v[1]) > 17) return reply('common 1: X-Broker-API-Version 2.13–2.17', err(412));
  if (!ID.test(r.instance) || ('binding' in r && !ID.test(r.binding))) return reply('common 2: path IDs', err(400));
  const bad = (why: string) => reply(`common ${why}`, err(400));
  switch (r.kind) {
    case 'provision': {
      const b = r.body;
      if (!isObj(b)) return bad('3: body');
      for (const k of ['service_id', 'plan_id', 'organization_guid', 'space_guid']) if (!nonEmptyStr(b[k])) return bad(`3: provision requires non-empty ${k}`);
      if (!optObj(b, 'parameters') || !optObj(b, 'context') || !maintenanceOk(b)) return bad('3: body schema');
      if (b.service_id !== SERVICE_ID || !planById(b.plan_id)) return bad('4: unknown service or plan');
      const plan = planOf(b.plan_id as string);
      if (plan.create && !plan.create((b.parameters as Json | undefined) ?? {})) return bad('4: invalid parameters');
      return undefined;
    }
    case 'update': {
      const b = r.body;
      if (!isObj(b)) return bad('3: body');
      if (!nonEmptyStr(b.service_id)) return bad('3: update requires service_id');
      if ((b.plan_id !== undefined && typeof b.plan_id !== 'string') || !optObj(b, 'parameters') || !optObj(b, 'context') || !maintenanceOk(b)) return bad('3: body schema');
      if (b.service_id !== SERVICE_ID || (b.plan_id !== undefined && !planById(b.plan_id))) return bad('4: unknown service or plan');
      // With a plan_id the schema is known before any state is read; without, see the PATCH rows.
      const plan = b.plan_id !== undefined ? planOf(b.plan_id as string) : undefined;
      if (plan?.update && !plan.update((b.parameters as Json | undefined) ?? {})) return bad('4: invalid parameters');
      return undefined;
    }
    case 'bind': {
      const b = r.body;
      if (!isObj(b)) return bad('3: body');
      if (!nonEmptyStr(b.service_id) || !nonEmptyStr(b.plan_id)) return bad('3: bind requires service_id and plan_id');
      if (!optObj(b, 'parameters') || !optObj(b, 'context') || !optObj(b, 'bind_resource') || (b.app_guid !== undefined && typeof b.app_guid !== 'string')) {
        return bad('3: body schema');
      }
      if (b.service_id !== SERVICE_ID || !planById(b.plan_id)) return bad('4: unknown service or plan');
      const plan = planOf(b.plan_id as string);
      if (plan.bind && !plan.bind((b.parameters as Json | undefined) ?? {})) return bad('4: invalid parameters');
      return undefined;
    }
    case 'deprovision':
    case 'unbind': {
      const q = r.query;
      if (!nonEmptyStr(q.service_id) || !nonEmptyStr(q.plan_id)) return bad('3: DELETE requires service_id and plan_id in the query');
      if (q.service_id !== SERVICE_ID || !planById(q.plan_id)) return bad('4: unknown service or plan');
      return undefined;
    }
    default:
      return undefined;
  }
}

// ---- the decision table ----------------------------------------------------------------------------------------

function provisionAttrs(b: Json): InstanceAttrs {
  return { planId: b.plan_id as string, parameters: (b.parameters as Json | undefined) ?? {}, org: b.organization_guid as string, space: b.space_guid as string };
}
const attrsOf = (a: Applied | InstanceAttrs): InstanceAttrs => ({ planId: a.planId, parameters: a.parameters, org: a.org, space: a.space });

function bindAttrs(b: Json): BindAttrs {
  const br = isObj(b.bind_resource) ? b.bind_resource : undefined;
  const app = typeof b.app_guid === 'string' ? b.app_guid : typeof br?.app_guid === 'string' ? br.app_guid : undefined;
  return { parameters: (b.parameters as Json | undefined) ?? {}, ...(app !== undefined ? { appGuid: app } : {}), ...(br ? { bindResource: br } : {}) };
}

/** The instance's plan, when it has one (applied, else the provision's). */
function instancePlan(i: InstanceModel): PlanFacts | undefined {
  const id = i.applied?.planId ?? i.requested?.planId;
  return id ? planOf(id) : undefined;
}

/** Every way the contract allows the broker to handle `r` in world `w`. */
export function decide(w: World, r: Request): Decision[] {
  const common = commonChecks(r);
  if (common) return [common];
  switch (r.kind) {
    case 'provision':
      return decideProvision(w, r.instance, r.body as Json, r.async);
    case 'update':
      return decideUpdate(w, r.instance, r.body as Json, r.async);
    case 'deprovision':
      return decideDeprovision(w, r.instance, r.async, r.query.plan_id!);
    case 'fetchInstance':
      return decideFetchInstance(w, r.instance);
    case 'instanceLastOp':
      return [reply('Instances: last_operation', ...instanceLastOpAnswers(w, r.instance))];
    case 'bind':
      return decideBind(w, r.instance, r.binding, r.body as Json, r.async);
    case 'unbind':
      return decideUnbind(w, r.instance, r.binding, r.async, r.query.plan_id!);
    case 'fetchBinding': {
      const b = bnd(w, r.binding);
      if (b.owner === r.instance && b.state === 'bound') {
        return [reply('Bindings: GET bound', { status: 200, body: { t: 'credentials', binding: r.binding, parameters: b.attrs?.parameters ?? {} } })];
      }
      return [reply('Bindings: GET anything but bound (includes another instance\'s binding)', err(404))];
    }
    case 'bindingLastOp':
      return [reply('Bindings: last_operation', ...bindingLastOpAnswers(w, r.instance, r.binding))];
  }
}

function decideProvision(w: World, id: string, b: Json, async: boolean): Decision[] {
  const plan = planOf(b.plan_id as string);
  if (isObj(b.maintenance_info) && b.maintenance_info.version !== plan.maintenance) {
    return [reply('Instances: PUT maintenance_info.version ≠ plan\'s', err(422, 'MaintenanceInfoConflict'))];
  }
  const i = inst(w, id);
  const attrs = provisionAttrs(b);
  switch (i.state) {
    case 'ready':
      return same(attrsOf(i.applied!), attrs)
        ? [reply('Instances: PUT ready, identical', { status: 200, body: { t: 'dashboard' } })]
        : [reply('Instances: PUT ready, different', err(409))];
    case 'updating':
    case 'deprovisioning':
      return [reply('Instances: PUT updating or deprovisioning', err(422, 'ConcurrencyError'))];
    case 'provisioning': {
      const running = instanceOps(w, id).find((o) => o.type === 'provision');
      if (running && same(i.requested, attrs)) return [{ kind: 'join', row: 'Instances: PUT provisioning, identical', opId: running.id }];
      return [reply('Instances: PUT provisioning, different', err(409))];
    }
    case 'absent':
    case 'provision-failed':
      if (plan.asyncOnly && !async) return [reply('Instances: PUT absent/provision-failed, async-only plan without accepts_incomplete', err(422, 'AsyncRequired'))];
      return [{ kind: 'start', row: 'Instances: PUT absent/provision-failed: start provision', op: { type: 'provision', instance: id, provision: attrs } }];
  }
}

function decideUpdate(w: World, id: string, b: Json, async: boolean): Decision[] {
  const i = inst(w, id);
  if (i.state === 'absent' || i.state === 'provision-failed') return [reply('Instances: PATCH absent or provision-failed', err(404))];
  const params = (b.parameters as Json | undefined) ?? {};
  if (i.state === 'provisioning') {
    const d = reply('Instances: PATCH provisioning', err(422, 'ConcurrencyError'));
    // ALLOWANCE "PATCH schema without plan_id": the contract checks parameters against "the plan's schema" before
    // reading state, but without a plan_id the plan is the instance's; either check may come first.
    const plan = instancePlan(i);
    if (b.plan_id === undefined && plan?.update && !plan.update(params)) return [d, reply('common 4: invalid parameters (instance\'s plan)', err(400))];
    return [d];
  }
  // deprovisioning with nothing applied (an interrupted provision, a failed one being cleaned up): like the
  // ready cases below it is 422, there is just no applied plan to check against.
  if (!i.applied) return [reply('Instances: PATCH deprovisioning', err(422, 'ConcurrencyError'))];
  const current = planOf(i.applied.planId);
  const targetPlan = b.plan_id !== undefined ? planOf(b.plan_id as string) : current;
  // service_id ≠ instance's and non-updateable plan changes cannot happen with this catalog (one service, all
  // plans updateable); an unknown service is a common-check 400.
  if (b.plan_id === undefined && current.update && !current.update(params)) return [reply('common 4: invalid parameters (instance\'s plan)', err(400))];
  if (isObj(b.maintenance_info) && b.maintenance_info.version !== targetPlan.maintenance) {
    return [reply('Instances: PATCH maintenance_info.version ≠ target plan\'s', err(422, 'MaintenanceInfoConflict'))];
  }
  // A PATCH without maintenance_info keeps the applied version; a plan change takes the new plan's.
  const maintenance = isObj(b.maintenance_info)
    ? (b.maintenance_info.version as string)
    : targetPlan.id !== current.id
      ? targetPlan.maintenance
      : i.applied.maintenance;
  const target: Applied = { ...i.applied, planId: targetPlan.id, parameters: { ...i.applied.parameters, ...params }, maintenance };
  if (i.state === 'updating') {
    const running = instanceOps(w, id).find((o) => o.type === 'update');
    if (running && same(i.pending, target)) return [{ kind: 'join', row: 'Instances: PATCH updating, identical target', opId: running.id }];
    return [reply('Instances: PATCH updating (different)', err(422, 'ConcurrencyError'))];
  }
  if (i.state === 'deprovisioning') return [reply('Instances: PATCH deprovisioning', err(422, 'ConcurrencyError'))];
  const applied = i.applied;
  return unlessUnseenBindingOps(w, id, reply('Instances: PATCH while a binding operation runs', err(422, 'ConcurrencyError')), () => {
    if (same(target, applied)) return [reply('Instances: PATCH ready, target equals what is applied', { status: 200, body: { t: 'empty' } })];
    const start: Decision = { kind: 'start', row: 'Instances: PATCH ready: start update', op: { type: 'update', instance: id, target } };
    const asyncRequired = reply('Instances: PATCH ready, async-only plan without accepts_incomplete', err(422, 'AsyncRequired'));
    if (async) return [start];
    // ALLOWANCE "async-only plan change": the row does not say whether the current or the target plan counts; when
    // only one of them is async-only either answer is allowed.
    if (targetPlan.asyncOnly && current.asyncOnly) return [asyncRequired];
    if (targetPlan.asyncOnly || current.asyncOnly) return [asyncRequired, start];
    return [start];
  });
}

/**
 * The "async-only plan without accepts_incomplete" rows of DELETE, for a start decision.
 * ALLOWANCE "DELETE plan_id": the rows do not say whether the instance's plan or the plan_id of the query counts;
 * when they differ and only one of them is async-only, either answer is allowed.
 */
function asyncRuleForDelete(instancePlanId: string | undefined, queryPlanId: string, async: boolean, asyncRequired: Decision, start: Decision): Decision[] {
  if (async) return [start];
  const a = instancePlanId ? planOf(instancePlanId).asyncOnly : false;
  const b = planOf(queryPlanId).asyncOnly;
  if (a && b) return [asyncRequired];
  if (a || b) return [asyncRequired, start];
  return [start];
}

function decideDeprovision(w: World, id: string, async: boolean, queryPlan: string): Decision[] {
  const i = inst(w, id);
  switch (i.state) {
    case 'absent':
      return [reply('Instances: DELETE absent', { status: 410, body: { t: 'object' } })];
    case 'deprovisioning': {
      const running = instanceOps(w, id).find((o) => o.type === 'deprovision');
      return running ? [{ kind: 'join', row: 'Instances: DELETE deprovisioning', opId: running.id }] : [];
    }
    case 'provisioning': {
      const running = instanceOps(w, id).find((o) => o.type === 'provision');
      return running ? [{ kind: 'interrupt', row: 'Instances: DELETE provisioning: the provision continues as a deprovision', provisionOp: running.id }] : [];
    }
    case 'updating':
      return [reply('Instances: DELETE updating', err(422, 'ConcurrencyError'))];
    case 'ready':
    case 'provision-failed':
      return unlessUnseenBindingOps(w, id, reply('Instances: DELETE while a binding operation runs', err(422, 'ConcurrencyError')), () => asyncRuleForDelete(
        instancePlan(i)?.id,
        queryPlan,
        async,
        reply('Instances: DELETE ready/provision-failed, async-only plan without accepts_incomplete', err(422, 'AsyncRequired')),
        { kind: 'start', row: 'Instances: DELETE ready/provision-failed: start deprovision', op: { type: 'deprovision', instance: id } },
      ));
  }
}

/**
 * The "a binding operation runs" rows of PATCH and DELETE.
 * ALLOWANCE "unseen binding operation": the broker sees a binding operation by the share of the instance's lock
 * that its first activity takes. One that was started but has not run that activity yet (the worker is stopped,
 * or it races in a burst) is invisible, so the answer may also be the one for no binding operation; the instance
 * lock allowance in `complete` then decides how both end.
 */
function unlessUnseenBindingOps(w: World, id: string, busy: Decision, otherwise: () => Decision[]): Decision[] {
  if (bindingOpsOfInstance(w, id).length === 0) return otherwise();
  return [busy, ...otherwise()];
}

function decideFetchInstance(w: World, id: string): Decision[] {
  const i = inst(w, id);
  if (i.state === 'absent' || i.state === 'provisioning' || i.state === 'provision-failed') return [reply('Instances: GET absent/provisioning/provision-failed', err(404))];
  if (i.state === 'updating') return [reply('Instances: GET updating', err(422, 'ConcurrencyError'))];
  // Interpretation: a deprovision of an instance that was never provisioned (interrupted or failed provision) has
  // nothing applied to show, like provision-failed: 404.
  if (!i.applied) return [reply('Instances: GET deprovisioning a never-provisioned instance', err(404))];
  const a = i.applied;
  return [
    reply('Instances: GET otherwise: the applied values', {
      status: 200,
      body: { t: 'instance', view: { service_id: SERVICE_ID, plan_id: a.planId, parameters: a.parameters, maintenance_info: { version: a.maintenance } } },
    }),
  ];
}

function decideBind(w: World, id: string, bid: string, b: Json, async: boolean): Decision[] {
  const bodyPlan = planOf(b.plan_id as string);
  const attrs = bindAttrs(b);
  if (bodyPlan.requiresApp && attrs.appGuid === undefined) return [reply('Bindings: PUT plan requires an application and none is named', err(422, 'RequiresApp'))];
  const i = inst(w, id);
  if (i.state === 'absent' || i.state === 'provision-failed') return [reply('Bindings: PUT instance absent or provision-failed', err(404))];
  if (i.state !== 'ready') return [reply('Bindings: PUT instance provisioning, updating or deprovisioning', err(422, 'ConcurrencyError'))];
  if (b.plan_id !== i.applied!.planId) return [reply('Bindings: PUT service_id/plan_id not the instance\'s', err(400))];
  const x = bnd(w, bid);
  if (x.state !== 'absent' && x.owner !== id) return [reply('Bindings: PUT the binding ID belongs to another instance', err(409))];
  switch (x.state) {
    case 'bound':
      return same(x.attrs, attrs)
        ? [reply('Bindings: PUT bound, identical', { status: 200, body: { t: 'credentials', binding: bid, parameters: x.attrs!.parameters } })]
        : [reply('Bindings: PUT bound, different', err(409))];
    case 'binding': {
      const running = bindingWorkflowOps(w, bid).find((o) => o.type === 'bind');
      if (running && same(x.attrs, attrs)) return [{ kind: 'join', row: 'Bindings: PUT binding, identical', opId: running.id }];
      return [reply('Bindings: PUT binding, different', err(409))];
    }
    case 'unbinding':
      return [reply('Bindings: PUT unbinding', err(422, 'ConcurrencyError'))];
    case 'absent':
    case 'bind-failed':
      if (bodyPlan.asyncOnly && !async) return [reply('Bindings: PUT absent/bind-failed, async-only plan without accepts_incomplete', err(422, 'AsyncRequired'))];
      return [{ kind: 'start', row: 'Bindings: PUT absent/bind-failed: start bind', op: { type: 'bind', instance: id, binding: bid, bind: attrs } }];
  }
}

function decideUnbind(w: World, id: string, bid: string, async: boolean, queryPlan: string): Decision[] {
  const x = bnd(w, bid);
  if (x.state === 'absent' || x.owner !== id) return [reply('Bindings: DELETE absent (includes another instance\'s path)', { status: 410, body: { t: 'object' } })];
  switch (x.state) {
    case 'binding':
      return [reply('Bindings: DELETE binding', err(422, 'ConcurrencyError'))];
    case 'unbinding': {
      const running = bindingWorkflowOps(w, bid).find((o) => o.type === 'unbind');
      return running ? [{ kind: 'join', row: 'Bindings: DELETE unbinding', opId: running.id }] : [];
    }
    case 'bound':
    case 'bind-failed':
      return asyncRuleForDelete(
        instancePlan(inst(w, id))?.id,
        queryPlan,
        async,
        reply('Bindings: DELETE bound/bind-failed, async-only plan without accepts_incomplete', err(422, 'AsyncRequired')),
        { kind: 'start', row: 'Bindings: DELETE bound/bind-failed: start unbind', op: { type: 'unbind', instance: id, binding: bid } },
      );
  }
}

// ---- last_operation --------------------------------------------------------------------------------------------

const lastOpExpect = (r: OpRecord, refused = false): Expect[] => {
  if (r.gone && r.state === 'succeeded') return [{ status: 410, body: { t: 'object' } }];
  return [{ status: 200, body: { t: 'lastop', state: r.state, ...(r.type === 'update' && r.state === 'failed' && !refused ? { updateFlags: true } : {}) } }];
};

/**
 * ALLOWANCE "refused": an operation started on a state that moved meanwhile (a race) records nothing and ends
 * failed; the contract says its last_operation "answers failed, or 410 when the instance is gone". Until another
 * operation begins on the entry, a poll for it — or for the latest operation — may get that answer or the one of
 * the last recorded operation. Refused operations only arise from concurrent requests.
 */
function withRefused(base: Expect[], refused: OpRecord | undefined, instanceGone: boolean): Expect[] {
  if (!refused) return base;
  if (refused.state === 'in progress') return [{ status: 200, body: { t: 'lastop', state: 'in progress' } }];
  return [...base, { status: 200, body: { t: 'lastop', state: refused.state } }, ...(instanceGone ? [{ status: 410, body: { t: 'object' } as BodyRule }] : [])];
}

/** What GET /v2/service_instances/:id/last_operation may answer (with or without an operation ID). */
export function instanceLastOpAnswers(w: World, id: string): Expect[] {
  const i = inst(w, id);
  const base = i.last ? lastOpExpect(i.last) : [err(404)];
  return withRefused(base, i.refused, i.state === 'absent');
}

/** What GET .../service_bindings/:bid/last_operation under instance `id` may answer. */
export function bindingLastOpAnswers(w: World, id: string, bid: string): Expect[] {
  const b = bnd(w, bid);
  // Never recorded under this instance (includes another instance's binding): 404.
  const base = b.last && b.last.instance === id ? lastOpExpect(b.last) : [err(404)];
  return withRefused(base, b.refused?.instance === id ? b.refused : undefined, inst(w, id).state === 'absent');
}

// ---- starting and completing operations --------------------------------------------------------------------------

/** Starts an operation (state moves to provisioning, updating, ... and the op runs). */
function startOp(w0: World, spec: StartSpec, id: string): World {
  const w = clone(w0);
  const op: InFlight = { id, type: spec.type, instance: spec.instance, waiters: [] };
  const rec: OpRecord = { id, type: spec.type, state: 'in progress' };
  if (spec.binding) {
    const b = bnd(w, spec.binding);
    op.binding = spec.binding;
    op.prior = clone(b);
    if (spec.type === 'bind') {
      op.bind = spec.bind!;
      w.bindings[spec.binding] = { owner: spec.instance, state: 'binding', attrs: spec.bind!, last: { ...rec, instance: spec.instance } };
    } else {
      w.bindings[spec.binding] = { ...b, state: 'unbinding', last: { ...rec, instance: spec.instance }, refused: undefined };
    }
  } else {
    const i = inst(w, spec.instance);
    if (spec.type === 'provision') {
      op.provision = spec.provision!;
      w.instances[spec.instance] = { state: 'provisioning', requested: spec.provision!, last: rec, poisoned: i.poisoned };
    } else if (spec.type === 'update') {
      op.target = spec.target!;
      w.instances[spec.instance] = { ...i, state: 'updating', pending: spec.target!, last: rec, refused: undefined };
    } else {
      w.instances[spec.instance] = { ...i, state: 'deprovisioning', last: rec, refused: undefined };
    }
  }
  w.ops[id] = op;
  return w;
}

/** Starts an operation that the state no longer allows (ALLOWANCE "refused"): it runs, then ends without effect. */
function startRefused(w0: World, spec: StartSpec, id: string, fate: 'refused' | 'noop'): World {
  const w = clone(w0);
  w.ops[id] = { id, type: spec.type, instance: spec.instance, ...(spec.binding ? { binding: spec.binding } : {}), fate, waiters: [] };
  const rec = { id, type: spec.type, state: 'in progress' as const };
  if (spec.binding) w.bindings[spec.binding] = { ...bnd(w, spec.binding), refused: { ...rec, instance: spec.instance } };
  else w.instances[spec.instance] = { ...inst(w, spec.instance), refused: rec };
  return w;
}

/**
 * Seals the fate of a binding operation that lost the instance's lock (mutates `w`, a copy): it will end
 * failed without effect, so the binding is what it was before the operation started.
 */
function sealRefused(w: World, op: InFlight): void {
  w.ops[op.id] = { ...op, fate: 'refused' };
  const rec = { id: op.id, type: op.type, state: 'in progress' as const, instance: op.instance };
  const bid = op.binding!;
  w.bindings[bid] = op.prior ? { ...clone(op.prior), refused: rec } : { ...bnd(w, bid), refused: rec };
}

/** How a completed operation ended, for its sync waiters. */
export interface Completion {
  world: World;
  op: InFlight;
  ok: boolean;
}

/**
 * The ways an in-flight operation can end. Deterministic except for binding operations that overlapped an
 * instance operation of their instance:
 * ALLOWANCE "instance lock": a binding operation and an update/deprovision of its instance that both got started
 * (concurrent requests, or an unbind while an update waits for a stopped worker) take the instance's lock in the
 * order their first activities run: the binding operation either ran first (the instance operation waited for
 * it) or was refused ("ends at once as failed"). When the instance operation ends first, the binding operation
 * can only have been refused.
 */
export function complete(w0: World, opId: string): Completion[] {
  const op = w0.ops[opId];
  if (!op) return [];
  if (op.fate) return [endRefused(w0, op)];
  if (op.binding) {
    const raced = instanceOps(w0, op.instance).some((o) => o.type !== 'provision' && !o.fate);
    const normal = endBindingOp(w0, op);
    if (!raced) return [normal];
    const lost = clone(w0);
    sealRefused(lost, op);
    return [normal, endRefused(lost, lost.ops[op.id]!)];
  }
  return [endInstanceOp(w0, op)];
}

function endRefused(w0: World, op: InFlight): Completion {
  const w = clone(w0);
  delete w.ops[op.id];
  const ok = op.fate === 'noop';
  const rec: OpRecord = { id: op.id, type: op.type, state: ok ? 'succeeded' : 'failed' };
  if (op.binding) w.bindings[op.binding] = { ...bnd(w, op.binding), refused: { ...rec, instance: op.instance } };
  else w.instances[op.instance] = { ...inst(w, op.instance), refused: rec };
  return { world: w, op, ok };
}

function endBindingOp(w0: World, op: InFlight): Completion {
  const w = clone(w0);
  delete w.ops[op.id];
  const bid = op.binding!;
  const b = bnd(w, bid);
  if (op.type === 'bind') {
    w.bindings[bid] = { ...b, owner: op.instance, state: 'bound', attrs: op.bind!, last: { id: op.id, type: 'bind', state: 'succeeded', instance: op.instance } };
  } else {
    w.bindings[bid] = { state: 'absent', last: { id: op.id, type: 'unbind', state: 'succeeded', gone: true, instance: op.instance } };
  }
  return { world: w, op, ok: true };
}

function endInstanceOp(w0: World, op: InFlight): Completion {
  const w = clone(w0);
  delete w.ops[op.id];
  // Binding operations still running on this instance ran after it took the lock: they are refused.
  for (const o of bindingOpsOfInstance(w, op.instance)) if (!o.fate) sealRefused(w, o);
  const i = inst(w, op.instance);
  const rec = (state: OpState, gone = false): OpRecord => ({ id: op.id, type: op.type, state, ...(gone ? { gone: true } : {}) });
  switch (op.type) {
    case 'provision':
      if (i.poisoned) {
        w.instances[op.instance] = { ...i, state: 'provision-failed', last: rec('failed') };
        return { world: w, op, ok: false };
      }
      w.instances[op.instance] = { ...i, state: 'ready', applied: { ...op.provision!, maintenance: planOf(op.provision!.planId).maintenance }, requested: undefined, last: rec('succeeded') };
      return { world: w, op, ok: true };
    case 'update':
      w.instances[op.instance] = { ...i, state: 'ready', applied: op.target!, pending: undefined, last: rec('succeeded') };
      return { world: w, op, ok: true };
    default: {
      // A deprovision deletes every binding of the instance and leaves a tombstone per binding (410).
      for (const [bid, b] of Object.entries(w.bindings)) {
        if (b.owner === op.instance && b.state !== 'absent') {
          w.bindings[bid] = { state: 'absent', last: { id: `${op.id}/${bid}`, type: 'unbind', state: 'succeeded', gone: true, instance: op.instance }, refused: b.refused };
        }
      }
      w.instances[op.instance] = { state: 'absent', poisoned: i.poisoned, last: rec('succeeded', true) };
      return { world: w, op, ok: true };
    }
  }
}

/** DELETE during provisioning: the provision stops and continues as a deprovision with a new operation ID. */
function interruptProvision(w0: World, provisionOp: string, deprovisionId: string): World {
  const w = clone(w0);
  const p = w.ops[provisionOp]!;
  delete w.ops[provisionOp];
  w.ops[deprovisionId] = { id: deprovisionId, type: 'deprovision', instance: p.instance, waiters: [] };
  w.instances[p.instance] = { ...inst(w, p.instance), state: 'deprovisioning', last: { id: deprovisionId, type: 'deprovision', state: 'in progress' } };
  return w;
}

/** Renames a placeholder operation ID once an answer names the operation. */
function renameOp(w0: World, from: string, to: string): World {
  if (from === to) return w0;
  const text = JSON.stringify(w0).split(JSON.stringify(from)).join(JSON.stringify(to));
  return JSON.parse(text) as World;
}

// ---- matching answers --------------------------------------------------------------------------------------------

const isNonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 10_000;

/** Checks an answer against one expectation; returns the world afterwards (credentials learnt) or undefined. */
export function matchExpect(w: World, e: Expect, a: Answer): World | undefined {
  if (a.status !== e.status || !isObj(a.body)) return undefined;
  const body = a.body;
  switch (e.body.t) {
    case 'error':
      if (typeof body.description !== 'string') return undefined;
      return e.body.code === undefined || body.error === e.body.code ? w : undefined;
    case 'empty':
      return Object.keys(body).length === 0 ? w : undefined;
    case 'dashboard':
      return Object.keys(body).every((k) => k === 'dashboard_url') ? w : undefined;
    case 'object':
      return w;
    case 'instance': {
      const { dashboard_url: _ignored, ...rest } = body;
      return same(rest, e.body.view) ? w : undefined;
    }
    case 'credentials': {
      if (!isObj(body.credentials) || Object.keys(body.credentials).length === 0) return undefined;
      if (body.parameters !== undefined && !same(body.parameters, e.body.parameters)) return undefined;
      const b = bnd(w, e.body.binding);
      if (b.credentials) return same(b.credentials, body.credentials) ? w : undefined;
      const next = clone(w);
      next.bindings[e.body.binding] = { ...b, credentials: body.credentials };
      return next;
    }
    case 'lastop': {
      if (body.state !== e.body.state) return undefined;
      if (body.description !== undefined && typeof body.description !== 'string') return undefined;
      if (e.body.updateFlags && (body.instance_usable !== true || body.update_repeatable !== true)) return undefined;
      return w;
    }
  }
}

const matchAny = (w: World, es: Expect[], a: Answer): World[] => es.map((e) => matchExpect(w, e, a)).filter((x): x is World => x !== undefined);

/** What a sync request waiting for an operation must get once it ends. */
function syncExpect(op: InFlight, ok: boolean, joined: boolean): Expect[] {
  if (!ok) return [err(500)];
  const created = joined ? [200, 201] : [201];
  switch (op.type) {
    case 'provision':
      // ALLOWANCE "sync join": "PUT provisioning, identical → (sync: waits for it)" names no code; 201 is the
      // provision's own, 200 the identical-on-ready one.
      return created.map((status) => ({ status, body: { t: 'dashboard' } }));
    case 'bind':
      return created.map((status) => ({ status, body: { t: 'credentials', binding: op.binding!, parameters: op.bind!.parameters } }));
    default:
      return [{ status: 200, body: { t: 'empty' } }];
  }
}

// ---- explaining observed answers --------------------------------------------------------------------------------

/** A start whose answer was decided on one state and whose run starts on a later one (concurrent requests). */
interface PendingStart {
  req: number;
  spec: StartSpec;
  id: string;
  sync: boolean;
}

interface Node {
  world: World;
  placed: boolean[];
  pending: PendingStart[];
}

/** Why no world explains the answers, for the divergence report. */
export interface Explanation {
  worlds: World[];
  /** Per request: the rows and answers the model allowed in the first candidate world (sequential order). */
  allowed: string[];
  /** Search states visited. */
  visited: number;
}

/** How much searching a burst may take before the harness gives up (not a divergence: the burst is too big). */
const NODE_BUDGET = 400_000;

/**
 * The worlds that explain `answers` to `requests` sent at once (one request = a sequential request). A world
 * explains them when some order of the requests, interleaved with completions of running operations, gives each
 * request an allowed answer. `completions`: 'waiters' lets only operations a sync request waits for complete (a
 * single request); 'any' lets every running operation complete meanwhile (concurrent requests, worker running).
 * ALLOWANCE "decided earlier": a start may be decided on an earlier state of the same burst and start later (the
 * broker reads state, then starts the workflow): it then starts normally if the state still allows it, joins an
 * identical run, or is refused (ends failed without effect); it may not start while its workflow runs another
 * operation (the broker would have seen that run and answered from it).
 */
export function explain(
  starts: World[],
  requests: Request[],
  answers: Answer[],
  completions: 'waiters' | 'any',
  opts: { symmetry?: boolean } = {},
): Explanation {
  const results = new Map<string, World>();
  const seen = new Set<string>();
  let budget = NODE_BUDGET;
  const n = requests.length;
  // Symmetry: two requests that are the same and got the same answer are interchangeable, so only the orders that
  // place them in index order are explored (the others reach the same worlds). Without this a burst of 6
  // identical requests explores 6! times the orders: 22 s of CPU that blocked every broker and worker in the process.
  const twinBefore = requests.map((r, i) => {
    if (opts.symmetry === false) return -1;
    for (let j = i - 1; j >= 0; j--) if (canonical(requests[j]) === canonical(r) && canonical(answers[j]) === canonical(answers[i])) return j;
    return -1;
  });

  const visit = (node: Node): void => {
    const key = canonical(node);
    if (seen.has(key)) return;
    seen.add(key);
    if (--budget < 0) throw new Error(`model: explaining a burst of ${n} requests needed more than ${NODE_BUDGET} steps`);
    const { world, placed, pending } = node;
    const waiting = Object.values(world.ops).some((o) => o.waiters.length > 0);
    if (placed.every(Boolean) && pending.length === 0 && !waiting) {
      results.set(canonical(world), world);
      return;
    }
    // 1. Place a request: decide it on the current state.
    for (let i = 0; i < n; i++) {
      if (placed[i]) continue;
      if (twinBefore[i]! >= 0 && !placed[twinBefore[i]!]) continue;
      const nextPlaced = placed.map((p, j) => p || j === i);
      for (const d of decide(world, requests[i]!)) {
        for (const child of applyDecision(world, d, requests[i]!, i, answers)) {
          visit({ world: child.world, placed: nextPlaced, pending: child.pending ? [...pending, child.pending] : pending });
        }
      }
    }
    // 2. Start a decided operation on the current state.
    for (const p of pending) {
      const rest = pending.filter((x) => x !== p);
      for (const w of effectStart(world, p)) visit({ world: w, placed, pending: rest });
    }
    // 3. Let a running operation end.
    if (world.workerRunning) {
      for (const op of Object.values(world.ops)) {
        if (completions === 'waiters' && op.waiters.length === 0) continue;
        for (const c of complete(world, op.id)) {
          const w = resolveWaiters(c, answers);
          if (w) visit({ world: w, placed, pending });
        }
      }
    }
  };

  visit({ world: starts[0]!, placed: requests.map(() => false), pending: [] });
  for (const s of starts.slice(1)) visit({ world: s, placed: requests.map(() => false), pending: [] });
  return { worlds: [...results.values()], allowed: describeAllowed(starts[0]!, requests), visited: seen.size };
}

/** The children of placing request `i` with decision `d`, given its observed answer. */
function applyDecision(w: World, d: Decision, r: Request, i: number, answers: Answer[]): Array<{ world: World; pending?: PendingStart }> {
  const a = answers[i]!;
  const isAsync = 'async' in r && r.async;
  switch (d.kind) {
    case 'reply':
      return matchAny(w, d.expect, a).map((world) => ({ world }));
    case 'join': {
      const op = w.ops[d.opId]!;
      const later = isAsync ? undefined : continuesAs(a);
      if (later !== undefined) {
        // The sync wait ran out: the request answered 500 naming the operation it joined, which goes on.
        if (op.id.startsWith('?')) return [{ world: renameOp(w, op.id, later) }];
        return later === op.id ? [{ world: w }] : [];
      }
      if (!isAsync) {
        const next = clone(w);
        next.ops[d.opId]!.waiters.push({ req: i, joined: true });
        return [{ world: next }];
      }
      if (a.status !== 202 || !isObj(a.body) || !isNonEmptyString(a.body.operation) || (op.type === 'bind' && a.body.credentials !== undefined)) return [];
      if (op.id.startsWith('?')) return [{ world: renameOp(w, op.id, a.body.operation) }];
      return a.body.operation === op.id ? [{ world: w }] : [];
    }
    case 'interrupt': {
      const p = w.ops[d.provisionOp]!;
      // A synchronous provision stopped by a DELETE answers 500, never 200/201.
      if (p.waiters.some((x) => answers[x.req]!.status !== 500)) return [];
      const later = isAsync ? undefined : continuesAs(a);
      const waits = !isAsync && later === undefined;
      let id: string;
      if (isAsync) {
        if (a.status !== 202 || !isObj(a.body) || !isNonEmptyString(a.body.operation) || a.body.operation === p.id) return [];
        id = a.body.operation;
      } else if (later !== undefined) {
        if (later === p.id) return [];
        id = later;
      } else id = `?${w.nextPlaceholder}`;
      const next = interruptProvision({ ...w, nextPlaceholder: w.nextPlaceholder + (waits ? 1 : 0) }, p.id, id);
      if (waits) next.ops[id]!.waiters.push({ req: i, joined: false });
      return [{ world: next }];
    }
    case 'start': {
      if (isAsync) {
        if (a.status !== 202 || !isObj(a.body) || !isNonEmptyString(a.body.operation) || a.body.credentials !== undefined) return [];
        const id = a.body.operation;
        // A new operation has a new ID: not the entry's last (or last refused) operation's.
        const e = d.op.binding ? bnd(w, d.op.binding) : inst(w, d.op.instance);
        if (e.last?.id === id || e.refused?.id === id) return [];
        return [{ world: w, pending: { req: i, spec: d.op, id, sync: false } }];
      }
      const later = continuesAs(a);
      if (later !== undefined) {
        // The sync wait ran out: the operation started (or joined a start) under the ID the answer names, and goes on.
        const e = d.op.binding ? bnd(w, d.op.binding) : inst(w, d.op.instance);
        if (e.last?.id === later || e.refused?.id === later) return [];
        return [{ world: w, pending: { req: i, spec: d.op, id: later, sync: false } }];
      }
      const id = `?${w.nextPlaceholder}`;
      return [{ world: { ...w, nextPlaceholder: w.nextPlaceholder + 1 }, pending: { req: i, spec: d.op, id, sync: true } }];
    }
  }
}

/**
 * A synchronous request whose operation outlived the broker's sync wait (docs/design/osb-semantics.md, "Synchronous
 * requests"): 500 naming the operation, which continues. The ID it names, or undefined for any other answer.
 */
export function continuesAs(a: Answer): string | undefined {
  if (a.status !== 500 || !isObj(a.body) || typeof a.body.description !== 'string') return undefined;
  return /did not finish within \d+ s and continues \(operation ([^)\s]+)\)/.exec(a.body.description)?.[1];
}

/** Starts a pending operation on the current state (see ALLOWANCE "decided earlier"). */
function effectStart(w: World, p: PendingStart): World[] {
  const { spec } = p;
  const wf = spec.binding ? bindingWorkflowOps(w, spec.binding) : instanceOps(w, spec.instance);
  const withWaiter = (world: World, id: string): World => {
    if (!p.sync) return world;
    const next = clone(world);
    next.ops[id]!.waiters.push({ req: p.req, joined: false });
    return next;
  };
  if (wf.length > 0) {
    // The workflow runs: the same operation ID joins it (Temporal deduplicates the start), anything else is a
    // busy start, answered from the running operation instead (another order of events covers that).
    const running = wf[0]!;
    if (!p.sync && running.id === p.id) return [w];
    return [];
  }
  const e = spec.binding ? bnd(w, spec.binding) : inst(w, spec.instance);
  // The same request already ran to its end (Temporal deduplicates starts by request ID even after the run closed).
  if (!p.sync && e.last?.id === p.id) return [w];
  if (!p.sync && e.refused?.id === p.id) return [w];
  const fate = startFate(w, spec);
  if (fate === 'start') return [withWaiter(startOp(w, spec, p.id), p.id)];
  return [withWaiter(startRefused(w, spec, p.id, fate), p.id)];
}

/** Whether an operation decided earlier may still begin on the current state. */
function startFate(w: World, spec: StartSpec): 'start' | 'refused' | 'noop' {
  const i = inst(w, spec.instance);
  switch (spec.type) {
    case 'provision':
      if (i.state === 'absent' || i.state === 'provision-failed') return 'start';
      // An identical provision that already succeeded records nothing new and succeeds.
      return i.state === 'ready' && same(attrsOf(i.applied!), spec.provision) ? 'noop' : 'refused';
    case 'update':
      return i.state === 'ready' ? 'start' : 'refused';
    case 'deprovision':
      return i.state === 'ready' || i.state === 'provision-failed' ? 'start' : 'refused';
    case 'bind': {
      const b = bnd(w, spec.binding!);
      const instanceOk = i.applied !== undefined && i.state !== 'absent' && i.state !== 'provisioning' && i.state !== 'provision-failed';
      const free = b.state === 'absent' || (b.state === 'bind-failed' && b.owner === spec.instance);
      return instanceOk && free ? 'start' : 'refused';
    }
    case 'unbind': {
      const b = bnd(w, spec.binding!);
      return b.owner === spec.instance && (b.state === 'bound' || b.state === 'bind-failed') ? 'start' : 'refused';
    }
  }
}

/** Checks the answers of the sync requests that waited for a completed operation; the world afterwards. */
function resolveWaiters(c: Completion, answers: Answer[]): World | undefined {
  let w: World | undefined = c.world;
  for (const waiter of c.op.waiters) {
    const ws: World[] = matchAny(w, syncExpect(c.op, c.ok, waiter.joined), answers[waiter.req]!);
    if (ws.length === 0) return undefined;
    w = ws[0];
  }
  return w;
}

/** The contract rows and answers allowed for each request in sequential order (for reports). */
function describeAllowed(w0: World, requests: Request[]): string[] {
  return requests.map((r) => {
    const ds = decide(w0, r);
    return ds
      .map((d) => {
        switch (d.kind) {
          case 'reply':
            return `${d.row} → ${d.expect.map(describeExpect).join(' | ')}`;
          case 'start':
            return `${d.row} → ${'async' in r && r.async ? '202 {operation: <new>}' : 'waits: ' + describeSync(d.op.type)}`;
          case 'join':
            return `${d.row} → ${'async' in r && r.async ? `202 {operation: ${d.opId}}` : 'waits for ' + d.opId}`;
          case 'interrupt':
            return `${d.row} → ${'async' in r && r.async ? '202 {operation: <new deprovision>}' : 'waits: 200 {}'}`;
        }
      })
      .join(' OR ');
  });
}

function describeSync(t: OpType): string {
  return t === 'provision' || t === 'bind' ? '201 on success, 500 on failure' : '200 {} on success, 500 on failure';
}

export function describeExpect(e: Expect): string {
  switch (e.body.t) {
    case 'error':
      return `${e.status}${e.body.code ? ` ${e.body.code}` : ''}`;
    case 'lastop':
      return `${e.status} {state: ${e.body.state}}`;
    case 'instance':
      return `${e.status} ${canonical(e.body.view)}`;
    case 'empty':
      return `${e.status} {}`;
    default:
      return `${e.status} (${e.body.t})`;
  }
}

// ---- settling: every running operation ends ------------------------------------------------------------------------

/**
 * The worlds in which every running operation has ended, each in some order, such that each operation's final
 * last_operation answer (`finals`, by operation ID as the harness polled it) is one the contract allows at some
 * point after it ended. `polled` tells how each op was polled: by instance path and binding.
 */
export function settle(starts: World[], finals: Map<string, { answer: Answer; path: { instance: string; binding?: string } }>): World[] {
  const results = new Map<string, World>();
  const seen = new Set<string>();
  let budget = NODE_BUDGET;
  const answersFor = (w: World, path: { instance: string; binding?: string }) =>
    path.binding ? bindingLastOpAnswers(w, path.instance, path.binding) : instanceLastOpAnswers(w, path.instance);
  const visit = (w: World, ended: string[], matched: string[]): void => {
    // Ops that have ended and whose final answer the current world explains.
    const nowMatched = [...matched];
    for (const id of ended) {
      if (nowMatched.includes(id)) continue;
      const f = finals.get(id);
      if (!f || matchAny(w, answersFor(w, f.path), f.answer).length > 0) nowMatched.push(id);
    }
    const key = canonical({ w, ended: [...ended].sort(), m: [...nowMatched].sort() });
    if (seen.has(key)) return;
    seen.add(key);
    if (--budget < 0) throw new Error(`model: settling needed more than ${NODE_BUDGET} steps`);
    const running = Object.keys(w.ops);
    if (running.length === 0) {
      if (ended.every((id) => nowMatched.includes(id))) {
        // Credentials seen in the final answers are not needed; keep the world as is.
        results.set(canonical(w), w);
      }
      return;
    }
    for (const id of running) {
      for (const c of complete(w, id)) {
        // A sync waiter cannot exist here: settling happens after every request got its answer.
        visit(c.world, [...ended, id], nowMatched);
      }
    }
  };
  // An operation polled because some worlds still run it may already have ended in others (it ran to its end
  // during the burst, e.g. a bind that bound before a deprovision removed it). Its final answer must be explained
  // there too: docs/design/osb-semantics.md, Bindings "last_operation | ... the instance's deprovision removed it |
  // 410" and Races "last_operation for it answers failed, or 410 when the instance is gone" — a "failed" answer is
  // only the refused run's, never that of a bind that bound and was removed. So these count as ended from the start.
  for (const s of starts) visit(s, [...finals.keys()].filter((id) => !s.ops[id]), []);
  return [...results.values()];
}

/** Whether `r` would make a synchronous request wait for an operation in some candidate world. */
export function wouldWait(worlds: World[], r: Request): boolean {
  if (!('async' in r) || r.async) return false;
  return worlds.some((w) => decide(w, r).some((d) => d.kind !== 'reply'));
}

/** Marks the worker stopped or running in every world. */
export function setWorker(worlds: World[], running: boolean): World[] {
  return worlds.map((w) => ({ ...clone(w), workerRunning: running }));
}

/** Harness fault injection: someone else's key in the instance's etcd prefix (a provision then fails). */
export function setPoisoned(worlds: World[], id: string, poisoned: boolean): World[] {
  return worlds.map((w) => {
    const next = clone(w);
    next.instances[id] = { ...inst(next, id), poisoned };
    return next;
  });
}

/** Whether the instance has an operation running in some world (fault injection waits for quiet). */
export const instanceBusy = (worlds: World[], id: string) => worlds.some((w) => Object.values(w.ops).some((o) => o.instance === id));

/** The plan the model believes an instance has (applied, else provisioning/failed), from the first world. */
export function knownPlan(worlds: World[], id: string): string | undefined {
  const i = inst(worlds[0]!, id);
  return i.applied?.planId ?? i.requested?.planId;
}

/** The operation a last_operation poll would name for an entry, when an answer told its ID. */
export function lastOpId(worlds: World[], id: string, binding?: string): string | undefined {
  const w = worlds[0]!;
  const rec = binding ? bnd(w, binding).last : inst(w, id).last;
  return rec && !rec.id.startsWith('?') && !rec.id.includes('/') ? rec.id : undefined;
}
