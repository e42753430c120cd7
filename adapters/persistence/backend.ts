// What every storage backend (file, s3, etcd, kubernetes) shares: the replica table and its status, and the
// prologue of each call (find the replica, check the input before any I/O, run the call under the replica's
// health tracking). A backend only says how to open a replica and how to write, read, remove and list there
// (docs/design/contracts/persistence.md#provider-interface).
import { ValidationError } from '../errors';
import type { MachineId } from './machine-id';
import { formatKey, groupKindOf, identityOf, parseKey, storableCopy, type ObjectIdentity } from './object-key';
import { ReplicaTable, type ReplicaState } from './replicas';
import type {
  ObjectKey,
  OwnerReference,
  PersistedObject,
  PersistenceProvider,
  PutResult,
  ReplicaList,
  ReplicaStatus,
  TypeMeta,
  WritePrecondition,
} from './types';

/** A group and kind, checked: what a list asks for. */
export type GroupKind = { group: string; kind: string };

// Objects without a namespace live under this path segment; a namespace is a DNS label and can never be "_".
export const NO_NAMESPACE = '_';

/** The replica configurations of a backend's options (`replicas`, or its former name `instances`). */
export function replicaConfigs<C>(opts: ReplicaList<C>): C[] {
  const list = opts.replicas;
  if (!Array.isArray(list)) throw new ValidationError('replicas must be a list', 'replicas');
  return list;
}

/**
 * The identity of a listed entry from its namespace segment and name, or undefined when it is not valid: then
 * this provider did not write it, and it is skipped rather than failing the whole list.
 */
export function listedIdentity(gk: GroupKind, namespaceSegment: string, name: string): ObjectIdentity | undefined {
  const id: ObjectIdentity = { ...gk, name };
  if (namespaceSegment !== NO_NAMESPACE) id.namespace = namespaceSegment;
  try {
    return parseKey(formatKey(id));
  } catch {
    return undefined;
  }
}

/** Sorts objects in key order, as getAllObjects promises. */
export function inKeyOrder(objects: PersistedObject[]): PersistedObject[] {
  return objects.sort((a, b) => (formatKey(identityOf(a)) < formatKey(identityOf(b)) ? -1 : 1));
}

/** A provider over replicas of one backend; `C` is what the backend keeps per replica. */
export abstract class PersistenceBackend<C> implements PersistenceProvider {
  protected readonly table: ReplicaTable<C>;

  constructor(
    readonly kind: string,
    configs: Array<{ config: C; identity: unknown }>,
  ) {
    this.table = new ReplicaTable(kind, configs);
  }

  /** Opens one replica (connect, probe, prepare); a rejection marks it down. */
  protected abstract connect(replica: ReplicaState<C>, machineId: MachineId): Promise<void>;
  /** Writes a checked, storable copy under the precondition. */
  protected abstract write(replica: ReplicaState<C>, id: ObjectIdentity, stored: PersistedObject, precondition: WritePrecondition): Promise<PutResult>;
  protected abstract read(replica: ReplicaState<C>, id: ObjectIdentity): Promise<PersistedObject | undefined>;
  protected abstract remove(replica: ReplicaState<C>, id: ObjectIdentity, precondition: Pick<WritePrecondition, 'ifMatch'>): Promise<void>;
  /** Every stored object of the group and kind, in key order. */
  protected abstract list(replica: ReplicaState<C>, gk: GroupKind): Promise<PersistedObject[]>;
  /** Releases what `connect` acquired. */
  protected abstract disconnect(replica: ReplicaState<C>): Promise<void>;

  private openedWith: MachineId | undefined;

  async initialize(machineId: MachineId): Promise<void> {
    this.openedWith = machineId;
    await this.table.initializeAll(this.kind, (replica) => this.connect(replica, machineId));
  }

  async reopen(replica: string): Promise<void> {
    const state = this.table.get(replica);
    if (state.initialized || !this.openedWith) return;
    try {
      await this.connect(state, this.openedWith);
    } catch (err) {
      state.markDown(err instanceof Error ? err.message : String(err));
      throw err;
    }
    state.initialized = true;
    state.markUp();
  }

  replicas(): string[] {
    return this.table.names();
  }

  replicaStatus(replica: string): ReplicaStatus {
    return this.table.status(replica);
  }

  async putObject(replica: string, object: PersistedObject, precondition: WritePrecondition = {}): Promise<PutResult> {
    const state = this.table.get(replica);
    const id = identityOf(object);
    const stored = storableCopy(object);
    return state.track(() => this.write(state, id, stored, precondition), { put: true });
  }

  async getObject(replica: string, key: ObjectKey): Promise<PersistedObject | undefined> {
    const state = this.table.get(replica);
    const id = parseKey(key);
    return state.track(() => this.read(state, id));
  }

  async deleteObject(replica: string, key: ObjectKey, precondition: Pick<WritePrecondition, 'ifMatch'> = {}): Promise<void> {
    const state = this.table.get(replica);
    const id = parseKey(key);
    await state.track(() => this.remove(state, id, precondition));
  }

  async getAllObjects(replica: string, type: TypeMeta): Promise<PersistedObject[]> {
    const state = this.table.get(replica);
    const gk = groupKindOf(type);
    return state.track(() => this.list(state, gk));
  }

  /** Only the Kubernetes backend has holders that can own other objects. */
  ownerReference(_replica: string, _object: PersistedObject): OwnerReference | undefined {
    return undefined;
  }

  async close(): Promise<void> {
    for (const replica of this.table.all()) {
      await this.disconnect(replica);
      replica.initialized = false;
    }
  }
}
