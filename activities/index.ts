// Activities: thin functions, one per side effect, each wrapping an adapter call and mapping its errors to
// retryable or non-retryable failures. `createActivities(deps)` builds them from real adapters.
import type { ResourceDriver } from '../adapters/resources/types';
import { createCancellationActivities } from './cancellation';
import { createFleetActivities } from './fleet';
import { createProbeActivities } from './probe';
import { createReconcileActivities } from './reconcile';
import type { ReconcileMetrics } from './metrics';
import { createOperationActivities, type OperationDeps } from './operations';
import type { EndpointDeps } from './endpoints';

/** The adapters activities are built from. */
export interface ActivityDeps {
  workerIdentity?: string;
  /** Resource drivers by kind (`kubernetes`, `etcd-prefix`, `etcd-user`, …). */
  drivers?: Map<string, ResourceDriver>;
  reconcileMetrics?: ReconcileMetrics;
  /** The registry, catalog and resource sets the OSB operation activities need. */
  operations?: Omit<OperationDeps, 'drivers'>;
  /** The registry Broker, kubeconfig and settings of endpoint reconciliation (Kubernetes -> service registry). */
  endpoints?: EndpointDeps;
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...createProbeActivities(deps),
    ...createReconcileActivities({ drivers: deps.drivers ?? new Map(), ...(deps.reconcileMetrics ? { metrics: deps.reconcileMetrics } : {}) }),
    ...(deps.operations ? { ...createOperationActivities({ ...deps.operations, drivers: deps.drivers ?? new Map() }), ...createCancellationActivities(), ...createFleetActivities(deps.operations) } : {}),
    // Loaded only when endpoint reconciliation is configured: it pulls in @kubernetes/client-node (~75 MB RSS).
    ...(deps.endpoints ? (require('./endpoints') as typeof import('./endpoints')).createEndpointActivities(deps.endpoints) : {}),
  };
}

/** Every activity, as workflows see them through `proxyActivities`. */
export type Activities = ReturnType<typeof createActivities>;
