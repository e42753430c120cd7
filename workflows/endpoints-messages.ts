// The typed messages, inputs and IDs of endpoint reconciliation, defined once for the workflows, the watcher
// activity that signals them and whoever starts the watcher and the resync schedule.
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { ServiceChangeKind } from '../domain/endpoints';

/** Why the watcher (or the resync) asked a per-service workflow to look again; for history readers only. */
export type ServiceChangeReason = ServiceChangeKind | 'resync';

/** The signal payload. Level-triggered: it names no desired state, the workflow reads the current one. */
export interface ServiceChange {
  reason: ServiceChangeReason;
}

/** Input of the per-service workflow: which service of which mirror, and its timing. */
export interface KubeServiceInput {
  /** Name of the endpoint mirror (one per registry a worker fleet serves). */
  sync: string;
  namespace: string;
  service: string;
  /** Quiet time required before reconciling again right after a reconcile (default 500 ms; the first change after a quiet spell is reconciled at once). */
  debounceMs?: number;
  /** Longest a steady stream of signals may hold a reconcile back (default 5 s). */
  maxDebounceMs?: number;
  /** How long the workflow waits for another signal once in sync before it ends (default 0: it ends at once). */
  idleMs?: number;
  /** startToClose of one reconcile attempt (default 60 s; Cloud Map operations are slow). */
  reconcileTimeoutSeconds?: number;
  /** Reconcile in a local activity (inside the workflow task): fewer round trips, for fast registries. */
  localActivity?: boolean;
}

/** What one reconcile did (the result of the `reconcileKubeService` activity). */
export interface KubeServiceOutcome {
  action: 'registered' | 'removed';
  /** Why the service was removed: `service-gone`, `namespace-gone`, `namespace-unwatched`, `no-metadata`, `no-endpoints`. */
  reason?: string;
  /** Endpoints registered (0 when removed). */
  endpoints: number;
  /** Foreign objects left untouched: `service-not-owned`, `foreign-endpoints`, or endpoint names. */
  untouched: string[];
}

/** What the per-service workflow reports through its query and returns. */
export interface KubeServiceStatus {
  namespace: string;
  service: string;
  /** Signals received by this run. */
  signals: number;
  /** Reconciles run by this run. */
  reconciles: number;
  lastReason?: ServiceChangeReason;
  lastOutcome?: KubeServiceOutcome;
  lastError?: string;
  phase: 'debouncing' | 'reconciling' | 'idle';
}

/** Input of the singleton watcher workflow. */
export interface EndpointWatcherInput {
  sync: string;
  /** Heartbeat timeout of the watch activity: how fast a dead worker's watch moves elsewhere (default 15 s). */
  heartbeatTimeoutSeconds?: number;
  /** The watch activity ends after this long and the workflow continues as new (default 6 h). */
  maxRunSeconds?: number;
}

/** What one run of the watch activity saw before it ended. */
export interface WatchSummary {
  events: number;
  notified: number;
  restarts: number;
}

/** Input of the scheduled full resync. */
export interface EndpointResyncInput {
  sync: string;
}

/** What a full resync found and did. */
export interface ResyncSummary {
  /** Services the registry should hold (watched namespace, allowed annotations, endpoints). */
  desired: number;
  /** Owned services found in the registry. */
  registered: number;
  /**
   * Services written directly, in guarded batches (registries that support it: etcd); absent from summaries
   * recorded before batches existed.
   */
  written?: number;
  /**
   * Services signalled to their workflows: those that differed (missing, changed, or owned but gone from
   * Kubernetes) and were not written directly, and written ones that changed in Kubernetes meanwhile.
   */
  signalled: number;
  /** Empty owned namespaces removed. */
  namespacesRemoved: number;
}

/**
 * The endpoint workflows' signatures, by which starters type their calls (workflow type by name) without
 * importing the workflow code and, through it, the activities; workflows/endpoints.ts checks it implements them.
 */
export type KubeServiceWorkflow = (input: KubeServiceInput, carriedSignals?: number) => Promise<KubeServiceStatus>;
/** See {@link KubeServiceWorkflow}. */
export type EndpointWatcherWorkflow = (input: EndpointWatcherInput) => Promise<never>;
/** See {@link KubeServiceWorkflow}. */
export type EndpointResyncWorkflow = (input: EndpointResyncInput) => Promise<ResyncSummary>;

export const kubeServiceChangedSignal = defineSignal<[ServiceChange]>('kubeServiceChanged');
export const kubeServiceStatusQuery = defineQuery<KubeServiceStatus>('kubeServiceStatus');

// A mirror name becomes part of workflow and schedule IDs: a DNS label keeps those readable and unambiguous.
const syncNamePattern = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

/** Whether a mirror name is acceptable (a DNS label). */
export function isValidSyncName(name: string): boolean {
  return typeof name === 'string' && syncNamePattern.test(name);
}

/** `kube-service/<sync>/<namespace>/<service>`: one workflow per service, so its reconciles never overlap. */
export function kubeServiceWorkflowId(sync: string, namespace: string, service: string): string {
  return `kube-service/${sync}/${namespace}/${service}`;
}

/** `endpoint-watcher/<sync>`: the singleton that runs the informers. */
export function endpointWatcherWorkflowId(sync: string): string {
  return `endpoint-watcher/${sync}`;
}

/** `endpoint-resync/<sync>`: the schedule of full resyncs (and the ID of the workflows it starts). */
export function endpointResyncScheduleId(sync: string): string {
  return `endpoint-resync/${sync}`;
}
