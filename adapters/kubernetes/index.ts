// The Kubernetes source of endpoint reconciliation: which namespaces are watched and what a Service becomes in a service registry;
// and, for every caller of the API server, whether its refusal is final.
export type { KubeNamespace, KubeObjectMeta, KubeService } from './types';
export { AnnotationAllowlist } from './annotations';
export { defaultWatchLabelPrefix, isNamespaceWatched, watchLabelKey, type NamespaceWatchPolicy } from './watch';
export { endpointName, extractServiceData, serviceIPs, type ServiceExtraction } from './extract';
export { KubeServiceWatcher, WatcherFailedError, type KubeServiceWatcherOptions, type ServiceKey, type WatchedChange, type WatcherStats } from './watcher';
export { isRefusal, refusalIsFinal } from './refusal';
