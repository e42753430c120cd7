// The base of every typed error an adapter throws. Callers branch on the class (or its stable `code`),
// never on message text; activities turn `retryable` into Temporal's retry decision. Whether a code is
// retryable is decided once, in domain/errors.ts.
import { errorCodes, type ErrorCode } from '../domain/errors';

/** An error from an adapter, with a stable machine-readable code. */
export class BrokerflowError extends Error {
  /** Stable identifier, e.g. `NotFound`; never changes once published. */
  readonly code: ErrorCode;
  /** Whether the same call may succeed if retried later (network trouble, a server restarting); set by the code. */
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
    this.retryable = errorCodes[code].retryable;
  }
}

/** Input that can never be valid: a bad ID, key, body or configuration field. Never retried. */
export class ValidationError extends BrokerflowError {
  constructor(message: string, readonly field?: string) {
    super('Invalid', message);
  }
}

/** The thing asked for does not exist. */
export class NotFoundError extends BrokerflowError {
  constructor(message: string) {
    super('NotFound', message);
  }
}

/** A create found the thing already there. */
export class AlreadyExistsError extends BrokerflowError {
  constructor(message: string) {
    super('AlreadyExists', message);
  }
}

/** Optimistic concurrency lost: someone else changed the thing first. */
export class ConflictError extends BrokerflowError {
  constructor(message: string) {
    super('Conflict', message);
  }
}

/** The caller may not read or write this (ownership, key policy, read-only copy). */
export class PermissionError extends BrokerflowError {
  constructor(message: string) {
    super('Permission', message);
  }
}

/** A dependency did not answer or answered with a transient failure; retrying may help. */
export class UnavailableError extends BrokerflowError {
  constructor(message: string, cause?: unknown) {
    super('Unavailable', message, { cause });
  }
}
