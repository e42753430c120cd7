// The service-registry error set (ErrNotFound, ErrNsNotEmpty, ErrEndpNotOwnedByOp, ...;
// docs/design/contracts/service-registries.md#error-set) as typed classes. Each extends a base class of
// adapters/errors.ts, so `code` is the family (`NotFound`, `Permission`, ...) and `retryable` follows it; the
// class (and `name`, which is the class name) says exactly which original error it is. Grouping classes
// (`EmptyNameError`, `NotOwnedError`, ...) let callers branch on a family of those errors at once.
import {
  AlreadyExistsError,
  BrokerflowError,
  ConflictError,
  NotFoundError,
  PermissionError,
  UnavailableError,
  ValidationError,
} from '../errors';

/** Which level of the registry an error is about. */
export type RegistryLevel = 'namespace' | 'service' | 'endpoint';

/** ErrNotFound: the namespace, service or endpoint (or its parent) does not exist. */
export class ServRegNotFoundError extends NotFoundError {
  constructor(
    readonly level: RegistryLevel,
    readonly path: string,
  ) {
    super(`${level} ${path} not found`);
  }
}

/** ErrAlreadyExists: a create found the namespace, service or endpoint already there. */
export class ServRegAlreadyExistsError extends AlreadyExistsError {
  constructor(
    readonly level: RegistryLevel,
    readonly path: string,
  ) {
    super(`${level} ${path} already exists`);
  }
}

/** ErrServRegNotProvided: the Broker was built without a service registry. */
export class RegistryNotProvidedError extends ValidationError {
  constructor() {
    super('no service registry is provided', 'registry');
  }
}

/** A namespace, service or endpoint argument was null or undefined (ErrNsNotProvided and its siblings). */
export class MissingObjectError extends ValidationError {}

/** ErrNsNotProvided. */
export class NamespaceNotProvidedError extends MissingObjectError {
  constructor() {
    super('namespace is empty', 'namespace');
  }
}

/** ErrServNotProvided. */
export class ServiceNotProvidedError extends MissingObjectError {
  constructor() {
    super('service is empty', 'service');
  }
}

/** ErrEndpNotProvided. */
export class EndpointNotProvidedError extends MissingObjectError {
  constructor() {
    super('endpoint is empty', 'endpoint');
  }
}

/** A name was empty (ErrNsNameNotProvided and its siblings). */
export class EmptyNameError extends ValidationError {}

/** ErrNsNameNotProvided. */
export class NamespaceNameNotProvidedError extends EmptyNameError {
  constructor() {
    super('namespace name is empty', 'namespace.name');
  }
}

/** ErrServNameNotProvided. */
export class ServiceNameNotProvidedError extends EmptyNameError {
  constructor() {
    super('service name is empty', 'service.name');
  }
}

/** ErrEndpNameNotProvided. */
export class EndpointNameNotProvidedError extends EmptyNameError {
  constructor() {
    super('endpoint name not provided', 'endpoint.name');
  }
}

/** ErrServNoMetadata: a service carries no (allowed) metadata, so it is not registered. */
export class ServiceNoMetadataError extends ValidationError {
  constructor(readonly path: string) {
    super(`service ${path} has no metadata`, 'service.metadata');
  }
}

/** ErrNoEndpoints: a service has no endpoints, so it is not registered. */
export class NoEndpointsError extends ValidationError {
  constructor(readonly path: string) {
    super(`service ${path} has no endpoints`, 'endpoints');
  }
}

/** A delete without `force` found children (ErrNsNotEmpty, ErrServNotEmpty). */
export class NotEmptyError extends ConflictError {
  constructor(
    readonly level: RegistryLevel,
    readonly path: string,
  ) {
    super(`${level} ${path} is not empty`);
  }
}

/** ErrNsNotEmpty. */
export class NamespaceNotEmptyError extends NotEmptyError {
  constructor(path: string) {
    super('namespace', path);
  }
}

/** ErrServNotEmpty. */
export class ServiceNotEmptyError extends NotEmptyError {
  constructor(path: string) {
    super('service', path);
  }
}

/** A delete found foreign children, so only the owned ones were deleted (ErrNsNotOwnedServs, ErrServNotOwnedEndps). */
export class ContainsNotOwnedError extends PermissionError {}

/** ErrNsNotOwnedServs: the namespace holds services not owned by the operator. */
export class NamespaceHasForeignServicesError extends ContainsNotOwnedError {
  constructor(readonly path: string) {
    super(`namespace ${path} contains services not owned by the operator`);
  }
}

/** ErrServNotOwnedEndps: the service holds endpoints not owned by the operator. */
export class ServiceHasForeignEndpointsError extends ContainsNotOwnedError {
  constructor(readonly path: string) {
    super(`service ${path} contains endpoints not owned by the operator`);
  }
}

/** The object lacks the owner pair, so the operator leaves it alone (ErrNsNotOwnedByOp and its siblings). */
export class NotOwnedError extends PermissionError {
  constructor(
    readonly level: RegistryLevel,
    readonly path: string,
  ) {
    super(`${level} ${path} is not owned by the operator`);
  }
}

/** ErrNsNotOwnedByOp. */
export class NamespaceNotOwnedError extends NotOwnedError {
  constructor(path: string) {
    super('namespace', path);
  }
}

/** ErrServNotOwnedByOp. */
export class ServiceNotOwnedError extends NotOwnedError {
  constructor(path: string) {
    super('service', path);
  }
}

/** ErrEndpNotOwnedByOp. */
export class EndpointNotOwnedError extends NotOwnedError {
  constructor(path: string) {
    super('endpoint', path);
  }
}

/** ErrTimeOutExpired: the registry did not answer (or an async operation did not finish) in time. Retryable. */
export class ServRegTimeoutError extends UnavailableError {
  constructor(what: string, cause?: unknown) {
    super(`timeout expired while waiting for the service registry: ${what}`, cause);
  }
}

/** A registry's asynchronous operation ended in failure for a reason retrying will not fix. */
export class ServRegOperationFailedError extends BrokerflowError {
  constructor(message: string) {
    super('OperationFailed', message);
  }
}

/**
 * The registry holds at most `limit` endpoints per service (AWS Cloud Map: 1,000 instances): a reconcile that
 * would go beyond it is refused before it writes anything. Not retryable: the service must shrink or the limit
 * be raised (a quota increase, then the backend's configured limit).
 */
export class EndpointLimitExceededError extends ValidationError {
  constructor(
    readonly path: string,
    readonly limit: number,
    readonly wanted: number,
  ) {
    super(
      `service ${path} would hold ${wanted} endpoints, more than the registry's limit of ${limit} per service: nothing was registered`,
      'endpoints',
    );
  }
}
