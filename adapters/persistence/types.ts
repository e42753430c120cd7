// The persistence provider contract (docs/design/contracts/persistence.md): durable storage of control-plane
// objects in one or more independent replicas per provider. Redundancy across replicas is the layer above
// (RedundantStore).
import type { MachineId } from './machine-id';

/** Kubernetes-style object metadata; `name` (and `namespace`) identify the object within its kind. */
export interface ObjectMeta {
  name: string;
  /** Optional grouping (a Kubernetes namespace for the kubernetes backend, a path segment elsewhere). */
  namespace?: string;
  /** Opaque version assigned by the backend on every write: etcd mod revision, resourceVersion, ETag, file token. */
  resourceVersion?: string;
  /** Kubernetes backend only: the uid of the ConfigMap/Secret that holds the object. */
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** The type of an object: `apiVersion` (`[group/]version`) and `kind`, as in a Kubernetes runtime object. */
export interface TypeMeta {
  apiVersion: string;
  kind: string;
}

/** A control-plane object a provider persists: typed by apiVersion/kind, named by metadata, any other fields. */
export interface PersistedObject extends TypeMeta {
  metadata: ObjectMeta;
  [field: string]: unknown;
}

/** The string that finds a stored object again: `<Kind>[.<group>]/[<namespace>/]<name>` (kubectl notation). */
export type ObjectKey = string;

/**
 * Optimistic concurrency for a write: `ifMatch` succeeds only while the stored version is exactly that
 * `resourceVersion`; `ifNoneMatch: '*'` succeeds only while nothing is stored under the key. A failed
 * precondition is a ConflictError and writes nothing.
 */
export interface WritePrecondition {
  ifMatch?: string;
  ifNoneMatch?: '*';
}

/** What a put returns: the key to find the object again and the version the backend gave it. */
export interface PutResult {
  key: ObjectKey;
  resourceVersion: string;
  /** Kubernetes backend only: uid of the holding ConfigMap/Secret. */
  uid?: string;
}

/** The state of one replica (the original PersistenceProviderStatus; see
 *  docs/design/contracts/persistence.md#replica-status). */
export type ReplicaStatus =
  | { exists: false }
  | {
      exists: true;
      /** True while the replica answers; false after a failed initialize or a transport failure. */
      status: boolean;
      /** Mean time of every put from request to durable acknowledgement (fsync, 2xx, etcd commit); 0 before the first put. */
      meanPersistLatencyMs: number;
      /** How many puts the mean covers. */
      puts: number;
      /** The last failure that marked the replica down (no secrets in it). */
      lastError?: string;
    };

/** A reference that makes a Kubernetes object owned (garbage-collected) by the object holding a persisted entry. */
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** Storage of control-plane objects in several independent, named replicas (file, s3, etcd, kubernetes). */
export interface PersistenceProvider {
  /** Backend family, the `<kind>` in replica names: `file`, `s3`, `etcd`, `kubernetes`, or `secret+<inner>`. */
  readonly kind: string;
  /** Opens connections/files for every replica; rejects (UnavailableError) if any replica failed, which is then marked down. */
  initialize(machineId: MachineId): Promise<void>;
  /** Names of the replicas, `<kind>-<hash>`: the hash is stable for the same configuration and unique per replica. */
  replicas(): string[];
  /**
   * Opens one replica again when its initialize failed (a no-op for one that is open); rejects like initialize.
   * Lets a store started with a replica down take it back once it answers.
   */
  reopen?(replica: string): Promise<void>;
  replicaStatus(replica: string): ReplicaStatus;
  /** Persists the object; returns its key and new version. */
  putObject(replica: string, object: PersistedObject, precondition?: WritePrecondition): Promise<PutResult>;
  /** The stored object with `metadata.resourceVersion` set, or undefined when absent. */
  getObject(replica: string, key: ObjectKey): Promise<PersistedObject | undefined>;
  /** Removes the object; a missing object is success unless `ifMatch` is given (then ConflictError). */
  deleteObject(replica: string, key: ObjectKey, precondition?: Pick<WritePrecondition, 'ifMatch'>): Promise<void>;
  /** Every stored object of that group and kind (any version), in key order. */
  getAllObjects(replica: string, type: TypeMeta): Promise<PersistedObject[]>;
  /** Kubernetes backend: the owner reference of the ConfigMap/Secret holding a stored object; undefined elsewhere. */
  ownerReference(replica: string, object: PersistedObject): OwnerReference | undefined;
  close(): Promise<void>;
}

/** The replica configurations of a backend's options. */
export interface ReplicaList<C> {
  replicas: C[];
}
