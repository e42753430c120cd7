import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { requireTestEnv } from '../support/env';

test('the test run shares one real etcd that reads back what was written', async () => {
  const client = new Etcd3({ hosts: requireTestEnv('etcdEndpoint') });
  try {
    await client.put('/brokerflow-smoke/key').value('hello');
    assert.equal(await client.get('/brokerflow-smoke/key').string(), 'hello');
    await client.delete().key('/brokerflow-smoke/key');
    assert.equal(await client.get('/brokerflow-smoke/key').string(), null);
  } finally {
    client.close();
  }
});
