// The Kubernetes backend against the test kube-apiserver: the conformance suite, plus ConfigMaps vs Secrets and
// ownership (a ConfigMap brokerflow did not write is never read, replaced or deleted).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { CoreV1Api } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { ConflictError } from '../../adapters/errors';
import { KubernetesPersistenceProvider, holderName } from '../../adapters/persistence';
import { requireTestEnv } from '../support/env';
import { persistenceConformance, testMachineId } from '../conformance/persistence-conformance';

const kubeconfigPath = requireTestEnv('kubeconfig');
const suffix = randomBytes(4).toString('hex');
const home = `bf-persist-${suffix}`;
const namespaces: [string, string] = [`bf-persist-a-${suffix}`, `bf-persist-b-${suffix}`];

async function core(): Promise<CoreV1Api> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return kc.makeApiClient(k8s.CoreV1Api);
}

let api: CoreV1Api;
before(async () => {
  api = await core();
  for (const name of [home, ...namespaces]) await api.createNamespace({ body: { metadata: { name } } });
});
after(async () => {
  await Promise.allSettled([home, ...namespaces].map((name) => api.deleteNamespace({ name })));
});

persistenceConformance({
  kind: 'kubernetes',
  namespaces,
  // Each scope is its own store on the same cluster.
  make: (scopes) => new KubernetesPersistenceProvider({ replicas: scopes.map((store) => ({ kubeconfigPath, namespace: home, namespaces, store })) }),
  makeUnreachable: () => new KubernetesPersistenceProvider({ replicas: [{ kubeconfigPath: '/nonexistent/kubeconfig', namespace: home }] }),
});

void describe('kubernetes persistence provider', () => {
  let p: KubernetesPersistenceProvider;
  let inst: string;
  before(async () => {
    p = new KubernetesPersistenceProvider({ replicas: [{ kubeconfigPath, namespace: home, secretKinds: ['Credential'] }] });
    await p.initialize(testMachineId);
    inst = p.replicas()[0]!;
  });
  after(() => p.close());

  void test('ordinary kinds are stored as ConfigMaps and secret kinds as Secrets, in the replica namespace', async () => {
    await p.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: 'plain' }, text: 'visible' });
    await p.putObject(inst, { apiVersion: 'v1', kind: 'Credential', metadata: { name: 'secret' }, password: 'hunter2' });
    const cm = await api.readNamespacedConfigMap({ name: 'note.plain', namespace: home });
    assert.match(cm.data?.['object.json'] ?? '', /visible/);
    const secret = await api.readNamespacedSecret({ name: 'credential.secret', namespace: home });
    assert.ok(secret.data?.['object.json']);
    await assert.rejects(api.readNamespacedConfigMap({ name: 'credential.secret', namespace: home }));
    assert.equal((await p.getObject(inst, 'Credential/secret'))?.password, 'hunter2');
  });

  void test('names that are not valid Kubernetes names are stored under a hash and read back by their key', async () => {
    const put = await p.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: 'Upper_Case.Name' }, n: 1 });
    assert.match(holderName({ group: '', kind: 'Note', name: 'Upper_Case.Name' }), /^note\.h-[0-9a-f]{40}$/);
    assert.equal((await p.getObject(inst, put.key))?.n, 1);
  });

  void test('a ConfigMap brokerflow did not write is neither read, replaced nor deleted', async () => {
    await api.createNamespacedConfigMap({ namespace: home, body: { metadata: { name: 'note.foreign' }, data: { 'object.json': '{}' } } });
    assert.equal(await p.getObject(inst, 'Note/foreign'), undefined);
    await assert.rejects(p.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: 'foreign' } }), ConflictError);
    await p.deleteObject(inst, 'Note/foreign');
    const still = await api.readNamespacedConfigMap({ name: 'note.foreign', namespace: home });
    assert.deepEqual(still.data, { 'object.json': '{}' });
  });

  void test('the owner reference names the ConfigMap holding the object, with its uid', async () => {
    const put = await p.putObject(inst, { apiVersion: 'v1', kind: 'Note', metadata: { name: 'owner' } });
    const got = (await p.getObject(inst, put.key))!;
    const ref = p.ownerReference(inst, got);
    const cm = await api.readNamespacedConfigMap({ name: 'note.owner', namespace: home });
    assert.deepEqual(ref && { kind: ref.kind, name: ref.name, uid: ref.uid }, { kind: 'ConfigMap', name: 'note.owner', uid: cm.metadata?.uid });
  });
});
