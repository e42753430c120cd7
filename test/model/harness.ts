// The model-based test's commands: random OSB requests (alone or in concurrent bursts) sent over real HTTP to a
// running broker, each answer checked against the reference model (test/support/osb-model.ts), plus commands that
// stop and start the worker (so operations stay "in progress" deterministically), kill it at random moments, and
// plant someone else's key in an instance's etcd prefix (so its provision fails). fast-check generates, runs and
// shrinks the command sequences (fc.commands + fc.asyncModelRun).
//
// Determinism: while the worker runs, every operation a command starts is polled to its end before the next
// command, so sequential answers have exactly one explanation. While the worker is stopped nothing ends, and the
// model tracks what runs. Only concurrent bursts leave timing open, and osb-model.ts explains them by search.
import fc from 'fast-check';
import type { Etcd3 } from 'etcd3';
import { Agent, fetch, type Response } from 'undici';
import type { TestStack } from '../support/stack';
import { basicAuth, testBrokerUser } from '../support/config';
import { APP_BOUND_PLAN, ASYNC_ONLY_PLAN, PLAN, SERVICE, onAuthRace } from '../support/osb';
import {
  describeExpect,
  emptyWorld,
  explain,
  instanceBusy,
  inst,
  instanceLastOpAnswers,
  bindingLastOpAnswers,
  knownPlan,
  lastOpId,
  setPoisoned,
  setWorker,
  settle,
  wouldWait,
  type Answer,
  type Json,
  type Request,
  type WireHeaders,
  type World,
} from '../support/osb-model';

// ---- what the generator produces ---------------------------------------------------------------------------------

type PlanChoice = 'standard' | 'async-only' | 'app-bound' | 'unknown' | 'missing';
/** For DELETE queries and bind bodies: the instance's plan as the model knows it (the usual case), or a choice. */
type PlanRef = PlanChoice | 'instance';
type ServiceChoice = 'ok' | 'missing' | 'unknown';
type GuidChoice = 'org-a' | 'org-b' | 'space-a' | 'space-b' | '' | 'missing';
type OpParam = 'none' | 'last' | 'type' | 'bogus';

/** One request as generated: indexes into the run's IDs (-1: an invalid ID), and choices resolved at run time. */
export type RequestSpec =
  | { kind: 'provision'; i: number; async: boolean; headers: WireHeaders; service: ServiceChoice; plan: PlanChoice; params?: Json; org: GuidChoice; space: GuidChoice; maintenance?: string; context?: Json; extra: boolean }
  | { kind: 'update'; i: number; async: boolean; headers: WireHeaders; service: ServiceChoice; plan?: PlanChoice; params?: Json; maintenance?: string; context?: Json }
  | { kind: 'deprovision'; i: number; async: boolean; headers: WireHeaders; service: ServiceChoice; plan: PlanRef }
  | { kind: 'fetchInstance'; i: number; headers: WireHeaders }
  | { kind: 'instanceLastOp'; i: number; headers: WireHeaders; operation: OpParam }
  | { kind: 'bind'; i: number; b: number; async: boolean; headers: WireHeaders; service: ServiceChoice; plan: PlanRef; params?: Json; app?: string; context?: Json; extra: boolean }
  | { kind: 'unbind'; i: number; b: number; async: boolean; headers: WireHeaders; service: ServiceChoice; plan: PlanRef }
  | { kind: 'fetchBinding'; i: number; b: number; headers: WireHeaders }
  | { kind: 'bindingLastOp'; i: number; b: number; headers: WireHeaders; operation: OpParam };

const PLAN_IDS: Record<'standard' | 'async-only' | 'app-bound', string> = { standard: PLAN, 'async-only': ASYNC_ONLY_PLAN, 'app-bound': APP_BOUND_PLAN };
const OK_HEADERS: WireHeaders = { auth: 'ok', version: '2.17' };

/** Instance and binding IDs of one run (a command sequence); every run has fresh ones. */
export interface RunIds {
  instances: string[];
  bindings: string[];
  /** An ID the broker must refuse (400): `@` is not in the allowed characters. */
  invalid: string;
}

/** The fast-check model: the candidate worlds and whether this run holds the worker stopped. */
export interface ModelState {
  worlds: World[];
  paused: boolean;
  ids: RunIds;
}

// ---- arbitraries -------------------------------------------------------------------------------------------------

const weighted = <T>(...xs: Array<[number, fc.Arbitrary<T>]>) => fc.oneof(...xs.map(([weight, arbitrary]) => ({ weight, arbitrary })));

/** Mostly correct headers; sometimes no or wrong credentials, a missing or unsupported version, or a JSON content type without a body. */
const headersArb = (noBody: boolean): fc.Arbitrary<WireHeaders> =>
  weighted<WireHeaders>(
    [40, fc.constant(OK_HEADERS)],
    [noBody ? 10 : 0, fc.constant({ ...OK_HEADERS, jsonNoBody: true })],
    [2, fc.constantFrom<WireHeaders>({ auth: 'none', version: '2.17' }, { auth: 'wrong', version: '2.17' })],
    [3, fc.constantFrom<string | null>(null, '2.12', '3.0', '2.13', '2.14').map((version) => ({ auth: 'ok' as const, version }))],
  );
const asyncArb = weighted<boolean>([7, fc.constant(true)], [3, fc.constant(false)]);
const serviceArb = weighted<ServiceChoice>([30, fc.constant('ok')], [1, fc.constantFrom<ServiceChoice>('missing', 'unknown')]);
const planArb = weighted<PlanChoice>([14, fc.constant('standard')], [3, fc.constant('async-only')], [3, fc.constant('app-bound')], [1, fc.constantFrom<PlanChoice>('unknown', 'missing')]);
const planRefArb = weighted<PlanRef>([20, fc.constant('instance')], [1, planArb]);
const instanceIdx = weighted<number>([30, fc.nat(2)], [1, fc.constant(-1)]);
const bindingIdx = fc.nat(2);
/** Instance parameters: valid for the standard plan, or not (other plans have no schema: anything goes there). */
const instanceParams = weighted<Json | undefined>(
  [4, fc.constant(undefined)],
  [2, fc.constant({})],
  [8, fc.constantFrom<Json>({ quotaKeys: 5 }, { quotaKeys: 7 }, { quotaKeys: 9 })],
  [1, fc.constantFrom<Json>({ quotaKeys: 0 }, { quotaKeys: 'x' }, { other: 1 })],
);
/** Binding parameters: `readOnly` booleans, or (standard plan only, see render) invalid ones. */
const bindParams = weighted<Json | undefined>(
  [4, fc.constant(undefined)],
  [2, fc.constant({})],
  [6, fc.constantFrom<Json>({ readOnly: true }, { readOnly: false })],
  [1, fc.constantFrom<Json>({ readOnly: 'yes' }, { other: 1 })],
);
const contextArb = weighted<Json | undefined>([4, fc.constant(undefined)], [1, fc.constantFrom<Json>({ platform: 'model' }, { platform: 'model', note: 'changed' })]);
const maintenanceArb = weighted<string | undefined>([8, fc.constant(undefined)], [2, fc.constant('1.0.0')], [1, fc.constant('9.9.9')]);
const guid = (a: GuidChoice) => weighted<GuidChoice>([20, fc.constant(a)], [4, fc.constant(a === 'org-a' ? 'org-b' : 'space-b')], [1, fc.constantFrom<GuidChoice>('', 'missing')]);
const opParamArb = weighted<OpParam>([6, fc.constant('none')], [6, fc.constant('last')], [1, fc.constantFrom<OpParam>('type', 'bogus')]);

function provisionArb(i: fc.Arbitrary<number>): fc.Arbitrary<RequestSpec> {
  return fc.record({
    kind: fc.constant('provision' as const),
    i,
    async: asyncArb,
    headers: headersArb(false),
    service: serviceArb,
    plan: planArb,
    params: instanceParams,
    org: guid('org-a'),
    space: guid('space-a'),
    maintenance: maintenanceArb,
    context: contextArb,
    extra: weighted<boolean>([9, fc.constant(false)], [1, fc.constant(true)]),
  });
}
function updateArb(i: fc.Arbitrary<number>): fc.Arbitrary<RequestSpec> {
  return fc.record({
    kind: fc.constant('update' as const),
    i,
    async: asyncArb,
    headers: headersArb(false),
    service: serviceArb,
    plan: weighted<PlanChoice | undefined>([3, fc.constant(undefined)], [2, planArb]),
    params: instanceParams,
    maintenance: maintenanceArb,
    context: contextArb,
  });
}
function deprovisionArb(i: fc.Arbitrary<number>): fc.Arbitrary<RequestSpec> {
  return fc.record({ kind: fc.constant('deprovision' as const), i, async: asyncArb, headers: headersArb(true), service: serviceArb, plan: planRefArb });
}
function bindArb(i: fc.Arbitrary<number>, b: fc.Arbitrary<number>): fc.Arbitrary<RequestSpec> {
  return fc.record({
    kind: fc.constant('bind' as const),
    i,
    b,
    async: asyncArb,
    headers: headersArb(false),
    service: serviceArb,
    plan: planRefArb,
    params: bindParams,
    app: weighted<string | undefined>([3, fc.constant(undefined)], [2, fc.constantFrom('app-1', 'app-2')]),
    context: contextArb,
    extra: weighted<boolean>([9, fc.constant(false)], [1, fc.constant(true)]),
  });
}
function unbindArb(i: fc.Arbitrary<number>, b: fc.Arbitrary<number>): fc.Arbitrary<RequestSpec> {
  return fc.record({ kind: fc.constant('unbind' as const), i, b, async: asyncArb, headers: headersArb(true), service: serviceArb, plan: planRefArb });
}
const fetchInstanceArb = (i: fc.Arbitrary<number>) => fc.record({ kind: fc.constant('fetchInstance' as const), i, headers: headersArb(true) });
const instanceLastOpArb = (i: fc.Arbitrary<number>) => fc.record({ kind: fc.constant('instanceLastOp' as const), i, headers: headersArb(true), operation: opParamArb });
const fetchBindingArb = (i: fc.Arbitrary<number>, b: fc.Arbitrary<number>) => fc.record({ kind: fc.constant('fetchBinding' as const), i, b, headers: headersArb(true) });
const bindingLastOpArb = (i: fc.Arbitrary<number>, b: fc.Arbitrary<number>) =>
  fc.record({ kind: fc.constant('bindingLastOp' as const), i, b, headers: headersArb(true), operation: opParamArb });

/** Any single request, weighted towards the ones that change state. */
export function requestArb(i: fc.Arbitrary<number> = instanceIdx, b: fc.Arbitrary<number> = bindingIdx): fc.Arbitrary<RequestSpec> {
  return weighted<RequestSpec>(
    [14, provisionArb(i)],
    [9, updateArb(i)],
    [8, deprovisionArb(i)],
    [4, fetchInstanceArb(i)],
    [4, instanceLastOpArb(i)],
    [14, bindArb(i, b)],
    [8, unbindArb(i, b)],
    [4, fetchBindingArb(i, b)],
    [4, bindingLastOpArb(i, b)],
  );
}

/**
 * 2–6 requests sent at once on one instance (and binding): all identical, or a mix (identical and conflicting
 * repeats of one kind, or different kinds: provision against delete, bind against update, ...).
 */
export function burstArb(): fc.Arbitrary<RequestSpec[]> {
  return fc.tuple(fc.nat(2), fc.nat(2), fc.integer({ min: 2, max: 6 }), fc.boolean()).chain(([i, b, n, identical]) => {
    const one = requestArb(fc.constant(i), fc.constant(b));
    return identical ? one.map((r) => Array.from({ length: n }, () => r)) : fc.array(one, { minLength: n, maxLength: n });
  });
}

// ---- rendering a spec into a request -----------------------------------------------------------------------------

const planIdOf = (p: PlanChoice): string | undefined => (p === 'unknown' ? 'no-such-plan' : p === 'missing' ? undefined : PLAN_IDS[p]);
const serviceIdOf = (s: ServiceChoice): string | undefined => (s === 'ok' ? SERVICE : s === 'unknown' ? 'no-such-service' : undefined);
const guidOf = (g: GuidChoice): string | undefined => (g === 'missing' ? undefined : g);
const compact = (o: Json): Json => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/** The concrete request for a spec, in the current model (the instance's plan, the last operation's ID). */
export function render(spec: RequestSpec, m: ModelState): Request {
  const instance = spec.i < 0 ? m.ids.invalid : m.ids.instances[spec.i]!;
  const binding = 'b' in spec ? m.ids.bindings[spec.b]! : undefined;
  const plan = (ref: PlanRef): string | undefined => (ref === 'instance' ? (knownPlan(m.worlds, instance) ?? PLAN) : planIdOf(ref));
  const headers = spec.headers;
  switch (spec.kind) {
    case 'provision':
      return {
        kind: 'provision',
        instance,
        async: spec.async,
        headers,
        body: compact({
          service_id: serviceIdOf(spec.service),
          plan_id: planIdOf(spec.plan),
          organization_guid: guidOf(spec.org),
          space_guid: guidOf(spec.space),
          parameters: spec.params,
          maintenance_info: spec.maintenance ? { version: spec.maintenance } : undefined,
          context: spec.context,
          ...(spec.extra ? { extra_field: 'ignored' } : {}),
        }),
      };
    case 'update':
      return {
        kind: 'update',
        instance,
        async: spec.async,
        headers,
        body: compact({
          service_id: serviceIdOf(spec.service),
          plan_id: spec.plan ? planIdOf(spec.plan) : undefined,
          parameters: spec.params,
          maintenance_info: spec.maintenance ? { version: spec.maintenance } : undefined,
          context: spec.context,
        }),
      };
    case 'deprovision':
      return { kind: 'deprovision', instance, async: spec.async, headers, query: compact({ service_id: serviceIdOf(spec.service), plan_id: plan(spec.plan) }) as Record<string, string> };
    case 'fetchInstance':
      return { kind: 'fetchInstance', instance, headers };
    case 'instanceLastOp':
      return { kind: 'instanceLastOp', instance, headers, ...opParam(spec.operation, lastOpId(m.worlds, instance), 'provision') };
    case 'bind': {
      const planId = plan(spec.plan);
      // Invalid binding parameters only with the standard plan (which has a schema: 400). Plans without a schema
      // would accept them and the etcd-user driver would then fail the bind on a non-boolean readOnly: a failure
      // the contract does not describe, so the generator leaves it out.
      const p = spec.params;
      const cleanParams = planId !== PLAN && p && !(Object.keys(p).every((k) => k === 'readOnly') && typeof (p.readOnly ?? false) === 'boolean') ? {} : p;
      return {
        kind: 'bind',
        instance,
        binding: binding!,
        async: spec.async,
        headers,
        body: compact({
          service_id: serviceIdOf(spec.service),
          plan_id: planId,
          parameters: cleanParams,
          bind_resource: spec.app ? { app_guid: spec.app } : undefined,
          context: spec.context,
          ...(spec.extra ? { extra_field: 'ignored' } : {}),
        }),
      };
    }
    case 'unbind':
      return { kind: 'unbind', instance, binding: binding!, async: spec.async, headers, query: compact({ service_id: serviceIdOf(spec.service), plan_id: plan(spec.plan) }) as Record<string, string> };
    case 'fetchBinding':
      return { kind: 'fetchBinding', instance, binding: binding!, headers };
    case 'bindingLastOp':
      return { kind: 'bindingLastOp', instance, binding: binding!, headers, ...opParam(spec.operation, lastOpId(m.worlds, instance, binding), 'bind') };
  }
}

function opParam(p: OpParam, last: string | undefined, type: string): { operation?: string } {
  if (p === 'last' && last) return { operation: last };
  if (p === 'type') return { operation: type };
  if (p === 'bogus') return { operation: 'no-such-operation' };
  return {};
}

// ---- HTTP ------------------------------------------------------------------------------------------------------

/** Method, path (with query) and body of a request on the wire. */
export function wire(r: Request): { method: string; path: string; body?: string } {
  const enc = encodeURIComponent;
  const ip = `/v2/service_instances/${enc(r.instance)}`;
  const bp = 'binding' in r ? `${ip}/service_bindings/${enc(r.binding)}` : ip;
  const qs = (q: Record<string, string | undefined>) => {
    const s = Object.entries(q)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${enc(v!)}`)
      .join('&');
    return s ? `?${s}` : '';
  };
  const acc = (async: boolean) => (async ? 'true' : undefined);
  switch (r.kind) {
    case 'provision':
      return { method: 'PUT', path: ip + qs({ accepts_incomplete: acc(r.async) }), body: JSON.stringify(r.body) };
    case 'update':
      return { method: 'PATCH', path: ip + qs({ accepts_incomplete: acc(r.async) }), body: JSON.stringify(r.body) };
    case 'deprovision':
      return { method: 'DELETE', path: ip + qs({ accepts_incomplete: acc(r.async), ...r.query }) };
    case 'fetchInstance':
      return { method: 'GET', path: ip };
    case 'instanceLastOp':
      return { method: 'GET', path: `${ip}/last_operation${qs({ operation: r.operation })}` };
    case 'bind':
      return { method: 'PUT', path: bp + qs({ accepts_incomplete: acc(r.async) }), body: JSON.stringify(r.body) };
    case 'unbind':
      return { method: 'DELETE', path: bp + qs({ accepts_incomplete: acc(r.async), ...r.query }) };
    case 'fetchBinding':
      return { method: 'GET', path: bp };
    case 'bindingLastOp':
      return { method: 'GET', path: `${bp}/last_operation${qs({ operation: r.operation })}` };
  }
}

/** Requests and answers of one lane, by status code, and the other figures the results file shows. */
export interface LaneStats {
  sequences: number;
  commands: number;
  requests: number;
  polls: number;
  bursts: number;
  burstRequests: number;
  operationsStarted: number;
  workerStops: number;
  /**
   * Milliseconds spent in the model itself (explaining answers, settling operations). The model runs in the same
   * process as the lanes' brokers and workers and blocks them all while it computes.
   */
  modelMs: number;
  byStatus: Record<string, number>;
}

export const newStats = (): LaneStats => ({ sequences: 0, commands: 0, requests: 0, polls: 0, bursts: 0, burstRequests: 0, operationsStarted: 0, workerStops: 0, modelMs: 0, byStatus: {} });

/** A model computation longer than this is reported as it happens: it held every lane's broker and worker up. */
const SLOW_MODEL_MS = 1000;

/** Runs a model computation, adding its time to the lane's figures. */
function timedModel<T>(lane: Lane, what: string, fn: () => T): T {
  const t0 = performance.now();
  try {
    return fn();
  } finally {
    const ms = performance.now() - t0;
    lane.stats.modelMs += ms;
    if (ms > SLOW_MODEL_MS) console.log(`# model: ${what} took ${Math.round(ms)} ms (lane ${lane.name}), blocking every lane meanwhile`);
  }
}

/** The answer of a request that is not the model's business: the broker must still answer. */
class HarnessError extends Error {}

/**
 * One lane: a broker + worker stack of its own (so stopping its worker holds nothing else up), reached over HTTP,
 * running one command sequence at a time with fresh IDs.
 */
export class Lane {
  readonly stats = newStats();
  /** The current sequence's requests and answers, for divergence reports. */
  trace: string[] = [];
  private run = 0;
  private background: Array<Promise<void>> = [];
  private workerChain: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    readonly stack: TestStack,
    readonly base: string,
    readonly tenant: Etcd3,
  ) {}

  /** Fresh IDs for the next sequence. */
  nextRun(): RunIds {
    this.run += 1;
    this.trace = [];
    this.stats.sequences += 1;
    const prefix = `${this.name}r${this.run}`;
    return {
      instances: [0, 1, 2].map((k) => `${prefix}-i${k}`),
      bindings: [0, 1, 2].map((k) => `${prefix}-b${k}`),
      invalid: `${prefix}@bad`,
    };
  }

  /** Sends a request; records it in the trace and the figures. */
  async send(r: Request, tag = '', retries503 = 0): Promise<Answer> {
    const w = wire(r);
    const headers: Record<string, string> = {};
    if (r.headers.auth === 'ok') headers.authorization = basicAuth();
    if (r.headers.auth === 'wrong') headers.authorization = basicAuth({ username: testBrokerUser.username, password: 'wrong-password' });
    if (r.headers.version !== null) headers['x-broker-api-version'] = r.headers.version;
    if (w.body !== undefined || r.headers.jsonNoBody) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(this.base + w.path, { method: w.method, headers, dispatcher: platformAgent, ...(w.body !== undefined ? { body: w.body } : {}) });
    } catch (e) {
      const cause = (e as Error).cause as (Error & { code?: string }) | undefined;
      throw new HarnessError(`${w.method} ${w.path}: no answer (${(e as Error).message}${cause ? `: ${cause.code ?? ''} ${cause.message}` : ''})`);
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    this.stats.requests += 1;
    this.stats.byStatus[res.status] = (this.stats.byStatus[res.status] ?? 0) + 1;
    this.trace.push(`${tag}${describeRequest(r)} → ${res.status} ${short(text)}`);
    // last_operation answers 503 while it cannot know (Temporal slow to answer); a platform polls again.
    // Any other request answered 503 was not decided (Temporal did not answer in time): a platform repeats it.
    if (res.status === 503 && retries503 < MAX_503_RETRIES) {
      await sleep(POLL_INTERVAL_MS);
      return this.send(r, tag, retries503 + 1);
    }
    return { status: res.status, body };
  }

  /** Polls an operation's last_operation until it is no longer in progress; the final answer. */
  async poll(path: { instance: string; binding?: string }, operation: string | undefined): Promise<Answer> {
    const r: Request = path.binding
      ? { kind: 'bindingLastOp', instance: path.instance, binding: path.binding, headers: OK_HEADERS, ...(operation ? { operation } : {}) }
      : { kind: 'instanceLastOp', instance: path.instance, headers: OK_HEADERS, ...(operation ? { operation } : {}) };
    const w = wire(r);
    const end = Date.now() + POLL_LIMIT_MS;
    let polls = 0;
    for (;;) {
      const res = await fetch(this.base + w.path, { headers: { authorization: basicAuth(), 'x-broker-api-version': '2.17' }, dispatcher: platformAgent });
      const text = await res.text();
      polls += 1;
      this.stats.polls += 1;
      this.stats.requests += 1;
      this.stats.byStatus[res.status] = (this.stats.byStatus[res.status] ?? 0) + 1;
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      // 503: the broker cannot tell right now (Temporal slow to answer); a platform polls again.
      const inProgress = (res.status === 200 && (body as Json | undefined)?.state === 'in progress') || res.status === 503;
      if (!inProgress || Date.now() > end) {
        this.trace.push(`  poll GET ${w.path} → ${polls > 1 ? `in progress ×${polls - 1}, then ` : ''}${res.status} ${short(text)}`);
        return { status: res.status, body };
      }
      await sleep(POLL_INTERVAL_MS);
    }
  }

  /** Stops or starts the lane's worker; calls are serialised (a crash and a pause never interleave). */
  setWorker(running: boolean): Promise<void> {
    const next = this.workerChain.then(async () => {
      if (running) await this.stack.startWorker();
      else {
        this.stats.workerStops += 1;
        await this.stack.stopWorker();
      }
    });
    this.workerChain = next.catch(() => undefined);
    return next;
  }

  /** Kills the worker after `delayMs` and starts a new one `downMs` later, in the background. */
  crashLater(delayMs: number, downMs: number): void {
    this.background.push(
      (async () => {
        await sleep(delayMs);
        await this.setWorker(false);
        await sleep(downMs);
        await this.setWorker(true);
      })(),
    );
  }

  /** Waits for background crashes: the worker runs afterwards. */
  async quiesce(): Promise<void> {
    const all = this.background;
    this.background = [];
    await Promise.all(all);
  }
}

const POLL_INTERVAL_MS = 40;
/**
 * The platform's HTTP client. It closes idle connections after 10 s, well before the broker does (fastify's
 * keep-alive timeout, 72 s), as a client in front of any HTTP server must: with both at ~72 s (the default
 * client follows the server's `Keep-Alive: timeout=72` hint, minus 1 s) a request can be written into a
 * connection the server is closing that instant, and fails with ECONNRESET before the broker ever reads it. In
 * this one busy process the two timers fire within the same stalled event-loop turn now and then.
 */
const platformAgent = new Agent({ keepAliveTimeout: 10_000, keepAliveMaxTimeout: 10_000 });
/** How often a last_operation answered 503 is asked again before the 503 counts as the answer. */
const MAX_503_RETRIES = 100;
/** An operation still in progress after this long is lost (the worker is back, nothing holds it up). */
const POLL_LIMIT_MS = 120_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const NAMES: Array<[string, string]> = [
  [SERVICE, 'SERVICE'],
  [PLAN, 'PLAN(standard)'],
  [ASYNC_ONLY_PLAN, 'PLAN(async-only)'],
  [APP_BOUND_PLAN, 'PLAN(app-bound)'],
];
const readable = (s: string) => NAMES.reduce((acc, [id, name]) => acc.split(id).join(name), s);
const short = (text: string) => readable(text.length > 300 ? `${text.slice(0, 300)}…` : text);

/** A request as one line: method, path, body, and what is odd about its headers. */
export function describeRequest(r: Request): string {
  const w = wire(r);
  const h = r.headers;
  const odd = [
    h.auth !== 'ok' ? `auth=${h.auth}` : '',
    h.version !== '2.17' ? `X-Broker-API-Version=${h.version ?? '(none)'}` : '',
    h.jsonNoBody ? 'Content-Type: application/json, no body' : '',
  ].filter(Boolean);
  return readable(`${w.method} ${w.path}${w.body !== undefined ? ` ${w.body}` : ''}${odd.length ? ` [${odd.join(', ')}]` : ''}`);
}

// ---- checking answers ----------------------------------------------------------------------------------------------

/** An answer (or a final state) the contract does not allow: the message says which row and shows the sequence. */
export class Divergence extends Error {
  constructor(what: string, lane: Lane) {
    super(`${what}\n  sequence so far (this run):\n${lane.trace.map((t, n) => `    ${n + 1}. ${t}`).join('\n')}`);
    this.name = 'Divergence';
  }
}

/** Sends requests (one, or several at once) and narrows the model to the worlds that explain the answers. */
async function exchange(m: ModelState, lane: Lane, specs: RequestSpec[]): Promise<void> {
  const requests = specs.map((s) => render(s, m));
  const tags = requests.length > 1 ? requests.map((_, k) => `[burst ${k + 1}/${requests.length}] `) : [''];
  const answers = await Promise.all(requests.map((r, k) => lane.send(r, tags[k])));
  const before = m.worlds;
  const ex = timedModel(lane, `explaining ${requests.length} request(s) over ${before.length} world(s)`, () => explain(before, requests, answers, requests.length > 1 ? 'any' : 'waiters'));
  if (ex.worlds.length === 0) {
    const lines = requests.map(
      (r, k) => `  request ${k + 1}: ${describeRequest(r)}\n    answer:  ${answers[k]!.status} ${short(JSON.stringify(answers[k]!.body) ?? '(not JSON)')}\n    allowed (sequentially): ${ex.allowed[k]}`,
    );
    throw new Divergence(
      `DIVERGENCE: ${requests.length > 1 ? `no order of these ${requests.length} concurrent requests explains their answers` : 'the answer is not one the contract allows'}\n${lines.join('\n')}`,
      lane,
    );
  }
  const started = ex.worlds[0] ? Object.keys(ex.worlds[0].ops).length - Object.keys(before[0]!.ops).length : 0;
  lane.stats.operationsStarted += Math.max(0, started);
  m.worlds = ex.worlds;
  if (!m.paused) await settleAll(m, lane);
}

/** Polls every running operation to its end and narrows the model to the worlds that explain how they ended. */
export async function settleAll(m: ModelState, lane: Lane): Promise<void> {
  const running = new Map<string, { instance: string; binding?: string }>();
  for (const w of m.worlds) for (const op of Object.values(w.ops)) running.set(op.id, { instance: op.instance, ...(op.binding ? { binding: op.binding } : {}) });
  if (running.size === 0) return;
  const finals = new Map<string, { answer: Answer; path: { instance: string; binding?: string } }>();
  await Promise.all(
    [...running].map(async ([id, path]) => {
      const answer = await lane.poll(path, id.startsWith('?') ? undefined : id);
      finals.set(id, { answer, path });
    }),
  );
  const before = m.worlds;
  m.worlds = timedModel(lane, `settling ${finals.size} operation(s) over ${before.length} world(s)`, () => settle(before, finals));
  if (m.worlds.length === 0) {
    const w = before[0]!;
    const lines = [...finals].map(([id, f]) => {
      const allowedNow = f.path.binding ? bindingLastOpAnswers(w, f.path.instance, f.path.binding) : instanceLastOpAnswers(w, f.path.instance);
      return `  operation ${id} (${f.path.binding ? `binding ${f.path.binding} of ` : ''}instance ${f.path.instance}): last ${f.answer.status} ${short(JSON.stringify(f.answer.body) ?? '')}; while running the model allows ${allowedNow.map(describeExpect).join(' | ')}, and at its end what the model's completion gives`;
    });
    throw new Divergence(`DIVERGENCE: no way for the running operations to end explains their last_operation answers\n${lines.join('\n')}\n  model before (world 1 of ${before.length}): ${short(JSON.stringify(summarise(w)))}`, lane);
  }
}

/** A short view of a world for messages. */
export function summarise(w: World): Json {
  return {
    instances: Object.fromEntries(Object.entries(w.instances).map(([id, i]) => [id, { state: i.state, plan: i.applied?.planId ?? i.requested?.planId, last: i.last, refused: i.refused, poisoned: i.poisoned || undefined }])),
    bindings: Object.fromEntries(Object.entries(w.bindings).map(([id, b]) => [id, { state: b.state, owner: b.owner, last: b.last, refused: b.refused }])),
    running: Object.values(w.ops).map((o) => `${o.type} ${o.id}${o.fate ? ` (${o.fate})` : ''}`),
  };
}

// ---- commands ----------------------------------------------------------------------------------------------------

type Cmd = fc.AsyncCommand<ModelState, Lane>;

const specLine = (s: RequestSpec): string => {
  const { kind, headers, ...rest } = s;
  const h = headers === OK_HEADERS || (headers.auth === 'ok' && headers.version === '2.17' && !headers.jsonNoBody) ? '' : ` headers=${JSON.stringify(headers)}`;
  return `${kind}${JSON.stringify(rest)}${h}`;
};

/** One request. */
export class RequestCommand implements Cmd {
  constructor(readonly spec: RequestSpec) {}
  check(m: Readonly<ModelState>): boolean {
    // A synchronous request that waits for an operation would wait for the stopped worker until it times out.
    return !m.paused || !wouldWait(m.worlds, render(this.spec, m as ModelState));
  }
  async run(m: ModelState, lane: Lane): Promise<void> {
    lane.stats.commands += 1;
    await exchange(m, lane, [this.spec]);
  }
  toString(): string {
    return specLine(this.spec);
  }
}

/** 2–6 requests at once. */
export class BurstCommand implements Cmd {
  constructor(readonly specs: RequestSpec[]) {}
  check(m: Readonly<ModelState>): boolean {
    return !m.paused || !this.specs.some((s) => wouldWait(m.worlds, render(s, m as ModelState)));
  }
  async run(m: ModelState, lane: Lane): Promise<void> {
    lane.stats.commands += 1;
    lane.stats.bursts += 1;
    lane.stats.burstRequests += this.specs.length;
    await exchange(m, lane, this.specs);
  }
  toString(): string {
    return `burst[${this.specs.map(specLine).join(', ')}]`;
  }
}

/** Stops the worker: operations started from now on stay in progress until Resume. */
export class PauseCommand implements Cmd {
  check(m: Readonly<ModelState>): boolean {
    return !m.paused;
  }
  async run(m: ModelState, lane: Lane): Promise<void> {
    lane.stats.commands += 1;
    await lane.setWorker(false);
    lane.trace.push('(worker stopped)');
    m.paused = true;
    m.worlds = setWorker(m.worlds, false);
  }
  toString(): string {
    return 'pause-worker';
  }
}

/** Starts the worker again and polls everything that was started meanwhile to its end. */
export class ResumeCommand implements Cmd {
  check(m: Readonly<ModelState>): boolean {
    return m.paused;
  }
  async run(m: ModelState, lane: Lane): Promise<void> {
    lane.stats.commands += 1;
    await lane.setWorker(true);
    lane.trace.push('(worker started)');
    m.paused = false;
    m.worlds = setWorker(m.worlds, true);
    await settleAll(m, lane);
  }
  toString(): string {
    return 'resume-worker';
  }
}

/** The key someone else keeps inside an instance's etcd prefix. */
export const poisonKey = (id: string) => `/tenants/${id}/foreign-data`;

/**
 * Plants (or removes) someone else's key in an instance's etcd prefix, while nothing runs on the instance and it
 * does not exist (or its provision failed): its provisions then fail at the keyspace step, deterministically.
 */
export class PoisonCommand implements Cmd {
  constructor(
    readonly i: number,
    readonly on: boolean,
  ) {}
  check(m: Readonly<ModelState>): boolean {
    const id = m.ids.instances[this.i]!;
    if (instanceBusy(m.worlds, id)) return false;
    if (!this.on) return m.worlds.some((w) => inst(w, id).poisoned);
    return m.worlds.every((w) => !inst(w, id).poisoned && (inst(w, id).state === 'absent' || inst(w, id).state === 'provision-failed'));
  }
  async run(m: ModelState, lane: Lane): Promise<void> {
    lane.stats.commands += 1;
    const id = m.ids.instances[this.i]!;
    await onAuthRace(async () => { await (this.on ? lane.tenant.put(poisonKey(id)).value('not brokerflow\'s') : lane.tenant.delete().key(poisonKey(id)).exec()); });
    lane.trace.push(`(${this.on ? 'planted' : 'removed'} someone else's key ${poisonKey(id)})`);
    m.worlds = setPoisoned(m.worlds, id, this.on);
  }
  toString(): string {
    return `${this.on ? 'poison' : 'unpoison'}(i${this.i})`;
  }
}

/** Kills the worker at a random moment of the next requests and starts a new one a little later. */
export class CrashCommand implements Cmd {
  constructor(
    readonly delayMs: number,
    readonly downMs: number,
  ) {}
  check(m: Readonly<ModelState>): boolean {
    return !m.paused;
  }
  async run(_m: ModelState, lane: Lane): Promise<void> {
    lane.stats.commands += 1;
    lane.trace.push(`(worker killed in ${this.delayMs} ms, back ${this.downMs} ms later)`);
    lane.crashLater(this.delayMs, this.downMs);
  }
  toString(): string {
    return `crash-worker(in ${this.delayMs} ms, for ${this.downMs} ms)`;
  }
}

/** The commands of the main test (one weighted arbitrary: fc.commands picks among its arbitraries uniformly). */
export function commandArbs(): Array<fc.Arbitrary<Cmd>> {
  return [
    weighted<Cmd>(
      [40, requestArb().map((s) => new RequestCommand(s))],
      // Requests on the first instance as well, so that sequences get deep into one instance's states.
      [20, requestArb(fc.constant(0)).map((s) => new RequestCommand(s))],
      [8, burstArb().map((s) => new BurstCommand(s))],
      [2, fc.constant(new PauseCommand())],
      [5, fc.constant(new ResumeCommand())],
      [2, fc.tuple(fc.nat(2), fc.boolean()).map(([i, on]) => new PoisonCommand(i, on))],
    ),
  ];
}

/** The commands of the crash variant: no pauses, and worker kills at random moments. */
export function crashCommandArbs(): Array<fc.Arbitrary<Cmd>> {
  return [
    weighted<Cmd>(
      [40, requestArb().map((s) => new RequestCommand(s))],
      [20, requestArb(fc.constant(0)).map((s) => new RequestCommand(s))],
      [6, burstArb().map((s) => new BurstCommand(s))],
      [6, fc.tuple(fc.integer({ min: 0, max: 1500 }), fc.integer({ min: 0, max: 1500 })).map(([d, u]) => new CrashCommand(d, u))],
    ),
  ];
}

/** The initial model of a sequence. */
export function initialModel(ids: RunIds): ModelState {
  return { worlds: [emptyWorld()], paused: false, ids };
}
