// The registry conformance suite (docs/design/contracts/registry.md): every behaviour of entries and operation
// records, written once and run against each persistence backend by registry-<backend>.test.ts. There is no
// separate directory (docs/design/contracts/registry.md#namespaces-instead-of-a-directory).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ConflictError, PermissionError, ValidationError } from '../../adapters/errors';
import { RedundantStore, SecretPersistenceProvider, type PersistenceProvider } from '../../adapters/persistence';
import {
  KeyPolicyError,
  OperationInProgressError,
  OperationMismatchError,
  Registry,
  RegistryKey,
  type Entry,
} from '../../adapters/registry';
import { testMachineId } from './persistence-conformance';
import { MAX_AUDIT_RECORDS, type AuditRecord } from '../../domain/audit';

/** How the suite gets persistence providers of one backend. */
export interface RegistryBackend {
  kind: string;
  /** A plain provider and the provider under the secret store, both isolated to `scope`. */
  make(scope: string): { plain: PersistenceProvider; secretInner: PersistenceProvider };
  /** Two namespaces entries may live in (they exist, for Kubernetes); the first is the registry default. */
  namespaces: [string, string];
  cleanup?(): Promise<void>;
}

const KEY = { id: 'k1', key: randomBytes(32).toString('base64') };

/** A registry over one backend, with the raw providers underneath for inspection. */
export interface RegistryUnderTest {
  registry: Registry;
  plain: PersistenceProvider;
  secretInner: PersistenceProvider;
}

export async function openRegistry(backend: RegistryBackend, scope: string, opts: { secrets?: boolean } = {}): Promise<RegistryUnderTest> {
  const { plain, secretInner } = backend.make(scope);
  await plain.initialize(testMachineId);
  await secretInner.initialize(testMachineId);
  const secret = new SecretPersistenceProvider(secretInner, { keys: [KEY] });
  const registry = new Registry({
    store: RedundantStore.over(plain),
    ...(opts.secrets === false ? {} : { secrets: RedundantStore.over(secret) }),
    defaultNamespace: backend.namespaces[0],
  });
  return { registry, plain, secretInner };
}

const uid = () => `id-${randomBytes(6).toString('hex')}`;

export function registryConformance(backend: RegistryBackend): void {
  void describe(`registry on ${backend.kind} (conformance)`, () => {
    let r: Registry;
    let under: RegistryUnderTest;
    const opened: RegistryUnderTest[] = [];

    before(async () => {
      under = await openRegistry(backend, `r${randomBytes(4).toString('hex')}`);
      opened.push(under);
      r = under.registry;
    });
    after(async () => {
      await Promise.allSettled(opened.flatMap((u) => [u.plain.close(), u.secretInner.close()]));
      await backend.cleanup?.();
    });

    const newInstance = async (id = uid()): Promise<Entry> => {
      const e = await r.open('service-instance', id);
      e.set(RegistryKey.InstanceID, id);
      e.set(RegistryKey.ServiceID, 'svc');
      e.set(RegistryKey.PlanID, 'plan');
      await e.commit();
      return e;
    };

    void test('entries are named registry-service-instance-<id> / registry-service-binding-<id>, values stored JSON-encoded', async () => {
      const id = uid();
      assert.equal(Registry.entryName('service-instance', id), `registry-service-instance-${id}`);
      assert.equal(Registry.entryName('service-binding', id), `registry-service-binding-${id}`);
      const e = await r.open('service-instance', id);
      assert.equal(e.name, `registry-service-instance-${id}`);
      e.set(RegistryKey.Parameters, { size: 3, tags: ['a'] });
      e.set('free-key', 'text');
      await e.commit();
      const raw = await under.plain.getObject(under.plain.replicas()[0]!, `RegistryEntry.registry.brokerflow.io/${backend.namespaces[0]}/${e.name}`);
      assert.deepEqual(raw?.data, { parameters: '{"size":3,"tags":["a"]}', 'free-key': '"text"' });
    });

    void test('commit creates the entry, exists() turns true and open reads every system key back', async () => {
      const id = uid();
      const e = await r.open('service-instance', id);
      assert.equal(e.exists(), false);
      const values: Record<string, unknown> = {
        namespace: backend.namespaces[0],
        'instance-id': id,
        'binding-id': 'b',
        'service-id': 'svc',
        'plan-id': 'plan',
        context: { platform: 'kubernetes' },
        parameters: { a: 1 },
        operation: 'provision',
        'operation-id': 'op',
        'operation-status': '',
        'dashboard-url': 'https://dash.example/x',
        credentials: { password: 'p' },
      };
      assert.deepEqual(Object.values(RegistryKey).sort(), Object.keys(values).sort());
      for (const [k, v] of Object.entries(values)) e.set(k, v);
      await e.commit();
      assert.equal(e.exists(), true);
      const back = await r.open('service-instance', id);
      assert.equal(back.exists(), true);
      for (const [k, v] of Object.entries(values)) assert.deepEqual(back.get(k), v, k);
      assert.equal(back.getString(RegistryKey.PlanID), 'plan');
      assert.throws(() => back.getString(RegistryKey.Parameters), ValidationError);
    });

    void test('values are copies: changing an object after set or after get does not change the entry', async () => {
      const e = await r.open('service-instance', uid());
      const params = { nested: { n: 1 } };
      e.set(RegistryKey.Parameters, params);
      params.nested.n = 2;
      e.get<{ nested: { n: number } }>(RegistryKey.Parameters)!.nested.n = 3;
      assert.deepEqual(e.get(RegistryKey.Parameters), { nested: { n: 1 } });
      assert.throws(() => e.set('bad', () => 1), ValidationError);
    });

    void test('a stale copy gets a conflict on commit and the stored entry is not overwritten', async () => {
      const e = await newInstance();
      const stale = await r.open('service-instance', e.id);
      e.set(RegistryKey.DashboardURL, 'https://first');
      await e.commit();
      stale.set(RegistryKey.DashboardURL, 'https://stale');
      await assert.rejects(stale.commit(), ConflictError);
      assert.equal((await r.open('service-instance', e.id)).get(RegistryKey.DashboardURL), 'https://first');
    });

    void test('of two concurrent commits of the same new entry exactly one succeeds', async () => {
      const id = uid();
      const a = await r.open('service-instance', id);
      const b = await r.open('service-instance', id);
      a.set('by', 'a');
      b.set('by', 'b');
      const results = await Promise.allSettled([a.commit(), b.commit()]);
      assert.equal(results.filter((x) => x.status === 'fulfilled').length, 1);
      const loser = results.find((x) => x.status === 'rejected') as PromiseRejectedResult;
      assert.ok(loser.reason instanceof ConflictError);
      const winner = results[0]!.status === 'fulfilled' ? 'a' : 'b';
      assert.equal((await r.open('service-instance', id)).get('by'), winner);
    });

    void test('of two concurrent commits of the same stored entry exactly one succeeds', async () => {
      const e = await newInstance();
      const a = await r.open('service-instance', e.id);
      const b = await r.open('service-instance', e.id);
      a.set('by', 'a');
      b.set('by', 'b');
      const results = await Promise.allSettled([a.commit(), b.commit()]);
      assert.equal(results.filter((x) => x.status === 'fulfilled').length, 1);
      assert.ok((results.find((x) => x.status === 'rejected') as PromiseRejectedResult).reason instanceof ConflictError);
    });

    void test('a copy read before the entry was deleted cannot recreate it silently', async () => {
      const e = await newInstance();
      const stale = await r.open('service-instance', e.id);
      await e.delete();
      stale.set('x', 1);
      await assert.rejects(stale.commit(), ConflictError);
      assert.equal((await r.open('service-instance', e.id)).exists(), false);
    });

    void test('delete removes the entry and deleting a missing entry succeeds', async () => {
      const e = await newInstance();
      await e.delete();
      assert.equal(e.exists(), false);
      assert.equal((await r.open('service-instance', e.id)).exists(), false);
      await e.delete();
      await (await r.open('service-binding', uid())).delete();
    });

    void test('clone is a deep read-only copy: commit and delete on it fail with the permission error, the original stays writable', async () => {
      const e = await newInstance();
      e.set(RegistryKey.Parameters, { deep: { v: 1 } });
      const c = e.clone();
      assert.equal(c.isReadOnly(), true);
      e.set(RegistryKey.Parameters, { deep: { v: 2 } });
      assert.deepEqual(c.get(RegistryKey.Parameters), { deep: { v: 1 } });
      await assert.rejects(c.commit(), PermissionError);
      await assert.rejects(c.delete(), PermissionError);
      await assert.rejects(r.beginOperation(c, { operation: 'update', operationId: 'x' }), PermissionError);
      await e.commit();
      assert.deepEqual((await r.open('service-instance', e.id)).get(RegistryKey.Parameters), { deep: { v: 2 } });
    });

    void test('the user policy: identity keys read-only, context/parameters/operation keys hidden, others read-write; violations are configuration errors', async () => {
      const e = await newInstance();
      e.set(RegistryKey.Context, { c: 1 });
      for (const k of ['namespace', 'instance-id', 'service-id', 'plan-id']) {
        e.getUser(k);
        assert.throws(() => e.setUser(k, 'x'), KeyPolicyError, `write ${k}`);
      }
      for (const k of ['context', 'parameters', 'operation', 'operation-id', 'operation-status']) {
        assert.throws(() => e.getUser(k), KeyPolicyError, `read ${k}`);
        assert.throws(() => e.setUser(k, 'x'), KeyPolicyError, `write ${k}`);
      }
      for (const k of ['dashboard-url', 'credentials', 'binding-id', 'my-template-key']) {
        e.setUser(k, { v: k });
        assert.deepEqual(e.getUser(k), { v: k });
      }
      try {
        e.getUser('context');
        assert.fail('reading context must fail');
      } catch (err) {
        assert.ok(err instanceof KeyPolicyError && !(err instanceof PermissionError));
        assert.equal((err as KeyPolicyError).code, 'Configuration');
      }
      await e.commit();
    });

    void test('inherit copies the instance keys into a new binding once; later instance changes do not flow in', async () => {
      const inst = await newInstance();
      inst.set(RegistryKey.DashboardURL, 'https://v1');
      await r.beginOperation(inst, { operation: 'provision', operationId: 'op-inherit' });
      const bid = uid();
      const b = await r.open('service-binding', bid, { instanceId: inst.id });
      b.inherit(inst);
      b.set(RegistryKey.BindingID, bid);
      assert.equal(b.get(RegistryKey.ServiceID), 'svc');
      assert.equal(b.get(RegistryKey.Operation), undefined, 'the instance operation is not the binding operation');
      await b.commit();
      inst.set(RegistryKey.DashboardURL, 'https://v2');
      await inst.commit();
      const again = await r.open('service-binding', bid, { instanceId: inst.id });
      again.inherit(inst);
      assert.equal(again.get(RegistryKey.DashboardURL), 'https://v1');
      assert.throws(() => inst.inherit(b), ValidationError);
    });

    void test('credentials are kept encrypted in the secret store and never in the plain store', async () => {
      const inst = await newInstance();
      const b = await r.open('service-binding', uid(), { instanceId: inst.id });
      b.inherit(inst);
      b.set(RegistryKey.Credentials, { password: 'plaintext-hunter2' });
      await b.commit();
      const raw = await under.plain.getAllObjects(under.plain.replicas()[0]!, { apiVersion: 'registry.brokerflow.io/v1', kind: 'RegistryEntry' });
      assert.ok(raw.length > 0);
      assert.ok(!JSON.stringify(raw).includes('hunter2'), 'not in the plain store');
      const sealed = await under.secretInner.getAllObjects(under.secretInner.replicas()[0]!, { apiVersion: 'registry.brokerflow.io/v1', kind: 'RegistryCredentials' });
      assert.equal(sealed.length >= 1, true);
      assert.ok(!JSON.stringify(sealed).includes('hunter2'), 'encrypted at rest');
      assert.equal((sealed[0]!.encrypted as { keyId: string }).keyId, 'k1');
      assert.deepEqual((await r.open('service-binding', b.id, { instanceId: inst.id })).get(RegistryKey.Credentials), { password: 'plaintext-hunter2' });
      b.unset(RegistryKey.Credentials);
      await b.commit();
      assert.equal((await r.open('service-binding', b.id, { instanceId: inst.id })).get(RegistryKey.Credentials), undefined);
    });

    void test('committing credentials without a secret store fails before anything is written', async () => {
      const noSecrets = await openRegistry(backend, `n${randomBytes(4).toString('hex')}`, { secrets: false });
      opened.push(noSecrets);
      const e = await noSecrets.registry.open('service-binding', uid());
      e.set(RegistryKey.Credentials, { password: 'p' });
      await assert.rejects(e.commit(), ValidationError);
      assert.equal((await noSecrets.registry.open('service-binding', e.id)).exists(), false);
    });

    void test('begin records an in-progress operation; beginning the same operation ID again is a no-op', async () => {
      const e = await r.open('service-instance', uid());
      await r.beginOperation(e, { operation: 'provision', operationId: 'op-1' });
      assert.equal(e.exists(), true, 'begin creates the entry');
      assert.deepEqual(await r.readOperation('service-instance', e.id), { operation: 'provision', operationId: 'op-1', state: 'in progress' });
      const version = e.resourceVersion;
      await r.beginOperation(e, { operation: 'provision', operationId: 'op-1' });
      assert.equal(e.resourceVersion, version, 'nothing written');
      const stale = await r.open('service-instance', e.id);
      await r.beginOperation(stale, { operation: 'provision', operationId: 'op-1' });
    });

    void test('a retried begin with a copy read before the first begin is recognized as done', async () => {
      const id = uid();
      const first = await r.open('service-instance', id);
      const retry = await r.open('service-instance', id);
      await r.beginOperation(first, { operation: 'provision', operationId: 'op-r' });
      await r.beginOperation(retry, { operation: 'provision', operationId: 'op-r' });
      assert.equal(retry.get(RegistryKey.OperationID), 'op-r');
      assert.equal(retry.resourceVersion, first.resourceVersion);
    });

    void test('beginning another operation while one is open fails with OperationInProgressError', async () => {
      const e = await r.open('service-instance', uid());
      await r.beginOperation(e, { operation: 'provision', operationId: 'op-a' });
      await assert.rejects(r.beginOperation(e, { operation: 'deprovision', operationId: 'op-b' }), OperationInProgressError);
      await r.completeOperation(e, { operationId: 'op-a' });
      const between = await r.open('service-instance', e.id);
      await r.beginOperation(await r.open('service-instance', e.id), { operation: 'update', operationId: 'op-c' });
      // A copy read before op-c began sees nothing open; its commit conflicts and the re-read finds op-c.
      await assert.rejects(r.beginOperation(between, { operation: 'update', operationId: 'op-d' }), OperationInProgressError);
      assert.equal(between.get(RegistryKey.OperationID), 'op-a', 'the caller copy is left as it was');
    });

    void test('complete records success as "" and failure as its error text; the same completion again is a no-op', async () => {
      const ok = await r.open('service-instance', uid());
      await r.beginOperation(ok, { operation: 'provision', operationId: 'p1' });
      await r.completeOperation(ok, { operationId: 'p1' });
      assert.equal(ok.get(RegistryKey.OperationStatus), '');
      assert.deepEqual(await r.readOperation('service-instance', ok.id), { operation: 'provision', operationId: 'p1', state: 'succeeded' });
      await r.completeOperation(ok, { operationId: 'p1' });
      await assert.rejects(r.completeOperation(ok, { operationId: 'p1', error: 'late failure' }), OperationMismatchError);

      const bad = await r.open('service-instance', uid());
      await r.beginOperation(bad, { operation: 'provision', operationId: 'p2' });
      await r.completeOperation(bad, { operationId: 'p2', error: 'quota exceeded' });
      assert.deepEqual(await r.readOperation('service-instance', bad.id), {
        operation: 'provision',
        operationId: 'p2',
        state: 'failed',
        description: 'quota exceeded',
      });
      const retried = await r.open('service-instance', bad.id);
      await r.completeOperation(retried, { operationId: 'p2', error: 'quota exceeded' });
    });

    void test('completing an operation that is not the current one fails with OperationMismatchError', async () => {
      const e = await r.open('service-instance', uid());
      await r.beginOperation(e, { operation: 'provision', operationId: 'mine' });
      await assert.rejects(r.completeOperation(e, { operationId: 'someone-else' }), OperationMismatchError);
      await assert.rejects(r.completeOperation(await r.open('service-instance', uid()), { operationId: 'x' }), OperationMismatchError);
    });

    void test('the final state stays readable on every read until the next operation begins', async () => {
      const e = await r.open('service-instance', uid());
      await r.beginOperation(e, { operation: 'provision', operationId: 'keep' });
      await r.completeOperation(e, { operationId: 'keep', error: 'boom' });
      for (let i = 0; i < 3; i++) assert.equal((await r.readOperation('service-instance', e.id))?.state, 'failed');
      await r.beginOperation(e, { operation: 'update', operationId: 'next' });
      assert.deepEqual(await r.readOperation('service-instance', e.id), { operation: 'update', operationId: 'next', state: 'in progress' });
    });

    void test('a successful deprovision deletes the entry and leaves a tombstone that reads as gone; a new provision replaces it', async () => {
      const e = await newInstance();
      await r.beginOperation(e, { operation: 'deprovision', operationId: 'd1' });
      await r.completeOperation(e, { operationId: 'd1' });
      assert.equal(e.exists(), false);
      assert.equal((await r.open('service-instance', e.id)).exists(), false);
      for (let i = 0; i < 2; i++) {
        assert.deepEqual(await r.readOperation('service-instance', e.id), { operation: 'deprovision', operationId: 'd1', state: 'succeeded', gone: true });
      }
      await r.completeOperation(e, { operationId: 'd1' });
      await r.completeOperation(await r.open('service-instance', e.id), { operationId: 'd1' });
      const again = await r.open('service-instance', e.id);
      await r.beginOperation(again, { operation: 'provision', operationId: 'p-again' });
      assert.deepEqual(await r.readOperation('service-instance', e.id), { operation: 'provision', operationId: 'p-again', state: 'in progress' });
      await again.delete();
      assert.equal(await r.readOperation('service-instance', e.id), undefined, 'the tombstone was replaced, not kept');
    });

    void test('a failed deprovision keeps the entry; a successful unbind leaves a gone tombstone for the binding', async () => {
      const inst = await newInstance();
      await r.beginOperation(inst, { operation: 'deprovision', operationId: 'df' });
      await r.completeOperation(inst, { operationId: 'df', error: 'still in use' });
      assert.equal((await r.open('service-instance', inst.id)).exists(), true);
      const b = await r.open('service-binding', uid(), { instanceId: inst.id });
      b.inherit(inst);
      b.set(RegistryKey.Credentials, { token: 't' });
      await r.beginOperation(b, { operation: 'bind', operationId: 'b1' });
      await r.completeOperation(b, { operationId: 'b1' });
      await r.beginOperation(b, { operation: 'unbind', operationId: 'u1' });
      await r.completeOperation(b, { operationId: 'u1' });
      assert.deepEqual(await r.readOperation('service-binding', b.id, { instanceId: inst.id }), {
        operation: 'unbind',
        operationId: 'u1',
        state: 'succeeded',
        gone: true,
        instanceId: inst.id,
      });
      const sealed = await under.secretInner.getAllObjects(under.secretInner.replicas()[0]!, { apiVersion: 'registry.brokerflow.io/v1', kind: 'RegistryCredentials' });
      assert.ok(!sealed.some((o) => o.metadata.name === b.name), 'the credentials went with the binding');
      await assert.rejects(r.beginOperation(b, { operation: 'provision', operationId: 'x' }), ValidationError);
    });

    void test('readOperation of an ID never used answers undefined', async () => {
      assert.equal(await r.readOperation('service-instance', uid()), undefined);
      await newInstance().then((e) => r.readOperation('service-instance', e.id)).then((op) => assert.equal(op, undefined));
    });

    void test('list returns the entries of one type with their operation and without credentials', async () => {
      const own = await openRegistry(backend, `l${randomBytes(4).toString('hex')}`);
      opened.push(own);
      const a = await own.registry.open('service-instance', 'list-a');
      a.set(RegistryKey.PlanID, 'small');
      await own.registry.beginOperation(a, { operation: 'provision', operationId: 'la' });
      const b = await own.registry.open('service-binding', 'list-b', { instanceId: 'list-a' });
      b.set(RegistryKey.Credentials, { secret: 's' });
      await b.commit();
      const instances = await own.registry.list('service-instance');
      assert.deepEqual(
        instances.map((s) => ({ id: s.id, plan: s.values['plan-id'], op: s.operation?.state })),
        [{ id: 'list-a', plan: 'small', op: 'in progress' }],
      );
      const bindings = await own.registry.list('service-binding');
      assert.deepEqual(bindings.map((s) => [s.id, s.hasCredentials, 'credentials' in s.values]), [['list-b', true, false]]);
    });

    void test('an audit trail keeps each operation once, records its end once, outlives the entry and stays bounded', async () => {
      const id = uid();
      const record = (n: number): AuditRecord => ({ operation: 'update', operationId: `op-${n}`, requestedBy: 'cloudfoundry/alice', acceptedAt: new Date(Date.UTC(2030, 0, 1)).toISOString(), changes: {} });
      assert.equal(await r.audit.read(id), undefined);
      const e = await newInstance(id);
      await r.audit.append(id, record(0));
      await r.audit.append(id, record(0));
      await r.audit.complete(id, 'op-0', { error: 'it failed', completedAt: new Date(Date.UTC(2030, 0, 1, 0, 0, 3)) });
      await r.audit.complete(id, 'op-0', {});
      assert.deepEqual(await r.audit.read(id), [{ ...record(0), outcome: { state: 'failed', description: 'it failed', completedAt: '2030-01-01T00:00:03.000Z', durationMs: 3000 } }]);
      await e.delete();
      assert.equal((await r.audit.read(id))?.length, 1, 'the trail outlives the entry');
      // Concurrent writers of one trail (binding operations of one instance) all get their record in.
      await Promise.all(Array.from({ length: 8 }, (_, n) => r.audit.append(id, record(n + 1))));
      assert.deepEqual((await r.audit.read(id))?.map((x) => x.operationId).sort(), Array.from({ length: 9 }, (_, n) => `op-${n}`).sort());
      for (let n = 9; n < MAX_AUDIT_RECORDS + 5; n++) await r.audit.append(id, record(n));
      const trail = await r.audit.read(id);
      assert.equal(trail?.length, MAX_AUDIT_RECORDS);
      assert.equal(trail?.[trail.length - 1]?.operationId, `op-${MAX_AUDIT_RECORDS + 4}`);
      await assert.rejects(r.audit.read('../x'), ValidationError);
    });

    void test('bad IDs, keys and operation IDs are rejected before any I/O', async () => {
      for (const id of ['../x', 'a/b', '', 'x'.repeat(201), 'nul\0', 'a..b']) {
        await assert.rejects(r.open('service-instance', id), ValidationError, JSON.stringify(id));
        await assert.rejects(r.readOperation('service-binding', id), ValidationError);
      }
      await assert.rejects(r.open('service-plan' as 'service-instance', 'x'), ValidationError);
      const e = await r.open('service-instance', uid());
      assert.throws(() => e.set('../key', 1), ValidationError);
      await assert.rejects(r.beginOperation(e, { operation: 'provision', operationId: '' }), ValidationError);
      await assert.rejects(r.beginOperation(e, { operation: 'provision', operationId: 'x'.repeat(10_001) }), ValidationError);
      await assert.rejects(r.beginOperation(e, { operation: 'bind', operationId: 'x' }), ValidationError);
      assert.equal(e.exists(), false);
    });
  });
}
