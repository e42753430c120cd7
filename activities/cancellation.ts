// Who asked to cancel an operation. Temporal records the identity of a cancellation request on the run's
// WorkflowExecutionCancelRequested event (the CLI sends "<user> (brokerflow CLI)", the Web UI its own), but gives
// workflow code only the fact that a cancellation arrived. This activity reads the run's own history, newest
// event first, with the worker's client (docs/design/contracts/operations.md#cancellation-and-compensation).
import { Context } from '@temporalio/activity';
import { asActivity } from './failures';

/** The longest requester identity kept in an operation's description. */
const MAX_IDENTITY = 200;

/** A requester identity as a description may show it: one line of printable characters, bounded. */
export function printableIdentity(identity: string | null | undefined): string {
  const clean = (identity ?? '').replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return clean.length > MAX_IDENTITY ? `${clean.slice(0, MAX_IDENTITY)}…` : clean;
}

export function createCancellationActivities() {
  return {
    /** The identity of the request that cancelled the calling run ('' when it named none or none is found). */
    async cancellationRequester(): Promise<{ identity: string }> {
      return asActivity('reading who cancelled the operation', async () => {
        const ctx = Context.current();
        const execution = ctx.info.workflowExecution;
        if (!execution) return { identity: '' };
        let nextPageToken: Uint8Array | undefined;
        do {
          const page = await ctx.client.workflowService.getWorkflowExecutionHistoryReverse({
            namespace: ctx.info.namespace,
            execution: { workflowId: execution.workflowId, runId: execution.runId },
            maximumPageSize: 100,
            ...(nextPageToken ? { nextPageToken } : {}),
          });
          for (const e of page.history?.events ?? []) {
            const requested = e.workflowExecutionCancelRequestedEventAttributes;
            if (requested) return { identity: printableIdentity(requested.identity) };
          }
          nextPageToken = page.nextPageToken && page.nextPageToken.length > 0 ? page.nextPageToken : undefined;
        } while (nextPageToken);
        return { identity: '' };
      });
    },
  };
}

/** The cancellation activities, as workflows see them. */
export type CancellationActivities = ReturnType<typeof createCancellationActivities>;
