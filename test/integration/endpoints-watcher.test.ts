// The Kubernetes watcher on the run's kube-apiserver, without Temporal: which changes it reports for which
// services, and which it keeps quiet about.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { KubeServiceWatcher } from '../../adapters/kubernetes/watcher';
import { allowed, eventually, kube, labelNamespace, patchService, recorder, serviceBody, uid } from '../support/endpoints-fixtures';
import { deferred } from '../support/deferred';

void describe('KubeServiceWatcher', { timeout: 60_000 }, () => {
  let kc: KubeConfig;
  let core: CoreV1Api;
  const namespaces: string[] = [];
  const watchers: KubeServiceWatcher[] = [];
  const labelPrefix = `w${uid()}.brokerflow.io`;
  const labelKey = `${labelPrefix}/watch`;

  const newNamespace = async (watched: boolean): Promise<string> => {
    const name = `bf-w-${uid()}`;
    await core.createNamespace({ body: { metadata: { name, labels: watched ? { [labelKey]: 'enabled' } : {} } } });
    namespaces.push(name);
    return name;
  };
  const start = (rec: ReturnType<typeof recorder>) => {
    const w = new KubeServiceWatcher({ kubeConfig: kc, policy: { labelPrefix, watchByDefault: false }, allowedAnnotations: [`${allowed}/*`], onChange: rec.onChange });
    watchers.push(w);
    w.start();
    return w;
  };
  const annotated = (name: string, ip = '10.9.0.1') => serviceBody(name, { annotations: { [`${allowed}/x`]: '1' }, ips: [ip] });

  before(() => {
    ({ kc, core } = kube());
  });
  after(async () => {
    await Promise.allSettled(watchers.map((w) => w.stop()));
    await Promise.allSettled(namespaces.map((name) => core.deleteNamespace({ name })));
  });

  test('the first sync reports every service of the watched namespaces, and only those, flagged as initial', async () => {
    const watched = await newNamespace(true);
    const unwatched = await newNamespace(false);
    await core.createNamespacedService({ namespace: watched, body: annotated('one') });
    await core.createNamespacedService({ namespace: watched, body: serviceBody('plain', {}) });
    await core.createNamespacedService({ namespace: unwatched, body: annotated('other') });
    const rec = recorder();
    const w = start(rec);
    await w.synced;
    await rec.waitFor(`${watched}/one service-added`);
    await rec.waitFor(`${watched}/plain service-added`);
    assert.deepEqual(rec.of(`${unwatched}/`), []);
    assert.equal(w.stats().synced, true);
    // What the first list found is flagged as such; later changes are not.
    assert.ok(rec.initial.includes(`${watched}/one`) && rec.initial.includes(`${watched}/plain`));
    await patchService(core, watched, 'one', { ports: [81] });
    await rec.waitFor(`${watched}/one service-updated`);
    assert.equal(rec.initial.filter((k) => k === `${watched}/one`).length, 1);
  });

  test('service changes that matter are reported, changes that do not are not', async () => {
    const ns = await newNamespace(true);
    const rec = recorder();
    const w = start(rec);
    await w.synced;
    await core.createNamespacedService({ namespace: ns, body: annotated('svc') });
    await rec.waitFor(`${ns}/svc service-added`);
    await patchService(core, ns, 'svc', { ports: [81] });
    await rec.waitFor(`${ns}/svc service-updated`, 1);
    await patchService(core, ns, 'svc', { ips: ['10.9.0.2'] });
    await rec.waitFor(`${ns}/svc service-updated`, 2);
    await patchService(core, ns, 'svc', { annotations: { [`${allowed}/x`]: '2' } });
    await rec.waitFor(`${ns}/svc service-updated`, 3);
    // An annotation outside the allowlist changes nothing the registry holds.
    await patchService(core, ns, 'svc', { annotations: { 'other.io/y': 'z' } });
    await core.createNamespacedService({ namespace: ns, body: annotated('witness') });
    await rec.waitFor(`${ns}/witness service-added`);
    assert.equal(rec.of(`${ns}/svc service-updated`).length, 3);
    await core.deleteNamespacedService({ name: 'svc', namespace: ns });
    await rec.waitFor(`${ns}/svc service-deleted`);
  });

  test('toggling the namespace watch label reports every service of the namespace', async () => {
    const ns = await newNamespace(false);
    await core.createNamespacedService({ namespace: ns, body: annotated('a') });
    await core.createNamespacedService({ namespace: ns, body: annotated('b') });
    const rec = recorder();
    const w = start(rec);
    await w.synced;
    assert.deepEqual(rec.of(`${ns}/`), []);
    await labelNamespace(core, ns, labelKey, 'enabled');
    await rec.waitFor(`${ns}/a namespace-watched`);
    await rec.waitFor(`${ns}/b namespace-watched`);
    await labelNamespace(core, ns, labelKey, 'disabled');
    await rec.waitFor(`${ns}/a namespace-unwatched`);
    await rec.waitFor(`${ns}/b namespace-unwatched`);
    // While unwatched, its services' changes are not reported.
    await patchService(core, ns, 'a', { ports: [99] });
    const witness = await newNamespace(true);
    await core.createNamespacedService({ namespace: witness, body: annotated('w') });
    await rec.waitFor(`${witness}/w service-added`);
    assert.deepEqual(rec.of(`${ns}/a service-updated`), []);
  });

  test('a burst for one service is coalesced while its notification is in flight', async () => {
    const ns = await newNamespace(true);
    let busyInFlight = 0;
    let maxBusyInFlight = 0;
    const calls: string[] = [];
    const { promise: gate, resolve: release } = deferred();
    const w = new KubeServiceWatcher({
      kubeConfig: kc,
      policy: { labelPrefix, watchByDefault: false },
      allowedAnnotations: [`${allowed}/*`],
      onChange: async (key, change) => {
        if (key.namespace !== ns) return;
        calls.push(`${key.service} ${change}`);
        const busy = key.service === 'busy';
        if (busy) maxBusyInFlight = Math.max(maxBusyInFlight, ++busyInFlight);
        await gate;
        if (busy) busyInFlight -= 1;
      },
    });
    watchers.push(w);
    w.start();
    await w.synced;
    await core.createNamespacedService({ namespace: ns, body: annotated('busy') });
    await eventually('first notification in flight', async () => (calls.length === 1 ? true : undefined));
    for (const port of [81, 82, 83, 84]) await patchService(core, ns, 'busy', { ports: [port] });
    // Service events arrive in order: once the witness is reported, the four updates have been seen.
    await core.createNamespacedService({ namespace: ns, body: annotated('witness') });
    await eventually('witness reported', async () => (calls.includes('witness service-added') ? true : undefined));
    release();
    await eventually('the coalesced notification delivered', async () => (calls.length === 3 && busyInFlight === 0 ? true : undefined));
    assert.deepEqual(calls, ['busy service-added', 'witness service-added', 'busy service-updated']);
    assert.equal(maxBusyInFlight, 1);
  });
});
