// RedundantStore over independent replicas (two file directories, and a file + S3 mix): writes reach every
// replica, reads come from the first healthy one, and a replica that missed writes is reported degraded and
// repaired at the next write.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConflictError, UnavailableError } from '../../adapters/errors';
import { FilePersistenceProvider, RedundantStore, S3PersistenceProvider, type PersistedObject } from '../../adapters/persistence';
import { requireTestEnv } from '../support/env';
import { deleteTestBucket, testMachineId } from '../conformance/persistence-conformance';

const root = mkdtempSync(join(tmpdir(), 'bf-redundant-'));
after(() => rmSync(root, { recursive: true, force: true }));

const note = (name: string, text: string): PersistedObject => ({ apiVersion: 'v1', kind: 'Note', metadata: { name }, text });
const TYPE = { apiVersion: 'v1', kind: 'Note' };

/** Two file replicas; `breakB`/`fixB` swap B's directory for a plain file, so every call to B fails. */
async function twoFiles(name: string) {
  const a = join(root, name, 'a');
  const b = join(root, name, 'b');
  const provider = new FilePersistenceProvider({ directories: [a, b] });
  await provider.initialize(testMachineId);
  const [ia, ib] = provider.replicas() as [string, string];
  return {
    provider,
    ia,
    ib,
    store: RedundantStore.over(provider),
    breakInstance(which: 'a' | 'b') {
      const dir = which === 'a' ? a : b;
      renameSync(dir, `${dir}.away`);
      writeFileSync(dir, 'not a directory');
    },
    fixInstance(which: 'a' | 'b') {
      const dir = which === 'a' ? a : b;
      rmSync(dir);
      renameSync(`${dir}.away`, dir);
    },
  };
}

void describe('redundant store', () => {
  void test('a write reaches every replica', async () => {
    const { provider, ia, ib, store } = await twoFiles('all');
    const put = await store.put(note('n1', 'hello'));
    assert.equal((await provider.getObject(ia, put.key))?.text, 'hello');
    assert.equal((await provider.getObject(ib, put.key))?.text, 'hello');
    await store.delete(put.key);
    assert.equal(await provider.getObject(ib, put.key), undefined);
    assert.deepEqual(store.degraded(), []);
  });

  void test('reads come from the first healthy replica when the first one fails', async () => {
    const t = await twoFiles('read');
    await t.store.put(note('n1', 'v1'));
    t.breakInstance('a');
    assert.equal((await t.store.get('Note/n1'))?.text, 'v1', 'served by b');
    assert.deepEqual(t.store.degraded(), [t.ia], 'a is reported');
    assert.deepEqual((await t.store.list(TYPE)).map((o) => o.text), ['v1']);
    const put = await t.store.put(note('n2', 'while a is down'));
    assert.equal(put.key, 'Note/n2');
    t.fixInstance('a');
    await t.store.put(note('n3', 'a is back'));
    assert.equal((await t.provider.getObject(t.ia, 'Note/n2'))?.text, 'while a is down', 'a was repaired');
    assert.deepEqual(t.store.degraded(), []);
  });

  void test('a degraded replica is reported and repaired (writes and deletes it missed) at the next write', async () => {
    const t = await twoFiles('repair');
    await t.store.put(note('gone', 'to delete'));
    t.breakInstance('b');
    await t.store.put(note('missed', 'written while b was down'));
    await t.store.delete('Note/gone');
    const report = t.store.health().find((h) => h.replica === t.ib)!;
    assert.equal(report.degraded, true);
    assert.equal(report.pendingRepairs, 2);
    assert.equal(report.status.exists && report.status.status, false);
    assert.equal(t.store.health().find((h) => h.replica === t.ia)!.primary, true);
    await t.store.put(note('still-down', 'x'));
    assert.equal(t.store.health().find((h) => h.replica === t.ib)!.pendingRepairs, 3, 'still down: still behind');
    t.fixInstance('b');
    await t.store.put(note('next', 'the next write repairs b'));
    assert.deepEqual(t.store.degraded(), []);
    assert.equal((await t.provider.getObject(t.ib, 'Note/missed'))?.text, 'written while b was down');
    assert.equal(await t.provider.getObject(t.ib, 'Note/gone'), undefined);
    assert.deepEqual((await t.provider.getAllObjects(t.ib, TYPE)).map((o) => o.metadata.name), ['missed', 'next', 'still-down']);
  });

  void test('optimistic concurrency is decided by the primary: a stale write conflicts and no replica changes', async () => {
    const t = await twoFiles('cas');
    const v1 = await t.store.put(note('c', '1'));
    await t.store.put(note('c', '2'), { ifMatch: v1.resourceVersion });
    await assert.rejects(t.store.put(note('c', 'stale'), { ifMatch: v1.resourceVersion }), ConflictError);
    assert.equal((await t.provider.getObject(t.ib, 'Note/c'))?.text, '2');
    const results = await Promise.allSettled([
      t.store.put(note('new', 'a'), { ifNoneMatch: '*' }),
      t.store.put(note('new', 'b'), { ifNoneMatch: '*' }),
    ]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  });

  void test('with no healthy replica, reads and writes fail as unavailable', async () => {
    const t = await twoFiles('none');
    t.breakInstance('a');
    t.breakInstance('b');
    await assert.rejects(t.store.get('Note/x'), UnavailableError);
    await assert.rejects(t.store.put(note('x', 'y')), UnavailableError);
    await assert.rejects(t.store.put(note('x', 'y')), UnavailableError);
    assert.equal(t.store.degraded().length, 2);
  });

  void test('a single replica that failed once serves again as soon as it answers: one failure is not down for good', async () => {
    // Found by the worker-crash scenario: the registry's only file replica failed one call while a killed worker's
    // lock was in the way, was marked down, was never called again, and every later write failed.
    const dir = join(root, 'single', 'a');
    const provider = new FilePersistenceProvider({ directories: [dir] });
    await provider.initialize(testMachineId);
    const store = RedundantStore.over(provider);
    await store.put(note('before', '1'));
    renameSync(dir, `${dir}.away`);
    writeFileSync(dir, 'not a directory');
    await assert.rejects(store.put(note('during', '2')), UnavailableError);
    assert.deepEqual(store.degraded(), provider.replicas(), 'the failure is reported');
    rmSync(dir);
    renameSync(`${dir}.away`, dir);
    await store.put(note('after', '3'));
    assert.equal((await store.get('Note/before'))?.text, '1');
    assert.deepEqual((await store.list(TYPE)).map((o) => o.metadata.name).sort(), ['after', 'before']);
    assert.deepEqual(store.degraded(), [], 'healthy again once it answered');
  });

  void test('repairAll brings a replica that fell behind before a restart up to the primary', async () => {
    const t = await twoFiles('restart');
    await t.store.put(note('kept', 'k'));
    await t.provider.putObject(t.ia, note('only-a', 'written to a alone'));
    await t.provider.putObject(t.ib, note('only-b', 'stale leftover'));
    const fresh = RedundantStore.over(t.provider);
    await fresh.repairAll([TYPE]);
    assert.deepEqual((await t.provider.getAllObjects(t.ib, TYPE)).map((o) => o.metadata.name), ['kept', 'only-a']);
  });
});

void describe('redundant store over file and s3', () => {
  const endpoint = requireTestEnv('motoEndpoint');
  const bucket = `bf-redundant-${randomBytes(4).toString('hex')}`;
  let file: FilePersistenceProvider;
  let s3: S3PersistenceProvider;
  before(async () => {
    mkdirSync(join(root, 'mix'), { recursive: true });
    file = new FilePersistenceProvider({ directories: [join(root, 'mix')] });
    s3 = new S3PersistenceProvider({ replicas: [{ endpoint, bucket, forcePathStyle: true, credentials: { accessKeyId: 't', secretAccessKey: 't' }, createBucket: true }] });
    await file.initialize(testMachineId);
    await s3.initialize(testMachineId);
  });
  after(async () => {
    await s3.close();
    await deleteTestBucket(endpoint, bucket);
  });

  void test('replicas of different providers hold the same objects', async () => {
    const store = RedundantStore.over(file, s3);
    const put = await store.put(note('mixed', 'both'));
    assert.equal((await file.getObject(file.replicas()[0]!, put.key))?.text, 'both');
    assert.equal((await s3.getObject(s3.replicas()[0]!, put.key))?.text, 'both');
    assert.deepEqual(
      store.health().map((h) => [h.replica.split('-')[0], h.degraded, h.primary]),
      [
        ['file', false, true],
        ['s3', false, false],
      ],
    );
  });
});
