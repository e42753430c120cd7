// The datastore: a revisioned key/value client (the Calico backend API) with etcd and Kubernetes backends, watches and a Syncer.
export * from './types';
export * from './errors';
export { MAX_KEY_BYTES, keyInPrefix, validateKey, validatePrefix, validateRevision } from './keys';
export { EtcdDatastore, type EtcdDatastoreOptions } from './etcd';
export { Syncer, type SyncStatus, type SyncUpdate, type SyncUpdateType, type SyncerCallbacks, type SyncerOptions } from './syncer';
export { KubernetesDatastore, type KubernetesDatastoreOptions } from './kubernetes';
