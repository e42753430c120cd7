// Where the time of one workflow run went, read from its history's event times: the run on the server, the
// activities' execution, their wait in the task queue, and what is left for workflow tasks and the server. The
// OSB benchmark uses it to say why brokerflow is slower than the floor, not only that it is.
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { summarize } from './harness';

/** One workflow run taken apart. All durations in ms. */
export interface RunBreakdown {
  /** Epoch ms of WorkflowExecutionStarted and of the run's close, by the server's clock (the same machine's). */
  startedAt: number;
  endedAt: number;
  /** WorkflowExecutionStarted -> WorkflowExecutionCompleted. */
  runMs: number;
  /** Sum over activities of started -> completed. */
  activityExecMs: number;
  /** Sum over activities of scheduled -> started (waiting for a worker slot and a poll). */
  activityQueueMs: number;
  /** Sum over workflow tasks of started -> completed: the worker running workflow code, local activities included. */
  workflowTaskExecMs: number;
  /** Sum over workflow tasks of scheduled -> started (waiting for a poll). */
  workflowTaskQueueMs: number;
  /** runMs minus the four above: round trips and the server's bookkeeping between them. */
  otherMs: number;
  activities: number;
  /** Local activities (their markers): run inside workflow tasks, so in none of the activity times above. */
  localActivities: number;
  events: number;
  /** The history's encoded size: what the server writes and sends to workers on a cache miss. */
  historyBytes: number;
  /** started -> completed per activity type, summed when a type runs several times. */
  execByType: Record<string, number>;
  /** The Temporal Cloud actions the history records (see {@link billableActions}). */
  actions: number;
}

type Timestamp = { seconds?: number | { toNumber(): number } | null; nanos?: number | null } | null | undefined;

function ms(t: Timestamp): number {
  if (!t) return NaN;
  const s = typeof t.seconds === 'number' ? t.seconds : (t.seconds?.toNumber() ?? 0);
  return s * 1000 + (t.nanos ?? 0) / 1e6;
}

const idOf = (v: number | { toNumber(): number } | null | undefined): number => (typeof v === 'number' ? v : (v?.toNumber() ?? -1));

/** Reads a closed run's history and takes it apart. */
export async function runBreakdown(client: Client, workflowId: string): Promise<RunBreakdown> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const scheduled = new Map<number, { at: number; type: string }>();
  const started = new Map<number, number>();
  let start = NaN;
  let end = NaN;
  let activityExecMs = 0;
  let activityQueueMs = 0;
  let activities = 0;
  let localActivities = 0;
  let workflowTaskExecMs = 0;
  let workflowTaskQueueMs = 0;
  const taskScheduled = new Map<number, number>();
  const taskStarted = new Map<number, number>();
  const execByType: Record<string, number> = {};
  for (const e of events) {
    const at = ms(e.eventTime);
    const id = idOf(e.eventId);
    if (e.workflowExecutionStartedEventAttributes) start = at;
    if (e.workflowExecutionCompletedEventAttributes || e.workflowExecutionContinuedAsNewEventAttributes) end = at;
    if (e.activityTaskScheduledEventAttributes) {
      scheduled.set(id, { at, type: e.activityTaskScheduledEventAttributes.activityType?.name ?? '?' });
      activities++;
    }
    if (e.markerRecordedEventAttributes?.markerName === 'core_local_activity') localActivities++;
    if (e.workflowTaskScheduledEventAttributes) taskScheduled.set(id, at);
    if (e.workflowTaskStartedEventAttributes) {
      taskStarted.set(id, at);
      const s = taskScheduled.get(idOf(e.workflowTaskStartedEventAttributes.scheduledEventId));
      if (s !== undefined) workflowTaskQueueMs += at - s;
    }
    const task = e.workflowTaskCompletedEventAttributes ?? e.workflowTaskFailedEventAttributes ?? undefined;
    if (task) {
      const st = taskStarted.get(idOf(task.startedEventId));
      if (st !== undefined) workflowTaskExecMs += at - st;
    }
    if (e.activityTaskStartedEventAttributes) {
      const s = scheduled.get(idOf(e.activityTaskStartedEventAttributes.scheduledEventId));
      started.set(id, at);
      if (s) activityQueueMs += at - s.at;
    }
    const done = e.activityTaskCompletedEventAttributes;
    if (done) {
      const s = scheduled.get(idOf(done.scheduledEventId));
      const st = started.get(idOf(done.startedEventId));
      if (s && st !== undefined) {
        activityExecMs += at - st;
        execByType[s.type] = (execByType[s.type] ?? 0) + (at - st);
      }
    }
  }
  if (!Number.isFinite(start) || !Number.isFinite(end)) throw new Error(`workflow ${workflowId} has not completed`);
  const runMs = end - start;
  return {
    startedAt: start,
    endedAt: end,
    runMs,
    activityExecMs,
    activityQueueMs,
    workflowTaskExecMs,
    workflowTaskQueueMs,
    otherMs: runMs - activityExecMs - activityQueueMs - workflowTaskExecMs - workflowTaskQueueMs,
    activities,
    localActivities,
    events: events.length,
    historyBytes: temporal.api.history.v1.History.encode(history).finish().length,
    execByType,
    actions: billableActions(events),
  };
}

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/**
 * The Temporal Cloud actions a run's history records, counted by Temporal's published rules (docs.temporal.io,
 * "Temporal Cloud Actions"): the workflow start (1); each activity attempt (1: a retried activity's last
 * ActivityTaskStarted carries its attempt number); the local activities of one workflow task together (1, their
 * markers carry that task's event ID); each timer started, condition timeouts included (1); each search
 * attribute upsert (1, unless it only sets TemporalChangeVersion, which versioning writes); each signal received
 * (1) and each update accepted or rejected (1). Not in a history, so not counted here: queries (each
 * last_operation poll that asks the worker for the running step is one), activity heartbeats, and the start of a
 * child workflow, which its own history counts. Version markers (patched) are not actions.
 */
export function billableActions(events: HistoryEvent[]): number {
  let actions = 0;
  const localActivityTasks = new Set<number>();
  for (const e of events) {
    if (e.workflowExecutionStartedEventAttributes) actions += 1;
    if (e.activityTaskStartedEventAttributes) actions += Math.max(1, e.activityTaskStartedEventAttributes.attempt ?? 1);
    // A scheduled activity that never started (cancelled before a worker took it) was not an attempt.
    if (e.timerStartedEventAttributes) actions += 1;
    const upsert = e.upsertWorkflowSearchAttributesEventAttributes;
    if (upsert) {
      const fields = Object.keys(upsert.searchAttributes?.indexedFields ?? {});
      if (fields.some((f) => f !== 'TemporalChangeVersion')) actions += 1;
    }
    if (e.workflowExecutionSignaledEventAttributes) actions += 1;
    if (e.workflowExecutionUpdateAcceptedEventAttributes || e.workflowExecutionUpdateRejectedEventAttributes) actions += 1;
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName === 'core_local_activity') localActivityTasks.add(idOf(marker.workflowTaskCompletedEventId));
  }
  return actions + localActivityTasks.size;
}

/** The median of each field over several runs' breakdowns. */
export function medianBreakdown(list: RunBreakdown[]): RunBreakdown {
  if (list.length === 0) throw new Error('no breakdowns');
  const med = (xs: number[]) => summarize(xs).median;
  const field = (k: Exclude<keyof RunBreakdown, 'execByType'>) => med(list.map((b) => b[k]));
  const types = [...new Set(list.flatMap((b) => Object.keys(b.execByType)))];
  return {
    startedAt: field('startedAt'),
    endedAt: field('endedAt'),
    runMs: field('runMs'),
    activityExecMs: field('activityExecMs'),
    activityQueueMs: field('activityQueueMs'),
    workflowTaskExecMs: field('workflowTaskExecMs'),
    workflowTaskQueueMs: field('workflowTaskQueueMs'),
    otherMs: field('otherMs'),
    activities: field('activities'),
    localActivities: field('localActivities'),
    events: field('events'),
    historyBytes: field('historyBytes'),
    actions: field('actions'),
    execByType: Object.fromEntries(types.map((t) => [t, med(list.map((b) => b.execByType[t] ?? 0))])),
  };
}
