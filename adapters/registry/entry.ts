// A registry entry: the key/value map kept for one service instance or binding. Values are stored JSON-encoded;
// `credentials` is kept apart in the secret store and never reaches the plain one.
import { PermissionError, ValidationError } from '../errors';
import { formatKey, type ObjectKey, type ObjectStore, type OwnerReference, type PersistedObject } from '../persistence';
import { KeyPolicyError } from './errors';
import {
  OPERATION_KEYS,
  RegistryKey,
  USER_HIDDEN_KEYS,
  USER_READ_ONLY_KEYS,
  entryName,
  validateKey,
  type EntryType,
} from './keys';

/** apiVersion of every object the registry stores. */
export const REGISTRY_API_VERSION = 'registry.brokerflow.io/v1';
const GROUP = 'registry.brokerflow.io';
/** Kinds the registry stores. */
export const RegistryKind = {
  Entry: 'RegistryEntry',
  Credentials: 'RegistryCredentials',
  Tombstone: 'RegistryTombstone',
  /** An instance's audit trail (docs/design/contracts/registry.md#audit-trail). */
  Audit: 'RegistryAudit',
} as const;

/** The stores an entry is kept in. */
export interface RegistryStores {
  store: ObjectStore;
  /** Where `credentials` go; without one, committing credentials fails. */
  secrets?: ObjectStore;
}

/** The shape of a stored RegistryEntry object. */
export interface StoredEntry extends PersistedObject {
  type: EntryType;
  id: string;
  /** key -> JSON text of the value. */
  data: Record<string, string>;
  /** Whether a RegistryCredentials object in the secret store belongs to this entry. */
  hasCredentials?: boolean;
}

/** The key of a registry object of `kind` named after an entry. */
export function registryKey(kind: string, name: string, namespace: string | undefined): ObjectKey {
  return formatKey({ group: GROUP, kind, name, namespace });
}

function encode(key: string, value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined;
  }
  if (text === undefined) throw new ValidationError(`the value of registry key ${key} is not JSON-serializable`, key);
  return text;
}

/** Module-private access to entry state for the Registry (begin/complete operations, loading). */
export interface EntryInternals {
  adopt(entry: Entry, stored: StoredEntry | undefined, credentials: string | undefined): void;
  /** The raw data map (JSON texts), to snapshot and restore around a failed commit. */
  snapshot(entry: Entry): { data: Map<string, string>; credentialsDirty: boolean };
  restore(entry: Entry, snap: { data: Map<string, string>; credentialsDirty: boolean }): void;
  /** Deletes the entry from the stores, conditional on the version held (a stale copy gets a ConflictError). */
  deleteIfCurrent(entry: Entry): Promise<void>;
  stores(entry: Entry): RegistryStores;
}
let internals!: EntryInternals;

/** A KV map kept for one service instance or binding; `commit()` writes it with optimistic concurrency. */
export class Entry {
  readonly type: EntryType;
  readonly id: string;
  /** `registry-<type>-<id>`. */
  readonly name: string;
  /** Where the entry lives (the Kubernetes namespace for that backend); undefined = the store's default. */
  readonly namespace: string | undefined;
  readonly #stores: RegistryStores;
  #data = new Map<string, string>();
  #version: string | undefined;
  #uid: string | undefined;
  #readOnly: boolean;
  #credentialsDirty = false;

  static {
    internals = {
      adopt(entry, stored, credentials) {
        entry.#data = new Map(Object.entries(stored?.data ?? {}));
        if (credentials !== undefined) entry.#data.set(RegistryKey.Credentials, credentials);
        entry.#version = stored?.metadata.resourceVersion;
        entry.#uid = stored?.metadata.uid;
        entry.#credentialsDirty = false;
      },
      snapshot: (entry) => ({ data: new Map(entry.#data), credentialsDirty: entry.#credentialsDirty }),
      restore(entry, snap) {
        entry.#data = new Map(snap.data);
        entry.#credentialsDirty = snap.credentialsDirty;
      },
      async deleteIfCurrent(entry) {
        await entry.#remove(entry.#version !== undefined ? { ifMatch: entry.#version } : {});
      },
      stores: (entry) => entry.#stores,
    };
  }

  /** A new, empty entry (not yet stored); use Registry.open to load one. */
  constructor(stores: RegistryStores, type: EntryType, id: string, namespace?: string, readOnly = false) {
    this.name = entryName(type, id);
    this.type = type;
    this.id = id;
    this.namespace = namespace;
    this.#stores = stores;
    this.#readOnly = readOnly;
  }

  /** True when the entry was stored when loaded, or after a successful commit (false again after delete). */
  exists(): boolean {
    return this.#version !== undefined;
  }

  /** Read-only copies (clone()) cannot be committed or deleted. */
  isReadOnly(): boolean {
    return this.#readOnly;
  }

  /** The stored version this copy is based on (the optimistic-concurrency token), if any. */
  get resourceVersion(): string | undefined {
    return this.#version;
  }

  /** The keys present. */
  keys(): string[] {
    return [...this.#data.keys()].sort();
  }

  /** A fresh copy of the value (decoded from its JSON text), or undefined when the key is absent. */
  get<T = unknown>(key: string): T | undefined {
    const text = this.#data.get(validateKey(key));
    return text === undefined ? undefined : (JSON.parse(text) as T);
  }

  has(key: string): boolean {
    return this.#data.has(validateKey(key));
  }

  /** A string value; ValidationError when the stored value is not a string. */
  getString(key: string): string | undefined {
    const v = this.get(key);
    if (v !== undefined && typeof v !== 'string') throw new ValidationError(`registry key ${key} does not hold a string`, key);
    return v;
  }

  /** Sets a value (JSON-encoded now, so later changes to the caller's object do not leak in). Local until commit. */
  set(key: string, value: unknown): void {
    const k = validateKey(key);
    this.#data.set(k, encode(k, value));
    if (k === RegistryKey.Credentials) this.#credentialsDirty = true;
  }

  unset(key: string): void {
    const k = validateKey(key);
    if (this.#data.delete(k) && k === RegistryKey.Credentials) this.#credentialsDirty = true;
  }

  /** Read for templates: hidden keys (context, parameters, operation*) raise KeyPolicyError. */
  getUser(key: string): unknown {
    const k = validateKey(key);
    if (USER_HIDDEN_KEYS.has(k)) throw new KeyPolicyError(`read access to registry key ${k} is prohibited`, k);
    return this.get(k);
  }

  /** Write for templates: read-only and hidden keys raise KeyPolicyError; dashboard-url, credentials and user keys are writable. */
  setUser(key: string, value: unknown): void {
    const k = validateKey(key);
    if (USER_HIDDEN_KEYS.has(k) || USER_READ_ONLY_KEYS.has(k)) {
      throw new KeyPolicyError(`write access to registry key ${k} is prohibited`, k);
    }
    this.set(k, value);
  }

  /** A deep, read-only copy: commit() and delete() on it fail with a PermissionError; this entry stays writable. */
  clone(): Entry {
    const copy = new Entry(this.#stores, this.type, this.id, this.namespace, true);
    copy.#data = new Map(this.#data);
    copy.#version = this.#version;
    copy.#uid = this.#uid;
    return copy;
  }

  /**
   * Copies the instance's keys (all but its operation record) into this new binding entry, once: a binding
   * that is already stored keeps what it inherited, and later instance changes never flow into it.
   */
  inherit(instance: Entry): void {
    if (this.type !== 'service-binding' || instance.type !== 'service-instance') {
      throw new ValidationError('only a binding entry inherits, and only from an instance entry', 'type');
    }
    if (this.exists()) return;
    for (const [k, v] of instance.#data) {
      if (OPERATION_KEYS.has(k)) continue;
      this.#data.set(k, v);
      if (k === RegistryKey.Credentials) this.#credentialsDirty = true;
    }
  }

  /**
   * Creates the entry, or updates it if this copy holds the current version. A stale copy (someone committed
   * or deleted since it was read) gets a ConflictError and nothing is written; re-open and try again.
   */
  async commit(): Promise<void> {
    if (this.#readOnly) throw new PermissionError(`${this.name} is a read-only copy`);
    const hasCredentials = this.#data.has(RegistryKey.Credentials);
    const secrets = this.#stores.secrets;
    if (hasCredentials && !secrets) {
      throw new ValidationError('credentials can only be kept with a secret store configured', RegistryKey.Credentials);
    }
    const data = Object.fromEntries([...this.#data].filter(([k]) => k !== RegistryKey.Credentials));
    const stored: StoredEntry = {
      apiVersion: REGISTRY_API_VERSION,
      kind: RegistryKind.Entry,
      metadata: this.#meta(),
      type: this.type,
      id: this.id,
      data,
      hasCredentials,
    };
    const result = await this.#stores.store.put(stored, this.#version !== undefined ? { ifMatch: this.#version } : { ifNoneMatch: '*' });
    this.#version = result.resourceVersion;
    this.#uid = result.uid;
    if (this.#credentialsDirty && secrets) {
      // After the entry: only a writer that won the entry's version check may touch the credentials.
      if (hasCredentials) {
        await secrets.put({
          apiVersion: REGISTRY_API_VERSION,
          kind: RegistryKind.Credentials,
          metadata: this.#meta(),
          credentials: this.#data.get(RegistryKey.Credentials),
        });
      } else {
        await secrets.delete(registryKey(RegistryKind.Credentials, this.name, this.namespace));
      }
      this.#credentialsDirty = false;
    }
  }

  /** Deletes the entry and its credentials; deleting a missing entry succeeds. */
  async delete(): Promise<void> {
    if (this.#readOnly) throw new PermissionError(`${this.name} is a read-only copy`);
    await this.#remove({});
  }

  /**
   * The owner reference of the object holding this entry (Kubernetes backend): Kubernetes objects created with
   * it, in the entry's namespace, are garbage-collected when the entry is deleted. Undefined for other backends
   * or before the first commit.
   */
  getOwnerReference(): OwnerReference | undefined {
    if (this.#uid === undefined) return undefined;
    return this.#stores.store.ownerReference({
      apiVersion: REGISTRY_API_VERSION,
      kind: RegistryKind.Entry,
      metadata: { ...this.#meta(), uid: this.#uid },
    });
  }

  async #remove(precondition: { ifMatch?: string }): Promise<void> {
    await this.#stores.store.delete(registryKey(RegistryKind.Entry, this.name, this.namespace), precondition);
    await this.#stores.secrets?.delete(registryKey(RegistryKind.Credentials, this.name, this.namespace));
    this.#version = undefined;
    this.#uid = undefined;
    this.#credentialsDirty = this.#data.has(RegistryKey.Credentials);
  }

  #meta(): PersistedObject['metadata'] {
    return this.namespace !== undefined ? { name: this.name, namespace: this.namespace } : { name: this.name };
  }
}

export { internals as entryInternals };
