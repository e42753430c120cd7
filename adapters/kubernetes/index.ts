// The Kubernetes source of endpoint reconciliation: which namespaces are watched and what a Service becomes in a service registry.
export type { KubeNamespace, KubeObjectMeta, KubeService } from './types';
export { AnnotationAllowlist } from './annotations';
export { defaultWatchLabelPrefix, isNamespaceWatched, watchLabelKey, type NamespaceWatchPolicy } from './watch';
export { endpointName, extractServiceData, serviceIPs, type ServiceExtraction } from './extract';
export { KubeServiceWatcher, WatcherFailedError, type KubeServiceWatcherOptions, type ServiceKey, type WatchedChange, type WatcherStats } from './watcher';
