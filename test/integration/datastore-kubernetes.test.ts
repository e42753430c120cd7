// The Kubernetes datastore (ConfigMaps, revision = resourceVersion): the shared conformance suite against the
// run's real kube-apiserver, and how its watches outlive the API server's request timeout.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { KubernetesDatastore } from '../../adapters/datastore';
import { requireTestEnv } from '../support/env';
import { EventReader, runDatastoreConformance } from '../conformance/datastore-conformance';

const kubeconfigPath = requireTestEnv('kubeconfig');
const etcdEndpoint = requireTestEnv('etcdEndpoint');
const namespace = `bf-ds-${randomBytes(4).toString('hex')}`;

after(async () => {
  // Every datastore cleans its own ConfigMaps; the namespace ensureInitialized() created goes too.
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  await kc.makeApiClient(k8s.CoreV1Api).deleteNamespace({ name: namespace }).catch(() => undefined);
});

runDatastoreConformance('kubernetes', {
  make: async (scope) => new KubernetesDatastore({ kubeconfigPath, namespace, prefix: `/bf-test/datastore-${scope}` }),
  // The API server stores in the run's etcd. Compacting that etcd at a tiny revision (its first writes, long
  // overwritten) takes nothing from other tests, and makes revision 2 unreadable: older than the API server's
  // watch cache and gone from etcd.
  expire: async () => {
    const raw = new Etcd3({ hosts: etcdEndpoint });
    try {
      await raw.kv.compact({ revision: 4, physical: true }).catch((err: Error) => {
        if (!/compacted/.test(err.message)) throw err;
      });
    } finally {
      raw.close();
    }
    const datastore = new KubernetesDatastore({ kubeconfigPath, namespace, prefix: `/bf-test/expire-${randomBytes(4).toString('hex')}` });
    const current = await datastore.apply('/k', 'v');
    return {
      datastore,
      key: '/k',
      revision: '2',
      current,
      release: async () => {
        await datastore.clean();
        await datastore.close();
      },
    };
  },
});

void describe('kubernetes datastore lists in pages', () => {
  void test('a list larger than a page returns every key once, in key order, as of one revision', async () => {
    const ds = new KubernetesDatastore({ kubeconfigPath, namespace, prefix: `/bf-test/pages-${randomBytes(4).toString('hex')}`, listPageSize: 3 });
    try {
      await ds.ensureInitialized();
      const written = [await ds.apply('/p', 'self')];
      for (let i = 0; i < 10; i++) written.push(await ds.apply(`/p/k${i}`, `v${i}`));
      await ds.apply('/p-sibling', 'not listed');
      const listed = await ds.list('/p');
      assert.deepEqual(listed.pairs, written);
      await ds.delete('/p/k0');
      await ds.apply('/p/k9', 'changed');
      assert.deepEqual(await ds.list('/p', listed.revision), listed);
    } finally {
      await ds.clean();
      await ds.close();
    }
  });
});

void describe('kubernetes datastore watches', () => {
  void test('a watch the API server closes after its timeout resumes from the last revision: nothing lost, no ERROR', async () => {
    const ds = new KubernetesDatastore({ kubeconfigPath, namespace, prefix: `/bf-test/resume-${randomBytes(4).toString('hex')}`, watchTimeoutSeconds: 2 });
    try {
      await ds.ensureInitialized();
      const w = new EventReader(ds.watch('/r'));
      const first = await ds.create('/r/first', '1');
      assert.deepEqual((await w.take(1))[0]?.new, first);
      // Outlive two server-side timeouts, writing in between.
      await new Promise((r) => setTimeout(r, 2_500));
      const second = await ds.create('/r/second', '2');
      await new Promise((r) => setTimeout(r, 2_500));
      const third = await ds.update({ ...second, value: '3' });
      const evs = await w.take(2);
      assert.deepEqual(evs.map((e) => [e.type, e.new]), [
        ['ADDED', second],
        ['MODIFIED', third],
      ]);
      assert.deepEqual(evs[1]?.old, second);
      assert.equal(w.stream.hasTerminated(), false);
      w.stream.stop();
    } finally {
      await ds.clean();
      await ds.close();
    }
  });
});
