// The etcd backend, through the datastore (adapters/datastore): one key per object,
// `<prefix>/<Kind>[.<group>]/<namespace|_>/<name>`, the value the object as JSON and the version the etcd mod
// revision, so optimistic concurrency is the datastore's revision-compare transaction.
import { AlreadyExistsError, ConflictError, NotFoundError } from '../errors';
import { EtcdDatastore, type EtcdDatastoreOptions } from '../datastore/etcd';
import type { Datastore } from '../datastore/types';
import { inKeyOrder, listedIdentity, NO_NAMESPACE, PersistenceBackend, replicaConfigs, type GroupKind } from './backend';
import { formatKey, parseStored, resourceOf, type ObjectIdentity } from './object-key';
import type { ReplicaState } from './replicas';
import type { PersistedObject, PutResult, ReplicaList, WritePrecondition } from './types';

/** One etcd replica: a cluster and the key prefix this provider owns in it. */
export type EtcdReplicaConfig = Pick<EtcdDatastoreOptions, 'endpoints' | 'auth' | 'tls' | 'dialTimeoutMs'> & {
  /** Default `/brokerflow/persistence`. */
  prefix?: string;
};

/** Configuration of the etcd backend. */
export type EtcdPersistenceOptions = ReplicaList<EtcdReplicaConfig>;

interface EtcdReplica {
  options: EtcdDatastoreOptions;
  datastore?: Datastore;
}

const REVISION = /^[1-9][0-9]{0,15}$/;

/** Persists objects in etcd. */
export class EtcdPersistenceProvider extends PersistenceBackend<EtcdReplica> {
  constructor(opts: EtcdPersistenceOptions) {
    super(
      'etcd',
      replicaConfigs(opts).map((c) => {
        const options: EtcdDatastoreOptions = { ...c, prefix: c.prefix ?? '/brokerflow/persistence' };
        // Constructing validates endpoints and prefix now (a bad one is a configuration error, not a dead replica).
        void new EtcdDatastore(options).close();
        return {
          config: { options },
          identity: { endpoints: [...c.endpoints].sort(), prefix: options.prefix },
        };
      }),
    );
  }

  protected async connect({ config }: ReplicaState<EtcdReplica>): Promise<void> {
    await config.datastore?.close();
    config.datastore = new EtcdDatastore(config.options);
    await config.datastore.ensureInitialized();
  }

  protected async write(state: ReplicaState<EtcdReplica>, id: ObjectIdentity, stored: PersistedObject, precondition: WritePrecondition): Promise<PutResult> {
    const key = formatKey(id);
    const value = JSON.stringify(stored);
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
  }

  protected async read(state: ReplicaState<EtcdReplica>, id: ObjectIdentity): Promise<PersistedObject | undefined> {
    try {
      const pair = await datastore(state).get(etcdKey(id));
      return withVersion(parseStored(pair.value, formatKey(id)), pair.revision);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  protected async remove(state: ReplicaState<EtcdReplica>, id: ObjectIdentity, precondition: Pick<WritePrecondition, 'ifMatch'>): Promise<void> {
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
  }

  protected async list(state: ReplicaState<EtcdReplica>, gk: GroupKind): Promise<PersistedObject[]> {
    const base = `/${resourceOf(gk)}`;
    const listed = await datastore(state).list(base);
    const out: PersistedObject[] = [];
    for (const pair of listed.pairs) {
      const rest = pair.key.slice(base.length + 1).split('/');
      if (rest.length !== 2) continue;
      const id = listedIdentity(gk, rest[0]!, rest[1]!);
      if (!id) continue; // not written by this provider
      out.push(withVersion(parseStored(pair.value, formatKey(id)), pair.revision));
    }
    return inKeyOrder(out);
  }

  protected async disconnect({ config }: ReplicaState<EtcdReplica>): Promise<void> {
    await config.datastore?.close();
    delete config.datastore;
  }
}

function datastore(state: ReplicaState<EtcdReplica>): Datastore {
  return state.connection(state.config.datastore);
}

function etcdKey(id: ObjectIdentity): string {
  return `/${resourceOf(id)}/${id.namespace ?? NO_NAMESPACE}/${id.name}`;
}

function withVersion(object: PersistedObject, revision: string): PersistedObject {
  object.metadata.resourceVersion = revision;
  return object;
}
