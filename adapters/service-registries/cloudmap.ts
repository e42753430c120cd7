// Long on purpose: one ServiceRegistry backend; its name resolution and operation polling serve every verb.
// The AWS Cloud Map backend: namespaces are HTTP namespaces, services are HTTP services, both with tags for
// metadata; endpoints are registered instances whose attributes hold the address (AWS_INSTANCE_IPV4 or
// AWS_INSTANCE_IPV6), the port (AWS_INSTANCE_PORT) and the metadata. Asynchronous operations are polled to
// their end with a deadline.
//
// Cloud Map addresses everything by generated IDs, so names are resolved by listing, on every call (no cache
// that could go stale when someone else deletes and recreates). Each name lookup is checked on our side
// too, because not every Cloud Map API honours list filters (moto ignores them; see the notes below).
//
// Without transactions, "check, then create" leaves a window: two creators of the same namespace may both
// pass the check (AWS then rejects the second with NamespaceAlreadyExists; moto creates a duplicate).
// RegisterInstance is an upsert, so racing endpoint creates converge on the last writer.
import {
  CreateHttpNamespaceCommand,
  CreateServiceCommand,
  DeleteNamespaceCommand,
  DeleteServiceCommand,
  DeregisterInstanceCommand,
  GetOperationCommand,
  GetServiceCommand,
  ListInstancesCommand,
  ListNamespacesCommand,
  ListServicesCommand,
  ListTagsForResourceCommand,
  RegisterInstanceCommand,
  ServiceDiscoveryClient,
  TagResourceCommand,
  UntagResourceCommand,
  type InstanceSummary,
  type ServiceDiscoveryClientConfig,
  type Tag,
} from '@aws-sdk/client-servicediscovery';
import { isIP } from 'node:net';
import { ConflictError, PermissionError, UnavailableError, ValidationError } from '../errors';
import { CallBudget, type CallObserver } from './call-budget';
import { waitForOperation } from './cloudmap-operation';
import { mapLimited } from './concurrency';
import {
  EndpointLimitExceededError,
  NotEmptyError,
  ServRegAlreadyExistsError,
  ServRegNotFoundError,
  ServRegTimeoutError,
  type RegistryLevel,
} from './errors';
import type { Endpoint, EndpointChanges, Metadata, Namespace, Service, ServiceRegistry } from './types';
import { pathOf, validateEndpoint, validateName, validateNamespace, validateService } from './validation';

/** How to reach Cloud Map and how long to wait. */
export interface CloudMapServiceRegistryOptions {
  /** A ready client (closed by its owner); otherwise one is built from `clientConfig`. */
  client?: ServiceDiscoveryClient;
  /** Region, endpoint, credentials... `maxAttempts` defaults to 1: retries belong to the caller's policy. */
  clientConfig?: ServiceDiscoveryClientConfig;
  /** Deadline of each API call (default 30 s). */
  callTimeoutMs?: number;
  /** Deadline of each asynchronous operation, polled with GetOperation (default 120 s). */
  operationTimeoutMs?: number;
  /** Pause between two GetOperation calls (default 1 s). */
  pollIntervalMs?: number;
  /** How many lookups (tags, instances) run at once (default 8). */
  concurrency?: number;
  /** The client-side rate budget: API calls per second, GetOperation polls included (default 50). */
  callsPerSecond?: number;
  /** Registered instances one service may hold (Cloud Map's quota: 1,000); more is refused before any call. */
  maxInstancesPerService?: number;
  /** Told of every call, budget wait and throttling answer (metrics). */
  observer?: CallObserver;
}

/** Cloud Map's default quota of registered instances per service. */
export const cloudMapMaxInstancesPerService = 1000;
/** The default client-side budget of Cloud Map API calls per second. */
export const cloudMapDefaultCallsPerSecond = 50;

/** Instance attributes that carry the endpoint itself, not its metadata. */
export const cloudMapAddressAttributes = Object.freeze({
  ipv4: 'AWS_INSTANCE_IPV4',
  ipv6: 'AWS_INSTANCE_IPV6',
  port: 'AWS_INSTANCE_PORT',
});
// Cloud Map reserves every attribute starting with AWS_ (health status, EC2 IDs, alias names...).
const reservedAttributePrefix = 'AWS_';

interface Ids {
  id: string;
  arn: string;
  name: string;
}

/** How many resolved names (namespaces and services) the adapter remembers; the oldest go first. */
const REMEMBERED_NAMES = 10_000;
const nsKey = (name: string) => `ns/${name}`;
const servKey = (nsName: string, servName: string) => `serv/${nsName}/${servName}`;

/** A ServiceRegistry on AWS Cloud Map. */
export class CloudMapServiceRegistry implements ServiceRegistry {
  private readonly client: ServiceDiscoveryClient;
  private readonly ownsClient: boolean;
  private readonly callTimeoutMs: number;
  private readonly operationTimeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly concurrency: number;
  private readonly budget: CallBudget;
  private readonly observer: CallObserver;
  readonly limits: { maxEndpointsPerService: number };
  /**
   * Names already resolved to IDs. Resolving a service's name costs a ListNamespaces, a page of ListServices per 100
   * services of its namespace and a GetService: more calls than most changes themselves, on the same rate budget.
   * An ID never changes while its resource lives; one deleted and created again under the same name (by anyone) has
   * a new ID, so a call on a remembered ID that Cloud Map no longer knows forgets it and resolves the name again,
   * once (see `onNs`, `onServ`).
   */
  private readonly remembered = new Map<string, Ids>();

  constructor(opts: CloudMapServiceRegistryOptions) {
    this.ownsClient = !opts.client;
    this.client = opts.client ?? new ServiceDiscoveryClient({ maxAttempts: 1, ...opts.clientConfig });
    this.callTimeoutMs = positive(opts.callTimeoutMs ?? 30_000, 'callTimeoutMs');
    this.operationTimeoutMs = positive(opts.operationTimeoutMs ?? 120_000, 'operationTimeoutMs');
    this.pollIntervalMs = positive(opts.pollIntervalMs ?? 1_000, 'pollIntervalMs');
    this.concurrency = positive(opts.concurrency ?? 8, 'concurrency');
    this.budget = new CallBudget(opts.callsPerSecond ?? cloudMapDefaultCallsPerSecond);
    this.observer = opts.observer ?? {};
    this.limits = { maxEndpointsPerService: positive(opts.maxInstancesPerService ?? cloudMapMaxInstancesPerService, 'maxInstancesPerService') };
  }

  // ---- namespaces

  async getNs(name: string): Promise<Namespace> {
    validateName('namespace', name);
    return this.onNs(name, async (ids) => ({ name, metadata: await this.tags(ids.arn, 'namespace', name) }));
  }

  async listNs(): Promise<Namespace[]> {
    const all = await this.pages(async (token) => {
      const out = await this.call({ level: 'namespace', path: '' }, (o) =>
        this.client.send(new ListNamespacesCommand({ NextToken: token, MaxResults: 100 }), o),
      );
      return { items: out.Namespaces ?? [], next: out.NextToken };
    });
    const named = all.filter((n): n is typeof n & { Name: string; Arn: string } => !!n.Name && !!n.Arn);
    return mapLimited(named, this.concurrency, async (n) => ({
      name: n.Name,
      metadata: await this.tags(n.Arn, 'namespace', n.Name),
    }));
  }

  async createNs(ns: Namespace): Promise<Namespace> {
    const v = validateNamespace(ns);
    if (await this.findNs(v.name)) throw new ServRegAlreadyExistsError('namespace', v.name);
    const ctx = { level: 'namespace' as const, path: v.name };
    const out = await this.call(ctx, (o) =>
      this.client.send(new CreateHttpNamespaceCommand({ Name: v.name, Tags: toTags(v.metadata) }), o),
    );
    await this.waitFor(out.OperationId, `CreateHttpNamespace ${v.name}`, ctx);
    return v;
  }

  async updateNs(ns: Namespace): Promise<Namespace> {
    const v = validateNamespace(ns);
    await this.onNs(v.name, (ids) => this.replaceTags(ids.arn, v.metadata, 'namespace', v.name));
    return v;
  }

  async deleteNs(name: string): Promise<void> {
    validateName('namespace', name);
    const ns = await this.nsIds(name);
    // Cloud Map refuses to delete a namespace that has services (ResourceInUse): empty it first.
    const services = await this.servicesIn(ns);
    await mapLimited(services, this.concurrency, (s) => this.deleteServiceTree(name, s));
    const ctx = { level: 'namespace' as const, path: name };
    this.forget(name);
    const out = await this.call(ctx, (o) => this.client.send(new DeleteNamespaceCommand({ Id: ns.id }), o));
    await this.waitFor(out.OperationId, `DeleteNamespace ${name}`, ctx);
  }

  // ---- services

  async getServ(nsName: string, servName: string): Promise<Service> {
    validateName('namespace', nsName);
    validateName('service', servName);
    return this.onServ(nsName, servName, async (ids) => ({
      name: servName,
      namespace: nsName,
      metadata: await this.tags(ids.arn, 'service', pathOf(nsName, servName)),
    }));
  }

  async listServ(nsName: string): Promise<Service[]> {
    validateName('namespace', nsName);
    const services = await this.onNs(nsName, (ns) => this.servicesIn(ns));
    return mapLimited(services, this.concurrency, async (s) => ({
      name: s.name,
      namespace: nsName,
      metadata: await this.tags(s.arn, 'service', pathOf(nsName, s.name)),
    }));
  }

  async createServ(serv: Service): Promise<Service> {
    const v = validateService(serv);
    const path = pathOf(v.namespace, v.name);
    await this.onNs(v.namespace, async (ns) => {
      if ((await this.servicesIn(ns, v.name)).length > 0) throw new ServRegAlreadyExistsError('service', path);
      await this.call({ level: 'service', path }, (o) =>
        this.client.send(
          new CreateServiceCommand({ Name: v.name, NamespaceId: ns.id, Type: 'HTTP', Tags: toTags(v.metadata) }),
          o,
        ),
      );
    });
    return v;
  }

  async updateServ(serv: Service): Promise<Service> {
    const v = validateService(serv);
    await this.onServ(v.namespace, v.name, (ids) => this.replaceTags(ids.arn, v.metadata, 'service', pathOf(v.namespace, v.name)));
    return v;
  }

  async deleteServ(nsName: string, servName: string): Promise<void> {
    validateName('namespace', nsName);
    validateName('service', servName);
    await this.onServ(nsName, servName, (ids) => this.deleteServiceTree(nsName, ids));
    this.forget(nsName, servName);
  }

  // ---- endpoints

  async getEndp(nsName: string, servName: string, endpName: string): Promise<Endpoint> {
    validateName('namespace', nsName);
    validateName('service', servName);
    validateName('endpoint', endpName);
    // ListInstances rather than GetInstance: see `instances` for why the newest registration must win.
    const inst = (await this.onServ(nsName, servName, (serv) => this.instances(serv, pathOf(nsName, servName)))).latest.get(endpName);
    if (!inst) throw new ServRegNotFoundError('endpoint', pathOf(nsName, servName, endpName));
    return toEndpoint(nsName, servName, inst);
  }

  async listEndp(nsName: string, servName: string): Promise<Endpoint[]> {
    validateName('namespace', nsName);
    validateName('service', servName);
    const { latest } = await this.onServ(nsName, servName, (serv) => this.instances(serv, pathOf(nsName, servName)));
    return [...latest.values()].map((i) => toEndpoint(nsName, servName, i));
  }

  async createEndp(endp: Endpoint): Promise<Endpoint> {
    const v = validateEndpoint(endp);
    const attributes = toAttributes(v);
    const path = pathOf(v.namespace, v.service, v.name);
    await this.onServ(v.namespace, v.service, async (serv) => {
      const { latest } = await this.instances(serv, pathOf(v.namespace, v.service));
      if (latest.has(v.name)) throw new ServRegAlreadyExistsError('endpoint', path);
      if (latest.size >= this.limits.maxEndpointsPerService) {
        throw new EndpointLimitExceededError(pathOf(v.namespace, v.service), this.limits.maxEndpointsPerService, latest.size + 1);
      }
      await this.register(serv, v, attributes);
    });
    return v;
  }

  async updateEndp(endp: Endpoint): Promise<Endpoint> {
    const v = validateEndpoint(endp);
    const attributes = toAttributes(v);
    await this.onServ(v.namespace, v.service, async (serv) => {
      if (!(await this.instances(serv, pathOf(v.namespace, v.service))).latest.has(v.name)) {
        throw new ServRegNotFoundError('endpoint', pathOf(v.namespace, v.service, v.name));
      }
      // RegisterInstance with an existing ID replaces its attributes: AWS's own update.
      await this.register(serv, v, attributes);
    });
    return v;
  }

  async deleteEndp(nsName: string, servName: string, endpName: string): Promise<void> {
    validateName('namespace', nsName);
    validateName('service', servName);
    validateName('endpoint', endpName);
    await this.onServ(nsName, servName, async (serv) => {
      const { count } = await this.instances(serv, pathOf(nsName, servName));
      const n = count.get(endpName) ?? 0;
      if (n === 0) throw new ServRegNotFoundError('endpoint', pathOf(nsName, servName, endpName));
      await this.deregister(serv, nsName, servName, endpName, n);
    });
  }

  /**
   * A service's endpoint changes with its names resolved (remembered after the first time) and its instances listed
   * once, then one
   * RegisterInstance or DeregisterInstance per change (plus the operation polls), instead of resolving everything
   * again for each endpoint. A create whose instance turns out to exist, an update whose instance is gone and any
   * change whose call fails are handed back, for the caller to write one by one and report.
   */
  async applyEndpoints(nsName: string, servName: string, changes: EndpointChanges): Promise<EndpointChanges> {
    validateName('namespace', nsName);
    validateName('service', servName);
    const creates = changes.create.map((e) => validateEndpoint({ ...e, namespace: nsName, service: servName }));
    const updates = changes.update.map((e) => validateEndpoint({ ...e, namespace: nsName, service: servName }));
    for (const name of changes.delete) validateName('endpoint', name);
    const attributes = new Map([...creates, ...updates].map((e) => [e, toAttributes(e)] as const));
    const { serv, latest, count } = await this.onServ(nsName, servName, async (serv) => ({ serv, ...(await this.instances(serv, pathOf(nsName, servName))) }));
    const left: EndpointChanges = { create: [], update: [], delete: [] };
    const deletes = changes.delete.filter((n) => count.has(n)); // already gone: nothing to do
    const go: Array<{ kind: 'create' | 'update'; e: Endpoint }> = [];
    for (const e of creates) {
      if (latest.has(e.name)) left.create.push(e);
      else go.push({ kind: 'create', e });
    }
    for (const e of updates) {
      if (latest.has(e.name)) go.push({ kind: 'update', e });
      else left.update.push(e);
    }
    const after = latest.size - deletes.length + go.filter((c) => c.kind === 'create').length;
    if (after > this.limits.maxEndpointsPerService) {
      throw new EndpointLimitExceededError(pathOf(nsName, servName), this.limits.maxEndpointsPerService, after);
    }
    await mapLimited([...go, ...deletes.map((name) => ({ kind: 'delete' as const, name }))], this.concurrency, async (c) => {
      try {
        if (c.kind === 'delete') await this.deregister(serv, nsName, servName, c.name, count.get(c.name) ?? 1);
        else await this.register(serv, c.e, attributes.get(c.e)!);
      } catch {
        if (c.kind === 'delete') left.delete.push(c.name);
        else left[c.kind].push(c.e);
      }
    });
    return left;
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.client.destroy();
  }

  // ---- internals

  private async register(serv: Ids, v: Endpoint, attributes: Record<string, string>): Promise<void> {
    const ctx = { level: 'endpoint' as const, path: pathOf(v.namespace, v.service, v.name) };
    const out = await this.call(ctx, (o) =>
      this.client.send(new RegisterInstanceCommand({ ServiceId: serv.id, InstanceId: v.name, Attributes: attributes }), o),
    );
    await this.waitFor(out.OperationId, `RegisterInstance ${ctx.path}`, ctx);
  }

  /** Deregisters `times` registrations of an instance ID (AWS holds one; moto one per RegisterInstance). */
  private async deregister(serv: Ids, nsName: string, servName: string, endpName: string, times: number): Promise<void> {
    const ctx = { level: 'endpoint' as const, path: pathOf(nsName, servName, endpName) };
    for (let i = 0; i < times; i++) {
      const out = await this.call(ctx, (o) =>
        this.client.send(new DeregisterInstanceCommand({ ServiceId: serv.id, InstanceId: endpName }), o),
      );
      await this.waitFor(out.OperationId, `DeregisterInstance ${ctx.path}`, ctx);
    }
  }

  /** Deregisters every instance, then deletes the service (Cloud Map refuses while instances remain). */
  private async deleteServiceTree(nsName: string, serv: Ids): Promise<void> {
    const path = pathOf(nsName, serv.name);
    const { count } = await this.instances(serv, path);
    await mapLimited([...count], this.concurrency, ([id, n]) => this.deregister(serv, nsName, serv.name, id, n));
    await this.call({ level: 'service', path }, (o) => this.client.send(new DeleteServiceCommand({ Id: serv.id }), o));
  }

  private async findNs(name: string): Promise<Ids | undefined> {
    const found = await this.pages(async (token) => {
      const out = await this.call({ level: 'namespace', path: name }, (o) =>
        this.client.send(
          new ListNamespacesCommand({
            Filters: [{ Name: 'NAME', Values: [name], Condition: 'EQ' }],
            NextToken: token,
            MaxResults: 100,
          }),
          o,
        ),
      );
      return { items: out.Namespaces ?? [], next: out.NextToken };
    });
    const ns = found.find((n) => n.Name === name && n.Id && n.Arn);
    return ns ? { id: ns.Id!, arn: ns.Arn!, name } : undefined;
  }

  /** A namespace's IDs, resolved now (and remembered). */
  private async nsIds(name: string): Promise<Ids> {
    const ids = await this.findNs(name);
    if (!ids) throw new ServRegNotFoundError('namespace', name);
    this.remember(nsKey(name), ids);
    return ids;
  }

  /** A service's IDs, resolved now (and remembered). */
  private async servIds(ns: Ids, servName: string): Promise<Ids> {
    const [ids] = await this.servicesIn(ns, servName);
    if (!ids) throw new ServRegNotFoundError('service', pathOf(ns.name, servName));
    this.remember(servKey(ns.name, servName), ids);
    return ids;
  }

  /**
   * Runs `fn` on a namespace's IDs: remembered ones, else resolved. When Cloud Map no longer knows a remembered
   * namespace or service, the name is forgotten and resolved again, and `fn` runs once more on what that finds
   * (or the NotFound of the resolution is the answer). `fn` must fail before it writes when the ID is unknown,
   * as every first call on an ID does.
   */
  private async onNs<T>(name: string, fn: (ns: Ids) => Promise<T>): Promise<T> {
    const known = this.remembered.get(nsKey(name));
    if (known) {
      try {
        return await fn(known);
      } catch (err) {
        if (!goneId(err)) throw err;
        this.remembered.delete(nsKey(name));
      }
    }
    return fn(await this.nsIds(name));
  }

  /** As {@link onNs}, on a service's IDs (the namespace's, when only they are remembered, save a ListNamespaces). */
  private async onServ<T>(nsName: string, servName: string, fn: (serv: Ids) => Promise<T>): Promise<T> {
    const known = this.remembered.get(servKey(nsName, servName));
    const ns = this.remembered.get(nsKey(nsName));
    if (known || ns) {
      try {
        return await fn(known ?? (await this.servIds(ns!, servName)));
      } catch (err) {
        if (!goneId(err)) throw err;
        // The service or its namespace is gone (or was made again): both are resolved afresh. The namespace's other
        // services keep their IDs; any of them that is gone too heals the same way on its next call.
        this.remembered.delete(servKey(nsName, servName));
        this.remembered.delete(nsKey(nsName));
      }
    }
    return fn(await this.servIds(await this.nsIds(nsName), servName));
  }

  private remember(key: string, ids: Ids): void {
    this.remembered.delete(key);
    this.remembered.set(key, ids);
    if (this.remembered.size > REMEMBERED_NAMES) this.remembered.delete(this.remembered.keys().next().value!);
  }

  /** Forgets a service's IDs, or a namespace's and those of all its services. */
  private forget(nsName: string, servName?: string): void {
    if (servName !== undefined) {
      this.remembered.delete(servKey(nsName, servName));
      return;
    }
    this.remembered.delete(nsKey(nsName));
    const prefix = servKey(nsName, '');
    for (const key of [...this.remembered.keys()]) if (key.startsWith(prefix)) this.remembered.delete(key);
  }

  /**
   * The services of a namespace (optionally only the one named `only`). ListServices summaries carry no
   * namespace ID, and moto ignores the NAMESPACE_ID filter, so each candidate is confirmed with GetService:
   * one extra call per service, the price of never mixing up two namespaces' services of the same name.
   */
  private async servicesIn(ns: Ids, only?: string): Promise<Ids[]> {
    const listed = await this.pages(async (token) => {
      const out = await this.call({ level: 'namespace', path: ns.name }, (o) =>
        this.client.send(
          new ListServicesCommand({
            Filters: [{ Name: 'NAMESPACE_ID', Values: [ns.id], Condition: 'EQ' }],
            NextToken: token,
            MaxResults: 100,
          }),
          o,
        ),
      );
      return { items: out.Services ?? [], next: out.NextToken };
    });
    const candidates = listed.filter((s) => s.Id && s.Arn && s.Name && (only === undefined || s.Name === only));
    const confirmed = await mapLimited(candidates, this.concurrency, async (s) => {
      const path = pathOf(ns.name, s.Name!);
      try {
        const out = await this.call({ level: 'service', path }, (o) => this.client.send(new GetServiceCommand({ Id: s.Id! }), o));
        return out.Service?.NamespaceId === ns.id ? { id: s.Id!, arn: s.Arn!, name: s.Name! } : undefined;
      } catch (err) {
        if (err instanceof ServRegNotFoundError) return undefined; // deleted since it was listed
        throw err;
      }
    });
    return confirmed.filter((s): s is Ids => s !== undefined);
  }

  /**
   * The instances of a service, keyed by ID. AWS holds one registration per ID, RegisterInstance replacing
   * it; moto appends one per call and GetInstance returns the oldest, so the last one listed wins and
   * `count` says how many registrations a delete must remove.
   */
  private async instances(serv: Ids, path: string): Promise<{ latest: Map<string, InstanceSummary>; count: Map<string, number> }> {
    const all = await this.pages(async (token) => {
      const out = await this.call({ level: 'service', path }, (o) =>
        this.client.send(new ListInstancesCommand({ ServiceId: serv.id, NextToken: token, MaxResults: 100 }), o),
      );
      return { items: out.Instances ?? [], next: out.NextToken };
    });
    const latest = new Map<string, InstanceSummary>();
    const count = new Map<string, number>();
    for (const inst of all) {
      if (!inst.Id) continue;
      latest.set(inst.Id, inst);
      count.set(inst.Id, (count.get(inst.Id) ?? 0) + 1);
    }
    return { latest, count };
  }

  private async tags(arn: string, level: RegistryLevel, path: string): Promise<Metadata> {
    const out = await this.call({ level, path }, (o) => this.client.send(new ListTagsForResourceCommand({ ResourceARN: arn }), o));
    return Object.fromEntries((out.Tags ?? []).filter((t) => t.Key !== undefined).map((t) => [t.Key!, t.Value ?? '']));
  }

  /** Makes the tags exactly `metadata`: TagResource only adds and overwrites, so stale keys are untagged. */
  private async replaceTags(arn: string, metadata: Metadata, level: RegistryLevel, path: string): Promise<void> {
    const current = await this.tags(arn, level, path);
    const stale = Object.keys(current).filter((k) => !(k in metadata));
    if (stale.length > 0) {
      await this.call({ level, path }, (o) => this.client.send(new UntagResourceCommand({ ResourceARN: arn, TagKeys: stale }), o));
    }
    const tags = toTags(metadata);
    if (tags.length > 0) {
      await this.call({ level, path }, (o) => this.client.send(new TagResourceCommand({ ResourceARN: arn, Tags: tags }), o));
    }
  }

  private async waitFor(operationId: string | undefined, what: string, ctx: CallContext): Promise<void> {
    if (!operationId) throw new UnavailableError(`${what}: Cloud Map returned no operation ID`);
    await waitForOperation(
      async () => {
        const out = await this.call(ctx, (o) => this.client.send(new GetOperationCommand({ OperationId: operationId }), o));
        return { status: out.Operation?.Status, errorCode: out.Operation?.ErrorCode, errorMessage: out.Operation?.ErrorMessage };
      },
      { what, timeoutMs: this.operationTimeoutMs, intervalMs: this.pollIntervalMs },
    );
  }

  /** Follows NextToken to the last page (iteration over pages, not a retry). */
  private async pages<T>(page: (token: string | undefined) => Promise<{ items: T[]; next?: string }>): Promise<T[]> {
    const all: T[] = [];
    let token: string | undefined;
    do {
      const { items, next } = await page(token);
      all.push(...items);
      token = next;
    } while (token);
    return all;
  }

  /** One API call within the rate budget and its deadline, its errors mapped to the registry's error set. */
  private async call<T>(ctx: CallContext, send: (opts: { abortSignal: AbortSignal }) => Promise<T>): Promise<T> {
    const waited = await this.budget.take();
    if (waited > 0) this.observer.waited?.('cloudmap', waited);
    this.observer.called?.('cloudmap');
    try {
      return await send({ abortSignal: AbortSignal.timeout(this.callTimeoutMs) });
    } catch (err) {
      if (isThrottling(err)) this.observer.throttled?.('cloudmap');
      throw mapCloudMapError(err, ctx);
    }
  }
}

interface CallContext {
  level: RegistryLevel;
  path: string;
}

/** True for the error of a call on a namespace or service ID that Cloud Map does not know (any more). */
function goneId(err: unknown): boolean {
  return err instanceof ServRegNotFoundError && (err.level === 'namespace' || err.level === 'service');
}

/** Maps an AWS SDK error to the registry's error set; messages carry the error name, never request details. */
export function mapCloudMapError(err: unknown, ctx: CallContext): Error {
  if (err instanceof ValidationError || err instanceof ServRegNotFoundError) return err;
  const e = err as { name?: string; message?: string; $fault?: string; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  const name = e?.name ?? 'Error';
  const detail = (e?.message ?? '').slice(0, 300);
  switch (name) {
    case 'AbortError':
    case 'TimeoutError':
      return new ServRegTimeoutError(`Cloud Map call on ${ctx.level} ${ctx.path}`, err);
    case 'NamespaceNotFound':
      return new ServRegNotFoundError('namespace', ctx.path.split('/')[0] ?? ctx.path);
    case 'ServiceNotFound':
      return new ServRegNotFoundError('service', ctx.path.split('/').slice(0, 2).join('/'));
    case 'InstanceNotFound':
    case 'ResourceNotFoundException':
    case 'OperationNotFound':
      return new ServRegNotFoundError(ctx.level, ctx.path);
    case 'NamespaceAlreadyExists':
      return new ServRegAlreadyExistsError('namespace', ctx.path);
    case 'ServiceAlreadyExists':
      return new ServRegAlreadyExistsError('service', ctx.path);
    case 'ResourceInUse':
      return new NotEmptyError(ctx.level, ctx.path);
    case 'DuplicateRequest':
      return new ConflictError(`Cloud Map: a conflicting request on ${ctx.level} ${ctx.path} is in progress`);
    case 'InvalidInput':
    case 'ResourceLimitExceeded':
    case 'TooManyTagsException':
    case 'ServiceAttributesLimitExceededException':
      return new ValidationError(`Cloud Map rejected ${ctx.level} ${ctx.path}: ${name}: ${detail}`);
    case 'AccessDeniedException':
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
    case 'ExpiredTokenException':
    case 'InvalidClientTokenId':
    case 'MissingAuthenticationToken':
      return new PermissionError(`Cloud Map denied the call on ${ctx.level} ${ctx.path} (${name})`);
    default:
      // Throttling, 5xx, connection failures: a later attempt may succeed.
      return new UnavailableError(`Cloud Map call on ${ctx.level} ${ctx.path} failed (${name})`, err);
  }
}

/** AWS's throttling answers: the error names of its throttling family, or HTTP 429. */
export function isThrottling(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number }; $retryable?: { throttling?: boolean } };
  return (
    e?.$retryable?.throttling === true ||
    e?.$metadata?.httpStatusCode === 429 ||
    ['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded', 'RequestThrottled', 'RequestThrottledException'].includes(e?.name ?? '')
  );
}

function positive(n: number, field: string): number {
  if (!Number.isFinite(n) || n <= 0) throw new ValidationError(`${field} must be a positive number`, field);
  return n;
}

function toTags(metadata: Metadata): Tag[] {
  return Object.entries(metadata).map(([Key, Value]) => ({ Key, Value }));
}

function toAttributes(v: Endpoint): Record<string, string> {
  const reserved = Object.keys(v.metadata).filter((k) => k.startsWith(reservedAttributePrefix));
  if (reserved.length > 0) {
    throw new ValidationError(
      `endpoint metadata keys starting with ${reservedAttributePrefix} are reserved by Cloud Map: ${reserved.join(', ')}`,
      'endpoint.metadata',
    );
  }
  const addressKey = isIP(v.address) === 6 ? cloudMapAddressAttributes.ipv6 : cloudMapAddressAttributes.ipv4;
  return { ...v.metadata, [addressKey]: v.address, [cloudMapAddressAttributes.port]: String(v.port) };
}

/** An instance as an endpoint; one registered by someone else without address or port shows '' and 0. */
function toEndpoint(nsName: string, servName: string, inst: InstanceSummary): Endpoint {
  const attrs = inst.Attributes ?? {};
  const metadata: Metadata = {};
  for (const [k, v] of Object.entries(attrs)) if (!k.startsWith(reservedAttributePrefix)) metadata[k] = v;
  const port = Number.parseInt(attrs[cloudMapAddressAttributes.port] ?? '', 10);
  return {
    name: inst.Id!,
    namespace: nsName,
    service: servName,
    address: attrs[cloudMapAddressAttributes.ipv4] ?? attrs[cloudMapAddressAttributes.ipv6] ?? '',
    port: Number.isInteger(port) ? port : 0,
    metadata,
  };
}
