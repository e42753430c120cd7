// The registry: service instance and binding entries, the directory and operation records, over a persistence store.
export { Registry, type RegistryOptions, type OpenOptions, type OperationRecord, type OperationState, type EntrySummary } from './registry';
export { Entry, REGISTRY_API_VERSION, RegistryKind, type RegistryStores } from './entry';
export { Directory, type DirectoryEntry } from './directory';
export { KeyPolicyError, OperationInProgressError, OperationMismatchError } from './errors';
export {
  RegistryKey,
  USER_HIDDEN_KEYS,
  USER_READ_ONLY_KEYS,
  OPERATIONS_BY_TYPE,
  MAX_ID_LENGTH,
  MAX_OPERATION_ID_LENGTH,
  entryName,
  validateId,
  type EntryType,
  type OperationType,
} from './keys';
