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
  /** runMs minus the two above: workflow tasks, their round trips and the server's bookkeeping. */
  otherMs: number;
  activities: number;
  events: number;
  /** The history's encoded size: what the server writes and sends to workers on a cache miss. */
  historyBytes: number;
  /** started -> completed per activity type, summed when a type runs several times. */
  execByType: Record<string, number>;
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
  return { startedAt: start, endedAt: end, runMs, activityExecMs, activityQueueMs, otherMs: runMs - activityExecMs - activityQueueMs, activities, events: events.length, historyBytes: temporal.api.history.v1.History.encode(history).finish().length, execByType };
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
    otherMs: field('otherMs'),
    activities: field('activities'),
    events: field('events'),
    historyBytes: field('historyBytes'),
    execByType: Object.fromEntries(types.map((t) => [t, med(list.map((b) => b.execByType[t] ?? 0))])),
  };
}
