// kube-apiserver restart: this scenario's own Kubernetes control plane holds the registry (the production shape:
// each registry entry a ConfigMap, owning the ConfigMap its plan creates) and the services that endpoint
// reconciliation mirrors into an etcd service registry. Its kube-apiserver is stopped twice while provisions and
// binds are in flight and services change (SIGKILL, then SIGTERM), and started again on the same port and etcd
// prefix. Every operation must complete as the platform was told, exactly once, and the service registry must
// converge to exactly what the cluster says, with what brokerflow does not own left as it was.
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { Etcd3 } from 'etcd3';
import { INSTANCE_ID_KEY } from '../../adapters/resources/kubernetes';
import { etcdUserName } from '../../adapters/resources';
import { EtcdServiceRegistry } from '../../adapters/service-registries';
import type { KubeControlPlane } from '../../scripts/lib/kube';
import { ensureEndpointSync, stopEndpointSync } from '../../platform/endpoint-workflows';
import { endpointWatcherWorkflowId } from '../../workflows/endpoints-messages';
import { startTestStack, type TestStack } from '../support/stack';
import { PLAN, SERVICE, bindingPath, instancePath, osbResourceSets, provisionBody } from '../support/osb';
import { allowed, patchService, serviceBody, snapshot, testEndpointConfig } from '../support/endpoints-fixtures';
import { startOwnKubeControlPlane, startOwnTenantEtcd, type OwnTenantEtcd } from '../support/reliability/servers';
import { duplicatedRuns, managedUsers, prefixInventory, settledRuns, waitFor } from '../support/reliability/inspect';
import { Scenario, mapConcurrently, seconds } from '../support/reliability/scenario';
import { requireTestEnv } from '../support/env';

const FIRST_PROVISIONS = 12;
const SECOND_PROVISIONS = 6;
const BINDS = 6;
const OUTAGE_MS = 10_000;
const SERVICES = 6;
const foreign = { owner: 'someone-else' };

const scenario = new Scenario({
  id: 'kube-apiserver-restart',
  order: 8,
  title: 'kube-apiserver restarted during provisions and endpoint sync',
  fault:
    `The scenario's own control plane holds the registry (registry.backend kubernetes, as deployed) and ${SERVICES} services mirrored into an etcd service registry. ` +
    `Round 1: ${FIRST_PROVISIONS} provisions of a plan with a ConfigMap and an etcd keyspace (test/support/fixtures/resource-sets.osb.yaml) are accepted; ` +
    `once a quarter have finished, a service is changed and one added, and kube-apiserver is killed with SIGKILL. Round 2: ${BINDS} binds and ${SECOND_PROVISIONS} provisions, ` +
    `the same changes, then SIGTERM. Each time it stays down ${OUTAGE_MS / 1000} s (a new provision is sent meanwhile) and starts again on the same port, certificates and etcd prefix; ` +
    'right after it is ready a service is deleted, one added and one given new IPs.',
  claim:
    'Every operation succeeds, exactly once: one provision or bind run each, one ConfigMap per instance owned by its registry entry, one keyspace per instance, one etcd user per binding; ' +
    'no registry entry is left in progress; a provision refused during the outage succeeds when the platform repeats it; the service registry converges to exactly the services and endpoints of the cluster ' +
    '(none stale, none missing) while the foreign service and the foreign endpoint stay as written; the watch resumes by itself.',
});
after(() => scenario.save());

const tag = `ka${randomBytes(3).toString('hex')}`;
let kube: KubeControlPlane | undefined;
let tenant: OwnTenantEtcd | undefined;
let stack: TestStack | undefined;
let serviceRegistry: EtcdServiceRegistry | undefined;
let syncName: string | undefined;
const endpointConfig = testEndpointConfig({ debounceMs: 200, heartbeatTimeoutSeconds: 5, reconcileTimeoutSeconds: 10 });
after(async () => {
  if (stack && syncName) await stopEndpointSync(stack.client, syncName).catch(() => undefined);
  await stack?.close();
  await serviceRegistry?.close();
  await kube?.stop();
  await tenant?.server.stop();
  // The control plane and the service registry lived on the run's etcd under their own prefixes.
  const etcd = new Etcd3({ hosts: requireTestEnv('etcdEndpoint') });
  await Promise.allSettled([
    ...(kube ? [etcd.delete().prefix(`${kube.etcdPrefix}/`).exec()] : []),
    etcd.delete().prefix(endpointConfig.etcd!.prefix!).exec(),
  ]);
  etcd.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One operation the platform started: where to poll it and what became of it. */
interface Op {
  kind: 'provision' | 'bind';
  instanceId: string;
  bindingId?: string;
  path: string;
  operation?: string;
  round: number;
  finished?: { at: number; state: string };
}

/** The platform: polls last_operation of every open operation, counting the answers it gets. */
class Platform {
  readonly ops: Op[] = [];
  readonly answers = new Map<string, number>();
  requests = 0;
  private running = true;
  private loop: Promise<void> | undefined;

  constructor(private readonly s: TestStack) {}

  count(status: number): void {
    this.requests += 1;
    const k = status >= 500 ? '5xx' : String(status);
    this.answers.set(k, (this.answers.get(k) ?? 0) + 1);
  }

  async send(method: 'PUT' | 'GET', url: string, body?: unknown) {
    const res = await this.s.osb(method, url, body);
    this.count(res.statusCode);
    return res;
  }

  /** PUTs a provision or bind; an accepted one joins the polled operations. */
  async accept(kind: Op['kind'], instanceId: string, round: number, bindingId?: string): Promise<{ status: number; op?: Op }> {
    const path = bindingId ? bindingPath(instanceId, bindingId) : instancePath(instanceId);
    const body = bindingId ? { service_id: SERVICE, plan_id: PLAN } : provisionBody();
    const res = await this.send('PUT', `${path}?accepts_incomplete=true`, body);
    if (res.statusCode !== 202) return { status: res.statusCode };
    const op: Op = { kind, instanceId, ...(bindingId ? { bindingId } : {}), path, operation: res.json().operation as string, round };
    this.ops.push(op);
    return { status: res.statusCode, op };
  }

  start(): void {
    this.loop = (async () => {
      while (this.running) {
        await mapConcurrently(
          this.ops.filter((op) => !op.finished),
          6,
          async (op) => {
            const res = await this.send('GET', `${op.path}/last_operation?operation=${encodeURIComponent(op.operation!)}`);
            if (res.statusCode !== 200) return;
            const b = res.json() as { state: string; description?: string };
            if (b.state !== 'in progress') op.finished = { at: Date.now(), state: b.state === 'failed' ? `failed: ${b.description ?? ''}` : b.state };
          },
        );
        await sleep(300);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  unfinished(round?: number): Op[] {
    return this.ops.filter((op) => !op.finished && (round === undefined || op.round === round));
  }
}

/**
 * The identity brokerflow runs with, as deployed: a ServiceAccount token (TokenRequest) whose Role and ClusterRole
 * allow exactly what the registry, the kubernetes driver and the watcher call (deploy/kubernetes/rbac.yaml, plus
 * the cluster-wide read and watch of namespaces and services that endpoint reconciliation needs).
 */
async function serviceAccountKubeconfig(k: KubeControlPlane, admin: KubeConfig): Promise<{ file: string; token: string }> {
  const core = admin.makeApiClient(CoreV1Api);
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  const name = 'brokerflow-worker';
  const subjects = [{ kind: 'ServiceAccount', name, namespace: 'default' }];
  await core.createNamespacedServiceAccount({ namespace: 'default', body: { metadata: { name } } });
  await rbac.createNamespacedRole({
    namespace: 'default',
    body: {
      metadata: { name },
      rules: [
        { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'update', 'patch', 'delete'] },
        { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create', 'update', 'delete'] },
      ],
    },
  });
  await rbac.createNamespacedRoleBinding({ namespace: 'default', body: { metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects } });
  await rbac.createClusterRole({ body: { metadata: { name }, rules: [{ apiGroups: [''], resources: ['namespaces', 'services'], verbs: ['get', 'list', 'watch'] }] } });
  await rbac.createClusterRoleBinding({ body: { metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name }, subjects } });
  const token = await core.createNamespacedServiceAccountToken({ name, namespace: 'default', body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: admin.clusters,
    users: [{ name, token: token.status!.token }],
    contexts: [{ name, cluster: admin.getCurrentCluster()!.name, user: name, namespace: 'default' }],
    currentContext: name,
  });
  const file = join(dirname(k.kubeconfigPath), `${name}.kubeconfig`);
  writeFileSync(file, out.exportConfig(), { mode: 0o600 });
  return { file, token: token.status!.token! };
}

/** The status of one GET with a bearer token, TLS verified against the cluster's CA (0: no answer). */
function statusOf(url: string, token: string, ca: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { headers: { authorization: `Bearer ${token}` }, ca, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}

/**
 * Asks, 50 ms after each answer until it is allowed, for what the worker reads (a ConfigMap list) as the
 * ServiceAccount while the API server starts: the answers in order, runs of the same one counted (`no answer x4,
 * 403 x3, 200`; a connection the starting server accepts but does not serve yet gives up after 1 s), and how long
 * the server answered but refused (401/403) before it allowed.
 */
function watchStartupAnswers(k: KubeControlPlane, token: string): { stop(): Promise<{ answers: string; refusedMs: number }> } {
  const ca = readFileSync(k.caFile, 'utf8');
  let running = true;
  const runs: Array<{ status: number; n: number }> = [];
  let firstRefusal: number | undefined;
  let allowedAt: number | undefined;
  const loop = (async () => {
    while (running && allowedAt === undefined) {
      const status = await statusOf(`${k.server}/api/v1/namespaces/default/configmaps?limit=1`, token, ca);
      if (runs.at(-1)?.status === status) runs.at(-1)!.n += 1;
      else runs.push({ status, n: 1 });
      if (status === 401 || status === 403) firstRefusal ??= Date.now();
      else if (status === 200) allowedAt = Date.now();
      await sleep(50);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return {
        answers: runs.map((r) => `${r.status === 0 ? 'no answer' : r.status}${r.n > 1 ? ` x${r.n}` : ''}`).join(', '),
        refusedMs: firstRefusal !== undefined && allowedAt !== undefined ? allowedAt - firstRefusal : 0,
      };
    },
  };
}

/** Resolves once nothing accepts connections on the port any more; the milliseconds that took. */
async function refusingAfter(port: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => (sock.destroy(), resolve(true)));
      sock.once('error', () => resolve(false));
    });
    if (!open) return Date.now() - t0;
    await sleep(50);
  }
}

/** The service registry as compared: `ns/svc` -> sorted endpoints, ours as `address:port`, foreign ones in full. */
async function registryView(registry: EtcdServiceRegistry, ns: string): Promise<Record<string, string>> {
  const snap = await snapshot(registry, ns);
  return Object.fromEntries(
    Object.entries(snap.services)
      .map(([k, v]) => [k, v.endpoints.map((e) => (e.endsWith(` ${foreign.owner}`) ? e : e.split(' ')[1]!)).sort().join(', ')] as const)
      .sort(([a], [b]) => a.localeCompare(b)),
  );
}

/** What the registry must hold: every Kubernetes service with one endpoint per IP and port, plus the foreign objects. */
async function expectedView(core: CoreV1Api, ns: string): Promise<Record<string, string>> {
  const list = await core.listNamespacedService({ namespace: ns });
  const out: Record<string, string> = { [`${ns}/legacy`]: `legacy-1 192.0.2.2:10 ${foreign.owner}` };
  for (const svc of list.items) {
    const eps = (svc.spec?.ports ?? []).flatMap((p) => (svc.spec?.externalIPs ?? []).map((ip) => `${ip}:${p.port}`));
    if (svc.metadata!.name === 's5') eps.push(`manual-1 192.0.2.1:9 ${foreign.owner}`);
    out[`${ns}/${svc.metadata!.name}`] = eps.sort().join(', ');
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

const same = (a: Record<string, string>, b: Record<string, string>) => JSON.stringify(a) === JSON.stringify(b);

interface RoundFigures {
  signal: 'SIGKILL' | 'SIGTERM';
  inFlight: number;
  finishedBefore: number;
  stopMs: number;
  refusingMs: number;
  exit: string;
  downMs: number;
  startMs: number;
  startup: { answers: string; refusedMs: number };
  latePut: string;
  lateRetried: string;
  convergedMs: number;
  allDoneMs: number;
}

scenario.test('operations and endpoint sync converge across a kube-apiserver restart (SIGKILL, then SIGTERM)', { timeout: 300_000 }, async () => {
  const k = (kube = await startOwnKubeControlPlane('kube-apiserver-restart'));
  const t = (tenant = await startOwnTenantEtcd('kube-apiserver-restart'));
  const kc = new KubeConfig();
  kc.loadFromFile(k.kubeconfigPath);
  const core = kc.makeApiClient(CoreV1Api);
  const { file: workerKubeconfig, token: workerToken } = await serviceAccountKubeconfig(k, kc);
  endpointConfig.kubeconfig = workerKubeconfig;
  const s = (stack = await startTestStack({
    overrides: {
      resourceSets: osbResourceSets,
      kubernetes: { kubeconfig: workerKubeconfig },
      registry: { backend: 'kubernetes', kubernetes: { namespace: 'default' } },
      drivers: { etcd: { endpoints: [t.server.endpoint], auth: { username: 'root', password: t.rootPassword } } },
      endpoints: endpointConfig,
    },
  }));
  const settings = s.worker.deps.endpoints!.settings;
  syncName = settings.name;
  const registry = (serviceRegistry = EtcdServiceRegistry.connect({ endpoints: endpointConfig.etcd!.endpoints, prefix: endpointConfig.etcd!.prefix! }));

  // The mirrored namespace: services s0..s5, a foreign endpoint in s5 and a foreign service beside them.
  const ns = `${tag}-svc`;
  const labelKey = `${endpointConfig.labelPrefix}/watch`;
  await core.createNamespace({ body: { metadata: { name: ns, labels: { [labelKey]: 'enabled' } } } });
  const addService = (name: string, ip: string, port: number) =>
    core.createNamespacedService({ namespace: ns, body: serviceBody(name, { annotations: { [`${allowed}/x`]: name }, ips: [ip], ports: [port] }) });
  for (let i = 0; i < SERVICES; i++) await addService(`s${i}`, `10.10.0.${i + 1}`, 1000 + i);
  await ensureEndpointSync(s.client, { taskQueue: s.config.temporal.taskQueue, settings });
  await waitFor('the services to be mirrored', async () => (Object.keys(await registryView(registry, ns)).length === SERVICES ? true : undefined), 60_000, 200);
  await registry.createEndp({ name: 'manual-1', namespace: ns, service: 's5', address: '192.0.2.1', port: 9, metadata: foreign });
  await registry.createServ({ name: 'legacy', namespace: ns, metadata: { ...foreign, note: 'theirs' } });
  await registry.createEndp({ name: 'legacy-1', namespace: ns, service: 'legacy', address: '192.0.2.2', port: 10, metadata: foreign });
  await waitFor('the registry to match the cluster', async () => (same(await registryView(registry, ns), await expectedView(core, ns)) ? true : undefined), 30_000, 200);

  const platform = new Platform(s);
  platform.start();
  const rounds: RoundFigures[] = [];
  const port = Number(new URL(k.server).port);
  const firstIds = Array.from({ length: FIRST_PROVISIONS }, (_, i) => `${tag}-p${i}`);

  const runRound = async (round: number, signal: 'SIGKILL' | 'SIGTERM', accept: () => Promise<Op[]>) => {
    const ops = await accept();
    const quarter = Math.ceil(ops.length / 4);
    await waitFor(`a quarter of round ${round}'s operations to finish`, async () => (ops.filter((o) => o.finished).length >= quarter ? true : undefined), 120_000, 100);
    const finishedBefore = ops.filter((o) => o.finished).length;

    // Just before it goes down: a service changes its port, and one is added.
    await patchService(core, ns, 's0', { ports: [1100 + round] });
    await addService(`pre${round}`, `10.30.${round}.1`, 3000 + round);
    const stopAt = Date.now();
    // SIGTERM: graceful, with the outage as its grace period; SIGKILL when it is not over by then.
    const [, refusingMs] = await Promise.all([k.stopApiserver(signal, OUTAGE_MS), refusingAfter(port)]);
    const stoppedAt = Date.now();
    const exit = k.apiserver.exitSignal() ? `signal ${k.apiserver.exitSignal()}` : `exit code ${k.apiserver.exitCode()}`;

    // A platform's new provision while the API server is down.
    const late = `${tag}-late${round}`;
    const latePut = await platform.accept('provision', late, round);
    await sleep(Math.max(0, stopAt + OUTAGE_MS - Date.now()));
    const startAt = Date.now();
    const startupWatch = watchStartupAnswers(k, workerToken);
    await k.startApiserver();
    const readyAt = Date.now();
    const startup = await startupWatch.stop();

    // Right after it is back: a service goes, one comes, one moves to new IPs.
    await core.deleteNamespacedService({ name: `s${round}`, namespace: ns });
    await addService(`post${round}`, `10.40.${round}.1`, 4000 + round);
    await patchService(core, ns, 's3', { ips: [`10.20.${round}.1`, `10.20.${round}.2`] });
    const expected = await expectedView(core, ns);

    // The platform repeats the provision it could not get accepted.
    let lateRetried = 'accepted during the outage';
    if (!latePut.op) {
      const again = await waitFor(`provision ${late} to be accepted`, async () => (await platform.accept('provision', late, round)).op, 60_000, 1000);
      lateRetried = `HTTP 202 after ${seconds(Date.now() - readyAt)}`;
      void again;
    }
    const lateOp = platform.ops.find((o) => o.instanceId === late && o.kind === 'provision')!;

    let convergedAt = 0;
    await Promise.all([
      waitFor(`the service registry to converge after round ${round}`, async () => {
        const view = await registryView(registry, ns);
        if (!same(view, expected)) return undefined;
        convergedAt = Date.now();
        return true;
      }, 120_000, 200),
      waitFor(`round ${round}'s operations to finish`, async () => ([...ops, lateOp].every((o) => o.finished) ? true : undefined), 180_000, 200),
    ]);
    const allDone = Math.max(...[...ops, lateOp].map((o) => o.finished!.at));
    rounds.push({
      signal,
      inFlight: ops.length - finishedBefore,
      finishedBefore,
      stopMs: stoppedAt - stopAt,
      refusingMs,
      exit,
      downMs: readyAt - stopAt,
      startMs: readyAt - startAt,
      startup,
      latePut: latePut.op ? 'HTTP 202' : `HTTP ${latePut.status}`,
      lateRetried,
      convergedMs: convergedAt - readyAt,
      allDoneMs: allDone - readyAt,
    });
  };

  await runRound(1, 'SIGKILL', async () => {
    const res = await mapConcurrently(firstIds, 6, (id) => platform.accept('provision', id, 1));
    assert.deepEqual(res.map((r) => r.status), firstIds.map(() => 202), 'every first-round provision is accepted');
    return res.map((r) => r.op!);
  });
  const bound = firstIds.slice(0, BINDS);
  const secondIds = Array.from({ length: SECOND_PROVISIONS }, (_, i) => `${tag}-q${i}`);
  await runRound(2, 'SIGTERM', async () => {
    const res = await mapConcurrently([...bound.map((id) => ['bind', id] as const), ...secondIds.map((id) => ['provision', id] as const)], 6, ([kind, id]) =>
      platform.accept(kind, id, 2, kind === 'bind' ? `${id}-b` : undefined),
    );
    assert.deepEqual(res.map((r) => r.status), res.map(() => 202), 'every second-round operation is accepted');
    return res.map((r) => r.op!);
  });
  await platform.stop();

  // What the systems hold now.
  const provisions = platform.ops.filter((o) => o.kind === 'provision');
  const binds = platform.ops.filter((o) => o.kind === 'bind');
  const instanceIds = provisions.map((o) => o.instanceId);
  const failures = platform.ops.filter((o) => o.finished!.state !== 'succeeded').map((o) => `${o.kind} ${o.bindingId ?? o.instanceId}: ${o.finished!.state.slice(0, 300)}`);

  const reg = s.worker.registry.registry;
  const entries = [...(await reg.list('service-instance')), ...(await reg.list('service-binding'))].filter((e) => e.id.startsWith(tag));
  const stuck = entries.filter((e) => e.operation?.state === 'in progress').map((e) => e.id);

  const configMaps = (await core.listNamespacedConfigMap({ namespace: 'default', labelSelector: 'app.kubernetes.io/managed-by=brokerflow' })).items.filter(
    (cm) => cm.metadata?.annotations?.[INSTANCE_ID_KEY]?.startsWith(tag),
  );
  const ownership = await mapConcurrently(instanceIds, 6, async (id) => {
    const mine = configMaps.filter((cm) => cm.metadata!.annotations![INSTANCE_ID_KEY] === id);
    const owner = (await reg.open('service-instance', id)).getOwnerReference();
    const refs = mine[0]?.metadata?.ownerReferences ?? [];
    return { id, count: mine.length, owned: mine.length === 1 && refs.length === 1 && refs[0]!.uid === owner?.uid && refs[0]!.name === owner?.name && refs[0]!.kind === owner?.kind };
  });
  const root = t.root();
  const inventory = await prefixInventory(root, `${tag}-`);
  const users = await managedUsers(root, new Set(bound.map((id) => etcdUserName(`${id}-b`))));
  root.close();
  const keyspaceOwners = instanceIds.map((id) => inventory.owners.get(id) ?? []);
  const runs = await settledRuns(s.client, s.config.temporal.taskQueue, platform.ops.length);
  const provisionRuns = runs.filter((r) => r.type === 'provision').length;
  const bindRuns = runs.filter((r) => r.type === 'bind').length;
  const duplicated = duplicatedRuns(runs, 'provision').size + duplicatedRuns(runs, 'bind').size;

  const finalView = await registryView(registry, ns);
  const finalExpected = await expectedView(core, ns);
  const legacy = (await snapshot(registry, ns)).services[`${ns}/legacy`];
  const watchAct = (await s.client.workflow.getHandle(endpointWatcherWorkflowId(settings.name)).describe()).raw.pendingActivities?.find(
    (a) => a.activityType?.name === 'watchKubernetes',
  );

  const succeeded = platform.ops.length - failures.length;
  scenario.summary.attempted = platform.ops.length;
  scenario.summary.completed = succeeded;
  scenario.summary.duplicated = duplicated + ownership.filter((o) => o.count > 1).length + keyspaceOwners.filter((o) => o.length > 1).length;
  scenario.summary.lost = failures.length + ownership.filter((o) => o.count === 0).length + keyspaceOwners.filter((o) => o.length === 0).length + (bound.length - users.length);
  scenario.summary.requests = platform.requests;
  scenario.summary.fiveXx = platform.answers.get('5xx') ?? 0;
  scenario.summary.recovery = `${seconds(Math.max(...rounds.map((r) => r.convergedMs)))} / ${seconds(Math.max(...rounds.map((r) => r.allDoneMs)))} after the API server was back (registry / operations)`;
  for (const [i, r] of rounds.entries()) {
    const n = i + 1;
    scenario.figure(`round ${n}: signal; operations in flight / finished before the stop`, `${r.signal}; ${r.inFlight} / ${r.finishedBefore}`);
    scenario.figure(`round ${n}: signal to connections refused; to exit (how it ended)`, `${r.refusingMs} ms; ${r.stopMs} ms (${r.exit})`);
    scenario.figure(`round ${n}: down (stop until ready again); of which start to ready`, `${r.downMs} ms; ${r.startMs} ms`);
    scenario.figure(`round ${n}: the ServiceAccount's reads while the server starts: answers in order; refused for`, `${r.startup.answers}; ${r.startup.refusedMs} ms`);
    scenario.figure(`round ${n}: new provision while down; repeated after the restart`, `${r.latePut}; ${r.lateRetried}`);
    scenario.figure(`round ${n}: API server ready to service registry converged`, r.convergedMs, 'ms');
    scenario.figure(`round ${n}: API server ready to all operations finished`, r.allDoneMs, 'ms');
  }
  scenario.figure('operations succeeded (provisions + binds)', `${succeeded} of ${platform.ops.length} (${provisions.length} + ${binds.length})`);
  scenario.figure('last_operation and PUT answers (count by status)', [...platform.answers].sort().map(([st, c]) => `${st}: ${c}`).join(', '));
  scenario.figure('provision runs / bind runs / ids with more than one run', `${provisionRuns} / ${bindRuns} / ${duplicated}`);
  scenario.figure('ConfigMaps per instance: one / none / more; owned by the instance registry entry', `${ownership.filter((o) => o.count === 1).length} / ${ownership.filter((o) => o.count === 0).length} / ${ownership.filter((o) => o.count > 1).length}; ${ownership.filter((o) => o.owned).length} of ${instanceIds.length}`);
  scenario.figure('keyspaces with one owner key / none / more', `${keyspaceOwners.filter((o) => o.length === 1).length} / ${keyspaceOwners.filter((o) => o.length === 0).length} / ${keyspaceOwners.filter((o) => o.length > 1).length}`);
  scenario.figure('binding users in etcd', `${users.length} of ${bound.length}`);
  scenario.figure('registry entries left in progress', stuck.length);
  scenario.figure('service registry: services as in the cluster / stale / missing', (() => {
    const keys = new Set([...Object.keys(finalView), ...Object.keys(finalExpected)]);
    const k3 = [...keys];
    return `${k3.filter((x) => finalView[x] !== undefined && finalView[x] === finalExpected[x]).length} / ${k3.filter((x) => finalExpected[x] === undefined).length} / ${k3.filter((x) => finalView[x] === undefined).length}`;
  })());
  scenario.figure('watch activity attempt at the end (1: it never failed; the watcher restarted its informers itself)', watchAct?.attempt ?? 0);
  scenario.note(
    'brokerflow runs as a ServiceAccount with RBAC, as deployed. A starting kube-apiserver serves requests before its authorizer has loaded RBAC and refuses them with 403 ' +
      '(the figure above); a refusal from a server that is not ready (`/readyz`) is therefore retried, and only one from a ready server is a permission error (adapters/kubernetes/refusal.ts). ' +
      'Before that rule, a service reconcile that met the window failed for good and the service stayed stale until the hourly resync.',
  );
  scenario.note(
    "SIGTERM: kube-apiserver stops listening at once but keeps open watches (the controller manager's and brokerflow's) until its 60 s shutdown timeout, then closes them; " +
      `here it is killed when its ${OUTAGE_MS / 1000} s grace is over, as a pod's termination grace period would after 30 s.`,
  );
  scenario.note(
    'The watcher restarts its informers 1 s after an error, doubling up to 30 s, so after an outage the watch resumes anywhere from at once to about as long as the outage after the server is ready; ' +
      'a change it had seen before the outage is reconciled by its service workflow, whose attempts back off the same way.',
  );
  for (const f of failures.slice(0, 3)) scenario.note(`Failed: ${f}`);

  assert.deepEqual(failures, [], 'every operation succeeded');
  assert.deepEqual(stuck, [], 'no registry entry left in progress');
  assert.equal(duplicated, 0, 'one run per operation');
  assert.deepEqual(ownership.filter((o) => !o.owned), [], 'one ConfigMap per instance, owned by its registry entry');
  assert.ok(keyspaceOwners.every((o, i) => o.length === 1 && o[0] === instanceIds[i]), `one owner key per keyspace: ${JSON.stringify(keyspaceOwners)}`);
  assert.deepEqual(users.map((u) => u.name).sort(), bound.map((id) => etcdUserName(`${id}-b`)).sort(), 'one etcd user per binding');
  assert.deepEqual(finalView, finalExpected, 'the service registry holds exactly the cluster and the foreign objects');
  assert.deepEqual(legacy, { metadata: { ...foreign, note: 'theirs' }, endpoints: [`legacy-1 192.0.2.2:10 ${foreign.owner}`] }, 'the foreign service is as written');
});
