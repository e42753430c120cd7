// The etcd datastore: the shared conformance suite on the run's etcd, plus what only a real etcd can show
// (stopping and restarting it, authentication). Tests that stop, compact or lock etcd use private etcd servers
// started here, never the shared one.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdServer } from '../../scripts/lib/etcd';
import { freePort } from '../../scripts/lib/process';
import {
  ErrorDatastorePermission,
  ErrorDatastoreUnavailable,
  ErrorWatchTerminated,
  EtcdDatastore,
  Syncer,
} from '../../adapters/datastore';
import { requireTestEnv } from '../support/env';
import { EventReader, SyncRecorder, eventually, rejectsWith, runDatastoreConformance } from '../conformance/datastore-conformance';

const shared = requireTestEnv('etcdEndpoint');
const workDir = requireTestEnv('workDir');
const run = randomBytes(4).toString('hex');

/** Private etcd servers, started on first use and stopped when the file is done. */
const servers: EtcdServer[] = [];
async function privateEtcd(name: string): Promise<EtcdServer> {
  const server = await startEtcd({ dataDir: join(workDir, `datastore-${run}-${name}`), logDir: join(workDir, 'logs'), name: `ds-${name}` });
  servers.push(server);
  return server;
}
let compactable: Promise<EtcdServer> | undefined;

after(async () => {
  await Promise.allSettled(servers.map((s) => s.stop()));
});

runDatastoreConformance('etcd', {
  make: async (scope) => new EtcdDatastore({ endpoints: [shared], prefix: `/bf-test/datastore-${scope}` }),
  // Compaction is store-wide, so it happens on a private etcd where no other test reads old revisions.
  expire: async () => {
    compactable ??= privateEtcd('compact');
    const server = await compactable;
    const datastore = new EtcdDatastore({ endpoints: [server.endpoint], prefix: `/expire-${randomBytes(4).toString('hex')}` });
    const old = await datastore.apply('/k', 'v1');
    // A watch "from" a revision starts just after it, so compact past old + 1.
    await datastore.apply('/k', 'v2');
    const current = await datastore.apply('/k', 'v3');
    const raw = new Etcd3({ hosts: server.endpoint });
    try {
      await raw.kv.compact({ revision: current.revision, physical: true });
    } finally {
      raw.close();
    }
    return { datastore, key: '/k', revision: old.revision, current, release: () => datastore.close() };
  },
});

void describe('etcd datastore lists in pages', () => {
  void test('a list larger than a page returns every key once, in order, as of one revision', async () => {
    const ds = new EtcdDatastore({ endpoints: [shared], prefix: `/bf-test/datastore-pages-${run}`, listPageSize: 3 });
    try {
      const written = [await ds.apply('/p', 'self')];
      for (let i = 0; i < 10; i++) written.push(await ds.apply(`/p/k${i}`, `v${i}`));
      await ds.apply('/p-sibling', 'not listed');
      const listed = await ds.list('/p');
      assert.deepEqual(listed.pairs, written);
      // Changes after the list's revision do not leak into a list read at that revision, whatever the page.
      await ds.delete('/p/k0');
      await ds.apply('/p/k9', 'changed');
      await ds.apply('/p/k10', 'new');
      assert.deepEqual(await ds.list('/p', listed.revision), listed);
      assert.equal((await ds.list('/')).pairs.length, 12);
    } finally {
      await ds.clean();
      await ds.close();
    }
  });
});

void describe('etcd datastore against a stopped and restarted etcd', () => {
  void test('calls fail fast with a retryable unavailable error while etcd is down, and work again once it is back', async () => {
    const server = await privateEtcd('outage');
    const ds = new EtcdDatastore({ endpoints: [server.endpoint], prefix: '/outage' });
    try {
      await ds.apply('/k', 'before');
      await server.process.kill();
      const started = Date.now();
      for (const call of [ds.get('/k'), ds.apply('/k', 'x'), ds.list('/'), ds.ensureInitialized()]) {
        const err = await rejectsWith(call, ErrorDatastoreUnavailable);
        assert.equal(err.retryable, true);
        assert.equal(err.code, 'Unavailable');
      }
      assert.ok(Date.now() - started < 10_000, 'failures are reported, not hung on');
      await server.restart();
      await eventually('etcd to answer again', async () => (await ds.get('/k').catch(() => undefined))?.value === 'before');
    } finally {
      await ds.close();
      await server.stop();
    }
  });

  void test('a watch on an etcd that dies ends with exactly one ERROR (disconnected) and terminates', async () => {
    const server = await privateEtcd('watchdeath');
    const ds = new EtcdDatastore({ endpoints: [server.endpoint], prefix: '/w' });
    try {
      await ds.apply('/a/1', 'x');
      const stream = ds.watch('/a');
      const w = new EventReader(stream);
      assert.equal((await w.take(1))[0]!.type, 'ADDED');
      await ds.apply('/a/2', 'y');
      assert.equal((await w.take(1))[0]!.new?.key, '/a/2');
      await server.process.kill();
      const ev = await w.next();
      assert.ok(ev !== 'end' && ev.type === 'ERROR', JSON.stringify(ev));
      assert.ok(ev.error instanceof ErrorWatchTerminated);
      assert.equal(ev.error.reason, 'disconnected');
      assert.equal(await w.next(), 'end');
      assert.equal(stream.hasTerminated(), true);
      await server.restart();
      // A new watch on the restarted etcd works.
      const again = new EventReader(ds.watch('/a'));
      assert.deepEqual((await again.take(2)).map((e) => e.new?.key).sort(), ['/a/1', '/a/2']);
      again.stream.stop();
    } finally {
      await ds.close();
      await server.stop();
    }
  });

  void test('a syncer that sees etcd stopped and restarted mid-stream ends InSync with exactly the right keys', async () => {
    const server = await privateEtcd('syncer');
    const ds = new EtcdDatastore({ endpoints: [server.endpoint], prefix: '/sync' });
    const r = new SyncRecorder();
    const syncer = new Syncer(ds, { prefixes: ['/nodes', '/pools'], backoff: { initialMs: 50, maxMs: 400 } }, r.callbacks);
    try {
      for (let i = 0; i < 50; i++) await ds.apply(`/nodes/n${i}`, `v${i}`);
      await ds.apply('/pools/p1', 'p');
      syncer.start();
      await eventually('InSync', () => r.last === 'InSync');
      assert.equal(r.state.size, 51);

      await ds.apply('/nodes/n0', 'changed-live');
      await eventually('live change', () => r.state.get('/nodes/n0') === 'changed-live');

      await server.process.kill();
      await eventually('the syncer to see etcd gone', () => r.last === 'WaitForDatastore');
      await server.restart();
      // These land while the syncer is still backing off or re-listing; either way it must converge on them.
      for (let i = 40; i < 50; i++) await ds.delete(`/nodes/n${i}`);
      await ds.apply('/nodes/n1', 'changed-after-restart');
      await ds.apply('/nodes/new', 'created-after-restart');
      await ds.delete('/pools/p1');

      const expected = new Map<string, string>();
      for (let i = 0; i < 40; i++) expected.set(`/nodes/n${i}`, `v${i}`);
      expected.set('/nodes/n0', 'changed-live');
      expected.set('/nodes/n1', 'changed-after-restart');
      expected.set('/nodes/new', 'created-after-restart');
      const matches = () =>
        r.last === 'InSync' && r.state.size === expected.size && [...expected].every(([k, v]) => r.state.get(k) === v);
      await eventually(() => `the syncer's keys to match (have ${r.state.size}, last status ${r.last})`, matches, 20_000);
      assert.deepEqual(r.anomalies, [], 'no duplicate new, no update or delete of an unknown key');
      const ends = r.statuses.slice(-1);
      assert.deepEqual(ends, ['InSync']);
      assert.ok(r.statuses.includes('WaitForDatastore', 1), `statuses: ${r.statuses.join(' ')}`);
    } finally {
      await syncer.stop();
      await ds.close();
      await server.stop();
    }
  });
});

void describe('etcd datastore with authentication', () => {
  void test('wrong credentials fail with a permission error whose message holds no secret; right ones work', async () => {
    const server = await privateEtcd('auth');
    const rootPassword = `root-${randomBytes(8).toString('hex')}`;
    const admin = new Etcd3({ hosts: server.endpoint });
    try {
      await admin.user('root').create(rootPassword);
      await admin.user('root').addRole('root');
      await admin.auth.authEnable({});
    } finally {
      admin.close();
    }
    const wrongPassword = `wrong-${randomBytes(8).toString('hex')}`;
    const bad = new EtcdDatastore({ endpoints: [server.endpoint], prefix: '/auth', auth: { username: 'root', password: wrongPassword } });
    const good = new EtcdDatastore({ endpoints: [server.endpoint], prefix: '/auth', auth: { username: 'root', password: rootPassword } });
    try {
      const err = await rejectsWith(bad.get('/k'), ErrorDatastorePermission);
      assert.equal(err.retryable, false);
      assert.ok(!err.message.includes(wrongPassword) && !err.message.includes(rootPassword), err.message);
      assert.ok(!err.stack?.includes(wrongPassword));
      const written = await good.create('/k', 'v');
      assert.deepEqual(await good.get('/k'), written);
    } finally {
      await Promise.all([bad.close(), good.close()]);
      await server.stop();
    }
  });
});

void describe('etcd datastore on an address where nothing listens', () => {
  void test('every call is a retryable unavailable error and a watch ends with one ERROR', async () => {
    const port = await freePort();
    const ds = new EtcdDatastore({ endpoints: [`http://127.0.0.1:${port}`], prefix: '/none', dialTimeoutMs: 2000 });
    try {
      await rejectsWith(ds.ensureInitialized(), ErrorDatastoreUnavailable);
      await rejectsWith(ds.create('/k', 'v'), ErrorDatastoreUnavailable);
      const w = new EventReader(ds.watch('/'));
      const ev = await w.next();
      assert.ok(ev !== 'end' && ev.type === 'ERROR' && ev.error instanceof ErrorWatchTerminated, JSON.stringify(ev));
      assert.equal(await w.next(), 'end');
    } finally {
      await ds.close();
    }
  });
});
