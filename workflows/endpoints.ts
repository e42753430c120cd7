// Endpoint reconciliation as workflows: a singleton runs the Kubernetes informers in a heartbeating activity;
// every relevant change signals the per-service workflow of that service (signalWithStart), which waits for a
// quiet moment and reconciles from current state through one activity; a scheduled resync catches the rest.
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  continueAsNew,
  isCancellation,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { EndpointActivities } from '../activities/endpoints';
import { causeMessage, endpointResyncOptions, endpointWatcherOptions, kubeServiceReconcileOptions } from './activity-policies';
import {
  kubeServiceChangedSignal,
  kubeServiceStatusQuery,
  type EndpointResyncInput,
  type EndpointResyncWorkflow,
  type EndpointWatcherInput,
  type EndpointWatcherWorkflow,
  type KubeServiceInput,
  type KubeServiceWorkflow,
  type KubeServiceStatus,
  type ResyncSummary,
} from './endpoints-messages';

// A run continues as new well before Temporal's own history limits; a busy service stays cheap to replay.
const maxHistoryLength = 2_000;

/** Timing of a per-service workflow after defaults. */
export function kubeServiceTiming(input: KubeServiceInput): { debounceMs: number; maxDebounceMs: number; idleMs: number; reconcileTimeoutSeconds: number } {
  return {
    debounceMs: Math.max(0, input.debounceMs ?? 500),
    maxDebounceMs: Math.max(0, input.maxDebounceMs ?? 5_000),
    idleMs: Math.max(0, input.idleMs ?? 0),
    reconcileTimeoutSeconds: Math.max(1, input.reconcileTimeoutSeconds ?? 60),
  };
}

/**
 * One Kubernetes service mirrored into the registry. Started (or signalled) by the watcher with
 * signalWithStart, it reconciles from the current state of the cluster at once, and again after `debounceMs`
 * of quiet when more changes came meanwhile. It ends once it is in sync and no signal came during the
 * reconcile (or for `idleMs` after it, when set), so histories stay short; a new change starts a new run
 * under the same ID. A reconcile that failed for good ends the run as failed (visible in the Web UI) until
 * the next change or resync.
 */
export async function kubeServiceWorkflow(input: KubeServiceInput, carriedSignals = 0): Promise<KubeServiceStatus> {
  const timing = kubeServiceTiming(input);
  const reconcileOptions = kubeServiceReconcileOptions(timing.reconcileTimeoutSeconds);
  // A local activity runs inside the workflow task: no activity task round trip, and one workflow task less.
  const { reconcileKubeService } = input.localActivity
    ? proxyLocalActivities<EndpointActivities>(reconcileOptions)
    : proxyActivities<EndpointActivities>(reconcileOptions);
  const status: KubeServiceStatus = { namespace: input.namespace, service: input.service, signals: 0, reconciles: 0, phase: 'reconciling' };
  // Signals bump `received`; a reconcile covers every signal received before it started.
  let received = carriedSignals;
  let covered = 0;
  // Workflow time at which the last reconcile ended.
  let lastReconcileAt: number | undefined;
  setHandler(kubeServiceChangedSignal, (change) => {
    received += 1;
    status.signals += 1;
    status.lastReason = change.reason;
  });
  setHandler(kubeServiceStatusQuery, () => status);

  for (;;) {
    if (received === covered) {
      status.phase = 'idle';
      // In sync. A signal that arrives while the run completes makes Temporal reject the completion and deliver
      // it, so ending here never loses one; a later change starts a new run under the same ID.
      if (timing.idleMs === 0) break;
      // Signals are delivered before timers in an activation, so one arriving as the idle timer fires is seen.
      if (!(await condition(() => received !== covered, timing.idleMs))) break;
    }
    // Leading edge: the first change after a quiet spell is reconciled at once (an isolated change costs no
    // wait). Changes that come while a reconcile runs, or right after it, wait for `debounceMs` of quiet, so a
    // burst of any length costs at most two reconciles.
    const quiet = lastReconcileAt === undefined || Date.now() - lastReconcileAt >= timing.debounceMs;
    if (timing.debounceMs > 0 && !quiet) {
      status.phase = 'debouncing';
      const since = Date.now();
      for (;;) {
        const seen = received;
        const more = await condition(() => received !== seen, timing.debounceMs);
        if (!more || Date.now() - since >= timing.maxDebounceMs) break;
      }
    }
    covered = received;
    status.phase = 'reconciling';
    try {
      status.lastOutcome = await reconcileKubeService({ sync: input.sync, namespace: input.namespace, service: input.service });
      status.lastError = undefined;
    } catch (err) {
      if (isCancellation(err) || !(err instanceof ActivityFailure)) throw err;
      status.lastError = causeMessage(err);
    }
    status.reconciles += 1;
    lastReconcileAt = Date.now();
    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength > maxHistoryLength) {
      await continueAsNew<typeof kubeServiceWorkflow>(input, received - covered);
    }
  }
  if (status.lastError !== undefined) {
    throw ApplicationFailure.nonRetryable(status.lastError, 'ReconcileFailed');
  }
  return status;
}

/**
 * The singleton (`endpoint-watcher/<sync>`) that keeps the informers running. Their activity heartbeats; when
 * its worker dies the heartbeat times out and Temporal runs it again on another worker, which lists the
 * cluster afresh and signals every watched service, so nothing missed meanwhile stays missed.
 */
export async function endpointWatcherWorkflow(input: EndpointWatcherInput): Promise<never> {
  const heartbeatTimeoutSeconds = Math.max(2, input.heartbeatTimeoutSeconds ?? 15);
  const maxRunSeconds = Math.max(60, input.maxRunSeconds ?? 6 * 3600);
  const { watchKubernetes } = proxyActivities<EndpointActivities>(endpointWatcherOptions(maxRunSeconds, heartbeatTimeoutSeconds));
  await watchKubernetes({ sync: input.sync, maxRunSeconds });
  // A fresh run (and a fresh watch) keeps the history of a watcher that lives for months at a few events.
  return continueAsNew<typeof endpointWatcherWorkflow>(input);
}

/** A full resync (started by the schedule `endpoint-resync/<sync>`): signals every service the registry disagrees with. */
export async function endpointResyncWorkflow(input: EndpointResyncInput): Promise<ResyncSummary> {
  const { resyncEndpoints } = proxyActivities<EndpointActivities>(endpointResyncOptions);
  return resyncEndpoints(input);
}

// Starters type their calls with these signatures (endpoints-messages.ts); tsc fails here when a workflow drifts.
kubeServiceWorkflow satisfies KubeServiceWorkflow;
endpointWatcherWorkflow satisfies EndpointWatcherWorkflow;
endpointResyncWorkflow satisfies EndpointResyncWorkflow;
