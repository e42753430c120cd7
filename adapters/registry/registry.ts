// The registry: entries for service instances and bindings over a persistence store, and the
// operation records that last_operation, fetch and the CLI read without a worker running. Operation records are
// idempotent under retries (the operation ID comes from the workflow input) and a final state is never cleared
// by reading it; a successful deprovision/unbind leaves a tombstone so the broker can answer 410 Gone.
import { ConflictError, PermissionError, ValidationError } from '../errors';
import { validateNamespace, type ObjectStore, type PersistedObject } from '../persistence';
import { Entry, REGISTRY_API_VERSION, RegistryKind, entryInternals, registryKey, type StoredEntry } from './entry';
import { InstanceBusyError, OperationInProgressError, OperationMismatchError } from './errors';
import {
  BrokerflowKey,
  OPERATIONS_BY_TYPE,
  RegistryKey,
  entryName,
  validateEntryType,
  validateId,
  validateOperationId,
  type EntryType,
  type OperationType,
} from './keys';
import type { OperationState } from '../../domain/operations';
import { AuditTrails } from './audit';

/** How the registry is built: the plain store, the secret store for credentials, the broker's namespace. */
export interface RegistryOptions {
  store: ObjectStore;
  /** Where binding credentials go (a store over SecretPersistenceProvider instances); never the plain store. */
  secrets?: ObjectStore;
  /** Namespace the entries live in (the broker's own); undefined = the store's default. */
  defaultNamespace?: string;
}

/** Where to look for an entry: the registry's namespace unless one is named. */
export interface OpenOptions {
  namespace?: string;
  /** For a binding: its instance (kept for callers' clarity; entries of one registry share its namespace). */
  instanceId?: string;
}


/** An entry's last (or current) operation. */
export interface OperationRecord {
  operation: OperationType;
  operationId: string;
  state: OperationState;
  /** The error text of a failed operation. */
  description?: string;
  /** The entry was deleted by this (successful deprovision/unbind) operation: answer 410 Gone. */
  gone?: boolean;
  /** The instance the entry belongs to (a binding's parent), when known. */
  instanceId?: string;
}

/** One entry as `list` returns it (no credentials). */
export interface EntrySummary {
  type: EntryType;
  id: string;
  name: string;
  namespace?: string;
  /** Every key but credentials, decoded. */
  values: Record<string, unknown>;
  hasCredentials: boolean;
  operation?: OperationRecord;
}

interface Tombstone extends PersistedObject {
  type: EntryType;
  id: string;
  /** The instance a binding belonged to (absent on tombstones written before it was kept). */
  instanceId?: string;
  operation: OperationType;
  operationId: string;
  completedAt: string;
}

const MAX_ERROR_TEXT = 10_000;

/** Registry of service instance and binding entries. */
export class Registry {
  private readonly store: ObjectStore;
  private readonly secrets: ObjectStore | undefined;
  private readonly defaultNamespace: string | undefined;
  /** Each instance's audit trail: who asked for which operation, what it changed, how it ended. */
  readonly audit: AuditTrails;

  constructor(opts: RegistryOptions) {
    this.store = opts.store;
    this.secrets = opts.secrets;
    this.defaultNamespace = opts.defaultNamespace === undefined ? undefined : validateNamespace(opts.defaultNamespace, 'defaultNamespace');
    this.audit = new AuditTrails(this.store, this.defaultNamespace);
  }

  /** `registry-<type>-<id>`. */
  static entryName(type: EntryType, id: string): string {
    return entryName(type, id);
  }

  /** Loads the entry (with its credentials), or a new empty one when none is stored (`exists()` false). */
  async open(type: EntryType, id: string, opts: OpenOptions = {}): Promise<Entry> {
    validateEntryType(type);
    validateId(id);
    const namespace = this.namespaceOf(opts);
    const entry = new Entry(this.stores(), type, id, namespace);
    await this.load(entry);
    return entry;
  }

  /** Every stored entry of a type, in ID order, without credentials (for listings). */
  async list(type: EntryType): Promise<EntrySummary[]> {
    validateEntryType(type);
    const all = (await this.store.list({ apiVersion: REGISTRY_API_VERSION, kind: RegistryKind.Entry })) as StoredEntry[];
    return all
      .filter((o) => o.type === type)
      .map((o) => {
        const values = Object.fromEntries(Object.entries(o.data ?? {}).map(([k, v]) => [k, JSON.parse(v) as unknown]));
        const summary: EntrySummary = { type: o.type, id: o.id, name: o.metadata.name, values, hasCredentials: o.hasCredentials === true };
        if (o.metadata.namespace !== undefined) summary.namespace = o.metadata.namespace;
        const op = recordFromValues(values);
        if (op) summary.operation = op;
        return summary;
      })
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Opens an operation on the entry (sets operation and operation-id, clears the status) and commits it,
   * creating the entry if needed (a tombstone of the same ID is then replaced). Beginning the same operation
   * ID again is a no-op; another ID while one is open fails with OperationInProgressError. A stale entry
   * copy is re-read once so a retried begin is recognized; otherwise its ConflictError is passed on.
   */
  async beginOperation(entry: Entry, op: { operation: OperationType; operationId: string }): Promise<void> {
    if (entry.isReadOnly()) throw new PermissionError(`${entry.name} is a read-only copy`);
    if (!OPERATIONS_BY_TYPE[entry.type].includes(op?.operation)) {
      throw new ValidationError(`a ${entry.type} records ${OPERATIONS_BY_TYPE[entry.type].join(', ')} operations`, 'operation');
    }
    const operationId = validateOperationId(op.operationId);
    const current = operationOf(entry);
    if (current?.operationId === operationId) return;
    if (current?.state === 'in progress') throw new OperationInProgressError(current.operation, current.operationId, entry.name);
    const wasStored = entry.exists();
    const snap = entryInternals.snapshot(entry);
    entry.set(RegistryKey.Operation, op.operation);
    entry.set(RegistryKey.OperationID, operationId);
    entry.unset(RegistryKey.OperationStatus);
    try {
      await entry.commit();
    } catch (err) {
      entryInternals.restore(entry, snap);
      if (!(err instanceof ConflictError)) throw err;
      const fresh = await this.freshCopy(entry);
      const now = fresh && operationOf(fresh);
      if (fresh && now?.operationId === operationId) {
        await this.load(entry);
        return;
      }
      if (now?.state === 'in progress') throw new OperationInProgressError(now.operation, now.operationId, entry.name);
      throw err;
    }
    if (!wasStored) await this.store.delete(registryKey(RegistryKind.Tombstone, entry.name, entry.namespace));
  }

  /**
   * Closes the entry's open operation: no error = succeeded (status ""), else failed with the error text.
   * Completing again with the same result is a no-op; another operation ID or another result is an
   * OperationMismatchError. A successful deprovision/unbind deletes the entry (and its credentials) and
   * leaves a tombstone that keeps the operation readable as gone.
   */
  async completeOperation(entry: Entry, op: { operationId: string; error?: string }): Promise<void> {
    if (entry.isReadOnly()) throw new PermissionError(`${entry.name} is a read-only copy`);
    const operationId = validateOperationId(op?.operationId);
    const status = statusOf(op.error);
    if (!entry.exists()) {
      if (status === '' && (await this.tombstoneMatches(entry, operationId))) return;
      throw new OperationMismatchError(`${entry.name} has no open operation ${operationId.slice(0, 80)}`);
    }
    const current = operationOf(entry);
    if (!current || current.operationId !== operationId) {
      throw new OperationMismatchError(`${entry.name}: operation ${operationId.slice(0, 80)} is not the current one`);
    }
    if (current.state !== 'in progress') {
      if ((current.description ?? '') === status) return;
      throw new OperationMismatchError(`${entry.name}: operation ${operationId.slice(0, 80)} already completed with another result`);
    }
    try {
      if (status === '' && (current.operation === 'deprovision' || current.operation === 'unbind')) {
        await this.finishDeletion(entry, current.operation, operationId);
        return;
      }
      const snap = entryInternals.snapshot(entry);
      entry.set(RegistryKey.OperationStatus, status);
      try {
        await entry.commit();
      } catch (err) {
        entryInternals.restore(entry, snap);
        throw err;
      }
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      // A stale copy: the completion may already be recorded (a retry whose first answer was lost).
      const fresh = await this.freshCopy(entry);
      const now = fresh && operationOf(fresh);
      const done = fresh
        ? now?.operationId === operationId && now.state !== 'in progress' && (now.description ?? '') === status
        : status === '' && (await this.tombstoneMatches(entry, operationId));
      if (!done) throw err;
      await this.load(entry);
    }
  }

  /**
   * The entry's last operation: in progress, or its final state, which stays readable until the next operation
   * begins. After a successful deprovision/unbind the tombstone answers with `gone: true`. Undefined when
   * nothing was ever recorded for the ID.
   */
  async readOperation(type: EntryType, id: string, opts: OpenOptions = {}): Promise<OperationRecord | undefined> {
    validateEntryType(type);
    validateId(id);
    const namespace = this.namespaceOf(opts);
    const name = entryName(type, id);
    const stored = (await this.store.get(registryKey(RegistryKind.Entry, name, namespace))) as StoredEntry | undefined;
    if (stored) {
      const values = Object.fromEntries(Object.entries(stored.data ?? {}).map(([k, v]) => [k, JSON.parse(v) as unknown]));
      const record = recordFromValues(values);
      const instanceId = values[RegistryKey.InstanceID];
      return record && typeof instanceId === 'string' ? { ...record, instanceId } : record;
    }
    const tomb = (await this.store.get(registryKey(RegistryKind.Tombstone, name, namespace))) as Tombstone | undefined;
    if (!tomb) return undefined;
    return { operation: tomb.operation, operationId: tomb.operationId, state: 'succeeded', gone: true, ...(tomb.instanceId ? { instanceId: tomb.instanceId } : {}) };
  }

  /**
   * The binding operations holding a share of the instance's lock (binding ID -> operation ID). An update or
   * deprovision begins only when there are none; binding operations of different bindings share it.
   */
  bindingShares(instance: Entry): Record<string, string> {
    return { ...(instance.get<Record<string, string>>(BrokerflowKey.BindingOperations) ?? {}) };
  }

  /**
   * The shares whose binding operation has not recorded its end. A binding operation gives its share back right
   * after recording its end; until then its share is held but excludes nothing, so that an update or deprovision
   * sent as soon as the binding's last_operation says it ended is not refused.
   */
  async runningBindingShares(instance: Entry): Promise<Record<string, string>> {
    const running: Record<string, string> = {};
    await Promise.all(
      Object.entries(this.bindingShares(instance)).map(async ([bindingId, operationId]) => {
        const record = await this.readOperation('service-binding', bindingId, { instanceId: instance.id });
        if (record?.operationId === operationId && record.state !== 'in progress') return;
        running[bindingId] = operationId;
      }),
    );
    return running;
  }

  /**
   * Takes a share of the instance's lock for a binding operation, with optimistic concurrency against every
   * other writer of the instance entry (re-read and try again on a lost race). Idempotent for the same
   * operation. Refuses (InstanceBusyError) when the instance is not provisioned or an instance operation runs.
   */
  async acquireBindingShare(instanceId: string, bindingId: string, operationId: string): Promise<void> {
    await this.updateShares(instanceId, (instance, shares) => {
      if (shares[bindingId] === operationId) return false;
      const op = operationOf(instance);
      if (!instance.exists() || !op || (op.operation === 'provision' && op.state !== 'succeeded')) {
        throw new InstanceBusyError(`instance ${instanceId} does not exist`);
      }
      if (op.state === 'in progress') throw new InstanceBusyError(`instance ${instanceId} is busy: ${op.operation} ${op.operationId.slice(0, 80)} is in progress`);
      shares[bindingId] = operationId;
      return true;
    });
  }

  /** Gives the share back (idempotent; an instance that is gone has nothing to give back). */
  async releaseBindingShare(instanceId: string, bindingId: string, operationId: string): Promise<void> {
    await this.updateShares(instanceId, (instance, shares) => {
      if (!instance.exists() || shares[bindingId] !== operationId) return false;
      delete shares[bindingId];
      return true;
    });
  }

  private async updateShares(instanceId: string, change: (instance: Entry, shares: Record<string, string>) => boolean): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const instance = await this.open('service-instance', instanceId);
      const shares = this.bindingShares(instance);
      if (!change(instance, shares)) return;
      if (Object.keys(shares).length === 0) instance.unset(BrokerflowKey.BindingOperations);
      else instance.set(BrokerflowKey.BindingOperations, shares);
      try {
        await instance.commit();
        return;
      } catch (err) {
        // Concurrent binds of one instance write the same entry: the loser reads again. Bounded, as every
        // round means another writer made progress.
        if (!(err instanceof ConflictError) || attempt >= 50) throw err;
      }
    }
  }

  /**
   * Deletes a binding entry (and its credentials) as part of its instance's deprovision, leaving a tombstone
   * so the binding's last_operation answers 410 Gone. Idempotent.
   */
  async removeBinding(instanceId: string, bindingId: string, byOperationId: string): Promise<void> {
    const entry = await this.open('service-binding', bindingId, { instanceId });
    if (!entry.exists()) return;
    if (entry.get(RegistryKey.InstanceID) !== instanceId) throw new PermissionError(`binding ${bindingId} does not belong to instance ${instanceId}`);
    await this.finishDeletion(entry, 'unbind', `${byOperationId}/${bindingId}`.slice(0, 10_000));
  }

  private stores() {
    return this.secrets ? { store: this.store, secrets: this.secrets } : { store: this.store };
  }

  private namespaceOf(opts: OpenOptions): string | undefined {
    return opts.namespace !== undefined ? validateNamespace(opts.namespace, 'namespace') : this.defaultNamespace;
  }

  /** Replaces the entry's state with what is stored now. */
  private async load(entry: Entry): Promise<void> {
    const stored = (await this.store.get(registryKey(RegistryKind.Entry, entry.name, entry.namespace))) as StoredEntry | undefined;
    let credentials: string | undefined;
    if (stored?.hasCredentials && this.secrets) {
      const secret = await this.secrets.get(registryKey(RegistryKind.Credentials, entry.name, entry.namespace));
      if (typeof secret?.credentials === 'string') credentials = secret.credentials;
    }
    entryInternals.adopt(entry, stored, credentials);
  }

  private async freshCopy(entry: Entry): Promise<Entry | undefined> {
    const fresh = new Entry(this.stores(), entry.type, entry.id, entry.namespace);
    await this.load(fresh);
    return fresh.exists() ? fresh : undefined;
  }

  private async tombstoneMatches(entry: Entry, operationId: string): Promise<boolean> {
    const tomb = await this.store.get(registryKey(RegistryKind.Tombstone, entry.name, entry.namespace));
    return tomb?.operationId === operationId;
  }

  /** Tombstone first, then the entry: a crash in between leaves the entry, so a retry completes again. */
  private async finishDeletion(entry: Entry, operation: OperationType, operationId: string): Promise<void> {
    const meta = entry.namespace !== undefined ? { name: entry.name, namespace: entry.namespace } : { name: entry.name };
    const tomb: Tombstone = {
      apiVersion: REGISTRY_API_VERSION,
      kind: RegistryKind.Tombstone,
      metadata: meta,
      type: entry.type,
      id: entry.id,
      // A binding's tombstone remembers its instance, so it is only ever seen under that instance's path.
      ...(entry.type === 'service-binding' && typeof entry.get(RegistryKey.InstanceID) === 'string' ? { instanceId: entry.get<string>(RegistryKey.InstanceID)! } : {}),
      operation,
      operationId,
      completedAt: new Date().toISOString(),
    };
    await this.store.put(tomb);
    await entryInternals.deleteIfCurrent(entry);
  }
}

/** The entry's operation record (the one typed reader of the operation keys); undefined when none was begun. */
export function operationOf(entry: Entry): OperationRecord | undefined {
  return recordFromValues({
    [RegistryKey.Operation]: entry.get(RegistryKey.Operation),
    [RegistryKey.OperationID]: entry.get(RegistryKey.OperationID),
    [RegistryKey.OperationStatus]: entry.get(RegistryKey.OperationStatus),
  });
}

/** The parameters and context an instance was provisioned (or last updated) with: what binding templates read. */
export function instanceInputs(entry: Entry): { parameters: Record<string, unknown>; context: Record<string, unknown> } {
  return { parameters: entry.get<Record<string, unknown>>(RegistryKey.Parameters) ?? {}, context: entry.get<Record<string, unknown>>(RegistryKey.Context) ?? {} };
}

/** The operation record held in entry values; an absent status means still in progress. */
function recordFromValues(values: Record<string, unknown>): OperationRecord | undefined {
  const operation = values[RegistryKey.Operation];
  const operationId = values[RegistryKey.OperationID];
  if (typeof operation !== 'string' || typeof operationId !== 'string') return undefined;
  const status = values[RegistryKey.OperationStatus];
  const record: OperationRecord = { operation: operation as OperationType, operationId, state: 'in progress' };
  if (typeof status === 'string') {
    record.state = status === '' ? 'succeeded' : 'failed';
    if (status !== '') record.description = status;
  }
  return record;
}

/** "" for success; the error text (bounded, non-empty) for a failure. */
function statusOf(error: unknown): string {
  if (error === undefined) return '';
  if (typeof error !== 'string' || error.length === 0) {
    throw new ValidationError('error must be a non-empty text (omit it for success)', 'error');
  }
  return error.length > MAX_ERROR_TEXT ? `${error.slice(0, MAX_ERROR_TEXT - 1)}…` : error;
}
