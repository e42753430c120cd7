// The registry over the Kubernetes backend: the registry conformance suite, plus owner references: deleting an
// entry garbage-collects the objects created with its owner reference (kube-controller-manager's collector).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { CoreV1Api } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { KubernetesPersistenceProvider } from '../../adapters/persistence';
import { RegistryKey } from '../../adapters/registry';
import { requireTestEnv } from '../support/env';
import { openRegistry, registryConformance, type RegistryBackend } from '../conformance/registry-conformance';

const kubeconfigPath = requireTestEnv('kubeconfig');
const suffix = randomBytes(4).toString('hex');
const home = `bf-registry-${suffix}`;
const namespaces: [string, string] = [`bf-registry-a-${suffix}`, `bf-registry-b-${suffix}`];

let api: CoreV1Api;
before(async () => {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  api = kc.makeApiClient(k8s.CoreV1Api);
  for (const name of [home, ...namespaces]) await api.createNamespace({ body: { metadata: { name } } });
});
after(async () => {
  await Promise.allSettled([home, ...namespaces].map((name) => api.deleteNamespace({ name })));
});

const backend: RegistryBackend = {
  kind: 'kubernetes',
  namespaces,
  make: (scope) => ({
    plain: new KubernetesPersistenceProvider({ replicas: [{ kubeconfigPath, namespace: home, namespaces, store: scope }] }),
    // As the factory builds it: everything behind the secret provider is a Secret.
    secretInner: new KubernetesPersistenceProvider({ replicas: [{ kubeconfigPath, namespace: home, namespaces, store: scope, secretKinds: '*' }] }),
  }),
};

registryConformance(backend);

void describe('registry on kubernetes', () => {
  void test('deleting an entry garbage-collects the objects created with its owner reference', async () => {
    const { registry, plain, secretInner } = await openRegistry(backend, `gc${suffix}`);
    try {
      const entry = await registry.open('service-instance', `gc-${suffix}`);
      assert.equal(entry.getOwnerReference(), undefined, 'no reference before the entry is stored');
      entry.set(RegistryKey.PlanID, 'p');
      await entry.commit();
      const ref = entry.getOwnerReference();
      assert.ok(ref);
      assert.equal(ref.kind, 'ConfigMap');
      assert.equal((await api.readNamespacedConfigMap({ name: ref.name, namespace: entry.namespace! })).metadata?.uid, ref.uid);
      const reopened = await registry.open('service-instance', entry.id);
      assert.deepEqual(reopened.getOwnerReference(), ref, 'a loaded entry gives the same reference');
      await api.createNamespacedConfigMap({
        namespace: entry.namespace!,
        body: { metadata: { name: `owned-${suffix}`, ownerReferences: [ref] }, data: { a: 'b' } },
      });
      await entry.delete();
      const deadline = Date.now() + 30_000;
      for (;;) {
        const gone = await api.readNamespacedConfigMap({ name: `owned-${suffix}`, namespace: entry.namespace! }).then(
          () => false,
          (err: { code?: number }) => err.code === 404,
        );
        if (gone) break;
        assert.ok(Date.now() < deadline, 'the owned ConfigMap was not garbage-collected within 30 s');
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await plain.close();
      await secretInner.close();
    }
  });

  void test('credentials of a binding are stored in a Secret, never in a ConfigMap', async () => {
    const { registry, plain, secretInner } = await openRegistry(backend, `sec${suffix}`);
    try {
      const b = await registry.open('service-binding', `cred-${suffix}`);
      b.set(RegistryKey.Credentials, { password: 'in-a-secret' });
      await b.commit();
      const secrets = await api.listNamespacedSecret({ namespace: b.namespace!, labelSelector: 'persistence.brokerflow.io/kind=RegistryCredentials' });
      assert.equal(secrets.items.filter((s) => s.metadata?.name?.endsWith(b.name)).length, 1);
      const maps = await api.listNamespacedConfigMap({ namespace: b.namespace! });
      assert.ok(!JSON.stringify(maps.items).includes('in-a-secret'));
      assert.ok(!maps.items.some((m) => m.metadata?.labels?.['persistence.brokerflow.io/kind'] === 'RegistryCredentials'));
    } finally {
      await plain.close();
      await secretInner.close();
    }
  });
});
