// The broker's half of the audit trail: the record of a request it accepted (who asked, when, what the operation
// changes), written once the operation's workflow has started. The operation's own activities record how it ended
// (docs/design/contracts/registry.md#audit-trail).
import { acceptanceRecord, type AuditRecord, type RequestOrigin } from '../../domain/audit';
import { appliedState, type Registry } from '../../adapters/registry';
import type { OperationInput } from '../../workflows/messages';

/** Where a failed audit write is reported (the broker's log); the request is answered all the same. */
export interface AuditWarnings {
  warn(fields: Record<string, unknown>, message: string): void;
}

/** The input with who asked and when the broker accepted it. */
export function withRequester(input: OperationInput, origin: RequestOrigin | undefined, now = new Date()): OperationInput {
  return { ...input, ...(origin ? { requestedBy: { platform: origin.platform, user: origin.user } } : {}), acceptedAt: now.toISOString() };
}

/**
 * The record of an operation about to start, made before the start: an update is compared with what is applied
 * now, before its own run can change it. Undefined when the registry cannot be read (the first activity then
 * records the acceptance).
 */
export async function acceptanceOf(registry: Registry, input: OperationInput, warnings?: AuditWarnings): Promise<AuditRecord | undefined> {
  try {
    const applied = input.operation === 'update' ? appliedState(await registry.open('service-instance', input.instanceId)) : undefined;
    return acceptanceRecord(input, applied, new Date());
  } catch (err) {
    warnings?.warn({ operationId: input.operationId, err: (err as Error).message }, 'the audit record of an operation could not be prepared; its first activity writes it');
    return undefined;
  }
}

/**
 * Records the acceptance of a started operation in its instance's trail. The operation runs whatever happens here:
 * a failed write is reported, and the operation's first activity records the acceptance in its place.
 */
export async function recordAcceptance(registry: Registry, instanceId: string, record: AuditRecord | undefined, warnings?: AuditWarnings): Promise<void> {
  if (!record) return;
  try {
    await registry.audit.append(instanceId, record);
  } catch (err) {
    warnings?.warn({ operationId: record.operationId, err: (err as Error).message }, 'the audit record of an accepted operation was not written; its first activity writes it');
  }
}
