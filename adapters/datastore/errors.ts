// The typed errors every datastore backend throws (names after the Calico backend API). Each extends one of the
// base classes in adapters/errors.ts, so callers that only care about the category (NotFound, Conflict, ...)
// can branch on the base class and keep its stable `code`.
import {
  AlreadyExistsError,
  BrokerflowError,
  ConflictError,
  NotFoundError,
  PermissionError,
  UnavailableError,
  ValidationError,
} from '../errors';
import type { KVPair } from './types';

/** `create` found the key already there; `existing` is the pair as stored. */
export class ErrorResourceAlreadyExists extends AlreadyExistsError {
  constructor(
    readonly key: string,
    readonly existing: KVPair,
  ) {
    super(`datastore key ${key} already exists`);
  }
}

/** The key asked for (get, update, delete) does not exist. */
export class ErrorResourceDoesNotExist extends NotFoundError {
  constructor(readonly key: string) {
    super(`datastore key ${key} does not exist`);
  }
}

/** An update or delete named a revision that is no longer current; `current` is the pair as now stored, when known. */
export class ErrorResourceUpdateConflict extends ConflictError {
  constructor(
    readonly key: string,
    readonly current?: KVPair,
  ) {
    super(
      current
        ? `datastore key ${key} changed concurrently (now at revision ${current.revision})`
        : `datastore key ${key} changed concurrently`,
    );
  }
}

/** A key, prefix, revision or option that can never be valid. Never retried. */
export class ErrorValidation extends ValidationError {}

/** A read asked for a revision the store no longer keeps (compacted) or does not have yet. Read again without one. */
export class ErrorRevisionUnavailable extends ValidationError {
  constructor(
    readonly revision: string,
    readonly reason: 'compacted' | 'future',
  ) {
    super(`revision ${revision} is ${reason === 'compacted' ? 'compacted' : 'in the future'}`, 'revision');
  }
}

/** Why a watch ended with an ERROR event. */
export type WatchTerminationReason = 'compacted' | 'disconnected' | 'canceled' | 'list-failed';

/** A watch ended (its start revision was compacted or the connection broke); list and watch again. Retryable. */
export class ErrorWatchTerminated extends UnavailableError {
  constructor(
    readonly reason: WatchTerminationReason,
    message: string,
    cause?: unknown,
  ) {
    super(`watch terminated (${reason}): ${message}`, cause);
  }
}

/** The datastore could not be reached or answered with a transient failure (etcd or the API server down). Retryable. */
export class ErrorDatastoreUnavailable extends UnavailableError {}

/** The datastore refused the credentials or the operation (etcd auth, Kubernetes RBAC). Not retried. */
export class ErrorDatastorePermission extends PermissionError {
  constructor(message: string, cause?: unknown) {
    super(message);
    if (cause !== undefined) this.cause = cause;
  }
}

/** The client was used after `close()`. A programming error, never retried. */
export class ErrorDatastoreClosed extends BrokerflowError {
  constructor() {
    super('Closed', 'the datastore client is closed');
  }
}
