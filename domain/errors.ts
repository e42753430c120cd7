// Every code a typed error can carry, and whether retrying may help: the one place retryability is decided
// (docs/design/architecture.md#design-rules). The error classes (adapters/errors.ts and their subclasses) take
// their `retryable` flag from this table, activities turn that flag into a failure's `nonRetryable`
// (activities/failures.ts), and every workflow's retry policies list the non-retryable codes
// (workflows/activity-policies.ts). Plain data, so the workflow sandbox may import it.

/** Each error code and whether the same call may succeed if retried later. */
export const errorCodes = {
  /** Input that can never be valid: a bad ID, key, body, template or configuration field. */
  Invalid: { retryable: false },
  /** A template touched a registry key the access policy forbids (a configuration error). */
  Configuration: { retryable: false },
  /** The thing asked for does not exist. */
  NotFound: { retryable: false },
  /** A create found the thing already there. */
  AlreadyExists: { retryable: false },
  /** Optimistic concurrency lost: someone else changed the thing first. */
  Conflict: { retryable: false },
  /** The caller may not read or write this (ownership, key policy, read-only copy). */
  Permission: { retryable: false },
  /** A dependency did not answer or answered with a transient failure. */
  Unavailable: { retryable: true },
  /** The datastore client was used after it was closed (a programming error). */
  Closed: { retryable: false },
  /** A service registry's asynchronous operation failed for a reason retrying will not fix. */
  OperationFailed: { retryable: false },
  /** Stored data cannot be decrypted: unknown key ID, wrong key, or tampered ciphertext. */
  DecryptionFailed: { retryable: false },
  /** Another operation is still open on the registry entry. */
  OperationInProgress: { retryable: false },
  /** A binding operation cannot take its share of the instance's lock. */
  InstanceBusy: { retryable: false },
  /** An instance operation waits, within its retry policy, until binding operations give back their shares. */
  BindingOperationsRunning: { retryable: true },
  /** A driver stopped the whole reconciliation (reported as a result, not a failure). */
  ReconciliationCanceled: { retryable: false },
  /** A driver skipped the rest of its resource (reported as a result, not a failure). */
  ResourceCanceled: { retryable: false },
  /** A resource names a driver kind this worker does not have. */
  UnknownDriver: { retryable: false },
} as const satisfies Record<string, { retryable: boolean }>;

/** The stable machine-readable code of a typed error, e.g. `NotFound`; never changes once published. */
export type ErrorCode = keyof typeof errorCodes;

/** The codes no retry can fix; activities use the code as the failure type, so retry policies list these. */
export const nonRetryableErrorCodes: readonly ErrorCode[] = (Object.keys(errorCodes) as ErrorCode[]).filter((code) => !errorCodes[code].retryable);
