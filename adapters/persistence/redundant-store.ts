// Redundancy across independent replicas (docs/design/contracts/persistence.md#redundancy: the layer above the
// providers decides redundancy): every write goes to all replicas, reads come from the first healthy one, and a
// replica that missed writes is reported degraded and repaired (the missed objects copied from the primary) on
// the next write.
import { UnavailableError, ValidationError } from '../errors';
import { objectKey, storableCopy } from './object-key';
import type { ObjectKey, OwnerReference, PersistedObject, PersistenceProvider, PutResult, ReplicaStatus, TypeMeta, WritePrecondition } from './types';

/** The store the registry works on: one logical copy of each object, whatever keeps it. */
export interface ObjectStore {
  put(object: PersistedObject, precondition?: WritePrecondition): Promise<PutResult>;
  get(key: ObjectKey): Promise<PersistedObject | undefined>;
  delete(key: ObjectKey, precondition?: Pick<WritePrecondition, 'ifMatch'>): Promise<void>;
  list(type: TypeMeta): Promise<PersistedObject[]>;
  ownerReference(object: PersistedObject): OwnerReference | undefined;
}

/** One provider replica a RedundantStore keeps a copy in. */
export interface StoreTarget {
  provider: PersistenceProvider;
  replica: string;
}

/** How one replica of a RedundantStore is doing. */
export interface ReplicaHealthReport {
  replica: string;
  status: ReplicaStatus;
  /** Down, or missing writes that the next write will try to repair. */
  degraded: boolean;
  /** How many objects it has missed. */
  pendingRepairs: number;
  /** The replica conditional writes and reads currently go to. */
  primary: boolean;
}

interface Target {
  provider: PersistenceProvider;
  replica: string;
  /** Keys this replica missed; the primary's current copy is written to it on repair. */
  pending: Set<ObjectKey>;
}

/**
 * Writes to all replicas, reads from the first healthy one. Optimistic concurrency is decided by the primary
 * (the first healthy replica): each replica versions objects its own way, so versions returned are the
 * primary's, and after a failover a caller holding an old version gets a ConflictError and re-reads.
 * Replicas are written unconditionally after the primary; writes to one key are serialized in this process so
 * replicas receive them in the primary's order. What a replica missed is remembered in memory only: after a
 * restart, run `repairAll` for the kinds you keep.
 */
export class RedundantStore implements ObjectStore {
  private readonly targets: Target[];
  private readonly keyQueues = new Map<ObjectKey, Promise<unknown>>();

  constructor(targets: StoreTarget[]) {
    if (!Array.isArray(targets) || targets.length === 0) throw new ValidationError('a store needs at least one persistence replica', 'replicas');
    const seen = new Set<string>();
    this.targets = targets.map((t) => {
      const replica = t.replica;
      if (t.provider.replicaStatus(replica).exists === false) {
        throw new ValidationError(`persistence replica ${replica} is not served by its provider`, 'replicas');
      }
      if (seen.has(replica)) throw new ValidationError(`persistence replica ${replica} is listed twice`, 'replicas');
      seen.add(replica);
      return { provider: t.provider, replica, pending: new Set() };
    });
  }

  /** Every replica of every provider, in order (the first one is preferred). */
  static over(...providers: PersistenceProvider[]): RedundantStore {
    return new RedundantStore(providers.flatMap((provider) => provider.replicas().map((replica) => ({ provider, replica }))));
  }

  health(): ReplicaHealthReport[] {
    const primary = this.targets.find((t) => this.healthy(t));
    return this.targets.map((t) => ({
      replica: t.replica,
      status: t.provider.replicaStatus(t.replica),
      degraded: !this.healthy(t),
      pendingRepairs: t.pending.size,
      primary: t === primary,
    }));
  }

  /** Names of the replicas that are down or behind. */
  degraded(): string[] {
    return this.targets.filter((t) => !this.healthy(t)).map((t) => t.replica);
  }

  async put(object: PersistedObject, precondition: WritePrecondition = {}): Promise<PutResult> {
    const key = objectKey(object);
    const copy = storableCopy(object);
    return this.serialized(key, async () => {
      await this.repairPending();
      const primary = this.primary();
      const result = await primary.provider.putObject(primary.replica, copy, precondition);
      await this.replicate(primary, key, (t) => t.provider.putObject(t.replica, copy));
      return result;
    });
  }

  async delete(key: ObjectKey, precondition: Pick<WritePrecondition, 'ifMatch'> = {}): Promise<void> {
    await this.serialized(key, async () => {
      await this.repairPending();
      const primary = this.primary();
      await primary.provider.deleteObject(primary.replica, key, precondition);
      await this.replicate(primary, key, (t) => t.provider.deleteObject(t.replica, key));
    });
  }

  async get(key: ObjectKey): Promise<PersistedObject | undefined> {
    return this.fromFirstHealthy((t) => t.provider.getObject(t.replica, key));
  }

  async list(type: TypeMeta): Promise<PersistedObject[]> {
    return this.fromFirstHealthy((t) => t.provider.getAllObjects(t.replica, type));
  }

  ownerReference(object: PersistedObject): OwnerReference | undefined {
    const primary = this.targets.find((t) => this.healthy(t)) ?? this.targets[0]!;
    return primary.provider.ownerReference(primary.replica, object);
  }

  /**
   * Makes every replica hold what the primary holds for these kinds (after a restart, when missed writes were
   * forgotten): copies objects that differ or are missing, deletes objects the primary does not have.
   */
  async repairAll(types: TypeMeta[]): Promise<void> {
    const primary = this.primary();
    for (const type of types) {
      const wanted = new Map((await primary.provider.getAllObjects(primary.replica, type)).map((o) => [objectKey(o), o]));
      for (const t of this.targets) {
        if (t === primary) continue;
        const have = await t.provider.getAllObjects(t.replica, type);
        for (const o of have) {
          if (!wanted.has(objectKey(o))) await t.provider.deleteObject(t.replica, objectKey(o));
        }
        const haveByKey = new Map(have.map((o) => [objectKey(o), o]));
        for (const [key, o] of wanted) {
          const mine = haveByKey.get(key);
          if (!mine || JSON.stringify(storableCopy(mine)) !== JSON.stringify(storableCopy(o))) {
            await t.provider.putObject(t.replica, storableCopy(o));
          }
          t.pending.delete(key);
        }
      }
    }
  }

  private healthy(t: Target): boolean {
    const s = t.provider.replicaStatus(t.replica);
    return s.exists && s.status && t.pending.size === 0;
  }

  private primary(): Target {
    const p = this.targets.find((t) => this.healthy(t));
    if (!p) throw new UnavailableError(`no healthy persistence replica (degraded: ${this.degraded().join(', ')})`);
    return p;
  }

  private async fromFirstHealthy<T>(read: (t: Target) => Promise<T>): Promise<T> {
    let lastError: unknown;
    for (const t of this.targets) {
      if (!this.healthy(t)) continue;
      try {
        return await read(t);
      } catch (err) {
        // Only a transport failure moves on to the next copy; a bad key is bad everywhere.
        if (!(err instanceof UnavailableError)) throw err;
        lastError = err;
      }
    }
    if (lastError) throw lastError;
    throw new UnavailableError(`no healthy persistence replica (degraded: ${this.degraded().join(', ')})`);
  }

  private async replicate(primary: Target, key: ObjectKey, write: (t: Target) => Promise<unknown>): Promise<void> {
    await Promise.all(
      this.targets.map(async (t) => {
        if (t === primary) return;
        // Behind already: writing this key alone would not make it current; the repair copies it in order.
        if (t.pending.size > 0) {
          t.pending.add(key);
          return;
        }
        try {
          await write(t);
        } catch {
          t.pending.add(key);
        }
      }),
    );
  }

  /** Copies to each lagging replica the primary's current version of what it missed; stops at its first failure. */
  private async repairPending(): Promise<void> {
    const source = this.targets.find((t) => this.healthy(t));
    if (!source) return;
    for (const t of this.targets) {
      if (t.pending.size === 0 || t === source) continue;
      try {
        for (const key of [...t.pending]) {
          const current = await source.provider.getObject(source.replica, key);
          if (current) await t.provider.putObject(t.replica, storableCopy(current));
          else await t.provider.deleteObject(t.replica, key);
          t.pending.delete(key);
        }
      } catch {
        // Still down: it stays degraded and is tried again at the next write.
      }
    }
  }

  private async serialized<T>(key: ObjectKey, fn: () => Promise<T>): Promise<T> {
    const previous = this.keyQueues.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.keyQueues.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.keyQueues.get(key) === tail) this.keyQueues.delete(key);
    }
  }
}
