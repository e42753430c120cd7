// The one line last_operation and `brokerflow status` give while an operation runs
// (docs/design/contracts/osb-api.md#what-a-running-operations-description-says): made from the workflow's progress
// report and Temporal's pending activity, never carrying a secret, and absent when nothing is known.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LAST_ERROR_MAX_CHARS, liveStep, stepDescription, type PendingActivity } from '../../client/operation-progress';
import { redactSecretsInText } from '../../platform/logging';
import type { OperationProgress } from '../../workflows/messages';
import { continuedActivityId } from '../../workflows/activity-policies';

const progress = (reconcile: Partial<OperationProgress['reconcile']> = {}, phase: OperationProgress['phase'] = 'reconciling'): OperationProgress => ({
  operation: 'provision',
  operationId: 'provision-1',
  instanceId: 'i-1',
  state: 'in progress',
  phase,
  reconcile: { done: 0, total: 1, ...reconcile },
  startedAt: 1_000,
});
const pending = (name: string, attempt: number, maximumAttempts: number, failure?: string): PendingActivity => ({
  activityType: { name },
  attempt,
  maximumAttempts,
  ...(failure ? { lastFailure: { message: failure } } : {}),
});
const describe = (p: OperationProgress | undefined, acts: PendingActivity[] | undefined) => stepDescription(liveStep(p, acts));

test('a retried step names the resource, the step, the attempt of the limit and the last error', () => {
  const failure = 'resource "keyspace" (etcd-prefix) applyCreateChange: etcd unavailable';
  assert.equal(
    describe(progress({ resource: 'keyspace', step: 'applyCreateChange' }), [pending('applyCreateChange', 3, 7, failure)]),
    'keyspace: applyCreateChange (attempt 3 of 7, last error: etcd unavailable)',
  );
});

test('a step on its first attempt is named without an attempt; one between activities too', () => {
  assert.equal(describe(progress({ resource: 'keyspace', step: 'getCurrentState' }), [pending('getCurrentState', 1, 7)]), 'keyspace: getCurrentState');
  assert.equal(describe(progress({ resource: 'keyspace', step: 'getCurrentState' }), []), 'keyspace: getCurrentState');
});

test('without a worker the pending activity alone names the step, and its error still names the resource', () => {
  const failure = 'resource "user" (etcd-user) getCurrentState: etcd get user: 14 UNAVAILABLE: No connection established';
  assert.equal(
    describe(undefined, [pending('getCurrentState', 2, 7, failure)]),
    `getCurrentState (attempt 2 of 7, last error: ${failure})`,
  );
  assert.equal(describe(undefined, [pending('recordBegin', 4, 12, 'registry unavailable')]), 'recordBegin (attempt 4 of 12, last error: registry unavailable)');
});

test('a step that continues after its local attempt counts that attempt, and shows its failure until it has its own', () => {
  const local = 'resource "keyspace" (etcd-prefix) getCurrentState: etcd unavailable';
  const continued = (attempt: number, max: number, failure?: string): PendingActivity => ({ ...pending('getCurrentState', attempt, max, failure), activityId: continuedActivityId('getCurrentState', 9) });
  const reported = progress({ resource: 'keyspace', step: 'getCurrentState', lastFailure: local });
  // Temporal's first attempt of the regular activity is the step's second; the policy's 7 became 6 regular ones.
  assert.equal(describe(reported, [continued(1, 6)]), 'keyspace: getCurrentState (attempt 2 of 7, last error: etcd unavailable)');
  assert.equal(describe(reported, [continued(3, 6, 'resource "keyspace" (etcd-prefix) getCurrentState: etcd timeout')]), 'keyspace: getCurrentState (attempt 4 of 7, last error: etcd timeout)');
  // Without a worker the count is still right; the local attempt's failure is the worker's to tell.
  assert.equal(describe(undefined, [continued(1, 6)]), 'getCurrentState (attempt 2 of 7)');
  assert.equal(describe(undefined, [continued(2, 0, 'down')]), 'getCurrentState (attempt 3, last error: down)');
});

test('an unlimited retry policy shows the attempt alone', () => {
  assert.equal(describe(undefined, [pending('applyUpdateChange', 5, 0, 'down')]), 'applyUpdateChange (attempt 5, last error: down)');
});

test('the attempt is the reported step\'s: another pending activity is not mixed in', () => {
  const live = liveStep(progress({ resource: 'keyspace', step: 'getDesiredState' }), [pending('getCurrentState', 4, 7, 'old')]);
  assert.deepEqual(live, { resource: 'keyspace', step: 'getDesiredState', resourcesDone: 0, resourcesTotal: 1, startedAt: 1_000 });
  assert.equal(stepDescription(live), 'keyspace: getDesiredState');
  // Two pending activities and no report: which one the operation waits for is not known.
  assert.equal(describe(undefined, [pending('a', 2, 3, 'x'), pending('b', 2, 3, 'y')]), undefined);
});

test('nothing known, or an operation the workflow reports as done, gives no description (the registry answer stands)', () => {
  assert.equal(describe(undefined, undefined), undefined);
  assert.equal(describe(undefined, []), undefined);
  assert.equal(describe(progress({}, 'recording'), []), undefined);
  assert.equal(describe(progress({ resource: 'keyspace', step: 'applyCreateChange' }, 'done'), [pending('applyCreateChange', 3, 7, 'x')]), undefined);
});

test('the last error is redacted, put on one line and shortened', () => {
  const secretFailure = 'resource "user" (etcd-user) applyCreateChange: dial http://root:s3cr3t-pw@10.0.0.1:2379 failed; password=hunter2, {"token": "abc.def"}\n  at stack line';
  const text = describe(progress({ resource: 'user', step: 'applyCreateChange' }), [pending('applyCreateChange', 2, 7, secretFailure)])!;
  assert.equal(text, 'user: applyCreateChange (attempt 2 of 7, last error: dial http://root:***@10.0.0.1:2379 failed; password=***, {"token": ***} at stack line)');
  for (const secret of ['s3cr3t-pw', 'hunter2', 'abc.def']) assert.ok(!text.includes(secret), text);

  const long = describe(progress({ resource: 'r', step: 'applyUpdateChange' }), [pending('applyUpdateChange', 2, 7, 'x'.repeat(1000))])!;
  const error = long.slice(long.indexOf('last error: ') + 'last error: '.length, -1);
  assert.equal(error.length, LAST_ERROR_MAX_CHARS);
  assert.ok(error.endsWith('…'));
});

test('redaction masks URL passwords, bearer and basic credentials and secret-named values, and leaves prose alone', () => {
  assert.equal(redactSecretsInText('GET https://u:p%40ss@host/x'), 'GET https://u:***@host/x');
  assert.equal(redactSecretsInText('Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30'), 'Authorization: Bearer ***');
  assert.equal(redactSecretsInText('header Basic cGxhdGZvcm06cHctMTIz'), 'header Basic ***');
  assert.equal(redactSecretsInText("api_key='k-123' clientSecret: xyz apiToken=t1"), "api_key=*** clientSecret: *** apiToken=***");
  const prose = 'etcd set the password of user bf-1: permission denied; no password stored for binding b-1';
  assert.equal(redactSecretsInText(prose), prose);
});
