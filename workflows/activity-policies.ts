// The retry and failure module of the workflows: every activity group's timeouts and retry policy in one place,
// and how a workflow reads an activity's failure. Which failures are never retried is not decided here: it is
// the table of error codes in domain/errors.ts, from which the error classes also take their `retryable` flag
// (docs/design/architecture.md#design-rules). Options may change freely for old histories (replay compares
// commands, not their options); adding, removing or reordering activities may not.
import { ActivityCancellationType, ActivityFailure, ApplicationFailure, CancelledFailure, type ActivityOptions, type LocalActivityOptions, type RetryPolicy } from '@temporalio/workflow';
import { msToNumber } from '@temporalio/common/lib/time';
import { nonRetryableErrorCodes } from '../domain/errors';

/**
 * Failure types no retry can fix. Activities already mark these failures non-retryable (activities/failures.ts
 * uses the code as the type and the class's flag); the policies list them too, so the policy a person reads in
 * the Web UI says the same.
 */
export const nonRetryableErrorTypes: string[] = [...nonRetryableErrorCodes];

/** Registry records (operations): single reads and writes, so a 10 s limit lets a dead worker's call be retried elsewhere soon. */
export const recordOptions: ActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 12, nonRetryableErrorTypes },
};

/**
 * Where an activity runs and with which options. Short steps go first as a local activity (in the worker that runs
 * the workflow task, recorded as a marker, no round trip through the task queue; docs/design/architecture.md#local-first-steps):
 * ONE local attempt, and a step that fails retryably continues as the regular activity `regular`, whose attempts
 * Temporal shows, with the rest of the same policy ({@link continuationAfterLocalAttempt}). `local` undefined: the
 * step always runs as a regular activity.
 */
export interface Placement {
  local?: LocalActivityOptions;
  regular: ActivityOptions;
}

/** The local attempt of a step whose regular options are `regular`: one attempt, the same start-to-close timeout. */
function localAttempt(regular: ActivityOptions, startToCloseTimeout = regular.startToCloseTimeout): LocalActivityOptions {
  return {
    startToCloseTimeout: startToCloseTimeout!,
    // Retries belong to the regular activity that continues the step, where Temporal counts and shows them.
    retry: { ...regular.retry, maximumAttempts: 1 },
    cancellationType: regular.cancellationType ?? ActivityCancellationType.TRY_CANCEL,
  };
}

/** Registry records, local first (a single read-decide-write on the registry each). */
export const recordPlacement: Placement = { local: localAttempt(recordOptions), regular: recordOptions };

/**
 * How a step that failed its local attempt continues as a regular activity so that the policy reads as if every
 * attempt had been regular: the wait before the second attempt is the policy's first interval, the regular
 * activity starts from the second interval and has one attempt less. Undefined when the policy allows no second
 * attempt. Unlimited policies (`maximumAttempts` 0 or absent) stay unlimited.
 */
export function continuationAfterLocalAttempt(retry: RetryPolicy | undefined): { waitMs: number; retry: RetryPolicy } | undefined {
  const max = retry?.maximumAttempts ?? 0;
  if (max === 1) return undefined;
  const initial = retry?.initialInterval !== undefined ? msToNumber(retry.initialInterval) : 1000;
  const coefficient = retry?.backoffCoefficient ?? 2;
  const cap = retry?.maximumInterval !== undefined ? msToNumber(retry.maximumInterval) : initial * 100;
  return {
    waitMs: Math.min(initial, cap),
    retry: { ...retry, initialInterval: Math.min(initial * coefficient, cap), ...(max > 1 ? { maximumAttempts: max - 1 } : {}) },
  };
}

/** The end of the activity ID of a step that continues as a regular activity after its local attempt. */
const CONTINUED_SUFFIX = '-after-local-attempt';

/**
 * The activity ID of a step that failed its one local attempt and continues as a regular activity (workflows/local-first.ts).
 * Temporal counts that activity's attempts from 1; the ID says one attempt came before, so that last_operation and
 * the CLI, which read the attempt from Temporal's pending activity without a worker, still count right. `at` (the
 * workflow's history length) keeps it unique within the run.
 */
export function continuedActivityId(activityType: string, at: number): string {
  return `${activityType}-${at}${CONTINUED_SUFFIX}`;
}

/** How many attempts of a step came before the activity with this ID (see {@link continuedActivityId}). */
export function attemptsBeforeActivity(activityId: string | null | undefined): number {
  return activityId?.endsWith(CONTINUED_SUFFIX) ? 1 : 0;
}

/** The default reconcile step retry policy: exponential backoff, 7 attempts, as operatorkit's default backoff. */
export const defaultStepRetry: RetryPolicy = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
  maximumAttempts: 7,
  nonRetryableErrorTypes,
};

/**
 * Reconcile steps (docs/design/contracts/reconciliation.md#retries-and-timeouts). Timeouts decide how fast a step
 * is retried elsewhere when its worker dies: reads and patches are single calls (10 s is generous); applies may
 * wait for readiness for minutes but heartbeat while they do, so a dead worker is noticed after 10 s without a
 * heartbeat. `waitForCancelledApplies`: a cancelled apply is waited for until it has stopped (see
 * workflows/reconcile.ts for why, and for the patch that decides it).
 */
export function stepOptions(retry: RetryPolicy, waitForCancelledApplies: boolean): { reads: ActivityOptions; pure: ActivityOptions; applies: ActivityOptions } {
  return {
    reads: { startToCloseTimeout: '10 seconds', retry },
    pure: { startToCloseTimeout: '10 seconds', retry: { ...retry, maximumAttempts: 3 } },
    applies: {
      startToCloseTimeout: '1 hour',
      heartbeatTimeout: '10 seconds',
      retry,
      cancellationType: waitForCancelledApplies ? ActivityCancellationType.WAIT_CANCELLATION_COMPLETED : ActivityCancellationType.TRY_CANCEL,
    },
  };
}

/**
 * Drivers whose applies are single short calls (an etcd transaction): they run local first like reads. Every other
 * driver's applies (Kubernetes waits for readiness, a cloud service registry for its operation and its rate budget)
 * stay regular activities that heartbeat, so a dead worker is noticed after 10 s and a cancellation reaches them.
 */
const quickApplyDrivers: ReadonlySet<string> = new Set(['etcd-prefix', 'etcd-user']);

/**
 * Where each reconcile step of a resource of driver `driver` runs: reads and patches local first; applies local
 * first for {@link quickApplyDrivers}, else regular. `local` false: every step regular (runs recorded before local
 * steps existed, see workflows/reconcile.ts).
 */
export function stepPlacement(retry: RetryPolicy, waitForCancelledApplies: boolean, driver: string, local: boolean): Record<'reads' | 'pure' | 'applies', Placement> {
  const o = stepOptions(retry, waitForCancelledApplies);
  if (!local) return { reads: { regular: o.reads }, pure: { regular: o.pure }, applies: { regular: o.applies } };
  return {
    reads: { local: localAttempt(o.reads), regular: o.reads },
    pure: { local: localAttempt(o.pure), regular: o.pure },
    applies: quickApplyDrivers.has(driver) ? { local: localAttempt(o.applies, '30 seconds'), regular: o.applies } : { regular: o.applies },
  };
}

/**
 * The reconcile of one Kubernetes service (docs/design/contracts/endpoint-reconciliation.md). Unlimited attempts:
 * a reconciler keeps trying while the registry is down, as controllers requeue.
 */
export function kubeServiceReconcileOptions(timeoutSeconds: number): ActivityOptions {
  return {
    startToCloseTimeout: `${timeoutSeconds} seconds`,
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', nonRetryableErrorTypes },
  };
}

/** The informers' activity: heartbeats, runs for `maxRunSeconds`, retried without limit with backoff capped at 10 s. */
export function endpointWatcherOptions(maxRunSeconds: number, heartbeatTimeoutSeconds: number): ActivityOptions {
  return {
    startToCloseTimeout: `${maxRunSeconds + 600} seconds`,
    heartbeatTimeout: `${heartbeatTimeoutSeconds} seconds`,
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds', nonRetryableErrorTypes },
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  };
}

/** A full endpoint resync: long, heartbeating, a few attempts (the next scheduled resync tries again anyway). */
export const endpointResyncOptions: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5, nonRetryableErrorTypes },
};

/** The probe: proves a worker answers, so it gives up after a few quick attempts. */
export const probeOptions: ActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes },
};

/** The root cause message of an activity failure, without the SDK's wrapping. */
export function causeMessage(err: unknown): string {
  let e: unknown = err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  // A cancellation carries no message of its own; the description must still say what stopped the step.
  if (e instanceof CancelledFailure) return e.message ? `cancelled: ${e.message}` : 'the operation was cancelled';
  return e instanceof Error ? e.message : String(e);
}

/**
 * The description a platform sees for a failed operation: the root failure's message, never its stack; a
 * reconcile failure keeps its own message, which names the resource and step.
 */
export function describeFailure(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && 'cause' in e && e.cause instanceof Error && !(e instanceof ApplicationFailure && e.type === 'ReconcileFailed')) {
    e = e.cause;
  }
  return e instanceof Error ? e.message : String(e);
}

/** The fleet upgrade's listing of a plan's instances: one registry listing. */
export const fleetListOptions: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 12, nonRetryableErrorTypes },
};

/**
 * Asking for one instance's update, as a PATCH does (read the facts, decide, start). Retried without a limit while
 * Temporal or the registry is unreachable: the step finds the update it may already have started by its step key.
 */
export const fleetStartOptions: ActivityOptions = {
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', nonRetryableErrorTypes },
};

/**
 * Waiting for one instance's update to end: heartbeats while it polls (every 250 ms), so the wait of a dead worker
 * moves to another after 10 s, as a reconcile apply does; until then the fleet's slot stays taken.
 */
export const fleetAwaitOptions: ActivityOptions = {
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', nonRetryableErrorTypes },
};
