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

/** The activities a workflow scheduled, in order, with the summary the Web UI shows for each. */
export async function scheduledActivities(client: Client, handle: WorkflowHandle): Promise<Array<{ type: string; summary: string }>> {
  const history = await handle.fetchHistory();
  const out: Array<{ type: string; summary: string }> = [];
  for (const e of history.events ?? []) {
    const attrs = e.activityTaskScheduledEventAttributes;
    if (!attrs) continue;
    const summaryPayload = e.userMetadata?.summary;
    out.push({
      type: attrs.activityType?.name ?? '',
      summary: summaryPayload ? await decodePayload<string>(client, summaryPayload) : '',
    });
  }
  return out;
}
