// Endpoint reconciliation end to end, through the real workflows: the watcher on the run's kube-apiserver
// signals per-service workflows that mirror services into an etcd service registry, under the ownership rules
// (docs/design/contracts/service-registries.md#ownership): what brokerflow does not own is never changed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CoreV1Api } from '@kubernetes/client-node';
import { endpointName } from '../../adapters/kubernetes';
import {
  endpointResyncScheduleId,
  endpointWatcherWorkflowId,
  kubeServiceChangedSignal,
  kubeServiceStatusQuery,
  kubeServiceWorkflowId,
  type KubeServiceStatus,
  type ResyncSummary,
} from '../../workflows/endpoints-messages';
import { KubeServiceKey } from '../../workflows/searchAttributes';
import { ensureEndpointSync, kubeServiceInput, stopEndpointSync } from '../../platform/endpoint-workflows';
import {
  addresses,
  allowed,
  eventually,
  kube,
  labelNamespace,
  patchService,
  serviceBody,
  snapshot,
  startMirror,
  uid,
  watchCaughtUp,
  type Mirror,
} from '../support/endpoints-fixtures';

const foreign = { owner: 'someone-else' };

void describe('endpoint reconciliation: Kubernetes services mirrored into the etcd registry', { timeout: 120_000 }, () => {
  let m: Mirror;
  let core: CoreV1Api;
  const namespaces: string[] = [];

  const newNamespace = async (watched: boolean, annotations: Record<string, string> = {}): Promise<string> => {
    const name = `bf-ep-${uid()}`;
    await core.createNamespace({ body: { metadata: { name, annotations, labels: watched ? { [m.labelKey]: 'enabled' } : {} } } });
    namespaces.push(name);
    return name;
  };
  const service = (ns: string) => async (ssKey: string) => (await snapshot(m.registry, ns)).services[`${ns}/${ssKey}`];

  before(async () => {
    core = kube().core;
    m = await startMirror();
  });

  after(async () => {
    await m?.stop();
    await Promise.allSettled(namespaces.map((name) => core.deleteNamespace({ name })));
  });

  test('an annotated service in a watched namespace appears with one endpoint per IP and port', async () => {
    const ns = await newNamespace(true, { [`${allowed}/team`]: 'blue', 'other.io/ignored': 'x' });
    await core.createNamespacedService({
      namespace: ns,
      body: serviceBody('web', { annotations: { [`${allowed}/version`]: 'v1', 'other.io/x': 'y' }, ips: ['10.1.0.1', '10.1.0.2'], ports: [80, 443] }),
    });
    const web = await eventually('web with 4 endpoints', async () => {
      const s = await service(ns)('web');
      return s && s.endpoints.length === 4 ? s : undefined;
    });
    assert.deepEqual(web.metadata, { [`${allowed}/version`]: 'v1', owner: 'brokerflow' });
    assert.deepEqual(addresses(web), ['10.1.0.1:443', '10.1.0.1:80', '10.1.0.2:443', '10.1.0.2:80']);
    assert.ok(web.endpoints.includes(`${endpointName('web', '10.1.0.2', 443)} 10.1.0.2:443 brokerflow`));
    const snap = await snapshot(m.registry, ns);
    assert.deepEqual(snap.namespaces[ns], { [`${allowed}/team`]: 'blue', owner: 'brokerflow' });

    // The per-service workflow is findable by the service it mirrors.
    const desc = await m.client.workflow.getHandle(kubeServiceWorkflowId(m.name, ns, 'web')).describe();
    assert.equal(desc.typedSearchAttributes.get(KubeServiceKey), `${ns}/web`);
  });

  test('changing ports, external IPs or allowed annotations makes the registry follow', async () => {
    const ns = await newNamespace(true);
    await core.createNamespacedService({ namespace: ns, body: serviceBody('api', { annotations: { [`${allowed}/v`]: '1' }, ips: ['10.2.0.1'], ports: [80] }) });
    await eventually('api registered', async () => (addresses(await service(ns)('api')).join() === '10.2.0.1:80' ? true : undefined));

    await patchService(core, ns, 'api', { ports: [8080, 8443] });
    await eventually('ports followed', async () => (addresses(await service(ns)('api')).join() === '10.2.0.1:8080,10.2.0.1:8443' ? true : undefined));

    await patchService(core, ns, 'api', { ips: ['10.2.0.2', '10.2.0.3'], ports: [8080] });
    await eventually('IPs followed', async () => (addresses(await service(ns)('api')).join() === '10.2.0.2:8080,10.2.0.3:8080' ? true : undefined));

    await patchService(core, ns, 'api', { annotations: { [`${allowed}/v`]: '2' } });
    const api = await eventually('metadata followed', async () => {
      const s = await service(ns)('api');
      return s?.metadata[`${allowed}/v`] === '2' ? s : undefined;
    });
    assert.deepEqual(addresses(api), ['10.2.0.2:8080', '10.2.0.3:8080']);
  });

  test('removing the last allowed annotation, unwatching the namespace or deleting the service removes the entries', async () => {
    const ns = await newNamespace(true);
    for (const name of ['a', 'b', 'c']) {
      await core.createNamespacedService({ namespace: ns, body: serviceBody(name, { annotations: { [`${allowed}/x`]: name }, ips: ['10.3.0.1'], ports: [80] }) });
    }
    await eventually('three services registered', async () => (Object.keys((await snapshot(m.registry, ns)).services).length === 3 ? true : undefined));

    await patchService(core, ns, 'a', { annotations: { [`${allowed}/x`]: null, 'other.io/kept': 'yes' } });
    await eventually('a removed', async () => ((await service(ns)('a')) === undefined ? true : undefined));
    assert.ok(await service(ns)('b'));

    await core.deleteNamespacedService({ name: 'b', namespace: ns });
    await eventually('b removed', async () => ((await service(ns)('b')) === undefined ? true : undefined));
    assert.ok(await service(ns)('c'));

    await labelNamespace(core, ns, m.labelKey, 'disabled');
    await eventually('namespace emptied and removed', async () => {
      const snap = await snapshot(m.registry, ns);
      return Object.keys(snap.services).length === 0 && snap.namespaces[ns] === undefined ? true : undefined;
    });

    // Watching it again brings back what qualifies (the annotated service), not the others.
    await labelNamespace(core, ns, m.labelKey, 'enabled');
    await eventually('c registered again', async () => (addresses(await service(ns)('c')).join() === '10.3.0.1:80' ? true : undefined));
    assert.deepEqual(Object.keys((await snapshot(m.registry, ns)).services), [`${ns}/c`]);
  });

  test('a service in an unwatched namespace is not registered', async () => {
    const ns = await newNamespace(false);
    await core.createNamespacedService({ namespace: ns, body: serviceBody('quiet', { annotations: { [`${allowed}/x`]: '1' }, ips: ['10.4.0.1'] }) });
    // A watched sibling created afterwards proves the watcher has seen both.
    const witness = await newNamespace(true);
    await core.createNamespacedService({ namespace: witness, body: serviceBody('w', { annotations: { [`${allowed}/x`]: '1' }, ips: ['10.4.0.2'] }) });
    await eventually('witness registered', async () => ((await service(witness)('w')) ? true : undefined));
    assert.deepEqual((await snapshot(m.registry, ns)).services, {});
  });

  test('foreign-owned namespaces, services and endpoints are never touched', async () => {
    const ns = await newNamespace(true);
    // A service brokerflow registers, into which someone else then adds an endpoint of their own.
    await core.createNamespacedService({ namespace: ns, body: serviceBody('mixed', { annotations: { [`${allowed}/x`]: '1' }, ips: ['10.5.0.1'], ports: [80] }) });
    await eventually('mixed registered', async () => ((await service(ns)('mixed'))?.endpoints.length === 1 ? true : undefined));
    await m.registry.createEndp({ name: 'manual-1', namespace: ns, service: 'mixed', address: '192.0.2.1', port: 9, metadata: foreign });
    // A service someone else registered under the name of a Kubernetes service.
    await m.registry.createServ({ name: 'legacy', namespace: ns, metadata: { ...foreign, note: 'theirs' } });
    await m.registry.createEndp({ name: 'legacy-1', namespace: ns, service: 'legacy', address: '192.0.2.2', port: 10, metadata: foreign });
    await core.createNamespacedService({ namespace: ns, body: serviceBody('legacy', { annotations: { [`${allowed}/x`]: '1' }, ips: ['10.5.0.2'], ports: [80] }) });
    // A foreign namespace of the same name as a watched Kubernetes namespace.
    const shared = await newNamespace(true);
    await m.registry.createNs({ name: shared, metadata: foreign });
    await m.registry.createServ({ name: 'theirs', namespace: shared, metadata: foreign });
    await core.createNamespacedService({ namespace: shared, body: serviceBody('ours', { annotations: { [`${allowed}/x`]: '1' }, ips: ['10.5.0.3'], ports: [80] }) });
    await eventually('ours registered in the foreign namespace', async () => ((await service(shared)('ours'))?.endpoints.length === 1 ? true : undefined));

    await patchService(core, ns, 'mixed', { ports: [81] });
    await eventually('mixed follows its ports, the foreign endpoint stays', async () => {
      const eps = (await service(ns)('mixed'))?.endpoints ?? [];
      return eps.join('|') === [`${endpointName('mixed', '10.5.0.1', 81)} 10.5.0.1:81 brokerflow`, 'manual-1 192.0.2.1:9 someone-else'].sort().join('|') ? true : undefined;
    });

    await core.deleteNamespacedService({ name: 'mixed', namespace: ns });
    await core.deleteNamespacedService({ name: 'legacy', namespace: ns });
    await labelNamespace(core, shared, m.labelKey, 'disabled');
    const snap = await eventually('owned entries gone', async () => {
      const a = await snapshot(m.registry, ns);
      const b = await snapshot(m.registry, shared);
      const ownedLeft = [...Object.values(a.services), ...Object.values(b.services)].some((s) => s.endpoints.some((e) => e.endsWith(' brokerflow')));
      return !ownedLeft && b.services[`${shared}/ours`] === undefined ? { a, b } : undefined;
    });
    // Each foreign object is exactly as it was written.
    assert.deepEqual(snap.a.services[`${ns}/mixed`]?.endpoints, ['manual-1 192.0.2.1:9 someone-else']);
    assert.deepEqual(snap.a.services[`${ns}/legacy`], { metadata: { ...foreign, note: 'theirs' }, endpoints: ['legacy-1 192.0.2.2:10 someone-else'] });
    assert.deepEqual(snap.b.namespaces[shared], foreign);
    assert.deepEqual(snap.b.services[`${shared}/theirs`], { metadata: foreign, endpoints: [] });
  });

  test('a full resync removes owned entries whose service is gone and restores what the registry lost', async () => {
    const ns = await newNamespace(true);
    await core.createNamespacedService({ namespace: ns, body: serviceBody('kept', { annotations: { [`${allowed}/x`]: '1' }, ips: ['10.6.0.1', '10.6.0.2'] }) });
    await eventually('kept registered', async () => ((await service(ns)('kept'))?.endpoints.length === 2 ? true : undefined));
    // Changes nobody watched: an owned service without a Kubernetes service, in a namespace that exists and in
    // one that does not, an owned endpoint lost, and a foreign service that must stay.
    const owned = { owner: 'brokerflow' };
    await m.registry.createServ({ name: 'ghost', namespace: ns, metadata: owned });
    await m.registry.createEndp({ name: 'ghost-1', namespace: ns, service: 'ghost', address: '10.6.9.9', port: 80, metadata: owned });
    const gone = `bf-ep-gone-${uid()}`;
    await m.registry.createNs({ name: gone, metadata: owned });
    await m.registry.createServ({ name: 'old', namespace: gone, metadata: owned });
    await m.registry.createServ({ name: 'theirs', namespace: ns, metadata: foreign });
    await m.registry.deleteEndp(ns, 'kept', endpointName('kept', '10.6.0.2', 80));

    const scheduleId = endpointResyncScheduleId(m.name);
    const schedule = await m.client.schedule.getHandle(scheduleId).describe();
    assert.equal(schedule.spec.intervals?.[0]?.every, 3_600_000);
    const summary = await m.client.workflow.execute('endpointResyncWorkflow', {
      taskQueue: m.config.temporal.taskQueue,
      workflowId: `${scheduleId}/test-${uid()}`,
      args: [{ sync: m.name }],
    });
    // The lost endpoint is written by the resync itself; the two removals go to their services' workflows.
    const { written, signalled } = summary as ResyncSummary;
    assert.ok(written !== undefined && written >= 1 && signalled >= 2, JSON.stringify(summary));

    await eventually('registry converged', async () => {
      const snap = await snapshot(m.registry);
      const ok =
        snap.services[`${ns}/ghost`] === undefined &&
        snap.namespaces[gone] === undefined &&
        addresses(snap.services[`${ns}/kept`]).join() === '10.6.0.1:80,10.6.0.2:80' &&
        snap.services[`${ns}/theirs`] !== undefined;
      return ok ? true : undefined;
    });
  });

  test('a burst of changes to one service costs at most two reconciles; a run with an idle window absorbs the next change', async () => {
    const ns = await newNamespace(true);
    await core.createNamespacedService({ namespace: ns, body: serviceBody('burst', { annotations: { [`${allowed}/x`]: '1' }, ips: ['10.7.0.1'] }) });
    await eventually('burst registered', async () => ((await service(ns)('burst')) ? true : undefined));
    const id = kubeServiceWorkflowId(m.name, ns, 'burst');
    // Once in sync the run ends by itself (idle window 0 by default).
    await eventually('first run closed', async () => ((await m.client.workflow.getHandle(id).describe()).status.name === 'COMPLETED' ? true : undefined));
    // A burst sent straight to the workflow, as the watcher would. The windows are wide so that the outcome depends on
    // the workflow's rules, not on how fast this machine sends: a burst is signals less than `debounceMs` apart (one
    // signal round trip each, far below 3 s even on a loaded machine), `maxDebounceMs` is longer than any burst
    // here, and the run waits `idleMs` once in sync, long enough for the test to send one more change.
    const input = { ...kubeServiceInput(m.deps.settings, { namespace: ns, service: 'burst' }), debounceMs: 3_000, maxDebounceMs: 120_000, idleMs: 10_000 };
    const send = () =>
      m.client.workflow.signalWithStart('kubeServiceWorkflow', {
        workflowId: id,
        taskQueue: m.config.temporal.taskQueue,
        args: [input],
        signal: kubeServiceChangedSignal,
        signalArgs: [{ reason: 'service-updated' }],
      });
    let handle = await send();
    for (let i = 0; i < 19; i++) handle = await send();
    // The first change is reconciled at once; the rest of the burst once it has settled.
    const afterBurst = await eventually('the burst reconciled', async () => {
      const st = await handle.query(kubeServiceStatusQuery);
      return st.signals === 20 && st.phase === 'idle' ? st : undefined;
    });
    assert.ok(afterBurst.reconciles >= 1 && afterBurst.reconciles <= 2, `${afterBurst.reconciles} reconciles for 20 signals`);
    // Within the idle window a new change is handled by the same run, at once.
    const again = await send();
    assert.equal(again.signaledRunId, handle.signaledRunId);
    const result = (await handle.result()) as KubeServiceStatus;
    assert.equal(result.signals, 21);
    assert.equal(result.reconciles, afterBurst.reconciles + 1);
    assert.equal(result.lastOutcome?.action, 'registered');
  });

  test('a service the registry cannot hold fails its own workflow visibly and leaves the others alone', async () => {
    const ns = await newNamespace(true);
    // Kubernetes accepts a 70 KiB annotation; the registry's metadata limit is 64 KiB.
    await core.createNamespacedService({ namespace: ns, body: serviceBody('huge', { annotations: { [`${allowed}/blob`]: 'x'.repeat(70 * 1024) }, ips: ['10.12.0.1'] }) });
    await core.createNamespacedService({ namespace: ns, body: serviceBody('fine', { annotations: { [`${allowed}/x`]: '1' }, ips: ['10.12.0.2'] }) });
    await eventually('fine registered', async () => ((await service(ns)('fine')) ? true : undefined));
    const handle = m.client.workflow.getHandle(kubeServiceWorkflowId(m.name, ns, 'huge'));
    const err = await eventually('the failed run', async () => handle.result().then(() => assert.fail('the run succeeded'), (e: Error) => e));
    assert.match(String((err as { cause?: Error }).cause?.message ?? err.message), /metadata/);
    assert.equal(await service(ns)('huge'), undefined);
    await core.deleteNamespacedService({ name: 'huge', namespace: ns });
  });

  test('a restarted watch writes what the registry lost itself, and starts no per-service workflow for it', async () => {
    const ns = await newNamespace(true);
    for (const name of ['x', 'y']) {
      await core.createNamespacedService({ namespace: ns, body: serviceBody(name, { annotations: { [`${allowed}/x`]: name }, ips: ['10.11.0.1'] }) });
    }
    await eventually('x and y registered', async () => (Object.keys((await snapshot(m.registry, ns)).services).length === 2 ? true : undefined));
    const runs = async (svc: string) => m.client.workflow.count(`WorkflowId = '${kubeServiceWorkflowId(m.name, ns, svc)}'`).then((c) => c.count);
    await eventually('both per-service runs closed', async () => {
      const open = await m.client.workflow.count(`WorkflowId STARTS_WITH 'kube-service/${m.name}/${ns}/' AND ExecutionStatus = 'Running'`);
      return open.count === 0 ? true : undefined;
    });
    const before = { x: await runs('x'), y: await runs('y') };

    await stopEndpointSync(m.client, m.name);
    await m.client.workflow.getHandle(endpointWatcherWorkflowId(m.name)).result().catch(() => undefined);
    // While nobody watches, the registry loses an endpoint of y.
    const lost = endpointName('y', '10.11.0.1', 80);
    await m.registry.deleteEndp(ns, 'y', lost);
    await ensureEndpointSync(m.client, { taskQueue: m.config.temporal.taskQueue, settings: m.deps.settings });
    const caughtUp = await watchCaughtUp(m);
    assert.ok(caughtUp.written !== undefined && caughtUp.written >= 1, JSON.stringify(caughtUp));

    await eventually('y restored', async () => ((await service(ns)('y'))?.endpoints.some((e) => e.startsWith(lost)) ? true : undefined));
    // The watch's comparison wrote it in a batch: neither service's workflow ran again.
    assert.deepEqual({ x: await runs('x'), y: await runs('y') }, before);
    const watch = await m.client.workflow.getHandle(endpointWatcherWorkflowId(m.name)).describe();
    assert.equal(watch.status.name, 'RUNNING');
  });
});

void describe('endpoint reconciliation with the reconcile as an activity of its own', { timeout: 60_000 }, () => {
  let m: Mirror;
  let core: CoreV1Api;
  const namespaces: string[] = [];
  before(async () => {
    core = kube().core;
    m = await startMirror({ endpoints: { reconcileIn: 'activity' } });
  });
  after(async () => {
    await m?.stop();
    await Promise.allSettled(namespaces.map((name) => core.deleteNamespace({ name })));
  });

  test('a service is registered and removed through a reconcile activity task', async () => {
    const ns = `bf-ep-${uid()}`;
    namespaces.push(ns);
    await core.createNamespace({ body: { metadata: { name: ns, labels: { [m.labelKey]: 'enabled' } } } });
    await core.createNamespacedService({ namespace: ns, body: serviceBody('act', { annotations: { [`${allowed}/x`]: '1' }, ips: ['10.13.0.1'], ports: [80, 81] }) });
    await eventually('act registered', async () => (addresses((await snapshot(m.registry, ns)).services[`${ns}/act`]).join() === '10.13.0.1:80,10.13.0.1:81' ? true : undefined));
    const history = await m.client.workflow.getHandle(kubeServiceWorkflowId(m.name, ns, 'act')).fetchHistory();
    const scheduled = history.events!.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'reconcileKubeService');
    assert.equal(scheduled.length, 1);
    await core.deleteNamespacedService({ name: 'act', namespace: ns });
    await eventually('act removed', async () => ((await snapshot(m.registry, ns)).services[`${ns}/act`] === undefined ? true : undefined));
  });
});
