// Persistence providers: durable, optionally redundant and encrypted storage of control-plane objects (file, s3, etcd, kubernetes).
export * from './types';
export { MachineId, SYSTEM_MACHINE_ID_PATHS } from './machine-id';
export {
  MAX_NAME_LENGTH,
  MAX_OBJECT_BYTES,
  formatKey,
  objectKey,
  parseKey,
  parseApiVersion,
  validateName,
  validateNamespace,
  validateKind,
  type ObjectIdentity,
} from './object-key';
export { replicaName } from './replicas';
export { FilePersistenceProvider, type FilePersistenceOptions } from './file';
export { S3PersistenceProvider, type S3PersistenceOptions, type S3ReplicaConfig } from './s3';
export { EtcdPersistenceProvider, type EtcdPersistenceOptions, type EtcdReplicaConfig } from './etcd';
export { KubernetesPersistenceProvider, holderName, type KubernetesPersistenceOptions, type KubernetesReplicaConfig } from './kubernetes';
export { RedundantStore, PENDING_REPAIRS_TYPE, type ObjectStore, type StoreTarget, type ReplicaHealthReport, type RedundantStoreOptions } from './redundant-store';
export {
  SecretPersistenceProvider,
  DecryptionError,
  type SecretKeyConfig,
  type SecretPersistenceOptions,
  type EncryptedEnvelope,
} from './secret';
