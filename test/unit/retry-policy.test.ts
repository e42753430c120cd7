// Retryability is decided once (docs/design/architecture.md#design-rules): an error's code sets its class's flag,
// activities turn the flag into the failure's nonRetryable, and every workflow retry policy lists the same codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorCodes, nonRetryableErrorCodes } from '../../domain/errors';
import { ConflictError, NotFoundError, PermissionError, UnavailableError, ValidationError } from '../../adapters/errors';
import { BindingOperationsRunningError, InstanceBusyError, KeyPolicyError, OperationInProgressError } from '../../adapters/registry/errors';
import { UnknownDriverError } from '../../adapters/resources/types';
import { AmbiguousResourceSetError } from '../../config/resource-sets';
import { toFailure } from '../../activities/failures';
import {
  continuationAfterLocalAttempt,
  defaultStepRetry,
  endpointResyncOptions,
  endpointWatcherOptions,
  kubeServiceReconcileOptions,
  nonRetryableErrorTypes,
  probeOptions,
  recordOptions,
  recordPlacement,
  stepOptions,
  stepPlacement,
} from '../../workflows/activity-policies';

test('an error is retryable exactly when its code says so, and its failure carries the code and the flag', () => {
  const errors = [
    new ValidationError('bad'),
    new NotFoundError('gone'),
    new ConflictError('lost'),
    new PermissionError('no'),
    new UnavailableError('down'),
    new OperationInProgressError('provision', 'op-1', 'registry-service-instance-a'),
    new InstanceBusyError('busy'),
    new BindingOperationsRunningError(['b-1'], 'registry-service-instance-a'),
    new KeyPolicyError('forbidden key', 'k'),
    new UnknownDriverError('nope'),
    new AmbiguousResourceSetError('two sets'),
  ];
  for (const err of errors) {
    assert.equal(err.retryable, errorCodes[err.code].retryable, err.name);
    const failure = toFailure(err, 'step');
    assert.equal(failure.type, err.code, err.name);
    assert.equal(failure.nonRetryable, !err.retryable, err.name);
    assert.equal(nonRetryableErrorTypes.includes(err.code), !err.retryable, err.name);
  }
  assert.deepEqual(
    Object.keys(errorCodes).filter((c) => errorCodes[c as keyof typeof errorCodes].retryable),
    ['Unavailable', 'BindingOperationsRunning'],
  );
});

test('every activity group of every workflow lists the same non-retryable types', () => {
  const steps = stepOptions(defaultStepRetry, true);
  const policies = {
    records: recordOptions.retry,
    reads: steps.reads.retry,
    pure: steps.pure.retry,
    applies: steps.applies.retry,
    kubeService: kubeServiceReconcileOptions(60).retry,
    watcher: endpointWatcherOptions(3600, 15).retry,
    resync: endpointResyncOptions.retry,
    probe: probeOptions.retry,
  };
  for (const [group, retry] of Object.entries(policies)) {
    assert.deepEqual(retry?.nonRetryableErrorTypes, [...nonRetryableErrorCodes], group);
  }
});

test('a step that fails its local attempt continues on the schedule and within the limit of its policy', () => {
  // 1 s, 2 s, 4 s ... as regular activities: the local attempt, a 1 s wait, then 6 regular attempts from 2 s on.
  assert.deepEqual(continuationAfterLocalAttempt(defaultStepRetry), {
    waitMs: 1000,
    retry: { ...defaultStepRetry, initialInterval: 2000, maximumAttempts: 6 },
  });
  const records = continuationAfterLocalAttempt(recordOptions.retry)!;
  assert.equal(records.retry.maximumAttempts, 11);
  assert.deepEqual(records.retry.nonRetryableErrorTypes, [...nonRetryableErrorCodes]);
  // The cap holds from the first interval on; an unlimited policy stays unlimited; one attempt has no continuation.
  assert.equal(continuationAfterLocalAttempt({ initialInterval: '20 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds' })!.retry.initialInterval, 30_000);
  assert.equal(continuationAfterLocalAttempt({ initialInterval: '1 second' })!.retry.maximumAttempts, undefined);
  assert.equal(continuationAfterLocalAttempt({ maximumAttempts: 1 }), undefined);
});

test('reads, patches, records and etcd applies run local first with one attempt; applies that wait stay regular', () => {
  const etcd = stepPlacement(defaultStepRetry, true, 'etcd-prefix', true);
  for (const [group, p] of Object.entries({ ...etcd, records: recordPlacement })) {
    assert.equal(p.local?.retry?.maximumAttempts, 1, group);
    assert.deepEqual(p.local?.retry?.nonRetryableErrorTypes, [...nonRetryableErrorCodes], group);
  }
  assert.equal(stepPlacement(defaultStepRetry, true, 'kubernetes', true).applies.local, undefined);
  assert.equal(stepPlacement(defaultStepRetry, true, 'kubernetes', true).reads.local?.startToCloseTimeout, '10 seconds');
  // Runs recorded before local-first steps keep regular activities throughout.
  assert.ok(Object.values(stepPlacement(defaultStepRetry, true, 'etcd-prefix', false)).every((p) => p.local === undefined));
});
