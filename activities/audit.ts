// The activities' half of the audit trail: an operation's first activity makes sure its acceptance is recorded
// (the broker records it at acceptance; this covers a broker whose write failed, and operations started by older
// brokers), and its last records how it ended. The trail is a report, never a reason for an operation to fail: a
// write that cannot succeed by retrying is dropped, a retryable one retries the activity, which is idempotent
// (docs/design/contracts/registry.md#audit-trail).
import { BrokerflowError } from '../adapters/errors';
import { appliedState, type Entry, type Registry } from '../adapters/registry';
import { acceptanceRecord } from '../domain/audit';
import type { OperationInput } from '../workflows/messages';

/** Records the acceptance and the end of operations in their instance's trail. */
export function operationAudit(registry: Registry) {
  return {
    /** Records the operation's acceptance unless it is recorded already; `instance`: the entry an update changes. */
    async accepted(input: OperationInput, instance?: Entry): Promise<void> {
      await tolerated(() => registry.audit.append(input.instanceId, acceptanceRecord(input, input.operation === 'update' ? appliedState(instance) : undefined, new Date())));
    },
    /** Records how an operation ended: no error is a success (`note` says more), else a failure with its text. */
    async ended(instanceId: string, operationId: string, end: { error?: string; note?: string }): Promise<void> {
      await tolerated(() => registry.audit.complete(instanceId, operationId, end));
    },
  };
}

/** Runs an audit write; an error no retry can fix is dropped, any other fails the activity so that it retries. */
async function tolerated(write: () => Promise<void>): Promise<void> {
  try {
    await write();
  } catch (err) {
    if (err instanceof BrokerflowError && !err.retryable) return;
    throw err;
  }
}
