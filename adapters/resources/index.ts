// Resource drivers: the CRUD steps reconciliation runs per resource (Kubernetes objects, tenant etcd prefixes and
// users, service registry entries).
export * from './types';
export {
  KubernetesObjectDriver,
  loadKubernetesClient,
  labelValueForId,
  isReady,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  INSTANCE_ID_KEY,
  BINDING_ID_KEY,
  APPLIED_HASH_ANNOTATION,
  type KubernetesObjectDriverOptions,
  type KubernetesObjectSpec,
  type KubernetesReadiness,
  type KubernetesOwnerReference,
} from './kubernetes';
export {
  connectTenantEtcd,
  validateEtcdPrefix,
  ETCD_OWNERS_PREFIX,
  etcdOwnerKey,
  ETCD_MANAGED_NAME_PREFIX,
  MAX_ETCD_PREFIX_BYTES,
  type TenantEtcdOptions,
} from './etcd';
export { EtcdPrefixDriver, type EtcdPrefixSpec, type EtcdPrefixDriverOptions } from './etcd-prefix';
export {
  EtcdUserDriver,
  etcdUserName,
  etcdUserSecretName,
  type EtcdUserSpec,
  type EtcdUserDriverOptions,
  type EtcdUserCredentials,
} from './etcd-user';
export {
  ServiceRegistryDriver,
  serviceRegistryOwnerValue,
  DEFAULT_SERVICE_REGISTRY_OWNER_KEY,
  SERVICE_REGISTRY_NAMESPACE_OWNER,
  type ServiceRegistrySpec,
  type ServiceRegistryEndpointSpec,
  type ServiceRegistryDriverOptions,
} from './service-registry';
