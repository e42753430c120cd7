// Degraded replicas reported and repaired: a replica that is down while writes happen is reported (store health,
// the broker's /readyz detail and gauges), repaired when it is back (by `repair()`, which runs at start and
// periodically), and what it missed is kept in the other replicas so a restart of the store still repairs it.
// The replica "goes down" by having its directory swapped for a plain file (every call fails, even as root).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry as PromRegistry } from 'prom-client';
import { FilePersistenceProvider, PENDING_REPAIRS_TYPE, RedundantStore, type PersistedObject } from '../../adapters/persistence';
import { createRegistry, type RegistryBundle } from '../../adapters/factory';
import { REGISTRY_API_VERSION, RegistryKind } from '../../adapters/registry';
import { registryReplicaMetrics } from '../../client/broker/server';
import { writeRawTestConfig, writeTestConfig } from '../support/config';
import { loadRuntimeConfig } from '../../config/runtime';
import { requireTestEnv } from '../support/env';
import { testMachineId } from '../conformance/persistence-conformance';

const root = mkdtempSync(join(requireTestEnv('workDir'), 'bf-repair-'));
after(() => rmSync(root, { recursive: true, force: true }));

const note = (name: string, text: string): PersistedObject => ({ apiVersion: 'v1', kind: 'Note', metadata: { name }, text });

function down(dir: string): void {
  renameSync(dir, `${dir}.away`);
  writeFileSync(dir, 'not a directory');
}
function back(dir: string): void {
  rmSync(dir);
  renameSync(`${dir}.away`, dir);
}

async function openStore(a: string, b: string): Promise<{ provider: FilePersistenceProvider; store: RedundantStore; ia: string; ib: string }> {
  const provider = new FilePersistenceProvider({ directories: [a, b] });
  await provider.initialize(testMachineId);
  const [ia, ib] = provider.replicas() as [string, string];
  return { provider, store: RedundantStore.over(provider), ia, ib };
}

void describe('redundant store repairs', () => {
  void test('a replica down during a write is degraded, kept in a journal on the other replica, and healed by repair() once back', async () => {
    const a = join(root, 'run', 'a');
    const b = join(root, 'run', 'b');
    const { provider, store, ia, ib } = await openStore(a, b);
    down(a);
    const put = await store.put(note('n1', 'while a was down'));
    const health = () => Object.fromEntries(store.health().map((h) => [h.replica === ia ? 'a' : 'b', [h.degraded, h.pendingRepairs, h.primary]]));
    assert.deepEqual(health(), { a: [true, 1, false], b: [false, 0, true] });
    // The journal of what a missed is on b.
    const journals = await provider.getAllObjects(ib, PENDING_REPAIRS_TYPE);
    assert.deepEqual(journals.map((j) => [j.replica, j.keys]), [[ia, [put.key]]]);

    await store.repair();
    assert.deepEqual(health().a, [true, 1, false], 'still down: still behind');

    back(a);
    await store.repair();
    assert.equal((await provider.getObject(ia, put.key))?.text, 'while a was down', 'the object is on the replica');
    assert.deepEqual(health(), { a: [false, 0, true], b: [false, 0, false] });
    assert.deepEqual(await provider.getAllObjects(ib, PENDING_REPAIRS_TYPE), [], 'the journal is gone once repaired');
    await provider.close();
  });

  void test('across a restart: the new store reads the journal, keeps the stale replica out of reads, and repairs it', async () => {
    const a = join(root, 'restart', 'a');
    const b = join(root, 'restart', 'b');
    const first = await openStore(a, b);
    await first.store.put(note('n1', 'v1'));
    down(a);
    const put = await first.store.put(note('n1', 'v2'));
    await first.store.put(note('n2', 'only on b'));
    await first.provider.close();
    back(a);

    // A restart: a is back but stale (v1, no n2), and first in the list.
    const second = await openStore(a, b);
    assert.equal((await second.provider.getObject(second.ia, put.key))?.text, 'v1');
    await second.store.recover();
    assert.equal((await second.provider.getObject(second.ia, put.key))?.text, 'v2');
    assert.equal((await second.provider.getObject(second.ia, 'Note/n2'))?.text, 'only on b');
    assert.deepEqual(second.store.degraded(), []);
    assert.equal(second.store.pendingRepairs(), 0);
    assert.deepEqual(await second.provider.getAllObjects(second.ib, PENDING_REPAIRS_TYPE), []);
    assert.equal((await second.store.get(put.key))?.text, 'v2');
    await second.provider.close();
  });

  void test('without the journal (persistPending false) the restarted store would read the stale replica: why it is kept', async () => {
    const a = join(root, 'nojournal', 'a');
    const b = join(root, 'nojournal', 'b');
    const first = await openStore(a, b);
    const noJournal = new RedundantStore(first.provider.replicas().map((replica) => ({ provider: first.provider, replica })), { persistPending: false });
    await noJournal.put(note('n1', 'v1'));
    down(a);
    await noJournal.put(note('n1', 'v2'));
    await first.provider.close();
    back(a);
    const second = await openStore(a, b);
    const restarted = new RedundantStore(second.provider.replicas().map((replica) => ({ provider: second.provider, replica })), { persistPending: false });
    await restarted.recover();
    assert.equal((await restarted.get('Note/n1'))?.text, 'v1', 'the stale copy is served');
    await second.provider.close();
  });
});

void describe('registry built by the factory: repaired at start and periodically, reported as metrics', () => {
  const gauges = async (register: PromRegistry) => {
    const text = await register.metrics();
    const sum = (name: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(`${name}{`))
        .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    return { degraded: sum('brokerflow_registry_replica_degraded'), pending: sum('brokerflow_registry_pending_repairs') };
  };

  void test('a replica down during a bind is reported, healed by the periodic repair, and again after a restart', { timeout: 60_000 }, async () => {
    const a = join(root, 'factory', 'a');
    const b = join(root, 'factory', 'b');
    const { config } = writeTestConfig({ registry: { backend: 'file', file: { dirs: [a, b] }, repairIntervalSeconds: 5 } });
    let bundle: RegistryBundle = await createRegistry(config);
    const register = new PromRegistry();
    const bundleRef = { replicaHealth: () => bundle.replicaHealth() };
    registryReplicaMetrics(register, bundleRef);
    const aObjects = new FilePersistenceProvider({ directories: [join(a, 'objects'), join(a, 'secrets')] });
    const instanceKey = (id: string) => `${RegistryKind.Entry}.registry.brokerflow.io/registry-service-instance-${id}`;
    try {
      assert.deepEqual(await gauges(register), { degraded: 0, pending: 0 });

      // Down while an instance and a binding with credentials are recorded.
      down(a);
      const id1 = `i-${randomUUID()}`;
      const inst = await bundle.registry.open('service-instance', id1);
      await bundle.registry.beginOperation(inst, { operation: 'provision', operationId: `provision-${randomBytes(4).toString('hex')}` });
      const bind = await bundle.registry.open('service-binding', `b-${randomUUID()}`, { instanceId: id1 });
      bind.set('credentials', { password: 'p' });
      await bind.commit();
      const during = await gauges(register);
      assert.equal(during.degraded, 2, 'the objects and the secrets replica on a');
      assert.ok(during.pending >= 3, `pending ${during.pending}`);
      assert.deepEqual(
        bundle.replicaHealth().filter((r) => r.degraded).map((r) => [r.store, r.up, r.primary]),
        [
          ['objects', false, false],
          ['secrets', false, false],
        ],
      );

      // Back: the periodic repair (every 5 s) heals it without any further write.
      back(a);
      const deadline = Date.now() + 20_000;
      while ((await gauges(register)).degraded > 0) {
        assert.ok(Date.now() < deadline, 'not repaired within 20 s');
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.deepEqual(await gauges(register), { degraded: 0, pending: 0 });
      await aObjects.initialize(testMachineId);
      const [aPlain, aSecret] = aObjects.replicas() as [string, string];
      assert.equal((await aObjects.getObject(aPlain, instanceKey(id1)))?.id, id1, 'the entry is on the healed replica');
      assert.equal((await aObjects.getAllObjects(aSecret, { apiVersion: REGISTRY_API_VERSION, kind: RegistryKind.Credentials })).length, 1);

      // Down again, a write, and the process stops before a is back; the next start repairs it.
      down(a);
      const id2 = `i-${randomUUID()}`;
      const inst2 = await bundle.registry.open('service-instance', id2);
      await bundle.registry.beginOperation(inst2, { operation: 'provision', operationId: `provision-${randomBytes(4).toString('hex')}` });
      assert.equal((await gauges(register)).degraded, 1);
      await bundle.close();
      back(a);
      bundle = await createRegistry(config);
      assert.deepEqual(await gauges(register), { degraded: 0, pending: 0 }, 'repaired at start');
      assert.equal((await aObjects.getObject(aPlain, instanceKey(id2)))?.id, id2);
    } finally {
      await bundle.close();
      await aObjects.close();
    }
  });
});

void describe('registry started while a replica is down', () => {
  void test('starts on the other replica, reports the down one, and reopens and heals it once it is back', { timeout: 60_000 }, async () => {
    const a = join(root, 'startdown', 'a');
    const b = join(root, 'startdown', 'b');
    const { config } = writeTestConfig({ registry: { backend: 'file', file: { dirs: [a, b] }, repairIntervalSeconds: 5 } });
    let bundle = await createRegistry(config);
    const id = `i-${randomUUID()}`;
    try {
      down(a);
      const inst = await bundle.registry.open('service-instance', id);
      await bundle.registry.beginOperation(inst, { operation: 'provision', operationId: `provision-${randomBytes(4).toString('hex')}` });
      await bundle.close();
      // Still down at the restart.
      bundle = await createRegistry(config);
      assert.deepEqual(
        bundle.replicaHealth().map((r) => [r.store, r.up, r.degraded, r.primary]),
        [
          ['objects', false, true, false],
          ['objects', true, false, true],
          ['secrets', false, true, false],
          ['secrets', true, false, true],
        ],
      );
      assert.ok(bundle.replicaHealth()[0]!.pendingRepairs >= 1, 'what it missed before the restart is known');
      assert.equal((await bundle.registry.readOperation('service-instance', id))?.operation, 'provision', 'served by b');
      back(a);
      const deadline = Date.now() + 20_000;
      while (bundle.replicaHealth().some((r) => r.degraded)) {
        assert.ok(Date.now() < deadline, `not healed within 20 s: ${JSON.stringify(bundle.replicaHealth())}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const onA = new FilePersistenceProvider({ directories: [join(a, 'objects')] });
      await onA.initialize(testMachineId);
      assert.equal((await onA.getObject(onA.replicas()[0]!, `${RegistryKind.Entry}.registry.brokerflow.io/registry-service-instance-${id}`))?.id, id);
      await onA.close();
    } finally {
      await bundle.close();
    }
  });
});

void describe('repair interval', () => {
  void test('is validated', () => {
    for (const bad of [0, 4, 1.5, 'often', 86401]) {
      const { file } = writeRawTestConfig({ registry: { backend: 'file', file: { dirs: ['r'] }, repairIntervalSeconds: bad } });
      assert.throws(() => loadRuntimeConfig(file), /repairIntervalSeconds/);
    }
    const store = RedundantStore.over(new FilePersistenceProvider({ directories: [join(root, 'x')] }));
    assert.throws(() => store.startRepairs(0), /interval/);
  });
});
