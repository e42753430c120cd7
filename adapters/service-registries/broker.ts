// The Broker between brokerflow and a service registry (docs/design/contracts/service-registries.md#the-broker):
// it shapes data, marks what it writes with the owner pair and never updates or deletes what lacks that mark.
//
// Deliberate differences from the original Go Broker, each safer and none visible to a caller that follows the
// contract:
// - Inputs are copied, never mutated; names inside endpoint objects are overwritten by the arguments.
// - A create that loses a race with another creator (already exists) adopts what is there instead of failing.
// - `removeNs(name, true)` empties each owned service with `removeServ` rules first, so an owned service
//   holding a foreign endpoint keeps the namespace alive (the original deleted such foreign endpoints).
// - No broker-wide lock: every step is idempotent and level-triggered callers recompute from current state.
import { AlreadyExistsError, NotFoundError, ValidationError } from '../errors';
import {
  EndpointLimitExceededError,
  EndpointNotOwnedError,
  EndpointNotProvidedError,
  ContainsNotOwnedError,
  NamespaceHasForeignServicesError,
  NamespaceNotEmptyError,
  NamespaceNotOwnedError,
  RegistryNotProvidedError,
  ServiceHasForeignEndpointsError,
  ServiceNotEmptyError,
  ServiceNotOwnedError,
} from './errors';
import { mapLimited } from './concurrency';
import type { Endpoint, EndpointChanges, Metadata, MetadataPair, Namespace, RegistrySnapshot, Service, ServiceRegistry, ServiceWrite } from './types';
import {
  pathOf,
  validateEndpoint,
  validateMetadata,
  validateName,
  validateNamespace,
  validateService,
} from './validation';

/** The owner pair used when none is configured: `owner=brokerflow`. */
export const defaultOwnerPair: Readonly<MetadataPair> = Object.freeze({ key: 'owner', value: 'brokerflow' });

/** How a Broker marks and recognises what it owns. */
export interface ServiceRegistryBrokerOptions {
  /** The pair that marks an object as brokerflow's; missing parts fall back to `owner` / `brokerflow`. */
  ownerPair?: Partial<MetadataPair>;
  /** Pairs added to the metadata of every service the Broker writes (e.g. a cluster name). */
  persistentMetadata?: MetadataPair[];
  /** How many registry calls `manageServEndps` / `removeNs` run at once (default 8). */
  concurrency?: number;
}

/** Per-endpoint failures of `manageServEndps`, by endpoint name; empty when everything went through. */
export type EndpointErrors = Map<string, Error>;

/** Ownership-checking front of a ServiceRegistry: what watchers and activities call. */
export class ServiceRegistryBroker {
  readonly registry: ServiceRegistry;
  readonly ownerPair: Readonly<MetadataPair>;
  readonly persistentMetadata: ReadonlyArray<Readonly<MetadataPair>>;
  private readonly concurrency: number;

  constructor(registry: ServiceRegistry, opts: ServiceRegistryBrokerOptions = {}) {
    if (!registry) throw new RegistryNotProvidedError();
    const key = opts.ownerPair?.key || defaultOwnerPair.key;
    const value = opts.ownerPair?.value || defaultOwnerPair.value;
    validateMetadata('namespace', { [key]: value });
    const persistent = (opts.persistentMetadata ?? []).map((p) => ({ key: p.key, value: p.value }));
    validateMetadata('service', Object.fromEntries(persistent.map((p) => [p.key, p.value])));
    if (persistent.some((p) => p.key === key)) {
      throw new ValidationError(`persistent metadata may not set the owner key ${JSON.stringify(key)}`, 'persistentMetadata');
    }
    const concurrency = opts.concurrency ?? 8;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new ValidationError('concurrency must be a positive integer', 'concurrency');
    }
    this.registry = registry;
    this.ownerPair = Object.freeze({ key, value });
    this.persistentMetadata = Object.freeze(persistent.map((p) => Object.freeze(p)));
    this.concurrency = concurrency;
  }

  /** True when metadata carries the owner pair. */
  isOwned(metadata: Metadata | undefined): boolean {
    return metadata?.[this.ownerPair.key] === this.ownerPair.value;
  }

  /** Metadata equality that ignores the owner pair on either side. */
  sameMetadata(a: Metadata | undefined, b: Metadata | undefined): boolean {
    const strip = (m: Metadata | undefined) =>
      Object.entries(m ?? {}).filter(([k, v]) => !(k === this.ownerPair.key && v === this.ownerPair.value));
    const ea = strip(a);
    const eb = new Map(strip(b));
    return ea.length === eb.size && ea.every(([k, v]) => eb.has(k) && eb.get(k) === v);
  }

  /**
   * Makes the registry's namespace match `nsData`: creates it (with the owner pair) when missing, updates it
   * when its metadata differs. A foreign namespace is returned as it is, untouched and without error.
   * Returns the namespace as the registry holds it.
   */
  async manageNs(nsData: Namespace): Promise<Namespace> {
    const desired = validateNamespace(nsData);
    desired.metadata = this.withOwner(desired.metadata);
    const current = await this.getOrCreate(
      () => this.registry.getNs(desired.name),
      () => this.registry.createNs(desired),
    );
    if (current.created) return current.value;
    if (!this.isOwned(current.value.metadata) || this.sameMetadata(desired.metadata, current.value.metadata)) {
      return current.value;
    }
    return this.registry.updateNs(desired);
  }

  /**
   * Makes the registry's service match `servData` (plus the persistent metadata): creates it when missing,
   * updates it when its metadata differs; a foreign service is returned untouched. The namespace must exist.
   */
  async manageServ(servData: Service): Promise<Service> {
    const desired = validateService(servData);
    const persistent = Object.fromEntries(this.persistentMetadata.map((p) => [p.key, p.value]));
    desired.metadata = this.withOwner({ ...desired.metadata, ...persistent });
    const current = await this.getOrCreate(
      () => this.registry.getServ(desired.namespace, desired.name),
      () => this.registry.createServ(desired),
    );
    if (current.created) return current.value;
    if (!this.isOwned(current.value.metadata) || this.sameMetadata(desired.metadata, current.value.metadata)) {
      return current.value;
    }
    return this.registry.updateServ(desired);
  }

  /**
   * Makes the owned endpoints of `nsName/servName` exactly `endpsData`: creates the missing ones, updates
   * those whose address, port or metadata changed, deletes owned endpoints not in the list (an empty list
   * deletes them all). Foreign endpoints are never touched: each is reported as `EndpointNotOwnedError` in
   * the returned map, which holds every per-endpoint failure. The `namespace`/`service` fields inside
   * `endpsData` are ignored. Throws only when nothing could be done (invalid input, service missing,
   * listing failed).
   */
  async manageServEndps(nsName: string, servName: string, endpsData: Endpoint[]): Promise<EndpointErrors> {
    validateName('namespace', nsName);
    validateName('service', servName);
    if (!Array.isArray(endpsData)) throw new ValidationError('endpoints must be a list', 'endpoints');
    const desired = new Map<string, Endpoint>();
    for (const e of endpsData) {
      if (!e) throw new EndpointNotProvidedError();
      const endp = validateEndpoint({ ...e, namespace: nsName, service: servName });
      if (desired.has(endp.name)) {
        throw new ValidationError(`endpoint ${JSON.stringify(endp.name)} is listed twice`, 'endpoint.name');
      }
      endp.metadata = this.withOwner(endp.metadata);
      desired.set(endp.name, endp);
    }

    // A registry quota (Cloud Map: 1,000 instances per service) is checked before any call, and once more
    // against what is registered (foreign endpoints count too) before anything is written.
    const limit = this.registry.limits?.maxEndpointsPerService;
    if (limit !== undefined && desired.size > limit) throw new EndpointLimitExceededError(pathOf(nsName, servName), limit, desired.size);
    const registered = await this.registry.listEndp(nsName, servName);
    if (limit !== undefined) {
      const names = new Set(registered.map((r) => r.name));
      const kept = registered.filter((r) => desired.has(r.name) || !this.isOwned(r.metadata)).length;
      const after = kept + [...desired.keys()].filter((n) => !names.has(n)).length;
      if (after > limit) throw new EndpointLimitExceededError(pathOf(nsName, servName), limit, after);
    }
    const errors: EndpointErrors = new Map();
    let changes: EndpointChanges = { create: [], update: [], delete: [] };
    for (const reg of registered) {
      const want = desired.get(reg.name);
      desired.delete(reg.name);
      if (!this.isOwned(reg.metadata)) {
        errors.set(reg.name, new EndpointNotOwnedError(pathOf(nsName, servName, reg.name)));
        continue;
      }
      if (!want) changes.delete.push(reg.name);
      else if (want.address !== reg.address || want.port !== reg.port || !this.sameMetadata(want.metadata, reg.metadata)) changes.update.push(want);
    }
    changes.create.push(...desired.values());

    // A backend that can write them together does (etcd: one transaction instead of three round trips each);
    // what it could not write goes one by one below, where each change reports its own error.
    if (this.registry.applyEndpoints && changes.create.length + changes.update.length + changes.delete.length > 1) {
      const all = changes;
      changes = await this.registry.applyEndpoints(nsName, servName, all).catch(() => all);
    }
    const steps: Array<{ name: string; run: () => Promise<unknown> }> = [
      ...changes.delete.map((name) => ({ name, run: () => ignoreNotFound(this.registry.deleteEndp(nsName, servName, name)) })),
      ...changes.update.map((e) => ({ name: e.name, run: () => this.registry.updateEndp(e) })),
      ...changes.create.map((e) => ({ name: e.name, run: () => this.registry.createEndp(e) })),
    ];

    await mapLimited(steps, this.concurrency, async (step) => {
      try {
        await step.run();
      } catch (err) {
        errors.set(step.name, asError(err));
      }
    });
    return errors;
  }

  /**
   * The write that makes the owned part of one service match `want`, decided from a registry snapshot under the
   * rules of {@link manageServ} and {@link manageServEndps}: the service is created when missing and updated
   * when its metadata differs; owned endpoints are created, updated and deleted; a foreign service gets nothing
   * (`service-not-owned`), and a foreign endpoint keeps its name (listed in `untouched`). `write` is undefined
   * when the registry already matches. The namespace is the caller's ({@link manageNs}). Throws a
   * ValidationError for what the registry cannot hold, before anything is written.
   */
  planServiceWrite(snapshot: RegistrySnapshot, want: { service: Service; endpoints: Endpoint[] }): { write?: ServiceWrite; untouched: string[] } {
    const desired = validateService(want.service);
    const { namespace, name } = desired;
    const path = `${namespace}/${name}`;
    const persistent = Object.fromEntries(this.persistentMetadata.map((p) => [p.key, p.value]));
    desired.metadata = this.withOwner({ ...desired.metadata, ...persistent });
    // A service below a namespace that is gone is a leftover of an interrupted delete: absent, as are its endpoints.
    const nsSeen = snapshot.namespaces.has(namespace);
    const current = nsSeen ? snapshot.services.get(path)?.value : undefined;
    if (current && !this.isOwned(current.metadata)) return { untouched: ['service-not-owned'] };
    const limit = this.registry.limits?.maxEndpointsPerService;
    if (limit !== undefined && want.endpoints.length > limit) throw new EndpointLimitExceededError(pathOf(namespace, name), limit, want.endpoints.length);
    const write: ServiceWrite = { namespace, service: name, endpoints: [], deletes: [] };
    if (!current || !this.sameMetadata(desired.metadata, current.metadata)) write.put = desired;
    const registered = new Map((snapshot.endpoints.get(path) ?? []).map((e) => [e.value.name, e.value]));
    const untouched: string[] = [];
    const wanted = new Set<string>();
    for (const e of want.endpoints) {
      const endp = validateEndpoint({ ...e, namespace, service: name });
      if (wanted.has(endp.name)) throw new ValidationError(`endpoint ${JSON.stringify(endp.name)} is listed twice`, 'endpoint.name');
      wanted.add(endp.name);
      endp.metadata = this.withOwner(endp.metadata);
      const reg = current ? registered.get(endp.name) : undefined;
      if (reg && !this.isOwned(reg.metadata)) {
        untouched.push(endp.name);
        continue;
      }
      if (!reg || reg.address !== endp.address || reg.port !== endp.port || !this.sameMetadata(endp.metadata, reg.metadata)) write.endpoints.push(endp);
    }
    for (const reg of registered.values()) {
      // Below a missing service every key is a leftover (createServ would sweep it); below ours only owned ones go.
      if (!wanted.has(reg.name) && (!current || this.isOwned(reg.metadata))) write.deletes.push(reg.name);
    }
    if (limit !== undefined) {
      const after = [...registered.values()].filter((r) => wanted.has(r.name) || !this.isOwned(r.metadata)).length + [...wanted].filter((n) => !registered.has(n)).length;
      if (current && after > limit) throw new EndpointLimitExceededError(pathOf(namespace, name), limit, after);
    }
    const changed = write.put !== undefined || write.endpoints.length > 0 || write.deletes.length > 0;
    return changed ? { write, untouched } : { untouched };
  }

  /**
   * Removes a namespace when it is safe: missing is success; services without `force` -> NamespaceNotEmpty;
   * foreign services -> the owned ones are removed, then NamespaceHasForeignServices; a foreign namespace
   * -> NamespaceNotOwned. With `force`, each owned service is removed under `removeServ` rules first.
   */
  async removeNs(nsName: string, forceNotEmpty: boolean): Promise<void> {
    validateName('namespace', nsName);
    const ns = await orUndefinedIfNotFound(this.registry.getNs(nsName));
    if (!ns) return;
    const services = await orUndefinedIfNotFound(this.registry.listServ(nsName));
    if (!services) return;
    if (services.length > 0 && !forceNotEmpty) throw new NamespaceNotEmptyError(nsName);

    const owned = services.filter((s) => this.isOwned(s.metadata));
    const foreignCount = services.length - owned.length;
    if (foreignCount > 0) {
      const failures = await this.removeOwnedServices(nsName, owned);
      // An owned service kept alive by a foreign endpoint is expected here; other failures are news.
      const urgent = failures.find((f) => !(f instanceof ContainsNotOwnedError));
      if (urgent) throw urgent;
      throw new NamespaceHasForeignServicesError(nsName);
    }
    if (!this.isOwned(ns.metadata)) throw new NamespaceNotOwnedError(nsName);
    const failures = await this.removeOwnedServices(nsName, owned);
    const first = failures.find((f) => !(f instanceof ContainsNotOwnedError)) ?? failures[0];
    if (first) throw first;
    await ignoreNotFound(this.registry.deleteNs(nsName));
  }

  /**
   * Removes a service when it is safe: missing is success; endpoints without `force` -> ServiceNotEmpty;
   * foreign endpoints -> the owned ones are deleted, then ServiceHasForeignEndpoints; a foreign service ->
   * ServiceNotOwned.
   */
  async removeServ(nsName: string, servName: string, forceNotEmpty: boolean): Promise<void> {
    validateName('namespace', nsName);
    validateName('service', servName);
    const serv = await orUndefinedIfNotFound(this.registry.getServ(nsName, servName));
    if (!serv) return;
    const endpoints = await orUndefinedIfNotFound(this.registry.listEndp(nsName, servName));
    if (!endpoints) return;
    if (endpoints.length > 0 && !forceNotEmpty) throw new ServiceNotEmptyError(pathOf(nsName, servName));

    const owned = endpoints.filter((e) => this.isOwned(e.metadata));
    if (owned.length < endpoints.length) {
      const failures: Error[] = [];
      await mapLimited(owned, this.concurrency, async (e) => {
        try {
          await ignoreNotFound(this.registry.deleteEndp(nsName, servName, e.name));
        } catch (err) {
          failures.push(asError(err));
        }
      });
      // A failed delete of an owned endpoint matters more (and is usually retryable) than the foreign one.
      if (failures[0]) throw failures[0];
      throw new ServiceHasForeignEndpointsError(pathOf(nsName, servName));
    }
    if (!this.isOwned(serv.metadata)) throw new ServiceNotOwnedError(pathOf(nsName, servName));
    await ignoreNotFound(this.registry.deleteServ(nsName, servName));
  }

  /** Runs `removeServ(force)` on each owned service and returns the failures. */
  private async removeOwnedServices(nsName: string, owned: Service[]): Promise<Error[]> {
    const failures: Error[] = [];
    await mapLimited(owned, this.concurrency, async (s) => {
      try {
        await this.removeServ(nsName, s.name, true);
      } catch (err) {
        failures.push(asError(err));
      }
    });
    return failures;
  }

  private withOwner(metadata: Metadata): Metadata {
    return { ...metadata, [this.ownerPair.key]: this.ownerPair.value };
  }

  /** Gets the object, or creates it; a create that finds it already there (a lost race) reads it instead. */
  private async getOrCreate<T>(get: () => Promise<T>, create: () => Promise<T>): Promise<{ value: T; created: boolean }> {
    const found = await orUndefinedIfNotFound(get());
    if (found) return { value: found, created: false };
    try {
      return { value: await create(), created: true };
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) throw err;
      return { value: await get(), created: false };
    }
  }
}

/** Registries throw ServRegNotFoundError; catching the base class also tolerates datastore-level not-found. */
async function orUndefinedIfNotFound<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

async function ignoreNotFound(p: Promise<unknown>): Promise<void> {
  await orUndefinedIfNotFound(p);
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
