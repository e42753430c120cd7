// The etcd resource drivers against a real etcd of their own with authentication enabled (a tenant etcd): a
// prefix per instance, a user per binding confined to it, idempotent create and delete, foreign data untouched.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Etcd3, EtcdAuthenticationFailedError, EtcdPermissionDeniedError } from 'etcd3';
import { startEtcd, type EtcdServer } from '../../scripts/lib/etcd';
import { freePort } from '../../scripts/lib/process';
import { requireTestEnv } from '../support/env';
import { ConflictError, PermissionError, UnavailableError, ValidationError } from '../../adapters/errors';
import {
  connectTenantEtcd,
  etcdOwnerKey,
  etcdUserName,
  EtcdPrefixDriver,
  EtcdUserDriver,
  type DriverContext,
  type SecretStore,
} from '../../adapters/resources';
import type { ReconcileObject } from '../../domain/reconcile';
import { reconcile, remove, viaHistory } from '../support/driver-steps';

/** The SecretStore contract in memory; the real one is the SecretPersistenceProvider. */
class MemorySecretStore implements SecretStore {
  readonly values = new Map<string, string>();
  async ensure(name: string, generate: () => string): Promise<string> {
    if (!this.values.has(name)) this.values.set(name, generate());
    return this.values.get(name)!;
  }
  async get(name: string): Promise<string | undefined> {
    return this.values.get(name);
  }
  async delete(name: string): Promise<void> {
    this.values.delete(name);
  }
}

const id = () => randomBytes(6).toString('hex');

function context(object: Partial<ReconcileObject> & { instanceId: string }): DriverContext {
  return {
    object: { operationId: `op-${id()}`, serviceId: 'svc', planId: 'plan', ...object },
    resourceName: 'etcd',
    heartbeat: () => undefined,
    signal: new AbortController().signal,
  };
}

void describe('etcd resource drivers on an etcd with authentication enabled', () => {
  let server: EtcdServer;
  let root: Etcd3;
  const clients: Etcd3[] = [];
  const rootPassword = randomBytes(16).toString('hex');
  const secrets = new MemorySecretStore();
  let prefixes: EtcdPrefixDriver;
  let users: EtcdUserDriver;

  before(async () => {
    const workDir = requireTestEnv('workDir');
    const name = `etcd-resources-${id()}`;
    server = await startEtcd({ dataDir: join(workDir, name), logDir: join(workDir, 'logs'), name });
    const setup = new Etcd3({ hosts: server.endpoint });
    try {
      await setup.user('root').create(rootPassword);
      await setup.role('root').create();
      await setup.user('root').addRole('root');
      await setup.auth.authEnable();
    } finally {
      setup.close();
    }
    root = connectTenantEtcd({ endpoints: [server.endpoint], auth: { username: 'root', password: rootPassword } });
    prefixes = new EtcdPrefixDriver({ client: root });
    users = new EtcdUserDriver({ client: root, secrets, endpoints: [server.endpoint] });
  });

  after(async () => {
    for (const c of clients) c.close();
    root?.close();
    await server?.stop();
  });

  function clientAs(creds: Record<string, unknown>): Etcd3 {
    const c = new Etcd3({
      hosts: creds.endpoints as string[],
      auth: { username: creds.username as string, password: creds.password as string },
    });
    clients.push(c);
    return c;
  }

  const denied = (err: unknown) => err instanceof EtcdPermissionDeniedError;

  void test('the tenant etcd has authentication on: anonymous writes are rejected', async () => {
    const anonymous = new Etcd3({ hosts: server.endpoint });
    clients.push(anonymous);
    await assert.rejects(anonymous.put('/anything').value('x').exec(), (err: unknown) => err instanceof Error);
  });

  void test('a bound user reads and writes inside its prefix and is denied outside it', async () => {
    const instanceId = `inst-${id()}`;
    const prefix = `/tenants/${instanceId}`;
    const instanceCtx = context({ instanceId });
    const bindingCtx = context({ instanceId, bindingId: `bind-${id()}` });
    await reconcile(prefixes, { prefix }, instanceCtx);
    await reconcile(users, { prefix }, bindingCtx);
    const creds = await users.outputs({ prefix }, bindingCtx);
    assert.equal(creds.username, etcdUserName(bindingCtx.object.bindingId!));
    assert.equal((creds.password as string).length, 32);
    assert.equal(creds.keyPrefix, `${prefix}/`);

    const app = clientAs(creds);
    await app.put(`${prefix}/config`).value('v1');
    assert.equal(await app.get(`${prefix}/config`).string(), 'v1');
    assert.deepEqual(Object.keys(await app.getAll().prefix(`${prefix}/`).strings()).sort(), [`${prefix}/config`]);
    // The owner mark sits outside the range the user may write: it cannot unmark (or re-mark) its prefix.
    assert.equal(await root.get(etcdOwnerKey(prefix)).string(), instanceId);
    await assert.rejects(app.delete().key(etcdOwnerKey(prefix)).exec(), denied);
    // Outside the prefix, including a sibling that merely shares its characters, etcd itself says no.
    await assert.rejects(app.put(`/tenants/other/config`).value('x').exec(), denied);
    await assert.rejects(app.put(`${prefix}x`).value('x').exec(), denied);
    await assert.rejects(app.get(prefix).string(), denied);
    await assert.rejects(app.getAll().prefix('/tenants/').keys(), denied);
  });

  void test('a read-only user reads its prefix but cannot write to it', async () => {
    const instanceId = `inst-${id()}`;
    const prefix = `/tenants/${instanceId}`;
    await reconcile(prefixes, { prefix }, context({ instanceId }));
    await root.put(`${prefix}/data`).value('hello');
    const ctx = context({ instanceId, bindingId: `ro-${id()}` });
    await reconcile(users, { prefix, readOnly: true }, ctx);
    const reader = clientAs(await users.outputs({ prefix, readOnly: true }, ctx));
    assert.equal(await reader.get(`${prefix}/data`).string(), 'hello');
    await assert.rejects(reader.put(`${prefix}/data`).value('changed').exec(), denied);
    await assert.rejects(reader.delete().key(`${prefix}/data`).exec(), denied);
    assert.equal(await root.get(`${prefix}/data`).string(), 'hello');
  });

  void test('creating a user twice is a no-op: one user, one permission, the same password', async () => {
    const instanceId = `inst-${id()}`;
    const prefix = `/tenants/${instanceId}`;
    const ctx = context({ instanceId, bindingId: `bind-${id()}` });
    const first = await reconcile(users, { prefix }, ctx);
    assert.ok(first.create, 'the first reconciliation creates the user');
    const password = (await users.outputs({ prefix }, ctx)).password;

    // A retried create step (the activity ran, then its result was lost) and a second reconciliation.
    const desired = await users.getDesiredState({ prefix }, ctx);
    await users.applyCreateChange(viaHistory(desired), ctx);
    const second = await reconcile(users, { prefix }, ctx);
    assert.deepEqual(second, {}, 'nothing left to change');

    assert.equal((await users.outputs({ prefix }, ctx)).password, password);
    const name = etcdUserName(ctx.object.bindingId!);
    const { users: all } = await root.auth.userList();
    assert.equal(all.filter((u) => u === name).length, 1);
    assert.deepEqual((await root.auth.userGet({ name })).roles, [name]);
    const perms = (await root.auth.roleGet({ role: name })).perm;
    assert.equal(perms.length, 1);
    assert.equal(String(perms[0]!.permType), 'Readwrite');
    assert.equal(perms[0]!.key.toString(), `${prefix}/`);
    await clientAs(await users.outputs({ prefix }, ctx)).put(`${prefix}/k`).value('1');
  });

  void test('a drifted password or permission is repaired by the next reconciliation', async () => {
    const instanceId = `inst-${id()}`;
    const prefix = `/tenants/${instanceId}`;
    const ctx = context({ instanceId, bindingId: `bind-${id()}` });
    await reconcile(users, { prefix }, ctx);
    const name = etcdUserName(ctx.object.bindingId!);
    await root.auth.userChangePassword({ name, password: 'someone-changed-it' });
    await root.role(name).grant({ permission: 'Readwrite', key: '/elsewhere' });

    const patch = await reconcile(users, { prefix }, ctx);
    assert.ok(patch.update, 'drift shows as an update');
    const perms = (await root.auth.roleGet({ role: name })).perm;
    assert.deepEqual(perms.map((p) => p.key.toString()), [`${prefix}/`]);
    await clientAs(await users.outputs({ prefix }, ctx)).put(`${prefix}/k`).value('ok');

    // Switching the spec to read-only downgrades the same user.
    assert.ok((await reconcile(users, { prefix, readOnly: true }, ctx)).update);
    const reader = clientAs(await users.outputs({ prefix }, ctx));
    await assert.rejects(reader.put(`${prefix}/k`).value('no').exec(), denied);
  });

  void test('deleting a user twice is a no-op; its user, role and password are gone', async () => {
    const instanceId = `inst-${id()}`;
    const prefix = `/tenants/${instanceId}`;
    const ctx = context({ instanceId, bindingId: `bind-${id()}` });
    await reconcile(users, { prefix }, ctx);
    const creds = await users.outputs({ prefix }, ctx);
    const name = creds.username as string;

    const first = await remove(users, { prefix }, ctx);
    assert.ok(first.delete);
    const second = await remove(users, { prefix }, ctx);
    assert.deepEqual(second, {}, 'nothing left to delete');
    // A retried delete step after the work was done.
    await users.applyDeleteChange(viaHistory(first.delete!), ctx);

    assert.ok(!(await root.auth.userList()).users.includes(name));
    assert.ok(!(await root.auth.roleList()).roles.includes(name));
    assert.equal(await secrets.get(`etcd-user/${ctx.object.bindingId}`), undefined);
    await assert.rejects(clientAs(creds).get(`${prefix}/x`).string(), (err: unknown) => err instanceof EtcdAuthenticationFailedError);
  });

  void test('deleting a prefix removes exactly the keys under it, twice without harm', async () => {
    const instanceId = `inst-${id()}`;
    const base = `/del-${id()}`;
    const prefix = `${base}/a`;
    const ctx = context({ instanceId });
    await reconcile(prefixes, { prefix }, ctx);
    await root.put(`${prefix}/one`).value('1');
    await root.put(`${prefix}/two/deep`).value('2');
    await root.put(`${base}/ab/x`).value('sibling');
    await root.put(prefix).value('the prefix key itself is not under it');

    assert.ok((await remove(prefixes, { prefix }, ctx)).delete);
    assert.deepEqual(await remove(prefixes, { prefix }, ctx), {});
    assert.deepEqual(Object.keys(await root.getAll().prefix(`${base}/`).strings()).sort(), [prefix, `${base}/ab/x`]);
  });

  void test('a prefix owned by another instance is never claimed, changed or deleted', async () => {
    const prefix = `/tenants/${id()}`;
    await root.put(etcdOwnerKey(prefix)).value('someone-else');
    await root.put(`${prefix}/their-data`).value('keep');
    const ctx = context({ instanceId: `inst-${id()}` });

    assert.equal(await prefixes.getCurrentState({ prefix }, ctx), null);
    await assert.rejects(reconcile(prefixes, { prefix }, ctx), (err: unknown) => err instanceof ConflictError && !err.retryable);
    assert.deepEqual(await remove(prefixes, { prefix }, ctx), {});
    // Even a delete step handed this prefix directly leaves it alone.
    await prefixes.applyDeleteChange({ prefix, owner: ctx.object.instanceId }, ctx);
    assert.equal(await root.get(`${prefix}/their-data`).string(), 'keep');
    assert.equal(await root.get(etcdOwnerKey(prefix)).string(), 'someone-else');
  });

  void test('a prefix that already holds unmarked keys is not adopted', async () => {
    const prefix = `/tenants/${id()}`;
    await root.put(`${prefix}/legacy`).value('keep');
    const ctx = context({ instanceId: `inst-${id()}` });
    await assert.rejects(reconcile(prefixes, { prefix }, ctx), ConflictError);
    assert.equal(await root.get(etcdOwnerKey(prefix)).string(), null);
    assert.equal(await root.get(`${prefix}/legacy`).string(), 'keep');
  });

  void test('users and roles outside the bf- namespace are never touched', async () => {
    const ctx = context({ instanceId: `inst-${id()}`, bindingId: `bind-${id()}` });
    const forged = { user: 'root', role: 'root', prefix: '/x', permission: 'Read' };
    await assert.rejects(users.applyDeleteChange(forged, ctx), PermissionError);
    await assert.rejects(users.applyCreateChange(forged, ctx), PermissionError);
    assert.deepEqual((await root.auth.userGet({ name: 'root' })).roles, ['root']);
  });

  void test('bad prefixes and missing binding IDs are rejected before any I/O', async () => {
    const closed = connectTenantEtcd({ endpoints: [server.endpoint], auth: { username: 'root', password: rootPassword } });
    closed.close();
    const p = new EtcdPrefixDriver({ client: closed });
    const u = new EtcdUserDriver({ client: closed, secrets, endpoints: [server.endpoint] });
    const ctx = context({ instanceId: 'i', bindingId: 'b' });
    for (const prefix of ['relative', '/a/../b', '/a/..', '/a/', '/a//b', '/', '', '/a\u0000b', '/a\nb', `/${'x'.repeat(600)}`, 42]) {
      await assert.rejects(p.getCurrentState({ prefix }, ctx), ValidationError, `prefix ${JSON.stringify(prefix)}`);
      await assert.rejects(u.getCurrentState({ prefix }, ctx), ValidationError, `prefix ${JSON.stringify(prefix)}`);
    }
    await assert.rejects(u.getCurrentState({ prefix: '/ok' }, context({ instanceId: 'i' })), ValidationError);
    await assert.rejects(u.getCurrentState({ prefix: '/ok' }, context({ instanceId: 'i', bindingId: '../b' })), ValidationError);
    await assert.rejects(p.getCurrentState({ prefix: '/ok' }, context({ instanceId: 'a\u0000' })), ValidationError);
    // A valid call on the closed client does reach the I/O layer, and says so as a retryable failure.
    await assert.rejects(p.getCurrentState({ prefix: '/ok' }, ctx), (err: unknown) => err instanceof UnavailableError && err.retryable);
  });

  void test('an unreachable etcd is a retryable UnavailableError', async () => {
    const port = await freePort();
    const dead = connectTenantEtcd({ endpoints: [`http://127.0.0.1:${port}`], auth: { username: 'root', password: 'x' }, timeoutMs: 1500 });
    clients.push(dead);
    const d = new EtcdUserDriver({ client: dead, secrets, endpoints: ['http://127.0.0.1:1'] });
    await assert.rejects(
      d.getCurrentState({ prefix: '/ok' }, context({ instanceId: 'i', bindingId: `b-${id()}` })),
      (err: unknown) => err instanceof UnavailableError && err.retryable,
    );
  });
});
