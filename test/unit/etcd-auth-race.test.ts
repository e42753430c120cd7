// etcd checks a write's permissions again when it applies it, against the auth revision the request was authorised
// at: a user or role changed meanwhile (the etcd-user driver does this on every bind, and the tenant etcd may be the
// registry's cluster) refuses the write, unapplied, with InvalidArgument "revision of auth store is old". The
// datastore and the tenant drivers repeat such a write at once; one refused every time is retryable, never invalid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GRPCInvalidArgumentError, castGrpcErrorMessage, type Etcd3 } from 'etcd3';
import { EtcdDatastore, ErrorDatastoreUnavailable } from '../../adapters/datastore';
import { AUTH_RACE_ATTEMPTS, repeatingAuthRaces } from '../../adapters/etcd';
import { call } from '../../adapters/resources/etcd';
import { UnavailableError } from '../../adapters/errors';

/** What etcd3 rejects such a call with (gRPC code 3). */
const authRace = () => new GRPCInvalidArgumentError('3 INVALID_ARGUMENT: etcdserver: revision of auth store is old');

/** A datastore whose etcd answers every call with `answer` (etcd3's own mock hook; no server). */
function datastoreAnswering(answer: (method: string) => Promise<unknown>): EtcdDatastore {
  const ds = new EtcdDatastore({ endpoints: ['http://127.0.0.1:1'], prefix: '/race' });
  (ds as unknown as { client: Etcd3 }).client.mock({ exec: (_service: string, method: string) => answer(method) } as never);
  return ds;
}

const putAnswer = { header: { revision: '7' } };

test('a datastore write etcd refuses because the auth store changed is repeated at once and succeeds', async () => {
  let calls = 0;
  const ds = datastoreAnswering(async () => {
    calls += 1;
    if (calls < 3) throw authRace();
    return putAnswer;
  });
  try {
    assert.deepEqual(await ds.apply('/k', 'v'), { key: '/k', value: 'v', revision: '7' });
    assert.equal(calls, 3);
  } finally {
    await ds.close();
  }
});

test('a datastore write refused that way every time is a retryable unavailable error, not a validation error', async () => {
  let calls = 0;
  const ds = datastoreAnswering(async () => {
    calls += 1;
    throw authRace();
  });
  try {
    await assert.rejects(ds.apply('/k', 'v'), (err: Error) => {
      assert.ok(err instanceof ErrorDatastoreUnavailable, `${err.constructor.name}: ${err.message}`);
      assert.equal(err.retryable, true);
      assert.match(err.message, /auth store changed/);
      return true;
    });
    assert.equal(calls, AUTH_RACE_ATTEMPTS);
  } finally {
    await ds.close();
  }
});

test('a tenant driver call refused that way is repeated at once, and retryable when it keeps being refused', async () => {
  let calls = 0;
  assert.equal(
    await call('put', async () => {
      calls += 1;
      if (calls < 2) throw authRace();
      return 'done';
    }),
    'done',
  );
  await assert.rejects(
    call('put', async () => {
      throw authRace();
    }),
    UnavailableError,
  );
});

test('any other failure is passed on at once, unrepeated', async () => {
  let calls = 0;
  await assert.rejects(
    repeatingAuthRaces(async () => {
      calls += 1;
      throw castGrpcErrorMessage('etcdserver: permission denied');
    }),
    /permission denied/,
  );
  assert.equal(calls, 1);
});
