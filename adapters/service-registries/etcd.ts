// The etcd backend, on the revisioned datastore (adapters/datastore). Layout under the prefix (default
// `/service-registry/`):
//
//   <prefix>namespaces/<ns>                                  {"name","metadata"}
//   <prefix>namespaces/<ns>/services/<svc>                   {"name","namespace","metadata"}
//   <prefix>namespaces/<ns>/services/<svc>/endpoints/<ep>    {"name","namespace","service","address","port","metadata"}
//
// Values are JSON objects with exactly these fields (the TypeScript types of ./types). Names come from the key;
// a value that does not parse is read as an object with no metadata, i.e. foreign, so it is never deleted
// by the Broker's ownership rules.
//
// The parent rule without a multi-key transaction in the Datastore interface: a create reads the parent,
// creates the child, then reads the parent again and removes its child if the parent is gone. A delete
// removes the parent key FIRST and only then lists and deletes what is below (services before a second
// listing for their endpoints). Under etcd's linearizable operations every interleaving of the two ends
// with no child left without its parent: a child created before the parent's deletion is in the deleter's
// listing; one created after fails its second read. What remains is a crash in the middle of a delete,
// which can leave keys below a deleted parent: every read goes through the parent, so they stay invisible,
// and creating that parent again sweeps them (keys older than the new parent's revision).
import { AlreadyExistsError, ConflictError, NotFoundError, ValidationError } from '../errors';
import { EtcdDatastore, type EtcdDatastoreOptions } from '../datastore/etcd';
import { maxBatchOperations, type Datastore, type GuardedBatch, type KVPair } from '../datastore/types';
import { mapLimited } from './concurrency';
import { ServRegAlreadyExistsError, ServRegNotFoundError, type RegistryLevel } from './errors';
import type { Endpoint, EndpointChanges, Metadata, Namespace, RegistrySnapshot, Revisioned, Service, ServiceRegistry, ServiceWrite } from './types';
import { pathOf, validateEndpoint, validateName, validateNamespace, validateService } from './validation';

/** The prefix used when none is given. */
export const defaultEtcdServiceRegistryPrefix = '/service-registry/';

/** Connection settings for {@link EtcdServiceRegistry.connect}. */
export interface EtcdServiceRegistryConnectOptions extends Omit<EtcdDatastoreOptions, 'prefix'> {
  /** Where the registry lives in etcd; default `/service-registry/`. */
  prefix?: string;
  /** How many keys a recursive delete removes at once (default 16). */
  concurrency?: number;
}

const nsKey = (ns: string) => `/namespaces/${ns}`;
const servKey = (ns: string, s: string) => `${nsKey(ns)}/services/${s}`;
const endpKey = (ns: string, s: string, e: string) => `${servKey(ns, s)}/endpoints/${e}`;

/** A ServiceRegistry on etcd, through a Datastore whose prefix is the registry's prefix. */
export class EtcdServiceRegistry implements ServiceRegistry {
  private readonly ds: Datastore;
  private readonly ownsDatastore: boolean;
  private readonly concurrency: number;

  /** Uses `datastore` (keys go under its own prefix); the caller keeps ownership and closes it. */
  constructor(datastore: Datastore, opts: { concurrency?: number; ownsDatastore?: boolean } = {}) {
    this.ds = datastore;
    this.ownsDatastore = opts.ownsDatastore ?? false;
    this.concurrency = opts.concurrency ?? 16;
  }

  /** Connects to etcd with the registry's prefix (trailing `/` optional; `/service-registry/` by default). */
  static connect(opts: EtcdServiceRegistryConnectOptions): EtcdServiceRegistry {
    const { prefix, concurrency, ...rest } = opts;
    const trimmed = (prefix ?? defaultEtcdServiceRegistryPrefix).replace(/\/+$/, '');
    const ds = new EtcdDatastore({ ...rest, prefix: trimmed });
    return new EtcdServiceRegistry(ds, { concurrency, ownsDatastore: true });
  }

  // ---- namespaces

  async getNs(name: string): Promise<Namespace> {
    validateName('namespace', name);
    return parseNs(name, await this.read(nsKey(name), 'namespace', name));
  }

  async listNs(): Promise<Namespace[]> {
    // The listing holds the whole tree; only the namespace keys themselves are kept.
    const { pairs } = await this.ds.list('/namespaces');
    return pairs.flatMap((p) => {
      const m = /^\/namespaces\/([^/]+)$/.exec(p.key);
      return m ? [parseNs(m[1]!, p)] : [];
    });
  }

  async createNs(ns: Namespace): Promise<Namespace> {
    const v = validateNamespace(ns);
    const created = await this.create(nsKey(v.name), JSON.stringify({ name: v.name, metadata: v.metadata }), 'namespace', v.name);
    await this.sweepOlderThan(nsKey(v.name), created.revision);
    return v;
  }

  async updateNs(ns: Namespace): Promise<Namespace> {
    const v = validateNamespace(ns);
    await this.replace(nsKey(v.name), JSON.stringify({ name: v.name, metadata: v.metadata }), 'namespace', v.name);
    return v;
  }

  async deleteNs(name: string): Promise<void> {
    validateName('namespace', name);
    await this.remove(nsKey(name), 'namespace', name);
    // Service keys go before the second listing, so every endpoint created while they still existed is in it.
    const first = await this.ds.list(nsKey(name));
    const serviceKeys = first.pairs.filter((p) => /^\/namespaces\/[^/]+\/services\/[^/]+$/.test(p.key));
    await mapLimited(serviceKeys, this.concurrency, (p) => this.dropKey(p.key));
    const second = await this.ds.list(nsKey(name));
    await mapLimited(second.pairs, this.concurrency, (p) => this.dropKey(p.key));
  }

  // ---- services

  async getServ(nsName: string, servName: string): Promise<Service> {
    validateName('namespace', nsName);
    validateName('service', servName);
    const [, pair] = await Promise.all([
      this.read(nsKey(nsName), 'namespace', nsName),
      this.read(servKey(nsName, servName), 'service', pathOf(nsName, servName)),
    ]);
    return parseServ(nsName, servName, pair);
  }

  async listServ(nsName: string): Promise<Service[]> {
    validateName('namespace', nsName);
    await this.read(nsKey(nsName), 'namespace', nsName);
    const { pairs } = await this.ds.list(`${nsKey(nsName)}/services`);
    const re = /^\/namespaces\/[^/]+\/services\/([^/]+)$/;
    return pairs.flatMap((p) => {
      const m = re.exec(p.key);
      return m ? [parseServ(nsName, m[1]!, p)] : [];
    });
  }

  async createServ(serv: Service): Promise<Service> {
    const v = validateService(serv);
    const value = JSON.stringify({ name: v.name, namespace: v.namespace, metadata: v.metadata });
    const created = await this.createChild(nsKey(v.namespace), 'namespace', v.namespace, servKey(v.namespace, v.name), value, 'service', pathOf(v.namespace, v.name));
    await this.sweepOlderThan(servKey(v.namespace, v.name), created.revision);
    return v;
  }

  async updateServ(serv: Service): Promise<Service> {
    const v = validateService(serv);
    await this.read(nsKey(v.namespace), 'namespace', v.namespace);
    const value = JSON.stringify({ name: v.name, namespace: v.namespace, metadata: v.metadata });
    await this.replace(servKey(v.namespace, v.name), value, 'service', pathOf(v.namespace, v.name));
    return v;
  }

  async deleteServ(nsName: string, servName: string): Promise<void> {
    validateName('namespace', nsName);
    validateName('service', servName);
    const key = servKey(nsName, servName);
    await this.remove(key, 'service', pathOf(nsName, servName));
    const { pairs } = await this.ds.list(key);
    await mapLimited(pairs, this.concurrency, (p) => this.dropKey(p.key));
  }

  // ---- endpoints

  async getEndp(nsName: string, servName: string, endpName: string): Promise<Endpoint> {
    validateName('namespace', nsName);
    validateName('service', servName);
    validateName('endpoint', endpName);
    const [, pair] = await Promise.all([
      this.read(servKey(nsName, servName), 'service', pathOf(nsName, servName)),
      this.read(endpKey(nsName, servName, endpName), 'endpoint', pathOf(nsName, servName, endpName)),
    ]);
    return parseEndp(nsName, servName, endpName, pair);
  }

  async listEndp(nsName: string, servName: string): Promise<Endpoint[]> {
    validateName('namespace', nsName);
    validateName('service', servName);
    await this.read(servKey(nsName, servName), 'service', pathOf(nsName, servName));
    const { pairs } = await this.ds.list(`${servKey(nsName, servName)}/endpoints`);
    const re = /^\/namespaces\/[^/]+\/services\/[^/]+\/endpoints\/([^/]+)$/;
    return pairs.flatMap((p) => {
      const m = re.exec(p.key);
      return m ? [parseEndp(nsName, servName, m[1]!, p)] : [];
    });
  }

  async createEndp(endp: Endpoint): Promise<Endpoint> {
    const v = validateEndpoint(endp);
    await this.createChild(
      servKey(v.namespace, v.service),
      'service',
      pathOf(v.namespace, v.service),
      endpKey(v.namespace, v.service, v.name),
      endpointValue(v),
      'endpoint',
      pathOf(v.namespace, v.service, v.name),
    );
    return v;
  }

  async updateEndp(endp: Endpoint): Promise<Endpoint> {
    const v = validateEndpoint(endp);
    await this.read(servKey(v.namespace, v.service), 'service', pathOf(v.namespace, v.service));
    await this.replace(endpKey(v.namespace, v.service, v.name), endpointValue(v), 'endpoint', pathOf(v.namespace, v.service, v.name));
    return v;
  }

  async deleteEndp(nsName: string, servName: string, endpName: string): Promise<void> {
    validateName('namespace', nsName);
    validateName('service', servName);
    validateName('endpoint', endpName);
    await this.remove(endpKey(nsName, servName, endpName), 'endpoint', pathOf(nsName, servName, endpName));
  }

  /**
   * The changes of one service in transactions of up to 127 writes, each guarded by the service key (the parent
   * rule, atomically this time), creates by their key being absent and updates by it being present; deletes are
   * unconditional. A batch whose guard fails writes nothing and its changes are returned, for the caller to write
   * one by one (each then reports its own error: already exists, not found, parent gone).
   */
  async applyEndpoints(nsName: string, servName: string, changes: EndpointChanges): Promise<EndpointChanges> {
    validateName('namespace', nsName);
    validateName('service', servName);
    const all = [
      ...changes.create.map((e) => ({ kind: 'create' as const, e: validateEndpoint({ ...e, namespace: nsName, service: servName }) })),
      ...changes.update.map((e) => ({ kind: 'update' as const, e: validateEndpoint({ ...e, namespace: nsName, service: servName }) })),
      ...changes.delete.map((name) => ({ kind: 'delete' as const, name: (validateName('endpoint', name), name) })),
    ];
    const left: EndpointChanges = { create: [], update: [], delete: [] };
    if (!this.ds.writeAll) return { create: [...changes.create], update: [...changes.update], delete: [...changes.delete] };
    const parent = servKey(nsName, servName);
    const size = maxBatchOperations - 1; // one guard is the parent's
    for (let i = 0; i < all.length; i += size) {
      const chunk = all.slice(i, i + size);
      const batch = { exists: [parent], absent: [] as string[], puts: [] as Array<{ key: string; value: string }>, deletes: [] as string[] };
      for (const c of chunk) {
        if (c.kind === 'delete') {
          batch.deletes.push(endpKey(nsName, servName, c.name));
          continue;
        }
        const key = endpKey(nsName, servName, c.e.name);
        (c.kind === 'create' ? batch.absent : batch.exists).push(key);
        batch.puts.push({ key, value: endpointValue(c.e) });
      }
      if (await this.ds.writeAll(batch)) continue;
      for (const c of chunk) {
        if (c.kind === 'delete') left.delete.push(c.name);
        else left[c.kind].push(c.e);
      }
    }
    return left;
  }

  async snapshot(): Promise<RegistrySnapshot> {
    // One list of the whole tree, read at one revision (later pages at the first page's revision).
    const { pairs } = await this.ds.list('/namespaces');
    const snap: RegistrySnapshot = { namespaces: new Map(), services: new Map(), endpoints: new Map() };
    for (const p of pairs) {
      const parts = p.key.split('/'); // '', 'namespaces', ns[, 'services', svc[, 'endpoints', ep]]
      if (parts.length === 3) snap.namespaces.set(parts[2]!, { value: parseNs(parts[2]!, p), revision: p.revision });
      else if (parts.length === 5 && parts[3] === 'services') {
        snap.services.set(`${parts[2]}/${parts[4]}`, { value: parseServ(parts[2]!, parts[4]!, p), revision: p.revision });
      } else if (parts.length === 7 && parts[3] === 'services' && parts[5] === 'endpoints') {
        const path = `${parts[2]}/${parts[4]}`;
        const list = snap.endpoints.get(path) ?? [];
        list.push({ value: parseEndp(parts[2]!, parts[4]!, parts[6]!, p), revision: p.revision });
        snap.endpoints.set(path, list);
      }
    }
    return snap;
  }

  async writeServices(snapshot: RegistrySnapshot, writes: ServiceWrite[]): Promise<ServiceWrite[]> {
    if (!this.ds.writeAll) return [...writes];
    const writeAll = this.ds.writeAll.bind(this.ds);
    // Validation comes first: a write that cannot be valid is never half-made, and is returned for the careful path.
    const left: ServiceWrite[] = [];
    const prepared: Array<{ write: ServiceWrite; batch: Required<GuardedBatch> }> = [];
    for (const w of writes) {
      try {
        prepared.push({ write: w, batch: guardedServiceWrite(snapshot, w) });
      } catch {
        left.push(w);
      }
    }
    // Services packed into transactions of at most `maxBatchOperations` guards and writes each.
    const txns: Array<typeof prepared> = [];
    let current: typeof prepared = [];
    let guards = 0;
    let puts = 0;
    for (const p of prepared) {
      const g = p.batch.exists.length + p.batch.absent.length + p.batch.unchanged.length;
      const n = p.batch.puts.length + p.batch.deletes.length;
      if (g > maxBatchOperations || n > maxBatchOperations) {
        left.push(p.write); // larger than one transaction: the careful path writes it
        continue;
      }
      if (guards + g > maxBatchOperations || puts + n > maxBatchOperations) {
        txns.push(current);
        current = [];
        guards = 0;
        puts = 0;
      }
      current.push(p);
      guards += g;
      puts += n;
    }
    if (current.length) txns.push(current);
    await mapLimited(txns, this.concurrency, async (txn) => {
      const batch: Required<GuardedBatch> = { exists: [], absent: [], unchanged: [], puts: [], deletes: [] };
      for (const { batch: b } of txn) {
        for (const k of b.exists) if (!batch.exists.includes(k)) batch.exists.push(k);
        batch.absent.push(...b.absent);
        batch.unchanged.push(...b.unchanged);
        batch.puts.push(...b.puts);
        batch.deletes.push(...b.deletes);
      }
      if (await writeAll(batch)) return;
      if (txn.length === 1) {
        left.push(txn[0]!.write);
        return;
      }
      // One guard failed: each service again on its own, so one changed service does not hold back the others.
      await mapLimited(txn, 1, async (t) => {
        if (!(await writeAll(t.batch))) left.push(t.write);
      });
    });
    return left;
  }

  async close(): Promise<void> {
    if (this.ownsDatastore) await this.ds.close();
  }

  // ---- internals

  private async read(key: string, level: RegistryLevel, path: string): Promise<KVPair> {
    try {
      return await this.ds.get(key);
    } catch (err) {
      if (err instanceof NotFoundError) throw new ServRegNotFoundError(level, path);
      throw err;
    }
  }

  private async create(key: string, value: string, level: RegistryLevel, path: string): Promise<KVPair> {
    try {
      return await this.ds.create(key, value);
    } catch (err) {
      if (err instanceof AlreadyExistsError) throw new ServRegAlreadyExistsError(level, path);
      throw err;
    }
  }

  /** Parent check, create, parent check again (see the file comment); returns the created pair. */
  private async createChild(
    parentKey: string,
    parentLevel: RegistryLevel,
    parentPath: string,
    key: string,
    value: string,
    level: RegistryLevel,
    path: string,
  ): Promise<KVPair> {
    await this.read(parentKey, parentLevel, parentPath);
    const created = await this.create(key, value, level, path);
    try {
      await this.ds.get(parentKey);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      await this.ds.delete(key, created.revision).catch(() => undefined);
      throw new ServRegNotFoundError(parentLevel, parentPath);
    }
    return created;
  }

  /** Read-then-update at the read revision: a concurrent writer makes this fail with a ConflictError. */
  private async replace(key: string, value: string, level: RegistryLevel, path: string): Promise<void> {
    const current = await this.read(key, level, path);
    try {
      await this.ds.update({ key, value, revision: current.revision });
    } catch (err) {
      if (err instanceof NotFoundError) throw new ServRegNotFoundError(level, path);
      throw err;
    }
  }

  private async remove(key: string, level: RegistryLevel, path: string): Promise<void> {
    try {
      await this.ds.delete(key);
    } catch (err) {
      if (err instanceof NotFoundError) throw new ServRegNotFoundError(level, path);
      throw err;
    }
  }

  /** Deletes exactly one key; already gone is fine. */
  private async dropKey(key: string): Promise<void> {
    try {
      await this.ds.delete(key);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  /**
   * Deletes keys below `key` last written before `revision` (the revision at which `key` was just created):
   * leftovers of an earlier incarnation whose delete did not finish. Anything legitimately below the new
   * key was written after it, so it has a higher revision. Each delete is conditional on the listed revision.
   */
  private async sweepOlderThan(key: string, revision: string): Promise<void> {
    const { pairs } = await this.ds.list(key);
    const stale = pairs.filter((p) => p.key !== key && olderThan(p.revision, revision));
    await mapLimited(stale, this.concurrency, async (p) => {
      try {
        await this.ds.delete(p.key, p.revision);
      } catch (err) {
        if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
      }
    });
  }
}

/**
 * The guarded batch of one service write: the namespace must exist, and every key written or deleted must be as
 * the snapshot saw it (absent, or at the revision it had). Validates everything before anything is written.
 */
function guardedServiceWrite(snapshot: RegistrySnapshot, w: ServiceWrite): Required<GuardedBatch> {
  validateName('namespace', w.namespace);
  validateName('service', w.service);
  const path = `${w.namespace}/${w.service}`;
  const batch: Required<GuardedBatch> = { exists: [nsKey(w.namespace)], absent: [], unchanged: [], puts: [], deletes: [] };
  const guard = (key: string, seen: Revisioned<unknown> | undefined) => {
    if (seen) batch.unchanged.push({ key, revision: seen.revision });
    else batch.absent.push(key);
  };
  const seenService = snapshot.services.get(path);
  if (w.put) {
    const v = validateService({ ...w.put, namespace: w.namespace, name: w.service });
    guard(servKey(w.namespace, w.service), seenService);
    batch.puts.push({ key: servKey(w.namespace, w.service), value: JSON.stringify({ name: v.name, namespace: v.namespace, metadata: v.metadata }) });
  } else if (seenService) {
    batch.unchanged.push({ key: servKey(w.namespace, w.service), revision: seenService.revision });
  } else {
    batch.exists.push(servKey(w.namespace, w.service));
  }
  const seenEndpoints = new Map((snapshot.endpoints.get(path) ?? []).map((e) => [e.value.name, e]));
  const names = new Set<string>();
  for (const e of w.endpoints) {
    const v = validateEndpoint({ ...e, namespace: w.namespace, service: w.service });
    if (names.has(v.name)) throw new ValidationError(`endpoint ${JSON.stringify(v.name)} is listed twice`, 'endpoint.name');
    names.add(v.name);
    const key = endpKey(w.namespace, w.service, v.name);
    guard(key, seenEndpoints.get(v.name));
    batch.puts.push({ key, value: endpointValue(v) });
  }
  for (const name of w.deletes) {
    validateName('endpoint', name);
    const seen = seenEndpoints.get(name);
    if (!seen || names.has(name)) continue; // nothing to delete, or put above
    batch.unchanged.push({ key: endpKey(w.namespace, w.service, name), revision: seen.revision });
    batch.deletes.push(endpKey(w.namespace, w.service, name));
  }
  return batch;
}

function olderThan(a: string, b: string): boolean {
  try {
    return BigInt(a) < BigInt(b);
  } catch {
    return false; // not an etcd revision: never sweep what cannot be compared
  }
}

function endpointValue(v: Endpoint): string {
  return JSON.stringify({ name: v.name, namespace: v.namespace, service: v.service, address: v.address, port: v.port, metadata: v.metadata });
}

function parseObject(pair: KVPair): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(pair.value);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function metadataOf(obj: Record<string, unknown>): Metadata {
  const m = obj.metadata;
  if (!m || typeof m !== 'object' || Array.isArray(m)) return {};
  return Object.fromEntries(Object.entries(m as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

function parseNs(name: string, pair: KVPair): Namespace {
  return { name, metadata: metadataOf(parseObject(pair)) };
}

function parseServ(nsName: string, name: string, pair: KVPair): Service {
  return { name, namespace: nsName, metadata: metadataOf(parseObject(pair)) };
}

function parseEndp(nsName: string, servName: string, name: string, pair: KVPair): Endpoint {
  const obj = parseObject(pair);
  return {
    name,
    namespace: nsName,
    service: servName,
    address: typeof obj.address === 'string' ? obj.address : '',
    port: typeof obj.port === 'number' ? obj.port : 0,
    metadata: metadataOf(obj),
  };
}
