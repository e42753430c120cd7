// The persistence provider conformance suite (docs/design/contracts/persistence.md): every behaviour a
// PersistenceProvider backend must show, written once and run against each backend by its own test file
// (persistence-<backend>.test.ts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from '../../adapters/errors';
import { DeleteBucketCommand, DeleteObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { MachineId, type PersistedObject, type PersistenceProvider } from '../../adapters/persistence';

/** How the suite gets providers of one backend, each isolated from other test files. */
export interface PersistenceBackend {
  /** The backend family (`file`, `s3`, `etcd`, `kubernetes`). */
  kind: string;
  /** A provider with one replica per `scopes` entry; the same scope always means the same configuration. */
  make(scopes: string[]): PersistenceProvider;
  /** A provider whose single replica cannot be reached (a dead endpoint, an unusable path). */
  makeUnreachable(): PersistenceProvider;
  /** Two namespaces objects may be put in (they exist, for Kubernetes). */
  namespaces: [string, string];
  /** Removes what the scopes hold. */
  cleanup?(): Promise<void>;
}

/** A machine ID for tests (any stable 32-hex value). */
export const testMachineId = new MachineId('0123456789abcdef0123456789abcdef');

const API = 'test.brokerflow.io/v1';

/** Removes a test bucket and everything in it (moto). */
export async function deleteTestBucket(endpoint: string, bucket: string): Promise<void> {
  const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 't', secretAccessKey: 't' } });
  try {
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      await Promise.all((page.Contents ?? []).map((o) => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key! }))));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
  } finally {
    s3.destroy();
  }
}

function widget(name: string, extra: Record<string, unknown> = {}, namespace?: string): PersistedObject {
  return { apiVersion: API, kind: 'Widget', metadata: namespace ? { name, namespace } : { name }, spec: { size: 1, ...extra } };
}

export function persistenceConformance(backend: PersistenceBackend): void {
  void describe(`${backend.kind} persistence provider (conformance)`, () => {
    const scope = `s${randomBytes(4).toString('hex')}`;
    let provider: PersistenceProvider;
    let replica: string;
    const opened: PersistenceProvider[] = [];

    const open = async (scopes: string[]): Promise<PersistenceProvider> => {
      const p = backend.make(scopes);
      opened.push(p);
      await p.initialize(testMachineId);
      return p;
    };

    before(async () => {
      provider = await open([scope]);
      replica = provider.replicas()[0]!;
    });

    after(async () => {
      await Promise.allSettled(opened.map((p) => p.close()));
      await backend.cleanup?.();
    });

    void test('replicas are named <kind>-<hash>, stable for the same configuration and unique across replicas', async () => {
      const again = backend.make([scope]);
      assert.deepEqual(again.replicas(), provider.replicas());
      assert.match(replica, new RegExp(`^${backend.kind}-[0-9a-f]{16}$`));
      const two = backend.make([`${scope}a`, `${scope}b`]);
      assert.equal(new Set([...two.replicas(), replica]).size, 3);
    });

    void test('an unknown replica reports exists:false; a reachable one reports up with its mean persist latency', async () => {
      assert.deepEqual(provider.replicaStatus(`${backend.kind}-0000000000000000`), { exists: false });
      const p = await open([`${scope}lat`]);
      const name = p.replicas()[0]!;
      const before = p.replicaStatus(name);
      assert.ok(before.exists && before.status);
      assert.equal(before.puts, 0);
      await p.putObject(name, widget('lat-1'));
      await p.putObject(name, widget('lat-2'));
      const after = p.replicaStatus(name);
      assert.ok(after.exists && after.status);
      assert.equal(after.puts, 2, 'every put updates the mean');
      assert.ok(after.meanPersistLatencyMs > 0, 'latency to the durable acknowledgement is measured');
    });

    void test('a replica that cannot be initialized is reported dead and its calls fail as unavailable', async () => {
      const dead = backend.makeUnreachable();
      opened.push(dead);
      await assert.rejects(dead.initialize(testMachineId), UnavailableError);
      const name = dead.replicas()[0]!;
      const status = dead.replicaStatus(name);
      assert.ok(status.exists);
      assert.equal(status.status, false);
      await assert.rejects(dead.putObject(name, widget('x')), UnavailableError);
    });

    void test('putObject returns the key that getObject finds the object by, with its version', async () => {
      const obj = widget('round-trip', { nested: { list: [1, 'two', null] } });
      const put = await provider.putObject(replica, obj);
      assert.equal(put.key, 'Widget.test.brokerflow.io/round-trip');
      const got = await provider.getObject(replica, put.key);
      assert.ok(got);
      assert.equal(got.metadata.resourceVersion, put.resourceVersion);
      assert.deepEqual({ ...got, metadata: { name: got.metadata.name } }, obj);
    });

    void test('getObject of a missing object answers undefined', async () => {
      assert.equal(await provider.getObject(replica, 'Widget.test.brokerflow.io/never-written'), undefined);
    });

    void test('a second put replaces the object and changes its version', async () => {
      const first = await provider.putObject(replica, widget('replace', { size: 1 }));
      const second = await provider.putObject(replica, widget('replace', { size: 2 }));
      assert.notEqual(second.resourceVersion, first.resourceVersion);
      const got = await provider.getObject(replica, first.key);
      assert.deepEqual(got?.spec, { size: 2 });
    });

    void test('a namespaced object has its own key and does not collide with the same name elsewhere', async () => {
      const a = await provider.putObject(replica, widget('same-name', { where: 'none' }));
      const b = await provider.putObject(replica, widget('same-name', { where: 'ns' }, backend.namespaces[0]));
      assert.equal(b.key, `Widget.test.brokerflow.io/${backend.namespaces[0]}/same-name`);
      assert.deepEqual((await provider.getObject(replica, a.key))?.spec, { size: 1, where: 'none' });
      assert.deepEqual((await provider.getObject(replica, b.key))?.spec, { size: 1, where: 'ns' });
    });

    void test('getAllObjects returns every object of that kind and group, and only those', async () => {
      const p = await open([`${scope}all`]);
      const name = p.replicas()[0]!;
      await p.putObject(name, widget('w1'));
      await p.putObject(name, widget('w2', {}, backend.namespaces[1]));
      await p.putObject(name, { apiVersion: API, kind: 'Gadget', metadata: { name: 'g1' } });
      await p.putObject(name, { apiVersion: 'other.brokerflow.io/v1', kind: 'Widget', metadata: { name: 'w3' } });
      const widgets = await p.getAllObjects(name, { apiVersion: API, kind: 'Widget' });
      assert.deepEqual(widgets.map((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`).sort(), ['/w1', `${backend.namespaces[1]}/w2`]);
      assert.ok(widgets.every((o) => o.apiVersion === API && o.kind === 'Widget' && o.metadata.resourceVersion));
      const gadgets = await p.getAllObjects(name, { apiVersion: 'test.brokerflow.io/v2', kind: 'Gadget' });
      assert.deepEqual(gadgets.map((o) => o.metadata.name), ['g1'], 'any version of the group and kind');
      assert.deepEqual(await p.getAllObjects(name, { apiVersion: API, kind: 'Nothing' }), []);
    });

    void test('deleteObject removes the object, and deleting a missing object succeeds', async () => {
      const { key } = await provider.putObject(replica, widget('to-delete'));
      await provider.deleteObject(replica, key);
      assert.equal(await provider.getObject(replica, key), undefined);
      await provider.deleteObject(replica, key);
      await provider.deleteObject(replica, 'Widget.test.brokerflow.io/never-there');
    });

    void test('a create-only put (ifNoneMatch) of an existing object conflicts and writes nothing', async () => {
      const { key } = await provider.putObject(replica, widget('create-only', { size: 1 }));
      await assert.rejects(provider.putObject(replica, widget('create-only', { size: 9 }), { ifNoneMatch: '*' }), ConflictError);
      assert.deepEqual((await provider.getObject(replica, key))?.spec, { size: 1 });
    });

    void test('a put with a stale version conflicts and never overwrites; the current version succeeds', async () => {
      const v1 = await provider.putObject(replica, widget('cas', { size: 1 }));
      const v2 = await provider.putObject(replica, widget('cas', { size: 2 }), { ifMatch: v1.resourceVersion });
      await assert.rejects(provider.putObject(replica, widget('cas', { size: 3 }), { ifMatch: v1.resourceVersion }), ConflictError);
      assert.deepEqual((await provider.getObject(replica, v1.key))?.spec, { size: 2 });
      const v3 = await provider.putObject(replica, widget('cas', { size: 4 }), { ifMatch: v2.resourceVersion });
      assert.equal((await provider.getObject(replica, v1.key))?.metadata.resourceVersion, v3.resourceVersion);
    });

    void test('a versioned put of a deleted object and a versioned delete with a stale version conflict', async () => {
      const v1 = await provider.putObject(replica, widget('cas-delete'));
      await provider.putObject(replica, widget('cas-delete', { size: 2 }));
      await assert.rejects(provider.deleteObject(replica, v1.key, { ifMatch: v1.resourceVersion }), ConflictError);
      assert.ok(await provider.getObject(replica, v1.key), 'a stale delete leaves the object');
      await provider.deleteObject(replica, v1.key);
      await assert.rejects(provider.putObject(replica, widget('cas-delete'), { ifMatch: v1.resourceVersion }), ConflictError);
    });

    void test('of two concurrent writes from the same version exactly one succeeds', async () => {
      for (let round = 0; round < 3; round++) {
        const base = await provider.putObject(replica, widget(`race-${round}`));
        const results = await Promise.allSettled([
          provider.putObject(replica, widget(`race-${round}`, { by: 'a' }), { ifMatch: base.resourceVersion }),
          provider.putObject(replica, widget(`race-${round}`, { by: 'b' }), { ifMatch: base.resourceVersion }),
        ]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, `round ${round}: one winner`);
        const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
        assert.ok(loser.reason instanceof ConflictError, 'the loser gets a conflict');
        const won = results.findIndex((r) => r.status === 'fulfilled');
        assert.deepEqual((await provider.getObject(replica, base.key))?.spec, { size: 1, by: won === 0 ? 'a' : 'b' });
      }
    });

    void test('of two concurrent creates of the same object exactly one succeeds', async () => {
      const results = await Promise.allSettled([
        provider.putObject(replica, widget('create-race', { by: 'a' }), { ifNoneMatch: '*' }),
        provider.putObject(replica, widget('create-race', { by: 'b' }), { ifNoneMatch: '*' }),
      ]);
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      assert.ok((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason instanceof ConflictError);
    });

    void test('names that could escape a path or prefix are rejected before any I/O', async () => {
      for (const name of ['../escape', 'a/b', '..', 'a..b', 'nul\0byte', 'line\nbreak', '.hidden', 'x'.repeat(254), '']) {
        await assert.rejects(provider.putObject(replica, widget(name)), ValidationError, `put ${JSON.stringify(name)}`);
      }
      for (const key of ['Widget.test.brokerflow.io/../../etc', 'Widget.test.brokerflow.io/a/b/c', '../Widget/x', 'widget/x', 'Widget/UPPER_NS/x']) {
        await assert.rejects(provider.getObject(replica, key), ValidationError, `get ${key}`);
        await assert.rejects(provider.deleteObject(replica, key), ValidationError, `delete ${key}`);
      }
      await assert.rejects(provider.putObject(replica, { ...widget('bad-ns'), metadata: { name: 'ok', namespace: '../up' } }), ValidationError);
      await assert.rejects(provider.putObject(replica, { ...widget('bad-kind'), kind: '../Widget' }), ValidationError);
      await assert.rejects(provider.putObject(replica, { ...widget('bad-version'), apiVersion: 'a/b/v1' }), ValidationError);
    });

    void test('an unknown replica name is refused', async () => {
      await assert.rejects(provider.putObject(`${backend.kind}-ffffffffffffffff`, widget('x')), NotFoundError);
    });
  });
}
