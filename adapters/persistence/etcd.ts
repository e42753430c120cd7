// The etcd backend, through the datastore (adapters/datastore): one key per object,
// `<prefix>/<Kind>[.<group>]/<namespace|_>/<name>`, the value the object as JSON and the version the etcd mod
// revision, so optimistic concurrency is the datastore's revision-compare transaction.
import { AlreadyExistsError, ConflictError, NotFoundError, ValidationError } from '../errors';
import { EtcdDatastore, type EtcdDatastoreOptions } from '../datastore/etcd';
import type { Datastore } from '../datastore/types';
import { InstanceTable, type InstanceState } from './instances';
import type { MachineId } from './machine-id';
import { formatKey, groupKindOf, identityOf, parseKey, parseStored, resourceOf, storableCopy, type ObjectIdentity } from './object-key';
import type {
  InstanceStatus,
  ObjectKey,
  OwnerReference,
  PersistedObject,
  PersistenceProvider,
  PutResult,
  TypeMeta,
  WritePrecondition,
} from './types';

/** One etcd instance: a cluster and the key prefix this provider owns in it. */
export type EtcdInstanceConfig = Pick<EtcdDatastoreOptions, 'endpoints' | 'auth' | 'tls' | 'dialTimeoutMs'> & {
  /** Default `/brokerflow/persistence`. */
  prefix?: string;
};

/** Configuration of the etcd backend. */
export interface EtcdPersistenceOptions {
  instances: EtcdInstanceConfig[];
}

interface EtcdInstance {
  options: EtcdDatastoreOptions;
  datastore?: Datastore;
}

// Objects without a namespace live under this segment; a namespace is a DNS label and can never be "_".
const NO_NAMESPACE = '_';
const REVISION = /^[1-9][0-9]{0,15}$/;

/** Persists objects in etcd. */
export class EtcdPersistenceProvider implements PersistenceProvider {
  readonly kind = 'etcd';
  private readonly table: InstanceTable<EtcdInstance>;

  constructor(opts: EtcdPersistenceOptions) {
    if (!Array.isArray(opts.instances)) throw new ValidationError('instances must be a list', 'instances');
    this.table = new InstanceTable(
      'etcd',
      opts.instances.map((c) => {
        const options: EtcdDatastoreOptions = { ...c, prefix: c.prefix ?? '/brokerflow/persistence' };
        // Constructing validates endpoints and prefix now (a bad one is a configuration error, not a dead instance).
        void new EtcdDatastore(options).close();
        return {
          config: { options },
          identity: { endpoints: [...c.endpoints].sort(), prefix: options.prefix },
        };
      }),
    );
  }

  async initialize(_machineId: MachineId): Promise<void> {
    await this.table.initializeAll('etcd', async ({ config }) => {
      await config.datastore?.close();
      config.datastore = new EtcdDatastore(config.options);
      await config.datastore.ensureInitialized();
    });
  }

  instances(): string[] {
    return this.table.names();
  }

  instanceStatus(instance: string): InstanceStatus {
    return this.table.status(instance);
  }

  async putObject(instance: string, object: PersistedObject, precondition: WritePrecondition = {}): Promise<PutResult> {
    const state = this.table.get(instance);
    const id = identityOf(object);
    const key = formatKey(id);
    const value = JSON.stringify(storableCopy(object));
    return state.track(
      async () => {
        const ds = datastore(state);
        try {
          if (precondition.ifNoneMatch === '*') {
            return { key, resourceVersion: (await ds.create(etcdKey(id), value)).revision };
          }
          if (precondition.ifMatch !== undefined) {
            // A version from another backend (after a failover) can never be current here.
            if (!REVISION.test(precondition.ifMatch)) throw new ConflictError(`${key} was changed by another writer`);
            return { key, resourceVersion: (await ds.update({ key: etcdKey(id), value, revision: precondition.ifMatch })).revision };
          }
          return { key, resourceVersion: (await ds.apply(etcdKey(id), value)).revision };
        } catch (err) {
          if (err instanceof AlreadyExistsError) throw new ConflictError(`${key} already exists`);
          if (err instanceof NotFoundError) throw new ConflictError(`${key} no longer exists`);
          if (err instanceof ConflictError) throw new ConflictError(`${key} was changed by another writer`);
          throw err;
        }
      },
      { put: true },
    );
  }

  async getObject(instance: string, key: ObjectKey): Promise<PersistedObject | undefined> {
    const state = this.table.get(instance);
    const id = parseKey(key);
    return state.track(async () => {
      try {
        const pair = await datastore(state).get(etcdKey(id));
        return withVersion(parseStored(pair.value, formatKey(id)), pair.revision);
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    });
  }

  async deleteObject(instance: string, key: ObjectKey, precondition: Pick<WritePrecondition, 'ifMatch'> = {}): Promise<void> {
    const state = this.table.get(instance);
    const id = parseKey(key);
    await state.track(async () => {
      if (precondition.ifMatch !== undefined && !REVISION.test(precondition.ifMatch)) {
        throw new ConflictError(`${formatKey(id)} was changed by another writer`);
      }
      try {
        await datastore(state).delete(etcdKey(id), precondition.ifMatch);
      } catch (err) {
        if (err instanceof NotFoundError) {
          if (precondition.ifMatch !== undefined) throw new ConflictError(`${formatKey(id)} no longer exists`);
          return;
        }
        if (err instanceof ConflictError) throw new ConflictError(`${formatKey(id)} was changed by another writer`);
        throw err;
      }
    });
  }

  async getAllObjects(instance: string, type: TypeMeta): Promise<PersistedObject[]> {
    const state = this.table.get(instance);
    const gk = groupKindOf(type);
    return state.track(async () => {
      const base = `/${resourceOf(gk)}`;
      const listed = await datastore(state).list(base);
      const out: PersistedObject[] = [];
      for (const pair of listed.pairs) {
        const rest = pair.key.slice(base.length + 1).split('/');
        if (rest.length !== 2) continue;
        const id: ObjectIdentity = { ...gk, name: rest[1]! };
        if (rest[0] !== NO_NAMESPACE) id.namespace = rest[0];
        let key: string;
        try {
          key = formatKey(parseKey(formatKey(id)));
        } catch {
          continue; // not written by this provider
        }
        out.push(withVersion(parseStored(pair.value, key), pair.revision));
      }
      return out.sort((a, b) => (formatKey(identityOf(a)) < formatKey(identityOf(b)) ? -1 : 1));
    });
  }

  ownerReference(): OwnerReference | undefined {
    return undefined;
  }

  async close(): Promise<void> {
    for (const s of this.table.all()) {
      await s.config.datastore?.close();
      delete s.config.datastore;
      s.initialized = false;
    }
  }
}

function datastore(state: InstanceState<EtcdInstance>): Datastore {
  const ds = state.config.datastore;
  if (!ds) throw new ValidationError(`persistence instance ${state.name} is not initialized`);
  return ds;
}

function etcdKey(id: ObjectIdentity): string {
  return `/${resourceOf(id)}/${id.namespace ?? NO_NAMESPACE}/${id.name}`;
}

function withVersion(object: PersistedObject, revision: string): PersistedObject {
  object.metadata.resourceVersion = revision;
  return object;
}
