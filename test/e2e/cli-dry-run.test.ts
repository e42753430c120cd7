// `brokerflow provision|update|bind … --dry-run` over the CLI, against the test run's servers: the preview shows
// per resource what reconciliation would do against the current state, writes nothing anywhere (registry, tenant
// etcd, Kubernetes, Temporal), matches what the real operation then does, and never shows a secret.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startTestStack, type TestStack } from '../support/stack';
import { requireTestEnv } from '../support/env';
import { newId, workflowExists, bindingWorkflowIdOf } from '../support/osb';
import { cliRunner, EXIT, type CliRun, type Json } from '../support/cli';
import { etcdUserName } from '../../adapters/resources/etcd-user';

const resourceSets = resolve(__dirname, '..', 'support', 'fixtures', 'resource-sets.dryrun.yaml');

let stack: TestStack;
let tenant: Etcd3;
before(async () => {
  stack = await startTestStack({ overrides: { resourceSets } });
  tenant = new Etcd3({ hosts: requireTestEnv('tenantEtcdEndpoint'), auth: { username: 'root', password: requireTestEnv('tenantEtcdRootPassword') } });
});
after(async () => {
  tenant.close();
  await stack.close();
});

const { cli } = cliRunner(() => stack.configFile);

type Change = { path: string; from?: unknown; to?: unknown; masked?: true };
type Resource = { name: string; driver: string; action: string; changes: Change[] };

async function kube() {
  const { KubeConfig, CoreV1Api } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromFile(requireTestEnv('kubeconfig'));
  return kc.makeApiClient(CoreV1Api);
}

/** The live ConfigMap or Secret, or undefined when there is none. */
async function kubeObject(kind: 'ConfigMap' | 'Secret', name: string): Promise<Record<string, unknown> | undefined> {
  const api = await kube();
  try {
    const read = kind === 'ConfigMap' ? api.readNamespacedConfigMap({ name, namespace: 'default' }) : api.readNamespacedSecret({ name, namespace: 'default' });
    return (await read) as unknown as Record<string, unknown>;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

/** Everything of an instance in the tenant etcd: the keys under its prefix and its owner mark. */
async function tenantKeys(id: string): Promise<Record<string, string>> {
  const under = await tenant.getAll().prefix(`/tenants/${id}/`).strings();
  const owner = await tenant.get(`/brokerflow-owners/etcd-prefix/tenants/${id}`).string();
  return { ...under, ...(owner !== null ? { owner } : {}) };
}

/** The fields of a live object the driver manages, flattened as the preview names them (`manifest.data.x`). */
function managedFields(obj: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!obj) return out;
  const meta = obj.metadata as { labels?: Record<string, string>; annotations?: Record<string, string> };
  const key = (k: string) => (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`);
  for (const [k, v] of Object.entries((obj.data as Record<string, string>) ?? {})) out[`manifest.data${key(k)}`] = v;
  for (const [k, v] of Object.entries(meta.labels ?? {})) out[`manifest.metadata.labels${key(k)}`] = v;
  for (const [k, v] of Object.entries(meta.annotations ?? {})) out[`manifest.metadata.annotations${key(k)}`] = v;
  return out;
}

function byName(run: CliRun): Record<string, Resource> {
  return Object.fromEntries((run.json.resources as Resource[]).map((r) => [r.name, r]));
}

async function nothingWritten(id: string, run: CliRun): Promise<void> {
  const entry = await stack.worker.registry.registry.open('service-instance', id);
  assert.equal(entry.exists(), false, 'no registry entry');
  assert.equal(await stack.worker.registry.registry.readOperation('service-instance', id), undefined, 'no operation record');
  assert.deepEqual(await tenantKeys(id), {}, 'nothing in the tenant etcd');
  assert.equal(await kubeObject('ConfigMap', `bf-${id}`), undefined, 'no Kubernetes object');
  assert.equal(await workflowExists(stack, id), false, `no workflow started (${run.stdout})`);
}

test('a dry run of a provision shows creates against the current state and writes nothing anywhere', async () => {
  const id = newId('dry-prov');
  const args = ['provision', id, '--service', 'etcd-keyspace', '--plan', 'standard', '--params', '{"quotaKeys":10}', '--dry-run'];
  const [run, human] = await Promise.all([cli(args), cli(args, { json: false })]);
  assert.equal(run.code, EXIT.ok, run.stdout + run.stderr);
  assert.equal(run.lines.length, 1, 'one JSON object');
  assert.equal(run.json.dryRun, true);
  assert.equal(run.json.operation, 'provision');
  assert.equal(run.json.instanceId, id);
  assert.match(String(run.json.operationId), /^provision-/);
  const r = byName(run);
  assert.deepEqual(Object.keys(r), ['settings', 'keyspace']);
  assert.deepEqual([r.settings!.action, r.keyspace!.action], ['create', 'create']);
  assert.deepEqual(
    r.settings!.changes.find((c) => c.path === 'manifest.data.quotaKeys'),
    { path: 'manifest.data.quotaKeys', to: '10' },
  );
  assert.deepEqual(
    r.settings!.changes.find((c) => c.path === 'manifest.metadata.labels["app.kubernetes.io/managed-by"]'),
    { path: 'manifest.metadata.labels["app.kubernetes.io/managed-by"]', to: 'brokerflow' },
  );
  assert.deepEqual(r.keyspace!.changes, [
    { path: 'prefix', to: `/tenants/${id}` },
    { path: 'owner', to: id },
  ]);

  assert.equal(human.code, EXIT.ok, human.stderr);
  assert.match(human.stdout, new RegExp(`^dry run: provision of instance ${id} \\(operation provision-[0-9a-f]+\\): 2 create; nothing was changed`));
  assert.ok(human.stdout.includes(`+ settings (kubernetes: ConfigMap default/bf-${id}): create\n`), human.stdout);
  assert.ok(human.stdout.includes('    manifest.data.quotaKeys: "10"\n'), human.stdout);
  assert.ok(human.stdout.includes(`+ keyspace (etcd-prefix: prefix /tenants/${id}): create\n`), human.stdout);

  await nothingWritten(id, run);

  // The real provision of the same request is the operation the preview named.
  const real = await cli(['provision', id, '--service', 'etcd-keyspace', '--plan', 'standard', '--params', '{"quotaKeys":10}', '--wait']);
  assert.equal(real.code, EXIT.ok, real.stdout + real.stderr);
  assert.equal(real.json.operationId, run.json.operationId);
  assert.equal(managedFields(await kubeObject('ConfigMap', `bf-${id}`))['manifest.data.quotaKeys'], '10');
  assert.equal((await cli(['deprovision', id, '--wait'])).code, EXIT.ok);
});

test('a dry run refuses what the request would refuse, with the same errors and exit codes, and starts nothing', async () => {
  const id = newId('dry-bad');
  const [unknownPlan, badParams, withWait, noInstance] = await Promise.all([
    cli(['provision', id, '--service', 'etcd-keyspace', '--plan', 'no-such-plan', '--dry-run']),
    cli(['provision', id, '--service', 'etcd-keyspace', '--plan', 'standard', '--params', '{"quotaKeys":0}', '--dry-run']),
    cli(['provision', id, '--service', 'etcd-keyspace', '--plan', 'standard', '--dry-run', '--wait']),
    cli(['update', id, '--params', '{"quotaKeys":5}', '--dry-run']),
  ]);
  assert.equal(unknownPlan.code, EXIT.usage, unknownPlan.stdout + unknownPlan.stderr);
  assert.match(String(unknownPlan.json.error), /no plan "no-such-plan"/);
  assert.equal(badParams.code, EXIT.usage, badParams.stdout + badParams.stderr);
  assert.deepEqual([badParams.json.dryRun, badParams.json.status], [true, 400]);
  assert.match(String(badParams.json.description), /quotaKeys must be >= 1/);
  assert.equal(withWait.code, EXIT.usage, withWait.stdout + withWait.stderr);
  assert.match(withWait.stderr, /--dry-run.*cannot be used with.*--wait|--wait.*cannot be used with.*--dry-run/);
  assert.equal(noInstance.code, EXIT.notFound, noInstance.stdout + noInstance.stderr);
  await nothingWritten(id, badParams);
});

test('a dry run of an update shows exactly the changes the real update then makes', async () => {
  const id = newId('dry-upd');
  const prov = await cli(['provision', id, '--service', 'etcd-keyspace', '--plan', 'standard', '--params', '{"quotaKeys":10}', '--wait']);
  assert.equal(prov.code, EXIT.ok, prov.stdout + prov.stderr);
  const before = { settings: managedFields(await kubeObject('ConfigMap', `bf-${id}`)), keyspace: await tenantKeys(id) };

  const dry = await cli(['update', id, '--params', '{"quotaKeys":20}', '--dry-run']);
  assert.equal(dry.code, EXIT.ok, dry.stdout + dry.stderr);
  const r = byName(dry);
  assert.deepEqual([r.settings!.action, r.keyspace!.action], ['update', 'unchanged']);
  assert.deepEqual(r.keyspace!.changes, []);
  // The dry run changed nothing either.
  assert.deepEqual({ settings: managedFields(await kubeObject('ConfigMap', `bf-${id}`)), keyspace: await tenantKeys(id) }, before);

  const upd = await cli(['update', id, '--params', '{"quotaKeys":20}', '--wait']);
  assert.equal(upd.code, EXIT.ok, upd.stdout + upd.stderr);
  assert.equal(upd.json.operationId, dry.json.operationId, 'the real update is the operation the preview named');
  const after = { settings: managedFields(await kubeObject('ConfigMap', `bf-${id}`)), keyspace: await tenantKeys(id) };

  // What actually changed on the ConfigMap, field by field, is what the preview said would change.
  const actual = Object.keys({ ...before.settings, ...after.settings })
    .filter((k) => before.settings[k] !== after.settings[k])
    .sort()
    .map((path) => ({ path, ...(path in before.settings ? { from: before.settings[path] } : {}), ...(path in after.settings ? { to: after.settings[path] } : {}) }));
  const previewed = r.settings!.changes.filter((c) => c.path.startsWith('manifest.')).sort((a, b) => (a.path < b.path ? -1 : 1));
  assert.deepEqual(previewed, actual);
  assert.ok(actual.some((c) => c.path === 'manifest.data.quotaKeys' && c.from === '10' && c.to === '20'), JSON.stringify(actual));
  // The preview's hash change is the applied-hash annotation the update wrote.
  const hash = r.settings!.changes.find((c) => c.path === 'hash');
  assert.deepEqual(hash, { path: 'hash', from: before.settings['manifest.metadata.annotations["brokerflow.io/applied-hash"]'], to: after.settings['manifest.metadata.annotations["brokerflow.io/applied-hash"]'] });
  assert.deepEqual(after.keyspace, before.keyspace, 'the keyspace the preview left unchanged is unchanged');

  // Once applied, the same update would run nothing; another value would change that one field again.
  const [again, other] = await Promise.all([
    cli(['update', id, '--params', '{"quotaKeys":20}', '--dry-run']),
    cli(['update', id, '--params', '{"quotaKeys":30}', '--dry-run']),
  ]);
  assert.equal(again.code, EXIT.ok, again.stdout + again.stderr);
  assert.deepEqual([again.json.status, again.json.resources], [200, []]);
  assert.match(String(again.json.description), /already succeeded/);
  assert.equal(other.code, EXIT.ok, other.stdout + other.stderr);
  assert.deepEqual(
    byName(other).settings!.changes.find((c) => c.path === 'manifest.data.quotaKeys'),
    { path: 'manifest.data.quotaKeys', from: '20', to: '30' },
  );
  assert.equal((await cli(['deprovision', id, '--wait'])).code, EXIT.ok);
});

test('a dry run of a bind shows creates with secrets masked, in the human output and in --json', async () => {
  const id = newId('dry-bind');
  const bid = newId('dry-b');
  const password = `pw-${randomUUID()}`;
  const prov = await cli(['provision', id, '--service', 'etcd-keyspace', '--plan', 'async-only', '--wait']);
  assert.equal(prov.code, EXIT.ok, prov.stdout + prov.stderr);
  // Other test files run beside this one and add etcd users of their own: look only for this binding's user.
  const userName = etcdUserName(bid);
  const userExists = async (): Promise<boolean> => (await tenant.getUsers()).some((u) => u.name === userName);
  assert.equal(await userExists(), false);

  const args = ['bind', id, bid, '--params', JSON.stringify({ password }), '--dry-run'];
  const [run, human] = await Promise.all([cli(args), cli(args, { json: false })]);
  for (const out of [run, human]) {
    assert.equal(out.code, EXIT.ok, out.stdout + out.stderr);
    assert.ok(!out.stdout.includes(password) && !out.stderr.includes(password), `the password is never printed: ${out.stdout}`);
  }
  assert.deepEqual([run.json.operation, run.json.bindingId], ['bind', bid]);
  const r = byName(run);
  assert.deepEqual(Object.keys(r), ['app-secret', 'user']);
  assert.deepEqual([r['app-secret']!.action, r.user!.action], ['create', 'create']);
  assert.deepEqual(
    r['app-secret']!.changes.find((c) => c.path === 'manifest.stringData.password'),
    { path: 'manifest.stringData.password', to: '***', masked: true },
  );
  assert.deepEqual(r['app-secret']!.changes.find((c) => c.path === 'hash'), { path: 'hash', to: '***', masked: true });
  assert.ok(r.user!.changes.some((c) => c.path === 'permission' && c.to === 'Readwrite'), JSON.stringify(r.user));
  assert.ok(human.stdout.includes('    manifest.stringData.password: ***\n'), human.stdout);
  assert.ok(human.stdout.includes(`+ app-secret (kubernetes: Secret default/bf-${bid}): create\n`), human.stdout);

  // Nothing was written: no binding entry, no Secret, no etcd user, no binding workflow.
  assert.equal((await stack.worker.registry.registry.open('service-binding', bid, { instanceId: id })).exists(), false);
  assert.equal(await kubeObject('Secret', `bf-${bid}`), undefined);
  assert.equal(await userExists(), false, 'no etcd user for the binding');
  await assert.rejects(stack.client.workflow.getHandle(bindingWorkflowIdOf(bid)).describe(), /not found/i);

  // The real bind creates what the preview showed.
  const bind = await cli(['bind', id, bid, '--params', JSON.stringify({ password }), '--wait']);
  assert.equal(bind.code, EXIT.ok, bind.stdout + bind.stderr);
  const secret = await kubeObject('Secret', `bf-${bid}`);
  assert.equal(Buffer.from(String((secret!.data as Json).password), 'base64').toString('utf8'), password);
  assert.equal(await userExists(), true, 'the real bind created the etcd user');
  assert.equal((await cli(['deprovision', id, '--wait'])).code, EXIT.ok);
});
