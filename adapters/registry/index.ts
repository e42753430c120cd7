// The registry: service instance and binding entries and their operation records, over a persistence store.
export { Registry, operationOf, instanceInputs, type RegistryOptions, type OpenOptions, type OperationRecord, type EntrySummary } from './registry';
export { Entry, REGISTRY_API_VERSION, RegistryKind, type RegistryStores } from './entry';
export { BindingOperationsRunningError, InstanceBusyError, KeyPolicyError, OperationInProgressError, OperationMismatchError } from './errors';
export {
  RegistryKey,
  BrokerflowKey,
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
export { AuditTrails, appliedState } from './audit';
export { planInstances } from './plan-instances';
