// A refusal (401/403) from a Kubernetes API server that is not ready is transient: kube-apiserver serves requests
// right after it starts, before its authorizer has loaded RBAC, and refuses a ServiceAccount what it allows a moment
// later. Every caller of the API server (the kubernetes driver, the registry's kubernetes backend, the endpoint
// reconcile) must retry such a refusal, and still fail for good on one from a ready server. An API server stub
// answers 403 to every call and, to `/readyz`, 500 (starting) or 200 (ready).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { ApplicationFailure } from '@temporalio/common';
import { PermissionError, UnavailableError } from '../../adapters/errors';
import { KubernetesObjectDriver } from '../../adapters/resources';
import { KubernetesPersistenceProvider } from '../../adapters/persistence';
import { createEndpointActivities } from '../../activities/endpoints';
import { createEndpointDeps } from '../../worker/dependencies';
import { testMachineId } from '../conformance/persistence-conformance';
import { requireTestEnv } from '../support/env';

void describe('a refusal from a Kubernetes API server', () => {
  let server: Server;
  let kubeconfig: string;
  let ready = false;
  const refused: string[] = [];

  before(async () => {
    server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0]!;
      const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (path === '/readyz') return ready ? res.writeHead(200).end('ok') : res.writeHead(500).end('[-]informer-sync failed');
      // Discovery, which the driver asks before its first call of a kind.
      if (path === '/api/v1') {
        return json(200, { kind: 'APIResourceList', groupVersion: 'v1', resources: [{ name: 'configmaps', singularName: 'configmap', namespaced: true, kind: 'ConfigMap', verbs: ['get'] }] });
      }
      // The registry backend's start-up probe reads a holder that never exists.
      if (path.endsWith('/brokerflow-persistence-probe')) return json(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
      refused.push(path);
      return json(403, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'forbidden: RBAC not loaded yet', reason: 'Forbidden', code: 403 });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const dir = mkdtempSync(join(requireTestEnv('workDir'), 'refusals-'));
    kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        // Plain HTTP on loopback: client-node allows it only with verification off (there is no certificate to verify).
        clusters: [{ name: 'stub', cluster: { server: `http://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'sa', user: { token: 'not-checked' } }],
        contexts: [{ name: 'stub', context: { cluster: 'stub', user: 'sa', namespace: 'default' } }],
        'current-context': 'stub',
      }),
    );
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const whileStartingAndWhenReady = async (call: () => Promise<unknown>, check: (err: unknown, final: boolean) => boolean) => {
    ready = false;
    const before = refused.length;
    await assert.rejects(call(), (err) => check(err, false), 'refused by a starting server: transient');
    assert.ok(refused.length > before, 'the call reached the server and was refused');
    ready = true;
    await assert.rejects(call(), (err) => check(err, true), 'refused by a ready server: final');
  };

  test('the kubernetes driver retries it while the server is not ready', async () => {
    const driver = await KubernetesObjectDriver.fromKubeconfig(kubeconfig);
    const spec = { manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'bf-x', namespace: 'default' } } };
    const ctx = {
      object: { operationId: 'op', instanceId: `i-${randomBytes(3).toString('hex')}`, serviceId: 's', planId: 'p' },
      resourceName: 'settings',
      heartbeat: () => undefined,
      signal: new AbortController().signal,
    };
    await whileStartingAndWhenReady(
      () => driver.getCurrentState(spec, ctx),
      (err, final) => (final ? err instanceof PermissionError : err instanceof UnavailableError && !(err instanceof PermissionError)),
    );
  });

  test("the registry's kubernetes backend retries it while the server is not ready", async () => {
    const provider = new KubernetesPersistenceProvider({ replicas: [{ kubeconfigPath: kubeconfig, namespace: 'default' }] });
    await provider.initialize(testMachineId);
    try {
      const replica = provider.replicas()[0]!;
      await whileStartingAndWhenReady(
        () => provider.getObject(replica, 'Note/refused'),
        (err, final) => (final ? err instanceof PermissionError : err instanceof UnavailableError && !(err instanceof PermissionError)),
      );
    } finally {
      await provider.close();
    }
  });

  test('the endpoint reconcile retries it while the server is not ready', async () => {
    const id = randomBytes(4).toString('hex');
    const deps = await createEndpointDeps({
      name: `r-${id}`,
      registry: 'etcd',
      etcd: { endpoints: [requireTestEnv('etcdEndpoint')], prefix: `/bf-refusals-${id}/` },
      kubeconfig,
      allowedAnnotations: ['bf.test/*'],
    });
    try {
      const activities = createEndpointActivities(deps);
      await whileStartingAndWhenReady(
        () => activities.reconcileKubeService({ sync: `r-${id}`, namespace: 'team-a', service: 'web' }),
        (err, final) => err instanceof ApplicationFailure && err.type === (final ? 'Permission' : 'Unavailable') && err.nonRetryable === final,
      );
    } finally {
      await deps.close?.();
    }
  });
});
