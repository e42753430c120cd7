// Registry names, keys and the user access policy table: pure rules checked without any store.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../adapters/errors';
import { RedundantStore, type PersistenceProvider } from '../../adapters/persistence';
import { Entry, KeyPolicyError, RegistryKey, USER_HIDDEN_KEYS, USER_READ_ONLY_KEYS, entryName, validateId } from '../../adapters/registry';

// An entry that is never committed needs a store only to exist; nothing here reaches it.
const unusedProvider = { replicaStatus: () => ({ exists: true, status: true, meanPersistLatencyMs: 0, puts: 0 }), replicas: () => ['x'] } as unknown as PersistenceProvider;
const stores = { store: RedundantStore.over(unusedProvider) };

void describe('registry names and keys', () => {
  void test('entry names follow the seed: registry-<type>-<id>', () => {
    assert.equal(entryName('service-instance', 'abc-123'), 'registry-service-instance-abc-123');
    assert.equal(entryName('service-binding', 'B.1_x'), 'registry-service-binding-B.1_x');
  });

  void test('IDs that could escape a name or path are rejected', () => {
    for (const id of ['', '..', '../a', 'a/b', 'a\\b', 'a b', 'a\0', '-a', 'a'.repeat(201)]) {
      assert.throws(() => validateId(id), ValidationError, JSON.stringify(id));
    }
    assert.equal(validateId('6f1c8e9a-2b3d-4e5f-8a9b-0c1d2e3f4a5b'), '6f1c8e9a-2b3d-4e5f-8a9b-0c1d2e3f4a5b');
  });

  void test('the twelve system keys are the seed constants', () => {
    assert.deepEqual(Object.values(RegistryKey), [
      'namespace', 'instance-id', 'binding-id', 'service-id', 'plan-id', 'context', 'parameters',
      'operation', 'operation-id', 'operation-status', 'dashboard-url', 'credentials',
    ]);
  });

  void test('the user policy table: every system key is read-only, hidden, or read-write as the contract says', () => {
    const e = new Entry(stores, 'service-instance', 'policy');
    for (const k of Object.values(RegistryKey)) e.set(k, 'v');
    const readable = (k: string) => { try { e.getUser(k); return true; } catch (err) { assert.ok(err instanceof KeyPolicyError); return false; } };
    const writable = (k: string) => { try { e.setUser(k, 'w'); return true; } catch (err) { assert.ok(err instanceof KeyPolicyError); return false; } };
    const table = Object.fromEntries(Object.values(RegistryKey).map((k) => [k, `${readable(k) ? 'r' : '-'}${writable(k) ? 'w' : '-'}`]));
    assert.deepEqual(table, {
      namespace: 'r-', 'instance-id': 'r-', 'service-id': 'r-', 'plan-id': 'r-',
      context: '--', parameters: '--', operation: '--', 'operation-id': '--', 'operation-status': '--',
      'binding-id': 'rw', 'dashboard-url': 'rw', credentials: 'rw',
    });
    // Beyond the system keys, brokerflow's lock shares, pending update target and provision mark are hidden from templates too.
    for (const k of ['pending-update', 'binding-operations', 'provision-pending']) assert.equal(readable(k) || writable(k), false, k);
    assert.equal(USER_READ_ONLY_KEYS.size + USER_HIDDEN_KEYS.size, 12);
  });
});
