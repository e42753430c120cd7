// The real Kubernetes control plane that `npm test` starts (kube-apiserver + kube-controller-manager on the
// run's etcd) behaves as brokerflow needs it: CRUD, informers, server-side apply, garbage collection of
// owned objects and namespace deletion.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type {
  CoreV1Api,
  Informer,
  KubeConfig,
  KubernetesObject,
  KubernetesObjectApi,
  V1ConfigMap,
  V1Namespace,
  V1Secret,
  V1Service,
} from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { requireTestEnv } from '../support/env';

// @kubernetes/client-node is ESM-only; this package is CommonJS, so the values are loaded with import().
type K8s = typeof import('@kubernetes/client-node', { with: { 'resolution-mode': 'import' } });
let k8s: K8s;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs` saying what it waited for. */
async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    }
    await sleep(100);
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof k8s.ApiException && err.code === 404;
}

/** Resolves true once reading the object answers 404. */
async function gone(read: () => Promise<unknown>): Promise<true | undefined> {
  try {
    await read();
    return undefined;
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
}

void describe('Kubernetes control plane (kube-apiserver + kube-controller-manager)', () => {
  let kc: KubeConfig;
  let core: CoreV1Api;
  let objects: KubernetesObjectApi;
  const ns = `bf-kube-${randomBytes(4).toString('hex')}`;
  const informers: Informer<KubernetesObject>[] = [];

  before(async () => {
    const kubeconfigPath = requireTestEnv('kubeconfig');
    k8s = await import('@kubernetes/client-node');
    kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    core = kc.makeApiClient(k8s.CoreV1Api);
    objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  });

  after(async () => {
    await Promise.allSettled(informers.map((i) => i.stop()));
    if (core) await core.deleteNamespace({ name: ns }).catch(() => undefined);
  });

  /** Starts an informer that records the names it has seen added, and returns a waiter for one name. */
  async function watchAdds<T extends KubernetesObject>(
    path: string,
    list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>,
  ): Promise<(name: string) => Promise<T>> {
    const seen = new Map<string, T>();
    const errors: unknown[] = [];
    const informer = k8s.makeInformer<T>(kc, path, list as never);
    informer.on('add', (obj) => seen.set(obj.metadata?.name ?? '', obj));
    informer.on('error', (err) => errors.push(err));
    informers.push(informer as unknown as Informer<KubernetesObject>);
    await informer.start();
    return (name) =>
      eventually(`informer on ${path} to deliver ADD of ${name}${errors.length ? ` (errors: ${errors.join('; ')})` : ''}`, async () =>
        seen.get(name),
      );
  }

  void test('creates a namespace, a Service and a Secret and receives them through informers', async () => {
    const nsAdded = await watchAdds<V1Namespace>('/api/v1/namespaces', () => core.listNamespace());
    await core.createNamespace({ body: { metadata: { name: ns, labels: { 'app.kubernetes.io/managed-by': 'brokerflow-test' } } } });
    const seenNs = await nsAdded(ns);
    assert.equal(seenNs.metadata?.labels?.['app.kubernetes.io/managed-by'], 'brokerflow-test');

    const svcAdded = await watchAdds<V1Service>(`/api/v1/namespaces/${ns}/services`, () =>
      core.listNamespacedService({ namespace: ns }),
    );
    const secretAdded = await watchAdds<V1Secret>(`/api/v1/namespaces/${ns}/secrets`, () =>
      core.listNamespacedSecret({ namespace: ns }),
    );

    const created = await core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: 'db' },
        spec: { type: 'ClusterIP', selector: { app: 'db' }, ports: [{ name: 'pg', port: 5432, protocol: 'TCP' }] },
      },
    });
    // A real API server allocates a cluster IP from --service-cluster-ip-range.
    assert.match(created.spec?.clusterIP ?? '', /^10\.0\.0\.\d+$/);
    await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'creds' }, type: 'Opaque', stringData: { password: 's3cret' } },
    });

    const svc = await svcAdded('db');
    assert.equal(svc.spec?.ports?.[0]?.port, 5432);
    assert.equal(svc.spec?.clusterIP, created.spec?.clusterIP);
    const secret = await secretAdded('creds');
    assert.equal(Buffer.from(secret.data?.password ?? '', 'base64').toString(), 's3cret');
  });

  void test('server-side apply records the field manager and detects conflicts', async () => {
    const desired = (data: Record<string, string>): V1ConfigMap => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'applied', namespace: ns },
      data,
    });
    const first = await objects.patch(desired({ a: '1' }), undefined, undefined, 'brokerflow', false, k8s.PatchStrategy.ServerSideApply);
    assert.deepEqual((first as V1ConfigMap).data, { a: '1' });
    const entry = first.metadata?.managedFields?.find((f) => f.manager === 'brokerflow');
    assert.equal(entry?.operation, 'Apply');

    // Re-applying a changed intent replaces what this manager owns (field "a" removed, "b" added).
    const second = await objects.patch(desired({ b: '2' }), undefined, undefined, 'brokerflow', false, k8s.PatchStrategy.ServerSideApply);
    assert.deepEqual((second as V1ConfigMap).data, { b: '2' });

    // Another manager setting the same field differently conflicts unless it forces.
    await assert.rejects(
      objects.patch(desired({ b: 'other' }), undefined, undefined, 'someone-else', false, k8s.PatchStrategy.ServerSideApply),
      (err: unknown) => err instanceof k8s.ApiException && err.code === 409,
    );
    const forced = await objects.patch(desired({ b: 'other' }), undefined, undefined, 'someone-else', true, k8s.PatchStrategy.ServerSideApply);
    assert.equal((forced as V1ConfigMap).data?.b, 'other');
  });

  void test('RBAC is enforced and service-account tokens are issued and accepted', async () => {
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'reader' } } });
    const issued = await core.createNamespacedServiceAccountToken({
      namespace: ns,
      name: 'reader',
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const saToken = issued.status?.token;
    assert.ok(saToken, 'TokenRequest returned no token');
    const saKc = new k8s.KubeConfig();
    saKc.loadFromClusterAndUser(kc.getCurrentCluster()!, { name: 'reader', token: saToken });
    const asReader = saKc.makeApiClient(k8s.CoreV1Api);

    // Authenticated as system:serviceaccount:<ns>:reader, but nothing grants it access yet.
    await assert.rejects(
      asReader.listNamespacedConfigMap({ namespace: ns }),
      (err: unknown) => err instanceof k8s.ApiException && err.code === 403,
    );

    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: 'configmap-reader' },
        rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'reader-reads-configmaps' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmap-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns }],
      },
    });
    await eventually('the RoleBinding to let the service account list configmaps', async () => {
      await asReader.listNamespacedConfigMap({ namespace: ns });
      return true;
    });
    // The grant is exactly what the Role says: reading secrets stays forbidden.
    await assert.rejects(
      asReader.listNamespacedSecret({ namespace: ns }),
      (err: unknown) => err instanceof k8s.ApiException && err.code === 403,
    );
  });

  void test('the garbage collector deletes a dependent once its owner is deleted', async () => {
    const owner = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'owner' }, data: { role: 'owner' } } });
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: {
        metadata: {
          name: 'dependent',
          ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! }],
        },
        data: { role: 'dependent' },
      },
    });
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'owner' });
    await eventually(
      'the garbage collector to delete ConfigMap "dependent" after its owner was deleted (is kube-controller-manager running?)',
      () => gone(() => core.readNamespacedConfigMap({ namespace: ns, name: 'dependent' })),
      60_000,
    );
  });

  void test('deleting the namespace removes it and its contents (namespace controller)', async () => {
    await core.deleteNamespace({ name: ns });
    await eventually(
      `namespace ${ns} to be finalized and removed (is kube-controller-manager running?)`,
      () => gone(() => core.readNamespace({ name: ns })),
      60_000,
    );
    const leftovers = await core.listSecretForAllNamespaces({ fieldSelector: `metadata.namespace=${ns}` });
    assert.equal(leftovers.items.length, 0);
  });
});
