// What the cancellation tests share (test/e2e/cancel*.test.ts): a resource set whose operations wait for a
// ConfigMap the test marks ready, so an operation is in flight for as long as the test wants and a cancellation
// reaches it at a known step, and the helpers that read and mark those ConfigMaps and find the waiting step.
import { resolve } from 'node:path';
import { PatchStrategy, setHeaderOptions, type CoreV1Api } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import { eventually } from './endpoints-fixtures';

/** The resource set of test/support/fixtures/resource-sets.cancel.yaml (keyspace, then a ConfigMap that waits). */
export const cancelResourceSets = resolve(__dirname, 'fixtures', 'resource-sets.cancel.yaml');

/** The ConfigMap an instance's or binding's `settings` resource creates. */
export const configMapName = (id: string) => `bf-${id}`;

/** The ConfigMap's data, or undefined when it does not exist. */
export async function configMapData(core: CoreV1Api, id: string): Promise<Record<string, string> | undefined> {
  try {
    return (await core.readNamespacedConfigMap({ name: configMapName(id), namespace: 'default' })).data ?? {};
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

/** Sets (`true`) or removes (`false`) `data.ready`, which the readiness rule waits for; another field manager than the broker's. */
export async function markReady(core: CoreV1Api, id: string, ready: boolean): Promise<void> {
  await core.patchNamespacedConfigMap(
    { name: configMapName(id), namespace: 'default', body: { data: { ready: ready ? 'true' : null } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

/**
 * Waits until an operation waits for its ConfigMap (`id`: the instance's or binding's) to become ready: the
 * ConfigMap exists (with `data.quotaKeys` = `quotaKeys` when given) and the workflow's apply of it is in flight.
 */
export async function waitingForReadiness(core: CoreV1Api, client: Client, workflowId: string, id: string, apply: 'applyCreateChange' | 'applyUpdateChange', quotaKeys?: string): Promise<void> {
  await eventually(`the ConfigMap of ${id} to be written`, async () => {
    const data = await configMapData(core, id);
    return data && (quotaKeys === undefined || data.quotaKeys === quotaKeys) ? true : undefined;
  }, 60_000);
  await activityInFlight(client, workflowId, apply);
}

/**
 * Cancel-to-clean as Temporal recorded it: from the run's WorkflowExecutionCancelRequested event to the completion
 * of the activity that recorded the operation's end (the compensation is then done and on the record): its completion,
 * or its marker when it ran as a local activity.
 */
export async function recordedCancelToCleanMs(client: Client, workflowId: string, runId?: string): Promise<number> {
  const handle = client.workflow.getHandle(workflowId, runId);
  // The platform sees the end as soon as recordComplete wrote the registry, a moment before Temporal records that
  // activity's completion: read the history once the run has closed (a cancelled run's result rejects).
  await handle.result().catch(() => undefined);
  const history = await handle.fetchHistory();
  const at = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => (t ? Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : 0);
  const types = new Map<string, string>();
  let requested: number | undefined;
  let recorded: number | undefined;
  for (const e of history.events ?? []) {
    if (e.activityTaskScheduledEventAttributes) types.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '');
    if (e.workflowExecutionCancelRequestedEventAttributes && requested === undefined) requested = at(e.eventTime);
    const completed = e.activityTaskCompletedEventAttributes;
    if (completed && types.get(String(completed.scheduledEventId)) === 'recordComplete') recorded = at(e.eventTime);
    // A recordComplete that ran local first (workflows/local-first.ts) is a marker, recorded with its workflow task.
    const marker = e.markerRecordedEventAttributes;
    const data = marker?.markerName === 'core_local_activity' ? marker.details?.data?.payloads?.[0]?.data : undefined;
    if (data && (JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: string }).activity_type === 'recordComplete') recorded = at(e.eventTime);
  }
  if (requested === undefined || recorded === undefined) throw new Error(`${workflowId}: no cancellation or no recorded end in its history`);
  return recorded - requested;
}

/** Waits until the workflow's current run has a started activity of `type` (its step is in flight). */
export async function activityInFlight(client: Client, workflowId: string, type: string, timeoutMs = 60_000): Promise<void> {
  await eventually(
    `${workflowId} to run ${type}`,
    async () => {
      const d = await client.workflow.getHandle(workflowId).describe();
      return d.raw.pendingActivities?.some((a) => a.activityType?.name === type && a.state === 2 /* STARTED */) ? true : undefined;
    },
    timeoutMs,
  );
}
