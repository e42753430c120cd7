// The Temporal client side of endpoint reconciliation: starting the watcher singleton and the resync schedule,
// stopping them, and signalling (starting when needed) a service's workflow. The worker starts the watcher at
// start-up and its watch and resync activities signal services, so this lives with what worker and client
// share rather than under client/ (docs/design/contracts/endpoint-reconciliation.md#workflows).
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { ServiceKey } from '../adapters/kubernetes/watcher';
import { validateName } from '../adapters/service-registries/validation';
import type { EndpointSyncSettings } from '../config/endpoints';
import {
  endpointResyncScheduleId,
  endpointWatcherWorkflowId,
  kubeServiceChangedSignal,
  kubeServiceWorkflowId,
  type EndpointResyncWorkflow,
  type EndpointWatcherWorkflow,
  type KubeServiceInput,
  type KubeServiceWorkflow,
  type ServiceChange,
  type ServiceChangeReason,
} from '../workflows/endpoints-messages';
import { KubeServiceKey } from '../workflows/searchAttributes';

/** The per-service workflow input the watcher and the resync start with. */
export function kubeServiceInput(s: EndpointSyncSettings, key: ServiceKey): KubeServiceInput {
  return {
    sync: s.name,
    namespace: key.namespace,
    service: key.service,
    debounceMs: s.debounceMs,
    idleMs: s.idleMs,
    reconcileTimeoutSeconds: s.reconcileTimeoutSeconds,
    ...(s.reconcileIn === 'local-activity' ? { localActivity: true } : {}),
  };
}

/** Signals (starting it when needed) the per-service workflow of `key`. */
export async function signalKubeService(client: Client, taskQueue: string, s: EndpointSyncSettings, key: ServiceKey, reason: ServiceChangeReason): Promise<void> {
  // Names from the apiserver are checked like any outside input before they become a workflow ID.
  validateName('namespace', key.namespace);
  validateName('service', key.service);
  await client.workflow.signalWithStart<KubeServiceWorkflow, [ServiceChange]>('kubeServiceWorkflow', {
    workflowId: kubeServiceWorkflowId(s.name, key.namespace, key.service),
    taskQueue,
    args: [kubeServiceInput(s, key)],
    signal: kubeServiceChangedSignal,
    signalArgs: [{ reason }],
    typedSearchAttributes: [{ key: KubeServiceKey, value: `${key.namespace}/${key.service}` }],
  });
}

/** What {@link ensureEndpointSync} needs: where workers poll and the settings. */
export interface EnsureEndpointSyncOptions {
  taskQueue: string;
  settings: EndpointSyncSettings;
  /** The watch activity ends and the watcher continues as new after this long (default 6 h). */
  maxRunSeconds?: number;
}

/**
 * Starts endpoint reconciliation for a mirror, idempotently: the watcher singleton `endpoint-watcher/<name>`
 * (an already running one is kept) and the resync schedule `endpoint-resync/<name>` (created, or updated to the
 * configured interval). Call it at worker start-up or from a deployment step.
 */
export async function ensureEndpointSync(client: Client, opts: EnsureEndpointSyncOptions): Promise<{ watcherRunId: string; scheduleId: string }> {
  const { settings: s, taskQueue } = opts;
  const watcher = await client.workflow.start<EndpointWatcherWorkflow>('endpointWatcherWorkflow', {
    workflowId: endpointWatcherWorkflowId(s.name),
    taskQueue,
    args: [{ sync: s.name, heartbeatTimeoutSeconds: s.heartbeatTimeoutSeconds, ...(opts.maxRunSeconds ? { maxRunSeconds: opts.maxRunSeconds } : {}) }],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  const scheduleId = endpointResyncScheduleId(s.name);
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'endpointResyncWorkflow',
    taskQueue,
    args: [{ sync: s.name }] as Parameters<EndpointResyncWorkflow>,
    workflowId: scheduleId,
  };
  const spec = { intervals: [{ every: `${s.resyncIntervalSeconds} seconds` as const }] };
  try {
    await client.schedule.create({ scheduleId, spec, action, policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' } });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((prev) => ({ ...prev, spec, action }));
  }
  return { watcherRunId: watcher.firstExecutionRunId, scheduleId };
}

/** Stops a mirror: cancels the watcher and deletes the resync schedule (registry entries stay). Idempotent. */
export async function stopEndpointSync(client: Client, name: string): Promise<void> {
  try {
    await client.workflow.getHandle(endpointWatcherWorkflowId(name)).cancel();
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  try {
    await client.schedule.getHandle(endpointResyncScheduleId(name)).delete();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
  }
}
