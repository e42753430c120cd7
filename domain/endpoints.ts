// What can happen to a Kubernetes service or its namespace, as endpoint reconciliation's watcher sees it and its
// per-service workflows are told (docs/design/contracts/endpoint-reconciliation.md).

/** What the watcher saw happen to a service or its namespace. */
export type ServiceChangeKind =
  | 'service-added'
  | 'service-updated'
  | 'service-deleted'
  | 'namespace-watched'
  | 'namespace-unwatched'
  | 'namespace-updated'
  | 'namespace-deleted';
