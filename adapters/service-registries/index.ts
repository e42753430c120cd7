// Service registries: the ownership-checking ServiceRegistryBroker over etcd, AWS Cloud Map and Google Service Directory backends.
export * from './types';
export * from './errors';
export {
  validateName,
  validateMetadata,
  validateNamespace,
  validateService,
  validateEndpoint,
  validateAddress,
  validatePort,
  maxNameLength,
} from './validation';
export { ServiceRegistryBroker, defaultOwnerPair, type ServiceRegistryBrokerOptions, type EndpointErrors } from './broker';
export {
  CloudMapServiceRegistry,
  cloudMapAddressAttributes,
  cloudMapDefaultCallsPerSecond,
  cloudMapMaxInstancesPerService,
  isThrottling,
  mapCloudMapError,
  type CloudMapServiceRegistryOptions,
} from './cloudmap';
export { CallBudget, type CallObserver } from './call-budget';
export { waitForOperation, type OperationState, type OperationWaitOptions } from './cloudmap-operation';
export { ServiceDirectoryServiceRegistry, mapServiceDirectoryError, type ServiceDirectoryServiceRegistryOptions } from './servicedirectory';
export {
  EtcdServiceRegistry,
  defaultEtcdServiceRegistryPrefix,
  type EtcdServiceRegistryConnectOptions,
} from './etcd';
