// The service-registry error set (docs/design/contracts/service-registries.md#error-set) exists as typed classes
// with the same meaning, and the Broker's own checks (owner pair, persistent metadata, names) fail before any
// registry call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AlreadyExistsError,
  BrokerflowError,
  ConflictError,
  NotFoundError,
  PermissionError,
  UnavailableError,
  ValidationError,
} from '../../adapters/errors';
import {
  ContainsNotOwnedError,
  EmptyNameError,
  EndpointNameNotProvidedError,
  EndpointNotOwnedError,
  EndpointNotProvidedError,
  MissingObjectError,
  NamespaceHasForeignServicesError,
  NamespaceNameNotProvidedError,
  NamespaceNotEmptyError,
  NamespaceNotOwnedError,
  NamespaceNotProvidedError,
  NoEndpointsError,
  NotEmptyError,
  NotOwnedError,
  RegistryNotProvidedError,
  ServRegAlreadyExistsError,
  ServRegNotFoundError,
  ServRegTimeoutError,
  ServiceHasForeignEndpointsError,
  ServiceNameNotProvidedError,
  ServiceNoMetadataError,
  ServiceNotEmptyError,
  ServiceNotOwnedError,
  ServiceNotProvidedError,
  ServiceRegistryBroker,
  defaultOwnerPair,
  type ServiceRegistry,
} from '../../adapters/service-registries';

test('every error of the seed has a typed class in the right family, with a stable code and retry flag', () => {
  // [original error name, instance, family, code, retryable]
  const cases: Array<[string, BrokerflowError, abstract new (...a: never[]) => BrokerflowError, string, boolean]> = [
    ['ErrServRegNotProvided', new RegistryNotProvidedError(), ValidationError, 'Invalid', false],
    ['ErrNotFound', new ServRegNotFoundError('service', 'a/b'), NotFoundError, 'NotFound', false],
    ['ErrAlreadyExists', new ServRegAlreadyExistsError('namespace', 'a'), AlreadyExistsError, 'AlreadyExists', false],
    ['ErrServNotProvided', new ServiceNotProvidedError(), MissingObjectError, 'Invalid', false],
    ['ErrServNoMetadata', new ServiceNoMetadataError('a/b'), ValidationError, 'Invalid', false],
    ['ErrNsNotProvided', new NamespaceNotProvidedError(), MissingObjectError, 'Invalid', false],
    ['ErrServNameNotProvided', new ServiceNameNotProvidedError(), EmptyNameError, 'Invalid', false],
    ['ErrNsNameNotProvided', new NamespaceNameNotProvidedError(), EmptyNameError, 'Invalid', false],
    ['ErrNoEndpoints', new NoEndpointsError('a/b'), ValidationError, 'Invalid', false],
    ['ErrNsNotEmpty', new NamespaceNotEmptyError('a'), NotEmptyError, 'Conflict', false],
    ['ErrServNotEmpty', new ServiceNotEmptyError('a/b'), NotEmptyError, 'Conflict', false],
    ['ErrNsNotOwnedServs', new NamespaceHasForeignServicesError('a'), ContainsNotOwnedError, 'Permission', false],
    ['ErrServNotOwnedEndps', new ServiceHasForeignEndpointsError('a/b'), ContainsNotOwnedError, 'Permission', false],
    ['ErrNsNotOwnedByOp', new NamespaceNotOwnedError('a'), NotOwnedError, 'Permission', false],
    ['ErrServNotOwnedByOp', new ServiceNotOwnedError('a/b'), NotOwnedError, 'Permission', false],
    ['ErrEndpNotOwnedByOp', new EndpointNotOwnedError('a/b/c'), NotOwnedError, 'Permission', false],
    ['ErrTimeOutExpired', new ServRegTimeoutError('x'), UnavailableError, 'Unavailable', true],
    ['ErrEndpNameNotProvided', new EndpointNameNotProvidedError(), EmptyNameError, 'Invalid', false],
    ['ErrEndpNotProvided', new EndpointNotProvidedError(), MissingObjectError, 'Invalid', false],
  ];
  const names = new Set<string>();
  for (const [seed, err, family, code, retryable] of cases) {
    assert.ok(err instanceof family, `${seed} is a ${family.name}`);
    assert.equal(err.code, code, seed);
    assert.equal(err.retryable, retryable, seed);
    assert.equal(err.name, err.constructor.name, `${seed}: name is the class name`);
    names.add(err.name);
  }
  assert.equal(names.size, cases.length, 'one distinct class per seed error');
  assert.ok(new NamespaceNotEmptyError('a') instanceof ConflictError);
  assert.ok(new EndpointNotOwnedError('a/b/c') instanceof PermissionError);
});

test('a broker needs a registry, and rejects an owner pair that persistent metadata would overwrite', () => {
  assert.throws(() => new ServiceRegistryBroker(undefined as unknown as ServiceRegistry), RegistryNotProvidedError);
  const registry = {} as ServiceRegistry; // never called: construction does no I/O
  assert.throws(() => new ServiceRegistryBroker(registry, { persistentMetadata: [{ key: 'owner', value: 'x' }] }), ValidationError);
  assert.throws(() => new ServiceRegistryBroker(registry, { ownerPair: { key: 'bad\u0000key', value: 'x' } }), ValidationError);
  assert.throws(() => new ServiceRegistryBroker(registry, { concurrency: 0 }), ValidationError);
  assert.deepEqual(new ServiceRegistryBroker(registry).ownerPair, defaultOwnerPair);
  assert.deepEqual(new ServiceRegistryBroker(registry, { ownerPair: { key: 'managed-by' } }).ownerPair, { key: 'managed-by', value: 'brokerflow' });
});

test('metadata comparison ignores the owner pair but not an owner key with another value', () => {
  const b = new ServiceRegistryBroker({} as ServiceRegistry);
  assert.equal(b.sameMetadata({ a: '1', owner: 'brokerflow' }, { a: '1' }), true);
  assert.equal(b.sameMetadata({ a: '1' }, { a: '1', owner: 'brokerflow' }), true);
  assert.equal(b.sameMetadata({ a: '1', owner: 'other' }, { a: '1' }), false);
  assert.equal(b.sameMetadata({ a: '1' }, { a: '2' }), false);
  assert.equal(b.sameMetadata({ a: '1' }, { a: '1', b: '' }), false);
  assert.equal(b.isOwned({ owner: 'brokerflow' }), true);
  assert.equal(b.isOwned({ owner: 'Brokerflow' }), false);
  assert.equal(b.isOwned(undefined), false);
});
