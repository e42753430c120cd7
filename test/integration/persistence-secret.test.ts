// SecretPersistenceProvider over the file and S3 backends: the same API, encrypted at rest (AES-256-GCM, key ID
// stored with the ciphertext), key rotation, and key material that never shows in errors or logs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { ConflictError, ValidationError } from '../../adapters/errors';
import {
  DecryptionError,
  FilePersistenceProvider,
  S3PersistenceProvider,
  SecretPersistenceProvider,
  type PersistedObject,
  type PersistenceProvider,
} from '../../adapters/persistence';
import { requireTestEnv } from '../support/env';
import { deleteTestBucket, testMachineId } from '../conformance/persistence-conformance';

const k1 = { id: 'key-2025', key: randomBytes(32).toString('base64') };
const k2 = { id: 'key-2026', key: randomBytes(32).toString('base64') };
const cred = (name: string, password: string): PersistedObject => ({
  apiVersion: 'registry.brokerflow.io/v1',
  kind: 'RegistryCredentials',
  metadata: { name },
  credentials: { password },
});
const TYPE = { apiVersion: 'registry.brokerflow.io/v1', kind: 'RegistryCredentials' };

function secretSuite(kind: string, makeInner: () => PersistenceProvider, cleanup: () => Promise<void>): void {
  void describe(`secret persistence provider over ${kind}`, () => {
    let inner: PersistenceProvider;
    let inst: string;
    before(async () => {
      inner = makeInner();
      await inner.initialize(testMachineId);
      inst = inner.replicas()[0]!;
    });
    after(async () => {
      await inner.close();
      await cleanup();
    });

    void test('the same API: what is put is read back, listed and deleted, with replicas and status of the inner provider', async () => {
      const sp = new SecretPersistenceProvider(inner, { keys: [k1] });
      assert.deepEqual(sp.replicas(), inner.replicas());
      assert.equal(sp.kind, `secret+${inner.kind}`);
      const put = await sp.putObject(inst, cred('api', 'pw-1'));
      assert.deepEqual((await sp.getObject(inst, put.key))?.credentials, { password: 'pw-1' });
      assert.ok((await sp.getAllObjects(inst, TYPE)).some((o) => o.metadata.name === 'api'));
      const status = sp.replicaStatus(inst);
      assert.equal(status.exists && status.status, true);
      await sp.deleteObject(inst, put.key);
      assert.equal(await sp.getObject(inst, put.key), undefined);
    });

    void test('at rest only the identity is readable: the rest is AES-256-GCM ciphertext tagged with its key ID', async () => {
      const sp = new SecretPersistenceProvider(inner, { keys: [k1] });
      const put = await sp.putObject(inst, cred('at-rest', 'very-secret-password'));
      const raw = await inner.getObject(inst, put.key);
      assert.ok(raw);
      assert.ok(!JSON.stringify(raw).includes('very-secret-password'));
      assert.deepEqual(Object.keys(raw).sort(), ['apiVersion', 'encrypted', 'kind', 'metadata']);
      const env = raw.encrypted as { keyId: string; alg: string; iv: string };
      assert.equal(env.keyId, 'key-2025');
      assert.equal(env.alg, 'AES-256-GCM');
      const again = await sp.putObject(inst, cred('at-rest', 'very-secret-password'));
      assert.notEqual(((await inner.getObject(inst, again.key))!.encrypted as { iv: string }).iv, env.iv, 'a fresh nonce per write');
    });

    void test('rotation: old data stays readable, new data is written under the current key, rotate() re-encrypts the rest', async () => {
      const old = new SecretPersistenceProvider(inner, { keys: [k1] });
      const a = await old.putObject(inst, cred('rot-a', 'A'));
      const b = await old.putObject(inst, cred('rot-b', 'B'));
      const both = new SecretPersistenceProvider(inner, { keys: [k1, k2], currentKeyId: 'key-2026' });
      assert.deepEqual((await both.getObject(inst, a.key))?.credentials, { password: 'A' });
      await both.putObject(inst, cred('rot-b', 'B2'));
      assert.equal(((await inner.getObject(inst, b.key))!.encrypted as { keyId: string }).keyId, 'key-2026');
      const onlyNew = new SecretPersistenceProvider(inner, { keys: [k2] });
      await assert.rejects(onlyNew.getObject(inst, a.key), DecryptionError);
      assert.ok((await both.rotate(inst, TYPE)) >= 1);
      assert.equal(await both.rotate(inst, TYPE), 0, 'nothing left under the old key');
      assert.deepEqual((await onlyNew.getObject(inst, a.key))?.credentials, { password: 'A' });
      assert.deepEqual((await onlyNew.getObject(inst, b.key))?.credentials, { password: 'B2' });
    });

    void test('tampered ciphertext, or ciphertext moved under another name, does not decrypt', async () => {
      const sp = new SecretPersistenceProvider(inner, { keys: [k1] });
      const put = await sp.putObject(inst, cred('tamper', 'x'));
      const raw = (await inner.getObject(inst, put.key))!;
      const env = raw.encrypted as { data: string };
      const bytes = Buffer.from(env.data, 'base64');
      bytes[0] = bytes[0]! ^ 1;
      await inner.putObject(inst, { ...raw, encrypted: { ...env, data: bytes.toString('base64') } });
      await assert.rejects(sp.getObject(inst, put.key), DecryptionError);
      const other = await sp.putObject(inst, cred('victim', 'y'));
      const moved = (await inner.getObject(inst, other.key))!;
      await inner.putObject(inst, { ...moved, metadata: { name: 'thief' } });
      await assert.rejects(sp.getObject(inst, 'RegistryCredentials.registry.brokerflow.io/thief'), DecryptionError);
    });

    void test('optimistic concurrency passes through: a stale version conflicts', async () => {
      const sp = new SecretPersistenceProvider(inner, { keys: [k1] });
      const v1 = await sp.putObject(inst, cred('cas', '1'));
      await sp.putObject(inst, cred('cas', '2'), { ifMatch: v1.resourceVersion });
      await assert.rejects(sp.putObject(inst, cred('cas', '3'), { ifMatch: v1.resourceVersion }), ConflictError);
      assert.deepEqual((await sp.getObject(inst, v1.key))?.credentials, { password: '2' });
    });
  });
}

void describe('secret persistence provider configuration', () => {
  const dummy = new FilePersistenceProvider({ directories: [join(tmpdir(), 'bf-never-initialized')] });

  void test('keys must be base64 of 32 bytes with unique IDs; errors never echo the key', () => {
    const short = Buffer.from('sixteen-byte-key').toString('base64');
    for (const keys of [[], [{ id: 'a', key: short }], [{ id: 'bad id!', key: k1.key }], [k1, { ...k2, id: k1.id }], [{ id: 'a', key: 'not base64 !!' }]]) {
      assert.throws(
        () => new SecretPersistenceProvider(dummy, { keys }),
        (err: Error) => err instanceof ValidationError && !err.message.includes(short) && !err.message.includes(k1.key),
      );
    }
    assert.throws(() => new SecretPersistenceProvider(dummy, { keys: [k1], currentKeyId: 'missing' }), ValidationError);
  });

  void test('the key material never shows when the provider is logged or serialized', () => {
    const sp = new SecretPersistenceProvider(dummy, { keys: [k1, k2] });
    const hex1 = Buffer.from(k1.key, 'base64').toString('hex');
    for (const text of [inspect(sp, { depth: 10, showHidden: true }), JSON.stringify(sp), String(sp)]) {
      assert.ok(!text.includes(k1.key) && !text.includes(k2.key) && !text.includes(hex1), text.slice(0, 200));
    }
  });
});

const dir = mkdtempSync(join(tmpdir(), 'bf-secret-'));
secretSuite('file', () => new FilePersistenceProvider({ directories: [dir] }), async () => rmSync(dir, { recursive: true, force: true }));

const endpoint = requireTestEnv('motoEndpoint');
const bucket = `bf-secret-${randomBytes(4).toString('hex')}`;
secretSuite(
  's3',
  () => new S3PersistenceProvider({ replicas: [{ endpoint, bucket, forcePathStyle: true, credentials: { accessKeyId: 't', secretAccessKey: 't' }, createBucket: true }] }),
  () => deleteTestBucket(endpoint, bucket),
);
