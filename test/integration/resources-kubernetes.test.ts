// The `kubernetes` resource driver against the real kube-apiserver of the test run: objects are created with our
// marks, updated when the spec changes, waited for when readiness is configured, deleted, garbage-collected with
// their owner, and a foreign object of the same name is never touched.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AppsV1Api, CoreV1Api, KubeConfig, V1ConfigMap } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { requireTestEnv } from '../support/env';
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from '../../adapters/errors';
import {
  KubernetesObjectDriver,
  loadKubernetesClient,
  APPLIED_HASH_ANNOTATION,
  BINDING_ID_KEY,
  INSTANCE_ID_KEY,
  MANAGED_BY_LABEL,
  type DriverContext,
} from '../../adapters/resources';
import type { ReconcileObject } from '../../domain/reconcile';
import { reconcile, remove, viaHistory } from '../support/driver-steps';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const id = () => randomBytes(5).toString('hex');

/** Polls `check` until it returns something other than undefined, or fails naming what it waited for. */
async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

void describe('Kubernetes object driver on a real kube-apiserver', () => {
  let k8s: Awaited<ReturnType<typeof loadKubernetesClient>>;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let driver: KubernetesObjectDriver;
  const ns = `bf-res-${id()}`;

  before(async () => {
    k8s = await loadKubernetesClient();
    kc = new k8s.KubeConfig();
    kc.loadFromFile(requireTestEnv('kubeconfig'));
    core = kc.makeApiClient(k8s.CoreV1Api);
    apps = kc.makeApiClient(k8s.AppsV1Api);
    driver = new KubernetesObjectDriver({ objects: k8s.KubernetesObjectApi.makeApiClient(kc), readinessPollMs: 100 });
    await core.createNamespace({ body: { metadata: { name: ns } } });
  });

  after(async () => {
    if (core) await core.deleteNamespace({ name: ns }).catch(() => undefined);
  });

  function context(object: Partial<ReconcileObject> = {}, signal = new AbortController().signal) {
    const beats: unknown[] = [];
    const ctx: DriverContext = {
      object: { operationId: `op-${id()}`, instanceId: `inst-${id()}`, serviceId: 'svc', planId: 'plan', namespace: ns, ...object },
      resourceName: 'object',
      heartbeat: (d) => beats.push(d),
      signal,
    };
    return { ctx, beats };
  }

  const configMap = (name: string, data: Record<string, string>, extra: Record<string, unknown> = {}) => ({
    manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data },
    ...extra,
  });

  const readCm = (name: string) => core.readNamespacedConfigMap({ namespace: ns, name });
  const absent = async (name: string) => {
    try {
      await readCm(name);
      return undefined;
    } catch (err) {
      if (err instanceof k8s.ApiException && err.code === 404) return true;
      throw err;
    }
  };

  void test('creates the object with brokerflow marks in the reconciled namespace; reconciling again changes nothing', async () => {
    const { ctx } = context({ bindingId: `bind-${id()}` });
    const spec = configMap('created', { a: '1' });
    assert.ok((await reconcile(driver, spec, ctx)).create);

    const live = await readCm('created');
    assert.deepEqual(live.data, { a: '1' });
    assert.equal(live.metadata?.labels?.[MANAGED_BY_LABEL], 'brokerflow');
    assert.equal(live.metadata?.labels?.[INSTANCE_ID_KEY], ctx.object.instanceId);
    assert.equal(live.metadata?.annotations?.[BINDING_ID_KEY], ctx.object.bindingId);
    assert.match(live.metadata?.annotations?.[APPLIED_HASH_ANNOTATION] ?? '', /^[0-9a-f]{64}$/);
    // Every field is owned by our apply alone, so a field later dropped from the manifest is removed.
    const ours = live.metadata?.managedFields?.filter((f) => f.manager === 'brokerflow') ?? [];
    assert.deepEqual(ours.map((f) => f.operation), ['Apply']);

    assert.deepEqual(await reconcile(driver, spec, ctx), {});
    // A create step retried after it had succeeded adopts what it made.
    await driver.applyCreateChange(viaHistory(await driver.getDesiredState(spec, ctx)), ctx);
    assert.equal((await readCm('created')).metadata?.resourceVersion, live.metadata?.resourceVersion);
  });

  void test('IDs that are not label values are labelled by hash and kept whole in annotations', async () => {
    const instanceId = `urn:tenant/${'x'.repeat(80)}`;
    const { ctx } = context({ instanceId });
    await reconcile(driver, configMap('long-id', { a: '1' }), ctx);
    const meta = (await readCm('long-id')).metadata!;
    const label = meta.labels?.[INSTANCE_ID_KEY] ?? '';
    assert.match(label, /^sha256-[0-9a-f]{56}$/);
    assert.equal(meta.annotations?.[INSTANCE_ID_KEY], instanceId);
    assert.deepEqual(await reconcile(driver, configMap('long-id', { a: '1' }), ctx), {}, 'the object is recognised as ours');
  });

  void test('a spec change updates the object, removes dropped fields and keeps fields of other writers', async () => {
    const { ctx } = context();
    await reconcile(driver, configMap('updated', { a: '1', b: '2' }), ctx);
    await core.patchNamespacedConfigMap({
      namespace: ns,
      name: 'updated',
      fieldManager: 'someone-else',
      body: [{ op: 'add', path: '/metadata/labels/team', value: 'blue' }],
    });

    const patch = await reconcile(driver, configMap('updated', { a: '1', c: '3' }), ctx);
    assert.ok(patch.update && !patch.create && !patch.delete);
    const live = await readCm('updated');
    assert.deepEqual(live.data, { a: '1', c: '3' });
    assert.equal(live.metadata?.labels?.team, 'blue');
    assert.deepEqual(await reconcile(driver, configMap('updated', { a: '1', c: '3' }), ctx), {});
  });

  void test('a foreign object of the same name is reported absent, never changed, and a create over it is a ConflictError', async () => {
    const foreign = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'foreign' }, data: { theirs: 'yes' } } });
    const { ctx } = context();
    const spec = configMap('foreign', { ours: 'no' });
    assert.equal(await driver.getCurrentState(spec, ctx), null);
    await assert.rejects(reconcile(driver, spec, ctx), (err: unknown) => {
      assert.ok(err instanceof ConflictError, String(err));
      assert.equal(err.retryable, false);
      assert.match(err.message, new RegExp(`ConfigMap ${ns}/foreign`));
      return true;
    });
    assert.deepEqual(await remove(driver, spec, ctx), {});
    // Even a delete step handed the object directly leaves it alone.
    await driver.applyDeleteChange({ apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, name: 'foreign' }, ctx);
    const live = await readCm('foreign');
    assert.equal(live.metadata?.resourceVersion, foreign.metadata?.resourceVersion);
    assert.deepEqual(live.data, { theirs: 'yes' });
  });

  void test("another instance's object is foreign too", async () => {
    const owner = context();
    const other = context();
    const spec = configMap('other-instance', { a: '1' });
    await reconcile(driver, spec, owner.ctx);
    assert.equal(await driver.getCurrentState(spec, other.ctx), null);
    await assert.rejects(reconcile(driver, spec, other.ctx), ConflictError);
    assert.deepEqual(await remove(driver, spec, other.ctx), {});
    assert.equal((await readCm('other-instance')).metadata?.annotations?.[INSTANCE_ID_KEY], owner.ctx.object.instanceId);
  });

  void test('deleting removes the object, and deleting twice is a no-op', async () => {
    const { ctx } = context();
    const spec = configMap('deleted', { a: '1' });
    await reconcile(driver, spec, ctx);
    const first = await remove(driver, spec, ctx);
    assert.ok(first.delete);
    await eventually('ConfigMap "deleted" to be gone', () => absent('deleted'));
    assert.deepEqual(await remove(driver, spec, ctx), {});
    await driver.applyDeleteChange(viaHistory(first.delete!), ctx);
  });

  void test('create waits until the readiness path holds, heartbeating meanwhile', async () => {
    const { ctx, beats } = context();
    const spec = configMap('ready-later', { ready: 'false' }, { readiness: { jsonPath: 'data.ready', equals: 'true', timeoutSeconds: 30 } });
    let done = false;
    const running = reconcile(driver, spec, ctx).finally(() => (done = true));
    await eventually('the ConfigMap to be created', async () => (await absent('ready-later')) ? undefined : true);
    await sleep(400);
    assert.equal(done, false, 'create must not finish before the object is ready');
    await core.patchNamespacedConfigMap({
      namespace: ns,
      name: 'ready-later',
      fieldManager: 'test-controller',
      body: [{ op: 'replace', path: '/data/ready', value: 'true' }],
    });
    assert.ok((await running).create);
    assert.ok(beats.length >= 2, `heartbeats while waiting: ${beats.length}`);
  });

  void test('an object not ready in time fails retryably, and the next reconciliation waits for it again', async () => {
    const { ctx } = context();
    const spec = configMap('slow', { ready: '' }, { readiness: { jsonPath: '{.data.ready}', timeoutSeconds: 0.5 } });
    const notReady = (err: unknown) => err instanceof UnavailableError && err.retryable && /not ready yet/.test(err.message);
    await assert.rejects(reconcile(driver, spec, ctx), notReady);
    assert.equal((await driver.getCurrentState(spec, ctx))?.ready, false);
    // Nothing else differs, yet the next reconciliation runs the update step to wait again.
    await assert.rejects(reconcile(driver, spec, ctx), notReady);

    const waiting = reconcile(driver, { ...spec, readiness: { jsonPath: '{.data.ready}', timeoutSeconds: 30 } }, ctx);
    await sleep(300);
    await core.patchNamespacedConfigMap({
      namespace: ns,
      name: 'slow',
      fieldManager: 'test-controller',
      body: [{ op: 'replace', path: '/data/ready', value: 'yes' }],
    });
    assert.ok((await waiting).update);
    assert.deepEqual(await reconcile(driver, spec, ctx), {});
  });

  void test('cancelling the activity stops the readiness wait with its reason', async () => {
    const abort = new AbortController();
    const { ctx } = context({}, abort.signal);
    const spec = configMap('never-ready', {}, { readiness: { jsonPath: 'data.ready', timeoutSeconds: 30 } });
    const started = Date.now();
    setTimeout(() => abort.abort(new Error('activity cancelled')), 300);
    await assert.rejects(reconcile(driver, spec, ctx), /activity cancelled/);
    assert.ok(Date.now() - started < 5000);
  });

  void test('a Deployment is waited for until its Available condition is True for its current generation', async () => {
    const { ctx } = context();
    const deployment = (image: string) => ({
      manifest: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: ns },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'web' } },
          template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image }] } },
        },
      },
      readiness: { condition: 'Available', timeoutSeconds: 30 },
    });
    // No deployment controller runs here: the test plays it. Like any controller it writes status from a fresh read
    // and reads again on a Conflict: the driver's create is three writes (create, apply, ownership settle), and a
    // status write between them meets a newer resourceVersion.
    const setStatus = async (observedGeneration: number, available: 'True' | 'False') => {
      for (let attempt = 1; ; attempt++) {
        const d = await apps.readNamespacedDeployment({ namespace: ns, name: 'web' });
        d.status = {
          observedGeneration,
          conditions: [{ type: 'Available', status: available, reason: 'Test', lastTransitionTime: new Date() }],
        };
        try {
          await apps.replaceNamespacedDeploymentStatus({ namespace: ns, name: 'web', body: d });
          return;
        } catch (err) {
          if ((err as { code?: number }).code !== 409 || attempt === 10) throw err;
        }
      }
    };
    const generation = async () => (await apps.readNamespacedDeployment({ namespace: ns, name: 'web' })).metadata?.generation;

    let done = false;
    const created = reconcile(driver, deployment('nginx:1.27'), ctx).finally(() => (done = true));
    await eventually('the Deployment to exist', async () => generation().catch(() => undefined));
    await setStatus(1, 'False');
    await sleep(400);
    assert.equal(done, false, 'Available=False is not ready');
    await setStatus(1, 'True');
    assert.ok((await created).create);

    // A new image is a new generation: the old generation's Available=True does not count.
    done = false;
    const updated = reconcile(driver, deployment('nginx:1.28'), ctx).finally(() => (done = true));
    await eventually('generation 2', async () => ((await generation()) === 2 ? true : undefined));
    await sleep(400);
    assert.equal(done, false, 'a status of the previous generation is not ready');
    await setStatus(2, 'True');
    assert.ok((await updated).update);
  });

  void test('an object with an owner reference is garbage-collected with its owner', async () => {
    const owner = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'registry-entry' } } });
    const { ctx } = context();
    const spec = configMap('dependent', { a: '1' }, {
      ownerReference: { apiVersion: 'v1', kind: 'ConfigMap', name: 'registry-entry', uid: owner.metadata!.uid! },
    });
    await reconcile(driver, spec, ctx);
    const live: V1ConfigMap = await readCm('dependent');
    assert.equal(live.metadata?.ownerReferences?.[0]?.uid, owner.metadata?.uid);
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'registry-entry' });
    await eventually('the garbage collector to delete the dependent ConfigMap', () => absent('dependent'), 60_000);
  });

  void test('the API server rejecting an object is a non-retryable ValidationError; a missing namespace is NotFound', async () => {
    const { ctx } = context();
    await assert.rejects(reconcile(driver, configMap('Not_A_DNS_Name', { a: '1' }), ctx), (err: unknown) => err instanceof ValidationError && !err.retryable);
    await assert.rejects(
      reconcile(driver, { manifest: { apiVersion: 'v1', kind: 'NoSuchKind', metadata: { name: 'x' } } }, ctx),
      ValidationError,
    );
    const elsewhere = context({ namespace: `missing-${id()}` });
    await assert.rejects(reconcile(driver, configMap('x', { a: '1' }), elsewhere.ctx), NotFoundError);
  });

  void test('bad specs are rejected before any request', async () => {
    const offline = new k8s.KubeConfig();
    offline.loadFromClusterAndUser({ name: 'offline', server: 'https://127.0.0.1:1', skipTLSVerify: true }, { name: 'nobody' });
    const d = new KubernetesObjectDriver({ objects: k8s.KubernetesObjectApi.makeApiClient(offline) });
    const { ctx } = context();
    const noNamespace = context({ namespace: undefined }).ctx;
    const cases: Array<[string, Record<string, unknown>, DriverContext]> = [
      ['name with a slash', configMap('a/b', {}), ctx],
      ['name ..', configMap('..', {}), ctx],
      ['no namespace anywhere', configMap('ok', {}), noNamespace],
      ['bad namespace', { manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ok', namespace: '../x' } } }, ctx],
      ['bad apiVersion', { manifest: { apiVersion: 'v1/../../x', kind: 'ConfigMap', metadata: { name: 'ok' } } }, ctx],
      ['server fields', { manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ok', resourceVersion: '5' } } }, ctx],
      ['status', { manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ok' }, status: {} } }, ctx],
      ['readiness without a rule', configMap('ok', {}, { readiness: { timeoutSeconds: 5 } }), ctx],
      ['bad jsonPath', configMap('ok', {}, { readiness: { jsonPath: 'data..x' } }), ctx],
      ['readiness timeout too long', configMap('ok', {}, { readiness: { condition: 'Ready', timeoutSeconds: 1e9 } }), ctx],
      ['owner without uid', configMap('ok', {}, { ownerReference: { apiVersion: 'v1', kind: 'ConfigMap', name: 'o' } }), ctx],
      ['label not a string', { manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ok', labels: { a: 1 } } } }, ctx],
      ['control character in the instance ID', configMap('ok', {}), context({ instanceId: 'a\u0000' }).ctx],
    ];
    for (const [what, spec, c] of cases) {
      await assert.rejects(d.getCurrentState(spec, c), ValidationError, what);
    }
    // The same driver does reach the network for a valid spec, and an unreachable server is retryable.
    await assert.rejects(d.getCurrentState(configMap('ok', {}), ctx), (err: unknown) => err instanceof UnavailableError && err.retryable);
  });
});
