// The registry's own typed errors. Conflicts, permissions and not-found use the shared classes in
// adapters/errors.ts (ConflictError, PermissionError, NotFoundError, ValidationError).
import { BrokerflowError, ConflictError, ValidationError } from '../errors';

/**
 * A template (getUser/setUser) touched a key the user access policy forbids: a configuration error of the
 * service's templates (HTTP 400), not the PermissionError of a read-only copy. Code `Configuration`.
 */
export class KeyPolicyError extends ValidationError {
  constructor(message: string, readonly key: string) {
    super(message, key);
    (this as { code: BrokerflowError['code'] }).code = 'Configuration';
  }
}

/** Another operation is still open on the entry (OSB 422 ConcurrencyError). Not retryable as is. */
export class OperationInProgressError extends BrokerflowError {
  constructor(
    readonly operation: string,
    readonly operationId: string,
    entryName: string,
  ) {
    super('OperationInProgress', `${entryName}: operation ${operation} (${operationId.slice(0, 80)}) is still in progress`);
  }
}

/** A completion names an operation that is not the entry's current one, or completes it with another result. */
export class OperationMismatchError extends ConflictError {}

/**
 * A binding operation cannot take its share of the instance's lock: the instance is gone, not provisioned, or
 * an instance operation runs. Not retryable: the binding operation ends as failed and the platform retries.
 */
export class InstanceBusyError extends BrokerflowError {
  constructor(message: string) {
    super('InstanceBusy', message);
  }
}

/**
 * An update or deprovision found binding operations holding shares of the instance's lock. Retryable: the
 * instance operation waits at its start, bounded by its retry policy, until they end.
 */
export class BindingOperationsRunningError extends BrokerflowError {
  constructor(readonly bindingIds: string[], entryName: string) {
    super('BindingOperationsRunning', `${entryName}: binding operations are in progress (${bindingIds.slice(0, 5).join(', ')}${bindingIds.length > 5 ? ', …' : ''})`);
  }
}
