// Object identity and keys, instance names and the machine ID: pure rules checked without any server.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ValidationError } from '../../adapters/errors';
import { MachineId, formatKey, replicaName, objectKey, parseKey } from '../../adapters/persistence';

void describe('object keys', () => {
  void test('a key is <Kind>[.<group>]/[<namespace>/]<name> and parses back to the same identity', () => {
    const cases = [
      { obj: { apiVersion: 'v1', kind: 'Note', metadata: { name: 'a' } }, key: 'Note/a' },
      { obj: { apiVersion: 'registry.brokerflow.io/v1', kind: 'RegistryEntry', metadata: { name: 'registry-service-instance-x', namespace: 'team-a' } }, key: 'RegistryEntry.registry.brokerflow.io/team-a/registry-service-instance-x' },
      { obj: { apiVersion: 'apps/v1beta2', kind: 'Thing', metadata: { name: 'A_b.c-1' } }, key: 'Thing.apps/A_b.c-1' },
    ];
    for (const { obj, key } of cases) {
      assert.equal(objectKey(obj), key);
      assert.equal(formatKey(parseKey(key)), key);
    }
  });

  void test('identities that could escape a path, prefix or name are rejected', () => {
    const bad = [
      { apiVersion: 'v1', kind: 'Note', metadata: { name: '../x' } },
      { apiVersion: 'v1', kind: 'Note', metadata: { name: 'x/y' } },
      { apiVersion: 'v1', kind: 'Note', metadata: { name: 'x\0' } },
      { apiVersion: 'v1', kind: 'Note', metadata: { name: 'a'.repeat(254) } },
      { apiVersion: 'v1', kind: 'Note', metadata: { name: 'x', namespace: 'A' } },
      { apiVersion: 'v1', kind: 'note', metadata: { name: 'x' } },
      { apiVersion: 'Group/v1', kind: 'Note', metadata: { name: 'x' } },
      { apiVersion: '../v1', kind: 'Note', metadata: { name: 'x' } },
      { apiVersion: 'v1', kind: 'Note' },
    ];
    for (const obj of bad) assert.throws(() => objectKey(obj as never), ValidationError, JSON.stringify(obj));
    for (const key of ['', 'Note', 'Note/a/b/c', 'Note/../a', 'Note./a', 'Note.G/a', `Note/${'a'.repeat(254)}`]) {
      assert.throws(() => parseKey(key), ValidationError, key);
    }
  });

  void test('error messages quote a hostile name bounded and escaped', () => {
    try {
      objectKey({ apiVersion: 'v1', kind: 'Note', metadata: { name: `evil\nFAKE LOG LINE${'x'.repeat(500)}` } });
      assert.fail('must throw');
    } catch (err) {
      assert.ok(!(err as Error).message.includes('\n'));
      assert.ok((err as Error).message.length < 400);
    }
  });
});

void describe('instance names', () => {
  void test('<kind>-<16 hex>: the same configuration gives the same name, another configuration another name', () => {
    const a = replicaName('s3', { bucket: 'b', prefix: 'p/', endpoint: 'e' });
    assert.match(a, /^s3-[0-9a-f]{16}$/);
    assert.equal(replicaName('s3', { prefix: 'p/', endpoint: 'e', bucket: 'b' }), a, 'key order does not matter');
    assert.notEqual(replicaName('s3', { bucket: 'b', prefix: 'q/', endpoint: 'e' }), a);
  });
});

void describe('machine ID', () => {
  void test('the host machine ID file is used when present', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bf-mid-'));
    try {
      writeFileSync(join(dir, 'machine-id'), 'ABCDEF0123456789abcdef0123456789\n');
      const id = await MachineId.load({ dataDir: join(dir, 'data'), systemPaths: [join(dir, 'missing'), join(dir, 'machine-id')] });
      assert.equal(id.value, 'abcdef0123456789abcdef0123456789');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void test('without one, an ID is generated once, kept in the data directory and the same after a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bf-mid-'));
    try {
      const opts = { dataDir: dir, systemPaths: [join(dir, 'none')] };
      const [a, b] = await Promise.all([MachineId.load(opts), MachineId.load(opts)]);
      assert.match(a.value, /^[0-9a-f]{32}$/);
      assert.equal(b.value, a.value, 'two processes starting together agree');
      assert.equal((await MachineId.load(opts)).value, a.value);
      assert.equal(readFileSync(join(dir, 'machine-id'), 'utf8').trim(), a.value);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void test('a malformed machine ID is refused', () => {
    assert.throws(() => new MachineId('not-hex'), ValidationError);
  });
});
