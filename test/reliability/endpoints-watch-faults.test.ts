// The Kubernetes watcher under network faults: a TCP proxy between it and the run's kube-apiserver cuts and
// refuses connections (informer errors), or silently stops forwarding (a stalled watch). The watcher must
// restart, relist and report what changed meanwhile (deletions included), and give up retryably when the
// apiserver stays unreachable.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { KubeConfig, type CoreV1Api } from '@kubernetes/client-node';
import { KubeServiceWatcher, WatcherFailedError } from '../../adapters/kubernetes/watcher';
import { allowed, eventually, kube, labelNamespace, patchService, recorder, serviceBody, uid } from '../support/endpoints-fixtures';

/** A TCP proxy that can cut, refuse, or silently black-hole connections. TLS passes through untouched. */
class FaultProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket }>();
  mode: 'forward' | 'refuse' = 'forward';
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async listen(): Promise<void> {
    this.server = createServer((client) => {
      if (this.mode === 'refuse') return client.destroy();
      const upstream = connect(this.target.port, this.target.host);
      const pair = { client, upstream };
      this.pairs.add(pair);
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Resets every open connection. */
  cut(): void {
    for (const p of [...this.pairs]) {
      p.client.resetAndDestroy();
      p.upstream.destroy();
    }
  }

  /** Keeps every open connection up but forwards nothing more on it: a silent stall. New connections work. */
  blackhole(): void {
    for (const p of this.pairs) {
      p.client.unpipe(p.upstream);
      p.upstream.unpipe(p.client);
      p.client.pause();
      p.upstream.pause();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/** The test kubeconfig, pointed at the proxy (the serving certificate names 127.0.0.1, so TLS still verifies). */
function viaProxy(kc: KubeConfig, port: number): KubeConfig {
  const cluster = kc.getCurrentCluster()!;
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: [{ ...cluster, server: `https://127.0.0.1:${port}` }],
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  return out;
}

void describe('KubeServiceWatcher under faults', { timeout: 60_000 }, () => {
  let kc: KubeConfig;
  let core: CoreV1Api;
  const proxies: FaultProxy[] = [];
  const watchers: KubeServiceWatcher[] = [];
  const namespaces: string[] = [];
  const labelPrefix = `f${uid()}.brokerflow.io`;

  const newProxy = async () => {
    const url = new URL(kc.getCurrentCluster()!.server);
    const p = new FaultProxy({ host: url.hostname, port: Number(url.port) });
    await p.listen();
    proxies.push(p);
    return p;
  };
  const newNamespace = async (): Promise<string> => {
    const name = `bf-f-${uid()}`;
    await core.createNamespace({ body: { metadata: { name, labels: { [`${labelPrefix}/watch`]: 'enabled' } } } });
    namespaces.push(name);
    return name;
  };
  const annotated = (name: string) => serviceBody(name, { annotations: { [`${allowed}/x`]: '1' }, ips: ['10.8.0.1'] });
  const startWatcher = (proxy: FaultProxy, rec: ReturnType<typeof recorder>, extra: Partial<ConstructorParameters<typeof KubeServiceWatcher>[0]> = {}) => {
    const w = new KubeServiceWatcher({
      kubeConfig: viaProxy(kc, proxy.port),
      policy: { labelPrefix, watchByDefault: false },
      allowedAnnotations: [`${allowed}/*`],
      onChange: rec.onChange,
      restartDelayMs: 200,
      maxRestartDelayMs: 1_000,
      ...extra,
    });
    watchers.push(w);
    w.start();
    return w;
  };

  before(() => {
    ({ kc, core } = kube());
  });
  after(async () => {
    await Promise.allSettled(watchers.map((w) => w.stop()));
    await Promise.allSettled(proxies.map((p) => p.close()));
    await Promise.allSettled(namespaces.map((name) => core.deleteNamespace({ name })));
  });

  test('after an informer error the watch restarts and reports what changed meanwhile, deletions included', async () => {
    const ns = await newNamespace();
    for (const name of ['gone', 'changed', 'same']) await core.createNamespacedService({ namespace: ns, body: annotated(name) });
    const proxy = await newProxy();
    const rec = recorder();
    const w = startWatcher(proxy, rec);
    await w.synced;
    await rec.waitFor(`${ns}/same service-added`);

    proxy.mode = 'refuse';
    proxy.cut();
    await eventually('the informers report an error', async () => (w.stats().errors >= 1 ? true : undefined));
    await core.deleteNamespacedService({ name: 'gone', namespace: ns });
    await patchService(core, ns, 'changed', { ports: [8080] });
    await core.createNamespacedService({ namespace: ns, body: annotated('new') });
    // Still refused: the watcher keeps retrying with a growing pause, without giving up.
    await eventually('several failed restarts', async () => (w.stats().errors >= 3 ? true : undefined));
    assert.deepEqual(rec.of(`${ns}/gone`), [`${ns}/gone service-added`]);

    proxy.mode = 'forward';
    await rec.waitFor(`${ns}/gone service-deleted`);
    await rec.waitFor(`${ns}/changed service-updated`);
    await rec.waitFor(`${ns}/new service-added`);
    assert.deepEqual(rec.of(`${ns}/same`), [`${ns}/same service-added`], 'an unchanged service is not reported again after the relist');

    // And the restarted watch is live again.
    await patchService(core, ns, 'same', { ports: [9090] });
    await rec.waitFor(`${ns}/same service-updated`);
    assert.ok(w.stats().restarts >= 1);
  });

  test('a watch that stalls silently is restarted by the no-event watchdog', async () => {
    const ns = await newNamespace();
    const probe = `bf-f-${uid()}`;
    namespaces.push(probe);
    await core.createNamespace({ body: { metadata: { name: probe } } });
    await core.createNamespacedService({ namespace: probe, body: annotated('p') });
    const proxy = await newProxy();
    const rec = recorder();
    const restarts: string[] = [];
    const w = startWatcher(proxy, rec, { stallTimeoutMs: 1_500, onRestart: (reason) => restarts.push(reason) });
    await w.synced;
    // Both watches must be streaming before their connections go silent: an event through each proves it.
    await labelNamespace(core, probe, `${labelPrefix}/watch`, 'enabled');
    await rec.waitFor(`${probe}/p namespace-watched`);
    await core.createNamespacedService({ namespace: probe, body: annotated('q') });
    await rec.waitFor(`${probe}/q service-added`);
    proxy.blackhole();
    await core.createNamespacedService({ namespace: ns, body: annotated('late') });
    await rec.waitFor(`${ns}/late service-added`, 1, 20_000);
    assert.ok(w.stats().stallRestarts >= 1, JSON.stringify(w.stats()));
    assert.ok(restarts.includes('stall'));
  });

  test('a watch that keeps failing ends with a retryable WatcherFailedError', async () => {
    const proxy = await newProxy();
    const rec = recorder();
    const w = startWatcher(proxy, rec, { failAfterMs: 2_000 });
    await w.synced;
    proxy.mode = 'refuse';
    proxy.cut();
    const t0 = Date.now();
    const err = await w.done.then(
      () => assert.fail('the watcher ended without an error'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WatcherFailedError, String(err));
    assert.equal(err.retryable, true);
    assert.ok(Date.now() - t0 >= 1_500, 'it retried for about failAfterMs before giving up');
    assert.ok(w.stats().errors >= 2);
  });
});
