// Running a short step local first (docs/design/architecture.md#local-first-steps): its first attempt is a local
// activity, which the worker runs while it holds the workflow task, so a provision's quick steps cost no task-queue
// round trip each and one Temporal action together. A local activity's retries would happen inside the worker,
// where Temporal neither counts nor shows them (last_operation's "attempt N of M" reads them from the pending
// activity); so the local activity gets one attempt, and a step that fails retryably continues as the regular
// activity with the rest of its policy (workflows/activity-policies.ts#continuationAfterLocalAttempt). Its activity
// ID says that one attempt came before (activity-policies.ts#continuedActivityId), which the client adds to Temporal's count.
import { ActivityFailure, ApplicationFailure, TemporalFailure, isCancellation, proxyActivities, proxyLocalActivities, sleep, workflowInfo } from '@temporalio/workflow';
import { continuationAfterLocalAttempt, continuedActivityId, nonRetryableErrorTypes, type Placement } from './activity-policies';

type Fn = (...args: never[]) => Promise<unknown>;
type Executable = { executeWithOptions(options: object, args: unknown[]): Promise<unknown> };

/**
 * Whether a failed local attempt may be retried: not a cancellation, not a failure the policy never retries. A local
 * activity's failure reaches the workflow as the activity's own ApplicationFailure (or a timeout), not wrapped in an
 * ActivityFailure as a regular activity's is; both are read.
 */
function retryable(err: unknown): boolean {
  if (isCancellation(err)) return false;
  const failure = err instanceof ActivityFailure ? err.cause : err;
  if (failure instanceof ApplicationFailure) return !failure.nonRetryable && !(failure.type && nonRetryableErrorTypes.includes(failure.type));
  return failure instanceof TemporalFailure;
}

/**
 * Activities of type `A` placed as `placement` says: each call runs local first when the placement has local
 * options, else as a regular activity. `summary` names the step in the Web UI for both kinds. `onLocalFailure`
 * learns the local attempt's failure before the step continues (progress shows it as the last error until the
 * regular activity has one of its own).
 */
export function placedActivities<A extends Record<string, Fn>>(placement: Placement): {
  run<K extends keyof A & string>(name: K, args: Parameters<A[K]>, opts?: { summary?: string; onLocalFailure?: (err: unknown) => void }): Promise<Awaited<ReturnType<A[K]>>>;
  /** The same, called as the activities themselves (`acts.recordBegin(input)`). */
  activities: A;
} {
  const regular = proxyActivities<A>(placement.regular) as unknown as Record<string, Executable>;
  const local = placement.local ? (proxyLocalActivities<A>(placement.local) as unknown as Record<string, Executable>) : undefined;
  const placed = {
    async run<K extends keyof A & string>(name: K, args: Parameters<A[K]>, opts: { summary?: string; onLocalFailure?: (err: unknown) => void } = {}): Promise<Awaited<ReturnType<A[K]>>> {
      const meta = opts.summary !== undefined ? { summary: opts.summary } : {};
      type R = Awaited<ReturnType<A[K]>>;
      if (!local) return (await regular[name]!.executeWithOptions(meta, args)) as R;
      try {
        return (await local[name]!.executeWithOptions(meta, args)) as R;
      } catch (err) {
        const next = retryable(err) ? continuationAfterLocalAttempt(placement.regular.retry) : undefined;
        if (!next) throw err;
        opts.onLocalFailure?.(err);
        // The policy's first interval, as a regular activity would have waited before its second attempt.
        if (next.waitMs > 0) await sleep(next.waitMs);
        return (await regular[name]!.executeWithOptions({ ...meta, retry: next.retry, activityId: continuedActivityId(name, workflowInfo().historyLength) }, args)) as R;
      }
    },
  };
  const activities = new Proxy({} as A, {
    // Not `then`: the object must never look like a promise.
    get: (_target, name) => (typeof name === 'string' && name !== 'then' ? (...args: unknown[]) => placed.run(name, args as never) : undefined),
  });
  return { run: placed.run, activities };
}
