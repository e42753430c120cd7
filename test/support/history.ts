// Reading workflow histories in tests the way the Web UI does: payloads decoded through the codec.
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { Payload } from '@temporalio/common';

/** Decodes one payload with the client's codecs and payload converter. */
export async function decodePayload<T>(client: Client, payload: Payload): Promise<T> {
  const dc = client.options.loadedDataConverter;
  let decoded = [payload];
  for (const codec of [...dc.payloadCodecs].reverse()) decoded = await codec.decode(decoded);
  return dc.payloadConverter.fromPayload<T>(decoded[0]!);
}

/**
 * The activities a workflow ran or scheduled, in order, with the summary the Web UI shows for each: regular ones
 * when scheduled, local ones (`local: true`) by the marker recorded once they ended (workflows/local-first.ts).
 */
export async function scheduledActivities(client: Client, handle: WorkflowHandle): Promise<Array<{ type: string; summary: string; local?: boolean }>> {
  const history = await handle.fetchHistory();
  const out: Array<{ type: string; summary: string; local?: boolean }> = [];
  for (const e of history.events ?? []) {
    const summaryPayload = e.activityTaskScheduledEventAttributes || e.markerRecordedEventAttributes ? e.userMetadata?.summary : undefined;
    const summary = summaryPayload ? await decodePayload<string>(client, summaryPayload) : '';
    const attrs = e.activityTaskScheduledEventAttributes;
    if (attrs) out.push({ type: attrs.activityType?.name ?? '', summary });
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName === 'core_local_activity') {
      // Core's bookkeeping, in clear JSON (no codec sees it): the activity type, attempt, times.
      const data = marker.details?.data?.payloads?.[0]?.data;
      const type = data ? (JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: string }).activity_type ?? '' : '';
      out.push({ type, summary, local: true });
    }
  }
  return out;
}
