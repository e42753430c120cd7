// What a running operation is doing, in one line for last_operation and `brokerflow status`: the resource and step
// from the workflow's progress query (it needs a worker), the attempt and the last failure from Temporal's
// description of the run (pending activities: no worker needed). Pure, so the wording is tested without a server
// (docs/design/contracts/osb-api.md#what-a-running-operations-description-says).
import type { OperationProgress } from '../workflows/messages';
import { attemptsBeforeActivity } from '../workflows/activity-policies';
import { redactSecretsInText } from '../platform/logging';

/** The fields of a pending activity that Temporal's DescribeWorkflowExecution gives (its proto shape, in part). */
export interface PendingActivity {
  activityId?: string | null;
  activityType?: { name?: string | null } | null;
  attempt?: number | null;
  /** 0 (or absent): no limit. */
  maximumAttempts?: number | null;
  lastFailure?: { message?: string | null } | null;
}

/** Where a running operation stands right now: what the description is made of, and the CLI's progress fields. */
export interface LiveStep {
  resource?: string;
  step?: string;
  resourcesDone?: number;
  resourcesTotal?: number;
  /** When the workflow started the operation (epoch ms), known only when a worker answered. */
  startedAt?: number;
  /** The attempt the step is on (running, or waiting to be retried); 1 is the first. */
  attempt?: number;
  /** The step's retry limit; absent when unlimited. */
  maximumAttempts?: number;
  /** The message of the attempt before, redacted and on one line. */
  lastFailure?: string;
}

/** Longest last error a description carries; the registry keeps the whole failure when the operation ends. */
export const LAST_ERROR_MAX_CHARS = 200;

/**
 * Combines the two sources. `progress` is the workflow's answer to the progress query (undefined when no worker
 * answered in time); `pending` are the run's pending activities. The attempt is taken from the pending activity of
 * the step the workflow reports, or, without a report, from the one pending activity (the operation workflows run
 * one step at a time). Undefined when neither says anything.
 */
export function liveStep(progress: OperationProgress | undefined, pending: readonly PendingActivity[] | undefined): LiveStep | undefined {
  if (progress && progress.phase === 'done') return undefined;
  const reported = progress?.reconcile.step;
  const candidates = (pending ?? []).filter((p) => p.activityType?.name);
  const activity = reported ? candidates.find((p) => p.activityType?.name === reported) : candidates.length === 1 ? candidates[0] : undefined;
  const live: LiveStep = {};
  if (progress) {
    if (progress.reconcile.resource) live.resource = progress.reconcile.resource;
    if (reported) live.step = reported;
    if (progress.reconcile.total > 0) {
      live.resourcesDone = progress.reconcile.done;
      live.resourcesTotal = progress.reconcile.total;
    }
    live.startedAt = progress.startedAt;
  }
  if (activity) {
    live.step ??= activity.activityType!.name!;
    // A step that continues after its local attempt (workflows/local-first.ts) counts that attempt too, in both the
    // attempt and the limit; its last error is the local attempt's (the workflow reports it) until it has its own.
    const before = attemptsBeforeActivity(activity.activityId);
    live.attempt = Math.max(1, activity.attempt ?? 1) + before;
    if (activity.maximumAttempts) live.maximumAttempts = activity.maximumAttempts + before;
    const failure = activity.lastFailure?.message || (before > 0 && progress?.reconcile.step === live.step ? progress.reconcile.lastFailure : undefined);
    if (failure) live.lastFailure = oneLine(redactSecretsInText(failure));
  }
  return Object.keys(live).length > 0 ? live : undefined;
}

/**
 * The description of a running operation: `keyspace: applyCreateChange (attempt 3 of 7, last error: ...)`. The
 * resource is left out when only Temporal answered (no worker), the parenthesis when the step is on its first
 * attempt. Undefined when no step is known: the caller answers as without it.
 */
export function stepDescription(live: LiveStep | undefined): string | undefined {
  if (!live?.step) return undefined;
  const head = live.resource ? `${live.resource}: ${live.step}` : live.step;
  const retrying = (live.attempt ?? 1) > 1 || live.lastFailure !== undefined;
  if (!retrying) return head;
  const attempt = `attempt ${live.attempt ?? 1}${live.maximumAttempts ? ` of ${live.maximumAttempts}` : ''}`;
  const error = live.lastFailure ? `, last error: ${shorten(withoutStepPrefix(live.lastFailure, live), LAST_ERROR_MAX_CHARS)}` : '';
  return `${head} (${attempt}${error})`;
}

/** A failure of a reconcile step begins with what the head already says (activities/reconcile.ts): left out. */
function withoutStepPrefix(message: string, live: LiveStep): string {
  if (!live.resource || !live.step) return message;
  const prefix = `resource ${JSON.stringify(live.resource)} (`;
  if (!message.startsWith(prefix)) return message;
  const close = message.indexOf(`) ${live.step}: `, prefix.length);
  return close < 0 ? message : message.slice(close + `) ${live.step}: `.length);
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
