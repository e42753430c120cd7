// The S3 backend against moto (a local S3 API): the conformance suite, plus the write ID that keeps ETags unique.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ConflictError } from '../../adapters/errors';
import { S3PersistenceProvider, type S3ReplicaConfig } from '../../adapters/persistence';
import { requireTestEnv } from '../support/env';
import { deleteTestBucket, persistenceConformance, testMachineId } from '../conformance/persistence-conformance';

const endpoint = requireTestEnv('motoEndpoint');
const bucket = `bf-persist-${randomBytes(4).toString('hex')}`;
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const config = (prefix: string): S3ReplicaConfig => ({
  endpoint,
  bucket,
  prefix: `${prefix}/`,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials,
  createBucket: true,
});

persistenceConformance({
  kind: 's3',
  namespaces: ['team-a', 'team-b'],
  make: (scopes) => new S3PersistenceProvider({ replicas: scopes.map(config) }),
  // Nothing listens on port 9 (discard) on loopback: connection refused.
  makeUnreachable: () => new S3PersistenceProvider({ replicas: [{ ...config('dead'), endpoint: 'http://127.0.0.1:9' }] }),
  cleanup: () => deleteTestBucket(endpoint, bucket),
});

void describe('s3 persistence provider', () => {
  let p: S3PersistenceProvider;
  before(async () => {
    p = new S3PersistenceProvider({ replicas: [config('etag')] });
    await p.initialize(testMachineId);
  });
  after(() => p.close());

  void test('writing the same content back does not revive an old version (ETags never repeat)', async () => {
    const inst = p.replicas()[0]!;
    const obj = { apiVersion: 'v1', kind: 'Note', metadata: { name: 'aba' }, text: 'A' };
    const a = await p.putObject(inst, obj);
    await p.putObject(inst, { ...obj, text: 'B' });
    const again = await p.putObject(inst, obj);
    assert.notEqual(again.resourceVersion, a.resourceVersion);
    await assert.rejects(p.putObject(inst, { ...obj, text: 'stale' }, { ifMatch: a.resourceVersion }), ConflictError);
  });

  void test('credentials are not part of the replica name', () => {
    const other = new S3PersistenceProvider({ replicas: [{ ...config('etag'), credentials: { accessKeyId: 'x', secretAccessKey: 'y' } }] });
    assert.deepEqual(other.replicas(), p.replicas());
  });
});
