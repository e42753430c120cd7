// The registry: entries for service instances and bindings over a persistence store, the directory, and the
// operation records that last_operation, fetch and the CLI read without a worker running. Operation records are
// idempotent under retries (the operation ID comes from the workflow input) and a final state is never cleared
// by reading it; a successful deprovision/unbind leaves a tombstone so the broker can answer 410 Gone.
import { ConflictError, NotFoundError, PermissionError, ValidationError } from '../errors';
import { validateNamespace, type ObjectStore, type PersistedObject } from '../persistence';
import { Directory } from './directory';
import { Entry, REGISTRY_API_VERSION, RegistryKind, entryInternals, registryKey, type StoredEntry } from './entry';
import { OperationInProgressError, OperationMismatchError } from './errors';
import {
  OPERATIONS_BY_TYPE,
  RegistryKey,
  entryName,
  validateEntryType,
  validateId,
  validateOperationId,
  type EntryType,
  type OperationType,
} from './keys';

/** How the registry is built: the plain store, the secret store for credentials, the broker's namespace. */
export interface RegistryOptions {
  store: ObjectStore;
  /** Where binding credentials go (a store over SecretPersistenceProvider instances); never the plain store. */
  secrets?: ObjectStore;
  /** Namespace of entries whose instance has no directory record (the broker's own); undefined = store default. */
  defaultNamespace?: string;
}

/** Where to look for an entry; by default the directory decides (the instance's record), else the default namespace. */
export interface OpenOptions {
  namespace?: string;
  /** For a binding: its instance, whose directory record gives the namespace. */
  instanceId?: string;
}

/** The state of an operation as last_operation reports it. */
export type OperationState = 'in progress' | 'succeeded' | 'failed';

/** An entry's last (or current) operation. */
export interface OperationRecord {
  operation: OperationType;
  operationId: string;
  state: OperationState;
  /** The error text of a failed operation. */
  description?: string;
  /** The entry was deleted by this (successful deprovision/unbind) operation: answer 410 Gone. */
  gone?: boolean;
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
  operation: OperationType;
  operationId: string;
  completedAt: string;
}

const MAX_ERROR_TEXT = 10_000;

/** Registry of service instance and binding entries. */
export class Registry {
  readonly directory: Directory;
  private readonly store: ObjectStore;
  private readonly secrets: ObjectStore | undefined;
  private readonly defaultNamespace: string | undefined;

  constructor(opts: RegistryOptions) {
    this.store = opts.store;
    this.secrets = opts.secrets;
    this.defaultNamespace = opts.defaultNamespace === undefined ? undefined : validateNamespace(opts.defaultNamespace, 'defaultNamespace');
    this.directory = new Directory(opts.store);
  }

  /** `registry-<type>-<id>`. */
  static entryName(type: EntryType, id: string): string {
    return entryName(type, id);
  }

  /** The namespace an instance's entries live in: its directory record, else the default. */
  async namespaceFor(instanceId: string): Promise<string | undefined> {
    try {
      return (await this.directory.lookup(instanceId)).namespace;
    } catch (err) {
      if (err instanceof NotFoundError) return this.defaultNamespace;
      throw err;
    }
  }

  /** Loads the entry (with its credentials), or a new empty one when none is stored (`exists()` false). */
  async open(type: EntryType, id: string, opts: OpenOptions = {}): Promise<Entry> {
    validateEntryType(type);
    validateId(id);
    const namespace = await this.resolveNamespace(type, id, opts);
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
        const op = operationOf(values);
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
    const current = operationOf(entryValues(entry));
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
      const now = fresh && operationOf(entryValues(fresh));
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
    const current = operationOf(entryValues(entry));
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
      const now = fresh && operationOf(entryValues(fresh));
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
    const namespace = await this.resolveNamespace(type, id, opts);
    const name = entryName(type, id);
    const stored = (await this.store.get(registryKey(RegistryKind.Entry, name, namespace))) as StoredEntry | undefined;
    if (stored) {
      const values = Object.fromEntries(Object.entries(stored.data ?? {}).map(([k, v]) => [k, JSON.parse(v) as unknown]));
      return operationOf(values);
    }
    const tomb = (await this.store.get(registryKey(RegistryKind.Tombstone, name, namespace))) as Tombstone | undefined;
    if (!tomb) return undefined;
    return { operation: tomb.operation, operationId: tomb.operationId, state: 'succeeded', gone: true };
  }

  private stores() {
    return this.secrets ? { store: this.store, secrets: this.secrets } : { store: this.store };
  }

  private async resolveNamespace(type: EntryType, id: string, opts: OpenOptions): Promise<string | undefined> {
    if (opts.namespace !== undefined) return validateNamespace(opts.namespace, 'namespace');
    const instanceId = type === 'service-instance' ? id : opts.instanceId;
    return instanceId === undefined ? this.defaultNamespace : this.namespaceFor(instanceId);
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
      operation,
      operationId,
      completedAt: new Date().toISOString(),
    };
    await this.store.put(tomb);
    await entryInternals.deleteIfCurrent(entry);
  }
}

function entryValues(entry: Entry): Record<string, unknown> {
  return {
    [RegistryKey.Operation]: entry.get(RegistryKey.Operation),
    [RegistryKey.OperationID]: entry.get(RegistryKey.OperationID),
    [RegistryKey.OperationStatus]: entry.get(RegistryKey.OperationStatus),
  };
}

/** The operation record held in entry values; an absent status means still in progress. */
function operationOf(values: Record<string, unknown>): OperationRecord | undefined {
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
