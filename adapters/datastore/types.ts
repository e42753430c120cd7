// The revisioned key/value contract (docs/design/contracts/datastore.md, after the Calico backend API): what
// every backend (etcd, Kubernetes) implements and what the registry and the etcd service registry build on.
import { BrokerflowError } from '../errors';

/** A key, its value and the revision at which it was last modified (etcd mod revision / resourceVersion). */
export interface KVPair {
  key: string;
  value: string;
  revision: string;
}

/** The result of a list: the pairs under a prefix (in key order) and the store revision the list was read at. */
export interface KVList {
  pairs: KVPair[];
  revision: string;
}

/** What happened to a key; ERROR means the watch has ended. */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'ERROR';

/** One change seen by a watch. MODIFIED carries old and new, DELETED carries old, ERROR carries error. */
export interface WatchEvent {
  type: WatchEventType;
  old?: KVPair;
  new?: KVPair;
  error?: BrokerflowError;
  /**
   * The store revision at which the change happened (ADDED/MODIFIED: `new.revision`; DELETED: the revision of the
   * delete itself, which `old.revision` is not on every backend). Absent on ERROR.
   */
  revision?: string;
}

/** A running watch: an async stream of events that ends after one ERROR event or `stop()`. */
export interface WatchStream extends AsyncIterable<WatchEvent> {
  /** True once the watch has ended (after an ERROR event, or `stop()`). */
  hasTerminated(): boolean;
  stop(): void;
}

/** The revisioned key/value client. */
export interface Datastore {
  /** Creates the key; AlreadyExists (carrying the existing pair) if present. */
  create(key: string, value: string): Promise<KVPair>;
  /** Updates at the given revision; UpdateConflict (with the current pair) if stale; DoesNotExist if missing. */
  update(pair: KVPair): Promise<KVPair>;
  /** Unconditional upsert. */
  apply(key: string, value: string): Promise<KVPair>;
  /** Deletes exactly this key (optionally only at this revision); returns the previous pair. */
  delete(key: string, revision?: string): Promise<KVPair>;
  get(key: string, revision?: string): Promise<KVPair>;
  /** Pairs under a prefix (a path: `/a` never matches `/ab`). */
  list(prefix: string, revision?: string): Promise<KVList>;
  watch(prefix: string, revision?: string): WatchStream;
  ensureInitialized(): Promise<void>;
  /** Removes all of this datastore's data (tests). */
  clean(): Promise<void>;
  close(): Promise<void>;
  /**
   * Optional: several writes as one atomic transaction, applied only if every guard holds (`exists` keys are
   * present, `absent` keys are not, `unchanged` keys are still at the given revision); `puts` are upserts,
   * `deletes` remove the key if present. Resolves true when
   * applied, false when a guard failed (then nothing was written). Backends without multi-key transactions leave
   * it out and callers write key by key.
   */
  writeAll?(batch: GuardedBatch): Promise<boolean>;
}

/** The writes of {@link Datastore.writeAll} and the guards they are conditional on. */
export interface GuardedBatch {
  exists: string[];
  absent: string[];
  /** Keys last written at exactly this revision (as a read saw them): nobody wrote them since. */
  unchanged?: Array<{ key: string; revision: string }>;
  puts: Array<{ key: string; value: string }>;
  deletes: string[];
}

/** Keys and writes one {@link GuardedBatch} may hold (etcd refuses transactions of more than 128 operations). */
export const maxBatchOperations = 128;
