// The pure parts of `--dry-run`: one resource's step order (shared with the workflow), the field changes a patch
// part makes against the current state, the masking of secrets, the text a human reads, and the read-only secret
// store the drivers get.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reconcileResource, type CrudStep, type Patch, type StepArgs } from '../../domain/reconcile';
import { fieldChanges, formatPath, formatResources, isSecretPath, leaves, MASK, previewResource } from '../../client/cli/plan-diff';
import { readOnlySecretStore } from '../../adapters/factory';
import { PermissionError } from '../../adapters/errors';

/** A step runner that answers from a script and records the steps it ran. */
function scripted(patch: Patch, cancelAt?: CrudStep) {
  const ran: Array<{ step: CrudStep; args: StepArgs }> = [];
  const run = async <T>(step: CrudStep, args: StepArgs): Promise<{ value?: T } | 'resource'> => {
    ran.push({ step, args });
    if (step === cancelAt) return 'resource';
    if (step === 'getCurrentState') return { value: { v: 1 } as T };
    if (step === 'getDesiredState') return { value: { v: 2 } as T };
    if (step === 'newUpdatePatch' || step === 'newDeletePatch') return { value: patch as T };
    return {};
  };
  return { ran, run };
}

test('reconcileResource runs current, desired, patch, then the create, delete and update parts present, in that order', async () => {
  const s = scripted({ update: { u: 1 }, delete: { d: 1 }, create: { c: 1 } });
  assert.equal(await reconcileResource('update', s.run), 'done');
  assert.deepEqual(
    s.ran.map((r) => r.step),
    ['getCurrentState', 'getDesiredState', 'newUpdatePatch', 'applyCreateChange', 'applyDeleteChange', 'applyUpdateChange'],
  );
  assert.deepEqual(s.ran[2]!.args, { current: { v: 1 }, desired: { v: 2 } });
  assert.deepEqual(s.ran.slice(3).map((r) => r.args.state), [{ c: 1 }, { d: 1 }, { u: 1 }]);
});

test('reconcileResource takes the delete patch in delete mode, honours the flags and stops at a canceled step', async () => {
  const del = scripted({ delete: { d: 1 } });
  await reconcileResource('delete', del.run);
  assert.deepEqual(del.ran.map((r) => r.step), ['getCurrentState', 'getDesiredState', 'newDeletePatch', 'applyDeleteChange']);

  const flagged = scripted({ delete: { d: 1 }, update: { u: 1 } });
  await reconcileResource('update', flagged.run, { deletionAllowed: false, updateAllowed: false });
  assert.deepEqual(flagged.ran.map((r) => r.step), ['getCurrentState', 'getDesiredState', 'newUpdatePatch']);

  const canceled = scripted({ create: { c: 1 }, update: { u: 1 } }, 'applyCreateChange');
  assert.equal(await reconcileResource('update', canceled.run), 'canceled');
  assert.deepEqual(canceled.ran.map((r) => r.step).slice(-1), ['applyCreateChange']);

  const empty = scripted({});
  assert.equal(await reconcileResource('update', empty.run), 'done');
  assert.equal(empty.ran.length, 3, 'an empty patch applies nothing');
});

test('paths are dotted for identifiers and bracketed otherwise; leaves include empty objects and arrays', () => {
  assert.equal(formatPath(['manifest', 'metadata', 'labels', 'app.kubernetes.io/name']), 'manifest.metadata.labels["app.kubernetes.io/name"]');
  assert.equal(formatPath(['spec', 'ports', 0, 'port']), 'spec.ports[0].port');
  assert.deepEqual(
    leaves({ a: { b: 1, c: [] }, d: [{ e: null }], f: {} }).map((l) => [formatPath(l.path), l.value]),
    [['a.b', 1], ['a.c', []], ['d[0].e', null], ['f', {}]],
  );
});

test('a create lists every field it sets, an update only the fields that differ, a delete every field it removes', () => {
  const current = { name: 'x', manifest: { data: { a: '1', b: '2' } }, uid: 'u-1' };
  const desired = { name: 'x', manifest: { data: { a: '1', b: '3', c: '4' } } };
  assert.deepEqual(fieldChanges('create', null, desired), [
    { path: 'name', to: 'x' },
    { path: 'manifest.data.a', to: '1' },
    { path: 'manifest.data.b', to: '3' },
    { path: 'manifest.data.c', to: '4' },
  ]);
  assert.deepEqual(fieldChanges('update', current, desired), [
    { path: 'manifest.data.b', from: '2', to: '3' },
    { path: 'manifest.data.c', to: '4' },
  ]);
  assert.deepEqual(fieldChanges('delete', current, current), [
    { path: 'name', from: 'x' },
    { path: 'manifest.data.a', from: '1' },
    { path: 'manifest.data.b', from: '2' },
    { path: 'uid', from: 'u-1' },
  ]);
  assert.deepEqual(fieldChanges('update', desired, desired), []);
});

test('secrets are masked: secret-like key names (not booleans), and a Secret object\'s data and manifest hash', () => {
  const user = { user: 'bf-1', secretExists: true, password: 'hunter2', apiKey: 'k', nested: { dbToken: 't' } };
  const changes = fieldChanges('create', null, user);
  assert.deepEqual(changes, [
    { path: 'user', to: 'bf-1' },
    { path: 'secretExists', to: true },
    { path: 'password', to: MASK, masked: true },
    { path: 'apiKey', to: MASK, masked: true },
    { path: 'nested.dbToken', to: MASK, masked: true },
  ]);
  const secret = {
    kind: 'Secret',
    name: 's',
    hash: 'abc',
    manifest: { kind: 'Secret', data: { anything: 'c2VjcmV0' }, stringData: { dsn: 'postgres://u:p@h/db' }, metadata: { annotations: { 'brokerflow.io/applied-hash': 'abc' } } },
  };
  const shown = JSON.stringify(fieldChanges('create', null, secret));
  for (const clear of ['c2VjcmV0', 'postgres://', 'abc']) assert.ok(!shown.includes(clear), `${clear} is masked in ${shown}`);
  assert.ok(shown.includes('"path":"name","to":"s"'), 'the rest is shown');
  // An update of a Secret masks both sides, yet still says the value changes.
  assert.deepEqual(fieldChanges('update', { ...secret, hash: 'old' }, secret).find((c) => c.path === 'hash'), { path: 'hash', from: MASK, to: MASK, masked: true });
  assert.equal(isSecretPath(['manifest', 'data', 'x'], 'v', { kind: 'ConfigMap', manifest: { kind: 'ConfigMap' } }), false, 'a ConfigMap\'s data is shown');
});

test('a resource preview names its action and target, and reads as one line per resource and per changed field', () => {
  const cm = { kind: 'ConfigMap', namespace: 'default', name: 'bf-1', manifest: { data: { q: '1' } } };
  const update = previewResource({ name: 'settings', driver: 'kubernetes' }, {
    current: cm,
    desired: { ...cm, manifest: { data: { q: '2' } } },
    patch: { update: {} },
    applied: [{ part: 'update', state: { ...cm, manifest: { data: { q: '2' } } } }],
  });
  assert.deepEqual(update, {
    name: 'settings',
    driver: 'kubernetes',
    action: 'update',
    parts: ['update'],
    changes: [{ path: 'manifest.data.q', from: '1', to: '2' }],
    target: 'ConfigMap default/bf-1',
  });
  const unchanged = previewResource({ name: 'keyspace', driver: 'etcd-prefix' }, { current: { prefix: '/t/1' }, desired: { prefix: '/t/1' }, patch: {}, applied: [] });
  assert.equal(unchanged.action, 'unchanged');
  const canceled = previewResource({ name: 'user', driver: 'etcd-user' }, { current: null, desired: null, patch: null, applied: [], canceled: 'not today' });
  assert.deepEqual([canceled.action, canceled.reason], ['canceled', 'not today']);
  const deleted = previewResource({ name: 'old', driver: 'etcd-prefix' }, { current: { prefix: '/t/2' }, desired: null, patch: { delete: {} }, applied: [{ part: 'delete', state: { prefix: '/t/2' } }] });
  assert.deepEqual(formatResources([update, unchanged, canceled, deleted]), [
    '~ settings (kubernetes: ConfigMap default/bf-1): update',
    '    manifest.data.q: "1" -> "2"',
    '= keyspace (etcd-prefix: prefix /t/1): unchanged',
    '! user (etcd-user): canceled by its driver: not today',
    '- old (etcd-prefix: prefix /t/2): delete',
    '    prefix: "/t/2" (removed)',
  ]);
});

test('the read-only secret store reads, hands out what exists, and refuses to create or delete', async () => {
  const stored = new Map([['etcd-user/b1', 'pw']]);
  let writes = 0;
  const store = readOnlySecretStore({
    get: async (n) => stored.get(n),
    ensure: async () => {
      writes++;
      return 'new';
    },
    delete: async () => {
      writes++;
    },
  });
  assert.equal(await store.get('etcd-user/b1'), 'pw');
  assert.equal(await store.ensure('etcd-user/b1', () => 'other'), 'pw');
  await assert.rejects(store.ensure('etcd-user/b2', () => 'new'), PermissionError);
  await assert.rejects(store.delete('etcd-user/b1'), PermissionError);
  assert.equal(writes, 0);
  assert.equal(stored.size, 1);
});
