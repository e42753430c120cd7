// Long on purpose: one store whose writes, failover, pending-repair journal and repairs share the replicas' state.
// Redundancy across independent replicas (docs/design/contracts/persistence.md#redundancy: the layer above the
// providers decides redundancy): every write goes to all replicas, reads come from the first healthy one, and a
// replica that missed writes is reported degraded and repaired (the missed objects copied from the primary) on
// the next write, by `repair()` (at start and periodically) and after a restart: the list of what each replica
// missed is itself kept, as a PendingRepairs object, in the other replicas.
import { randomBytes } from 'node:crypto';
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
  /** Journals of other writers (or an earlier run) adopted into `pending`, deleted once ours is written. */
  adopted: Set<ObjectKey>;
}

/** The type of the journal objects that keep each replica's pending repairs in the other replicas. */
export const PENDING_REPAIRS_TYPE = { apiVersion: 'persistence.brokerflow.io/v1', kind: 'PendingRepairs' } as const;

/** A journal object: the keys one replica missed, as one writer (a store in one process) knows them. */
interface PendingRepairs extends PersistedObject {
  replica: string;
  keys: ObjectKey[];
}

/** How a RedundantStore keeps its list of pending repairs. */
export interface RedundantStoreOptions {
  /**
   * Keep each lagging replica's pending repairs in the other replicas (default true), so that a restart knows
   * which replica is behind (it is then neither read from nor primary until repaired) and what to copy to it.
   */
  persistPending?: boolean;
  /** Names this store's journal objects (default: random per store); a restart adopts every writer's journal. */
  writerId?: string;
}

/**
 * Writes to all replicas, reads from the first healthy one. Optimistic concurrency is decided by the primary
 * (the first healthy replica): each replica versions objects its own way, so versions returned are the
 * primary's, and after a failover a caller holding an old version gets a ConflictError and re-reads.
 * Replicas are written unconditionally after the primary; writes to one key are serialized in this process so
 * replicas receive them in the primary's order. What a replica missed is kept in memory and, unless
 * `persistPending` is false, in the other replicas (PendingRepairs objects): `recover()` at start reads it back
 * and repairs; `repair()` (also run by `startRepairs`) probes replicas that are down and copies what they missed.
 */
export class RedundantStore implements ObjectStore {
  private readonly targets: Target[];
  private readonly keyQueues = new Map<ObjectKey, Promise<unknown>>();
  private readonly persistPending: boolean;
  private readonly writerId: string;
  private timer: NodeJS.Timeout | undefined;
  private repairing: Promise<void> | undefined;
  /** The last failure of a journal write or a periodic repair, for health reports. */
  lastRepairError: string | undefined;

  constructor(targets: StoreTarget[], opts: RedundantStoreOptions = {}) {
    this.persistPending = opts.persistPending ?? true;
    this.writerId = opts.writerId ?? randomBytes(8).toString('hex');
    if (!/^[a-z0-9]{1,32}$/.test(this.writerId)) throw new ValidationError('writerId must be 1-32 lower-case letters or digits', 'writerId');
    if (!Array.isArray(targets) || targets.length === 0) throw new ValidationError('a store needs at least one persistence replica', 'replicas');
    const seen = new Set<string>();
    this.targets = targets.map((t) => {
      const replica = t.replica;
      if (t.provider.replicaStatus(replica).exists === false) {
        throw new ValidationError(`persistence replica ${replica} is not served by its provider`, 'replicas');
      }
      if (seen.has(replica)) throw new ValidationError(`persistence replica ${replica} is listed twice`, 'replicas');
      seen.add(replica);
      return { provider: t.provider, replica, pending: new Set<ObjectKey>(), adopted: new Set<ObjectKey>() };
    });
  }

  /** Every replica of every provider, in order (the first one is preferred). */
  static over(...providers: PersistenceProvider[]): RedundantStore {
    return new RedundantStore(providers.flatMap((provider) => provider.replicas().map((replica) => ({ provider, replica }))));
  }

  /**
   * At start: reads every replica's journal of pending repairs (from each replica that answers), adopts it,
   * and repairs. A replica found behind is neither read from nor primary until it is repaired. Never throws:
   * what cannot be done now is left for `repair()`.
   */
  async recover(): Promise<void> {
    if (this.targets.length > 1 && this.persistPending) {
      for (const source of this.targets) {
        let journals: PersistedObject[];
        try {
          journals = await source.provider.getAllObjects(source.replica, PENDING_REPAIRS_TYPE);
        } catch (err) {
          this.lastRepairError = `reading the pending repairs on ${source.replica}: ${(err as Error).message}`;
          continue;
        }
        for (const j of journals as PendingRepairs[]) {
          const lagging = this.targets.find((t) => t.replica === j.replica);
          if (!lagging || !Array.isArray(j.keys)) continue;
          for (const key of j.keys) if (typeof key === 'string') lagging.pending.add(key);
          if (j.metadata.name !== this.journalName(lagging)) lagging.adopted.add(objectKey(j));
        }
      }
      for (const t of this.targets) if (t.adopted.size > 0) await this.saveJournal(t);
    }
    await this.repair();
  }

  /**
   * Probes replicas that are down (any answer marks one up again) and copies to each lagging replica what it
   * missed. Never throws; concurrent calls share one run.
   */
  async repair(): Promise<void> {
    this.repairing ??= (async () => {
      try {
        if (this.targets.length < 2) return;
        this.lastRepairError = undefined;
        await Promise.all(
          this.targets
            .filter((t) => {
              const status = t.provider.replicaStatus(t.replica);
              return status.exists && !status.status;
            })
            .map(async (t) => {
              try {
                // One that never opened is opened again; one that did answers a read (and is marked up).
                await t.provider.reopen?.(t.replica);
                await t.provider.getObject(t.replica, this.journalKey(t));
              } catch {
                // Still down.
              }
            }),
        );
        await this.repairPending();
      } catch (err) {
        this.lastRepairError = (err as Error).message;
      } finally {
        this.repairing = undefined;
      }
    })();
    return this.repairing;
  }

  /** Runs `repair()` every `intervalMs` (not keeping the process alive) until `stopRepairs()`. */
  startRepairs(intervalMs: number): void {
    if (!Number.isInteger(intervalMs) || intervalMs < 100) throw new ValidationError('the repair interval must be an integer of at least 100 ms', 'intervalMs');
    this.stopRepairs();
    this.timer = setInterval(() => void this.repair(), intervalMs);
    this.timer.unref();
  }

  stopRepairs(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
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

  /** How many objects lagging replicas miss in all. */
  pendingRepairs(): number {
    return this.targets.reduce((n, t) => n + t.pending.size, 0);
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
      const { primary, result } = await this.onPrimary(key, (t) => t.provider.putObject(t.replica, copy, precondition));
      await this.replicate(primary, key, (t) => t.provider.putObject(t.replica, copy));
      return result;
    });
  }

  async delete(key: ObjectKey, precondition: Pick<WritePrecondition, 'ifMatch'> = {}): Promise<void> {
    await this.serialized(key, async () => {
      await this.repairPending();
      const { primary } = await this.onPrimary(key, (t) => t.provider.deleteObject(t.replica, key, precondition));
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
    if (this.targets.length < 2) return;
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
    for (const t of this.targets) if (t !== primary) await this.saveJournal(t);
  }

  private healthy(t: Target): boolean {
    const s = t.provider.replicaStatus(t.replica);
    return s.exists && s.status && t.pending.size === 0;
  }

  /**
   * The replica conditional writes go to: the first healthy one, else the first that is down but has missed
   * nothing. Down is only what the last call saw; trying it again is how it comes back (any answer marks it up).
   * Without this a replica marked down once, with no other healthy replica to write through (a single replica),
   * was never called again and every write failed for good. A replica that missed writes is never primary.
   */
  private primary(): Target {
    const p = this.targets.find((t) => this.healthy(t)) ?? this.targets.find((t) => this.current(t));
    if (!p) throw new UnavailableError(`no healthy persistence replica (degraded: ${this.degraded().join(', ')})`);
    return p;
  }

  /** Down (the last call failed) or up, but missing no write: it may serve when no healthy replica can. */
  private current(t: Target): boolean {
    return t.provider.replicaStatus(t.replica).exists && t.pending.size === 0;
  }

  private async fromFirstHealthy<T>(read: (t: Target) => Promise<T>): Promise<T> {
    let lastError: unknown;
    // Healthy replicas first; when none is, the ones that are down but current (see primary()).
    const order = [...this.targets.filter((t) => this.healthy(t)), ...this.targets.filter((t) => !this.healthy(t) && this.current(t))];
    for (const t of order) {
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
        if (t.pending.size === 0) {
          try {
            await write(t);
            return;
          } catch {
            // Missed: remembered below.
          }
        }
        if (t.pending.has(key)) return;
        t.pending.add(key);
        await this.saveJournal(t);
      }),
    );
  }

  /**
   * Runs a write on the primary. When the primary fails to answer (UnavailableError, which marks it down), the
   * next healthy replica becomes primary and takes the write; the one that failed counts the key as missed (it
   * may or may not have applied it) and is repaired from the new primary.
   */
  private async onPrimary<T>(key: ObjectKey, write: (t: Target) => Promise<T>): Promise<{ primary: Target; result: T }> {
    for (;;) {
      const primary = this.primary();
      try {
        return { primary, result: await write(primary) };
      } catch (err) {
        // With no other replica to take it, the write just failed: nothing is marked missed.
        if (!(err instanceof UnavailableError) || !this.targets.some((t) => t !== primary && this.healthy(t))) throw err;
        primary.pending.add(key);
        await this.saveJournal(primary);
      }
    }
  }

  private journalName(t: Target): string {
    return `${t.replica}.${this.writerId}`;
  }

  private journalKey(t: Target): ObjectKey {
    return objectKey({ ...PENDING_REPAIRS_TYPE, metadata: { name: this.journalName(t) } });
  }

  /**
   * Writes (or, when nothing is pending, deletes) this store's journal of what `t` missed on every other
   * replica, then deletes the journals it adopted. Best effort: a replica that fails keeps an older journal,
   * which can only make a restart repair more than needed.
   */
  private async saveJournal(t: Target): Promise<void> {
    if (!this.persistPending || this.targets.length < 2) return;
    const key = this.journalKey(t);
    await this.serialized(key, async () => {
      const journal: PendingRepairs = { ...PENDING_REPAIRS_TYPE, metadata: { name: this.journalName(t) }, replica: t.replica, keys: [...t.pending].sort() };
      const adopted = [...t.adopted];
      let saved = true;
      await Promise.all(
        this.targets
          .filter((o) => o !== t)
          .map(async (o) => {
            try {
              if (journal.keys.length > 0) await o.provider.putObject(o.replica, journal);
              else await o.provider.deleteObject(o.replica, key);
            } catch (err) {
              saved = false;
              this.lastRepairError = `keeping the pending repairs of ${t.replica} on ${o.replica}: ${(err as Error).message}`;
            }
          }),
      );
      if (!saved || adopted.length === 0) return;
      for (const old of adopted) {
        await Promise.all(this.targets.map((o) => o.provider.deleteObject(o.replica, old).catch(() => undefined)));
        t.adopted.delete(old);
      }
    });
  }

  /** Copies to each lagging replica the primary's current version of what it missed; stops at its first failure. */
  private async repairPending(): Promise<void> {
    const source = this.targets.find((t) => this.healthy(t));
    if (!source) return;
    for (const t of this.targets) {
      if (t.pending.size === 0 || t === source) continue;
      const before = t.pending.size;
      try {
        for (const key of [...t.pending]) {
          const current = await source.provider.getObject(source.replica, key);
          if (current) await t.provider.putObject(t.replica, storableCopy(current));
          else await t.provider.deleteObject(t.replica, key);
          // A write to the key may have reached the primary meanwhile (a periodic repair is not serialized
          // with writes): then what was copied is already old, and the key stays pending.
          const after = await source.provider.getObject(source.replica, key);
          if (after?.metadata.resourceVersion === current?.metadata.resourceVersion) t.pending.delete(key);
        }
      } catch (err) {
        // Still down: it stays degraded and is tried again at the next write or repair.
        this.lastRepairError = `repairing ${t.replica}: ${(err as Error).message}`;
      }
      if (t.pending.size !== before) await this.saveJournal(t);
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
