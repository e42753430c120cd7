// The workflow bundle cache holds code the worker runs, so it is used only when nobody but this user (or root)
// could have written it, and only when the bundle still matches the hash recorded when it was written.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleFileName, defaultBundleCacheDir, prebuiltWorkflowBundle, untrustedDirectoryReason, untrustedFileReason } from '../../worker/bundle';

const base = mkdtempSync(join(tmpdir(), 'bundle-cache-test-'));
after(() => rmSync(base, { recursive: true, force: true }));

const uid = process.getuid!();
/** Someone else: as root the files really are given away; otherwise the check is told the process is another user. */
const otherUid = 4242;
const asOtherUser = (path: string): { uid: number } => {
  if (uid === 0) {
    chownSync(path, otherUid, otherUid);
    return { uid };
  }
  return { uid: uid + 1 };
};

const marker = 'PLANTED-BY-ANOTHER-LOCAL-USER';
const planted = `globalThis.__planted = '${marker}';\n`;
/** Plants a "bundle" for the current sources, with a matching hash file, as an attacker who can write `dir` would. */
function plant(dir: string): string {
  const file = join(dir, bundleFileName());
  writeFileSync(file, planted);
  writeFileSync(`${file}.sha256`, `${createHash('sha256').update(planted).digest('hex')}\n`);
  return file;
}
function recorder(): { warnings: Array<{ obj: { reason?: string }; msg: string }>; warn(obj: object, msg: string): void } {
  const warnings: Array<{ obj: { reason?: string }; msg: string }> = [];
  return { warnings, warn: (obj, msg) => warnings.push({ obj, msg }) };
}
/** The real workflow bundle: every workflow type the worker registers, and nothing planted. */
function assertRealWorkflows(code: string): void {
  assert.ok(!code.includes(marker), 'the planted code is not what the worker gets');
  for (const name of ['provision', 'deprovision', 'bind', 'unbind', 'reconcileWorkflow', 'kubeServiceWorkflow']) assert.ok(code.includes(name), `the bundle holds ${name}`);
}

test('the default cache is private to the user: $XDG_CACHE_HOME or ~/.cache, never the shared temporary folder', () => {
  assert.equal(defaultBundleCacheDir({ XDG_CACHE_HOME: '/home/u/.xdg' }), '/home/u/.xdg/brokerflow/workflow-bundles');
  assert.match(defaultBundleCacheDir({ HOME: process.env.HOME }), /\/\.cache\/brokerflow\/workflow-bundles$/);
  assert.equal(defaultBundleCacheDir({ BROKERFLOW_BUNDLE_DIR: '/app/workflow-bundles', XDG_CACHE_HOME: '/x' }), '/app/workflow-bundles');
  assert.ok(!defaultBundleCacheDir({}).startsWith(tmpdir()));
});

test('a directory is untrusted when someone else owns it, when others may write it or an ancestor, and trusted when private', () => {
  const priv = join(base, 'private');
  mkdirSync(priv, { mode: 0o700 });
  assert.equal(untrustedDirectoryReason(priv), undefined);

  const open = join(base, 'world-writable');
  mkdirSync(open);
  chmodSync(open, 0o777);
  assert.match(untrustedDirectoryReason(open) ?? '', /writable by its group or by others \(mode 0777\)/);
  const groupWritable = join(base, 'group-writable');
  mkdirSync(groupWritable);
  chmodSync(groupWritable, 0o770);
  assert.match(untrustedDirectoryReason(groupWritable) ?? '', /mode 0770/);

  const inside = join(open, 'cache');
  mkdirSync(inside, { mode: 0o700 });
  assert.match(untrustedDirectoryReason(inside) ?? '', /ancestor .*world-writable is writable by its group or by others/, 'another user could rename it away and put their own in its place');
  const sticky = join(base, 'sticky');
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  mkdirSync(join(sticky, 'cache'), { mode: 0o700 });
  assert.equal(untrustedDirectoryReason(join(sticky, 'cache')), undefined, 'a private folder in a sticky one (like /tmp) stays private');

  const foreign = join(base, 'foreign');
  mkdirSync(foreign, { mode: 0o700 });
  assert.match(untrustedDirectoryReason(foreign, asOtherUser(foreign)) ?? '', /belongs to uid \d+, not to this user/);
  const link = join(base, 'link-to-open');
  symlinkSync(open, link);
  assert.match(untrustedDirectoryReason(link) ?? '', /mode 0777/, 'a symlink is judged by what it points to');
  assert.match(untrustedDirectoryReason(join(base, 'missing')) ?? '', /cannot be resolved/);
});

test('a cached file is untrusted when others may write it, when it is a symlink or someone else\'s', () => {
  const dir = join(base, 'files');
  mkdirSync(dir, { mode: 0o700 });
  const good = join(dir, 'good.js');
  writeFileSync(good, 'x', { mode: 0o644 });
  assert.equal(untrustedFileReason(good), undefined);
  const writable = join(dir, 'writable.js');
  writeFileSync(writable, 'x');
  chmodSync(writable, 0o666);
  assert.match(untrustedFileReason(writable) ?? '', /file .* is writable by its group or by others \(mode 0666\)/);
  const link = join(dir, 'link.js');
  symlinkSync(good, link);
  assert.match(untrustedFileReason(link) ?? '', /not a regular file/);
  const theirs = join(dir, 'theirs.js');
  writeFileSync(theirs, 'x', { mode: 0o644 });
  assert.match(untrustedFileReason(theirs, asOtherUser(theirs)) ?? '', /belongs to uid \d+/);
});

test('a bundle planted in a world-writable cache directory is never loaded: the real workflows are built, with a warning that says why', { timeout: 120_000 }, () => {
  const dir = join(base, 'planted-open');
  mkdirSync(dir);
  chmodSync(dir, 0o777);
  const file = plant(dir);
  const log = recorder();
  const bundle = prebuiltWorkflowBundle({ cacheDir: dir, log });
  assertRealWorkflows(bundle.code);
  assert.equal(bundle.from, 'built');
  assert.equal(bundle.cacheFile, undefined, 'nothing is cached in a folder others can write');
  assert.equal(readFileSync(file, 'utf8'), planted, 'the untrusted folder is left alone');
  assert.equal(log.warnings.length, 1);
  assert.match(log.warnings[0]!.msg, /workflow bundle cache ignored: it is not private to this user/);
  assert.match(log.warnings[0]!.obj.reason ?? '', /writable by its group or by others \(mode 0777\)/);
});

test('a bundle planted in a cache directory owned by another user is never loaded', { timeout: 120_000 }, () => {
  const dir = join(base, 'planted-foreign');
  mkdirSync(dir, { mode: 0o755 });
  plant(dir);
  const owner = asOtherUser(dir);
  const log = recorder();
  const bundle = prebuiltWorkflowBundle({ cacheDir: dir, log, owner });
  assertRealWorkflows(bundle.code);
  assert.equal(bundle.from, 'built');
  assert.match(log.warnings[0]?.obj.reason ?? '', /belongs to uid \d+, not to this user/);
});

test('a private cache is created 0700 and used on the second start; a cached bundle whose content changed is built again', { timeout: 180_000 }, () => {
  const dir = join(base, 'xdg', 'brokerflow', 'workflow-bundles');
  const log = recorder();
  const first = prebuiltWorkflowBundle({ cacheDir: dir, log });
  assertRealWorkflows(first.code);
  assert.equal(first.from, 'built');
  assert.equal(first.cacheFile, join(dir, bundleFileName()));
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.deepEqual(readdirSync(dir).sort(), [bundleFileName(), `${bundleFileName()}.sha256`]);
  assert.equal(log.warnings.length, 0);

  const second = prebuiltWorkflowBundle({ cacheDir: dir, log });
  assert.equal(second.from, 'cache', 'the second start reads the cache instead of bundling');
  assert.equal(second.code, first.code);
  assert.equal(log.warnings.length, 0);

  // Defence in depth: a half-written or altered file no longer matches the hash recorded when it was written.
  writeFileSync(first.cacheFile!, first.code.slice(0, 1000));
  const third = prebuiltWorkflowBundle({ cacheDir: dir, log });
  assert.equal(third.from, 'built');
  assert.equal(third.code, first.code);
  assert.match(log.warnings[0]?.obj.reason ?? '', /SHA-256 .* differs from the one recorded/);
  assert.equal(prebuiltWorkflowBundle({ cacheDir: dir }).from, 'cache', 'and the rebuilt bundle is cached again');

  // A cached file that others may write is not trusted either, even in a private folder.
  chmodSync(first.cacheFile!, 0o666);
  const fourth = prebuiltWorkflowBundle({ cacheDir: dir, log });
  assert.equal(fourth.from, 'built');
  assert.match(log.warnings.at(-1)?.obj.reason ?? '', /file .* is writable by its group or by others \(mode 0666\)/);
  assert.equal(statSync(first.cacheFile!).mode & 0o777, 0o644, 'the rebuilt file replaced it');
});
