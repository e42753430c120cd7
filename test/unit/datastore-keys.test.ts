// Datastore input validation and the watch stream's end-of-stream rules: no server involved, and none needed,
// because bad input must be refused before any I/O.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../adapters/errors';
import {
  ErrorValidation,
  ErrorWatchTerminated,
  EtcdDatastore,
  KubernetesDatastore,
  MAX_KEY_BYTES,
  Syncer,
  keyInPrefix,
  validateKey,
  validatePrefix,
  validateRevision,
} from '../../adapters/datastore';
import { PushWatchStream } from '../../adapters/datastore/watch-stream';

void test('well-formed keys pass validation unchanged', () => {
  for (const key of ['/a', '/registry/instances/abc-123', '/a/b.c/d_e', '/ünïcode/ключ', `/${'x'.repeat(MAX_KEY_BYTES - 1)}`]) {
    assert.equal(validateKey(key), key);
  }
});

void test('keys that are relative, empty-segmented, dotted, control-charactered or too long are refused naming the field', () => {
  const bad: unknown[] = [
    '',
    'a',
    'a/b',
    '/',
    '/a/',
    '//a',
    '/a//b',
    '/.',
    '/..',
    '/a/../b',
    '/a/./b',
    '/a\u0000b',
    '/a\tb',
    '/a\nb',
    '/a\u007fb',
    '/a\u0085b',
    `/${'x'.repeat(MAX_KEY_BYTES)}`,
    `/${'é'.repeat(MAX_KEY_BYTES / 2)}`,
    undefined,
    null,
    42,
  ];
  for (const key of bad) {
    assert.throws(() => validateKey(key), (err: unknown) => err instanceof ErrorValidation && err instanceof ValidationError && err.field === 'key', JSON.stringify(key));
  }
});

void test('a prefix may be "/" (everything) but otherwise follows the key rules', () => {
  assert.equal(validatePrefix('/'), '/');
  assert.equal(validatePrefix('/a/b'), '/a/b');
  for (const p of ['', '//', '/a/', '/..', 'a']) assert.throws(() => validatePrefix(p), ValidationError);
});

void test('revisions must be positive decimal integers that fit a double exactly', () => {
  for (const r of ['1', '42', '9007199254740991']) assert.equal(validateRevision(r), r);
  for (const r of ['', '0', '-1', '01', '1.0', '1e3', ' 1', '1 ', 'abc', '9007199254740993', '12345678901234567', undefined, 5]) {
    assert.throws(() => validateRevision(r), ValidationError, JSON.stringify(r));
  }
});

void test('a prefix matches itself and what lies under it, never a sibling that merely shares its characters', () => {
  assert.equal(keyInPrefix('/a', '/a'), true);
  assert.equal(keyInPrefix('/a/b', '/a'), true);
  assert.equal(keyInPrefix('/a/b/c', '/a'), true);
  assert.equal(keyInPrefix('/ab', '/a'), false);
  assert.equal(keyInPrefix('/a-b', '/a'), false);
  assert.equal(keyInPrefix('/b', '/a'), false);
  assert.equal(keyInPrefix('/anything', '/'), true);
});

void test('the etcd datastore refuses bad keys, revisions and options before it touches the network', async () => {
  // Nothing listens on port 1: any I/O would surface as ErrorDatastoreUnavailable instead of a validation error.
  const ds = new EtcdDatastore({ endpoints: ['http://127.0.0.1:1'], dialTimeoutMs: 500 });
  try {
    await assert.rejects(ds.get('/a/../b'), ErrorValidation);
    await assert.rejects(ds.create('/a\u0000', 'v'), ErrorValidation);
    await assert.rejects(ds.create('/a', 42 as unknown as string), ErrorValidation);
    await assert.rejects(ds.update({ key: '/a', value: 'v', revision: '' }), ErrorValidation);
    await assert.rejects(ds.delete('/a', 'latest'), ErrorValidation);
    await assert.rejects(ds.get('/a', '0'), ErrorValidation);
    await assert.rejects(ds.list('/a/', undefined), ErrorValidation);
    assert.throws(() => ds.watch('/a', 'x'), ErrorValidation);
  } finally {
    await ds.close();
  }
  assert.throws(() => new EtcdDatastore({ endpoints: [] }), ErrorValidation);
  assert.throws(() => new EtcdDatastore({ endpoints: ['127.0.0.1:2379'] }), ErrorValidation);
  assert.throws(() => new EtcdDatastore({ endpoints: ['http://127.0.0.1:2379'], prefix: '/bad/' }), ErrorValidation);
  assert.throws(() => new EtcdDatastore({ endpoints: ['http://127.0.0.1:2379'], prefix: 'relative' }), ErrorValidation);
});

void test('the kubernetes datastore refuses bad keys, revisions and options before it reads a kubeconfig or calls the API', async () => {
  // The kubeconfig does not exist: reaching for it would fail with something other than a validation error.
  const ds = new KubernetesDatastore({ namespace: 'bf-unit', kubeconfigPath: '/nonexistent/kubeconfig' });
  await assert.rejects(ds.create('/a/../b', 'v'), ErrorValidation);
  await assert.rejects(ds.apply('relative', 'v'), ErrorValidation);
  await assert.rejects(ds.update({ key: '/a', value: 'v', revision: 'abc' }), ErrorValidation);
  await assert.rejects(ds.delete('/a//b'), ErrorValidation);
  await assert.rejects(ds.get('/a', ''), ErrorValidation);
  await assert.rejects(ds.list('/a\u0000'), ErrorValidation);
  assert.throws(() => ds.watch('/a', '-1'), ErrorValidation);
  await ds.close();
  for (const namespace of ['', 'Upper', 'has_underscore', 'x'.repeat(64), '-leading']) {
    assert.throws(() => new KubernetesDatastore({ namespace }), ErrorValidation, namespace);
  }
  assert.throws(() => new KubernetesDatastore({ namespace: 'ok', prefix: '/a/..' }), ErrorValidation);
  assert.throws(() => new KubernetesDatastore({ namespace: 'ok', watchTimeoutSeconds: 1 }), ErrorValidation);
});

void test('a syncer refuses overlapping, duplicate or invalid prefixes', () => {
  const ds = new EtcdDatastore({ endpoints: ['http://127.0.0.1:1'] });
  const cb = { onStatusUpdated: () => undefined, onUpdates: () => undefined };
  assert.throws(() => new Syncer(ds, { prefixes: [] }, cb), ErrorValidation);
  assert.throws(() => new Syncer(ds, { prefixes: ['/a', '/a/b'] }, cb), /overlap/);
  assert.throws(() => new Syncer(ds, { prefixes: ['/a', '/a'] }, cb), ErrorValidation);
  assert.throws(() => new Syncer(ds, { prefixes: ['/a/../b'] }, cb), ErrorValidation);
  assert.throws(() => new Syncer(ds, { prefixes: ['/a'], backoff: { initialMs: 0 } }, cb), ErrorValidation);
  // '/a' and '/ab' do not overlap.
  new Syncer(ds, { prefixes: ['/a', '/ab'] }, cb);
  void ds.close();
});

void test('a failed watch stream yields its events, then exactly one ERROR, then ends, and releases once', async () => {
  let released = 0;
  const s = new PushWatchStream(() => released++);
  s.push({ type: 'ADDED', new: { key: '/a', value: '1', revision: '1' } });
  s.fail(new ErrorWatchTerminated('compacted', 'test'));
  s.fail(new ErrorWatchTerminated('disconnected', 'second failure is ignored'));
  s.push({ type: 'ADDED', new: { key: '/b', value: '2', revision: '2' } });
  assert.equal(s.hasTerminated(), true);
  const seen: string[] = [];
  for await (const ev of s) seen.push(ev.type === 'ERROR' ? `ERROR:${(ev.error as ErrorWatchTerminated).reason}` : `${ev.type}:${ev.new?.key}`);
  assert.deepEqual(seen, ['ADDED:/a', 'ERROR:compacted']);
  s.stop();
  assert.equal(released, 1);
});

void test('stopping a watch stream wakes a waiting reader with the end of the stream', async () => {
  const s = new PushWatchStream(() => undefined);
  const it = s[Symbol.asyncIterator]();
  const pending = it.next();
  s.stop();
  assert.deepEqual(await pending, { done: true, value: undefined });
  assert.equal(s.hasTerminated(), true);
});
