// Waiting for a Cloud Map asynchronous operation. moto completes every operation at once, so the PENDING
// path, failures and the deadline are pinned here with a scripted sequence of GetOperation answers and a
// virtual clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PermissionError, UnavailableError } from '../../adapters/errors';
import { ServRegOperationFailedError, ServRegTimeoutError, waitForOperation, type OperationState } from '../../adapters/service-registries';

function scripted(states: OperationState[]) {
  let clock = 0;
  let reads = 0;
  return {
    read: async () => {
      const s = states[Math.min(reads, states.length - 1)]!;
      reads++;
      return s;
    },
    opts: { what: 'RegisterInstance ns/web/e1', timeoutMs: 1_000, intervalMs: 100, now: () => clock, sleep: async (ms: number) => void (clock += ms) },
    reads: () => reads,
    clock: () => clock,
  };
}

test('an operation pending for a while resolves once GetOperation says SUCCESS', async () => {
  const s = scripted([{ status: 'SUBMITTED' }, { status: 'PENDING' }, { status: 'PENDING' }, { status: 'SUCCESS' }]);
  await waitForOperation(s.read, s.opts);
  assert.equal(s.reads(), 4);
  assert.equal(s.clock(), 300);
});

test('a failed operation throws: retryable for internal failures, permission for denials, otherwise operation-failed', async () => {
  const internal = scripted([{ status: 'FAIL', errorCode: 'INTERNAL_FAILURE', errorMessage: 'boom' }]);
  await assert.rejects(waitForOperation(internal.read, internal.opts), (e: unknown) => e instanceof UnavailableError && e.retryable);
  const denied = scripted([{ status: 'FAIL', errorCode: 'ACCESS_DENIED' }]);
  await assert.rejects(waitForOperation(denied.read, denied.opts), PermissionError);
  const other = scripted([{ status: 'PENDING' }, { status: 'FAIL', errorCode: 'INVALID_CHANGE_BATCH', errorMessage: 'bad records' }]);
  await assert.rejects(waitForOperation(other.read, other.opts), (e: unknown) => e instanceof ServRegOperationFailedError && !e.retryable && /bad records/.test(e.message));
});

test('an operation still pending at the deadline fails with the registry timeout error, after polling no longer than the deadline', async () => {
  const s = scripted([{ status: 'PENDING' }]);
  await assert.rejects(waitForOperation(s.read, s.opts), (e: unknown) => e instanceof ServRegTimeoutError && e.retryable);
  assert.ok(s.clock() <= 1_000, `waited ${s.clock()} ms`);
  assert.equal(s.reads(), 11, 'one read per interval, the last at the deadline');
});

test('an unknown operation status is an error, not an endless wait', async () => {
  const s = scripted([{ status: 'WEIRD' }]);
  await assert.rejects(waitForOperation(s.read, s.opts), ServRegOperationFailedError);
  assert.equal(s.reads(), 1);
});
