// The file backend: the conformance suite, plus what only files have (atomic replacement, no path escape,
// stale locks of dead processes, one folder shared by two processes).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilePersistenceProvider } from '../../adapters/persistence';
import { persistenceConformance, testMachineId } from '../conformance/persistence-conformance';

const root = mkdtempSync(join(tmpdir(), 'bf-persist-file-'));

persistenceConformance({
  kind: 'file',
  namespaces: ['team-a', 'team-b'],
  make: (scopes) => new FilePersistenceProvider({ directories: scopes.map((s) => join(root, s)) }),
  // A regular file where the data directory should be: mkdir fails with ENOTDIR.
  makeUnreachable: () => {
    writeFileSync(join(root, 'not-a-dir'), 'x');
    return new FilePersistenceProvider({ directories: [join(root, 'not-a-dir', 'data')] });
  },
  cleanup: async () => rmSync(root, { recursive: true, force: true }),
});

void describe('file persistence provider', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bf-persist-file-x-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  void test('objects are plain JSON files and no temp or lock file is left after a write', async () => {
    const p = new FilePersistenceProvider({ directories: [join(dir, 'plain')] });
    await p.initialize(testMachineId);
    const inst = p.replicas()[0]!;
    await p.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: 'n1' }, text: 'hello' });
    const folder = join(dir, 'plain', 'Note', '_');
    assert.deepEqual(readdirSync(folder), ['n1.json']);
    assert.equal(JSON.parse(readFileSync(join(folder, 'n1.json'), 'utf8')).text, 'hello');
  });

  void test('a path-escaping name never creates a file outside the data directory', async () => {
    const data = join(dir, 'escape', 'data');
    const p = new FilePersistenceProvider({ directories: [data] });
    await p.initialize(testMachineId);
    const inst = p.replicas()[0]!;
    await assert.rejects(p.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: '../../outside' } }));
    await assert.rejects(p.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: 'x', namespace: '..' } }));
    assert.deepEqual(readdirSync(join(dir, 'escape')), ['data']);
    assert.deepEqual(readdirSync(data), []);
  });

  void test('a lock left by a killed process is broken, so writes go on', async () => {
    const p = new FilePersistenceProvider({ directories: [join(dir, 'stale')], lockTimeoutMs: 3_000 });
    await p.initialize(testMachineId);
    const inst = p.replicas()[0]!;
    await p.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: 'locked' }, n: 1 });
    // A PID that has exited (a finished child) holding the lock, as after a SIGKILL mid-write.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(join(dir, 'stale', 'Note', '_', '.locked.json.lock'), `${testMachineId.value} ${dead} deadbeef`);
    const t0 = Date.now();
    await p.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: 'locked' }, n: 2 });
    assert.ok(Date.now() - t0 < 2_000, 'broken at once, not after the timeout');
    assert.equal((await p.getObject(inst, 'Note/locked'))?.n, 2);
  });

  void test('a lock held by a live process makes a writer wait and then fail as unavailable', async () => {
    const p = new FilePersistenceProvider({ directories: [join(dir, 'held')], lockTimeoutMs: 300 });
    await p.initialize(testMachineId);
    const inst = p.replicas()[0]!;
    await p.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: 'busy' } });
    // The parent of this test process is alive for the whole test.
    writeFileSync(join(dir, 'held', 'Note', '_', '.busy.json.lock'), `${testMachineId.value} ${process.ppid} cafe`);
    await assert.rejects(p.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: 'busy' } }), (err: Error) => err.name === 'UnavailableError');
    const status = p.replicaStatus(inst);
    assert.equal(status.exists && status.status, false, 'reported down while it cannot write');
  });

  void test('two providers on one folder read what the other wrote and keep optimistic concurrency', async () => {
    const shared = join(dir, 'shared');
    const a = new FilePersistenceProvider({ directories: [shared] });
    const b = new FilePersistenceProvider({ directories: [shared] });
    await a.initialize(testMachineId);
    await b.initialize(testMachineId);
    const inst = a.replicas()[0]!;
    const v1 = await a.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: 'both' }, by: 'a' });
    assert.equal((await b.getObject(inst, v1.key))?.by, 'a');
    await b.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: 'both' }, by: 'b' }, { ifMatch: v1.resourceVersion });
    await assert.rejects(a.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: 'both' }, by: 'a2' }, { ifMatch: v1.resourceVersion }));
    assert.equal((await a.getObject(inst, v1.key))?.by, 'b');
  });

  void test('abandoned temp files of a crashed write are removed at initialize', async () => {
    const data = join(dir, 'tmpclean');
    mkdirSync(join(data, 'Note', '_'), { recursive: true });
    const tmp = join(data, 'Note', '_', '.x.json.abc.tmp');
    writeFileSync(tmp, '{"torn');
    const p = new FilePersistenceProvider({ directories: [data], staleMs: 0 });
    await p.initialize(testMachineId);
    assert.equal(existsSync(tmp), false);
    assert.deepEqual(await p.getAllObjects(p.replicas()[0]!, { apiVersion: 'v1', kind: 'Note' }), []);
  });
});
