// The deploy story checked against real servers: every manifest of deploy/kubernetes passes a server-side dry-run
// apply on the test kube-apiserver, the pod templates pass the restricted Pod Security Standard, the RBAC gives each
// process exactly what it uses (the registry and the resource driver run as the worker's ServiceAccount through the
// ConfigMap's in-cluster kubeconfig), the ConfigMap's configuration is valid and mounts what it references, the
// Dockerfile's file set runs on production dependencies only, and the broker's readiness probe script works.
// Namespaces are renamed per run (test files share one apiserver); the real objects are deleted at the end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import type { KubernetesObject, KubeConfig } from '@kubernetes/client-node';
import { loadRuntimeConfig, type RuntimeConfigFile } from '../../config/runtime';
import { createRegistry } from '../../adapters/factory';
import { createBroker } from '../../client/broker/server';
import { createLogger } from '../../platform/logging';
import { freePort, repoRoot } from '../../scripts/lib/process';
import { testBrokerUser, writeTestConfig } from '../support/config';
import { requireTestEnv } from '../support/env';

type K8s = typeof import('@kubernetes/client-node');
type Obj = KubernetesObject & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: unknown };

const manifestsDir = join(repoRoot, 'deploy', 'kubernetes');
const suffix = randomBytes(3).toString('hex');
const ns = `bf-deploy-${suffix}`;
const tenantNs = `bf-deploy-${suffix}-tenants`;
const renamed: Record<string, string> = { brokerflow: ns, 'brokerflow-tenants': tenantNs };
const fieldManager = 'brokerflow-deploy-test';
const applyPatch = 'application/apply-patch+yaml';

let k8s: K8s;
let kc: KubeConfig;

/** The manifests in kustomization order, namespaces renamed for this run. */
function manifests(): Array<{ file: string; doc: Obj }> {
  const kustomization = parseYaml(readFileSync(join(manifestsDir, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
  return kustomization.resources.flatMap((file) =>
    parseAllDocuments(readFileSync(join(manifestsDir, file), 'utf8'))
      .map((d) => d.toJS() as Obj | null)
      .filter((d): d is Obj => d !== null)
      .map((doc) => ({ file, doc: renameNamespaces(doc) })),
  );
}

/** Renames namespaces wherever a `namespace` field (or a Namespace's name) holds one of ours. */
function renameNamespaces<T>(value: T): T {
  if (Array.isArray(value)) return value.map(renameNamespaces) as T;
  if (!value || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = k === 'namespace' && typeof v === 'string' && renamed[v] ? renamed[v] : renameNamespaces(v);
  const obj = out as Obj;
  if (obj.kind === 'Namespace' && obj.metadata && renamed[obj.metadata.name]) obj.metadata = { ...obj.metadata, name: renamed[obj.metadata.name]! };
  return out as T;
}

const byKind = (kind: string) => manifests().filter((m) => m.doc.kind === kind).map((m) => m.doc);

/** One raw API call with the test kubeconfig's credentials (the typed client drops fields it does not know,
 *  which would hide a typo in a manifest from the server's validation). */
async function rawRequest(method: string, path: string, body?: string, contentType = 'application/json'): Promise<{ status: number; body: string }> {
  const url = new URL(path, kc.getCurrentCluster()!.server);
  const opts: RequestOptions = { method, headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': contentType } : {}) } };
  await kc.applyToHTTPSOptions(opts);
  return new Promise((res, rej) => {
    const req = httpsRequest(url, opts, (r) => {
      let text = '';
      r.on('data', (d: Buffer) => (text += d.toString()));
      r.on('end', () => res({ status: r.statusCode ?? 0, body: text }));
    });
    req.on('error', rej);
    req.end(body);
  });
}

const resourceCache = new Map<string, { name: string; namespaced: boolean }>();
/** The API path of an object, from the server's discovery (kind -> resource name, namespaced or not). */
async function objectPath(doc: Obj): Promise<string> {
  const base = doc.apiVersion.includes('/') ? `/apis/${doc.apiVersion}` : `/api/${doc.apiVersion}`;
  const cacheKey = `${doc.apiVersion}/${doc.kind}`;
  if (!resourceCache.has(cacheKey)) {
    const list = JSON.parse((await rawRequest('GET', base)).body) as { resources: Array<{ name: string; kind: string; namespaced: boolean }> };
    const r = list.resources.find((x) => x.kind === doc.kind && !x.name.includes('/'));
    if (!r) throw new Error(`the server does not serve ${cacheKey}`);
    resourceCache.set(cacheKey, r);
  }
  const r = resourceCache.get(cacheKey)!;
  return `${base}${r.namespaced ? `/namespaces/${doc.metadata.namespace}` : ''}/${r.name}/${doc.metadata.name}`;
}

/** Server-side apply with strict field validation; `dryRun` persists nothing. */
async function serverSideApply(doc: Obj, opts: { dryRun: boolean }): Promise<{ status: number; body: string }> {
  const query = `?fieldManager=${fieldManager}&force=true&fieldValidation=Strict${opts.dryRun ? '&dryRun=All' : ''}`;
  return rawRequest('PATCH', `${await objectPath(doc)}${query}`, JSON.stringify(doc), applyPatch);
}

/** Applies objects for real, for the tests that need them to exist. */
async function applyForReal(docs: Obj[]): Promise<void> {
  for (const doc of docs) {
    const res = await serverSideApply(doc, { dryRun: false });
    assert.ok(res.status < 300, `${doc.kind}/${doc.metadata.name}: ${res.status} ${res.body}`);
  }
}

before(async () => {
  k8s = await import('@kubernetes/client-node');
  kc = new k8s.KubeConfig();
  kc.loadFromFile(requireTestEnv('kubeconfig'));
});

after(async () => {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  for (const name of [ns, tenantNs]) await core.deleteNamespace({ name }).catch(() => undefined);
});

test('the kustomization lists every manifest of deploy/kubernetes, and every listed file exists', () => {
  const files = readdirSync(manifestsDir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
  const listed = (parseYaml(readFileSync(join(manifestsDir, 'kustomization.yaml'), 'utf8')) as { resources: string[] }).resources;
  assert.deepEqual([...listed].sort(), files);
  const kinds = manifests().map((m) => `${m.doc.kind}/${m.doc.metadata.name}`);
  for (const want of ['Deployment/brokerflow-worker', 'Deployment/brokerflow-broker', 'Service/brokerflow-broker', 'Deployment/brokerflow-codec-server', 'Service/brokerflow-codec-server', 'ConfigMap/brokerflow-config', 'ServiceAccount/brokerflow-worker']) {
    assert.ok(kinds.includes(want), `${want} is among the manifests`);
  }
  assert.ok(!kinds.some((k) => k.startsWith('Secret/')), 'no Secret (and so no secret value) is shipped');
  assert.ok(!kinds.some((k) => k.startsWith('ClusterRole')), 'no cluster-wide permission is granted');
});

test('every manifest passes a strict server-side dry-run apply on the real kube-apiserver, and a broken one does not', async () => {
  // The target namespaces exist first: a dry run of a namespaced object needs its namespace.
  await applyForReal(byKind('Namespace'));
  const all = manifests();
  assert.ok(all.length >= 15, `${all.length} objects`);
  for (const { file, doc } of all) {
    const res = await serverSideApply(doc, { dryRun: true });
    assert.ok(res.status === 200 || res.status === 201, `${file}: ${doc.kind}/${doc.metadata.name} was refused: ${res.status} ${res.body}`);
    const answer = JSON.parse(res.body) as Obj;
    assert.deepEqual([answer.kind, answer.metadata.name], [doc.kind, doc.metadata.name]);
  }
  // A dry run persists nothing.
  await assert.rejects(kc.makeApiClient(k8s.AppsV1Api).readNamespacedDeployment({ name: 'brokerflow-worker', namespace: ns }), /404|not found/i);

  // The same check refuses what is wrong: an unknown field and an invalid value.
  const worker = byKind('Deployment').find((d) => d.metadata.name === 'brokerflow-worker')!;
  const typo = structuredClone(worker) as Obj & { spec: Record<string, unknown> };
  typo.spec.replica = 3;
  const typoRes = await serverSideApply(typo, { dryRun: true });
  // (Server-side apply answers an undeclared field with 500 "field not declared in schema".)
  assert.ok(typoRes.status >= 400, typoRes.body);
  assert.match(typoRes.body, /\.spec\.replica: field not declared in schema/);
  const invalid = structuredClone(worker) as Obj & { spec: { template: { spec: { containers: Array<Record<string, unknown>> } } } };
  invalid.spec.template.spec.containers[0]!.imagePullPolicy = 'Sometimes';
  const invalidRes = await serverSideApply(invalid, { dryRun: true });
  assert.equal(invalidRes.status, 422, invalidRes.body);
  assert.match(invalidRes.body, /imagePullPolicy/);
});

test('every pod template passes the restricted Pod Security Standard that brokerflow\'s namespace enforces', async () => {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await applyForReal([...byKind('Namespace'), ...byKind('ServiceAccount')]);
  const namespace = byKind('Namespace').find((n) => n.metadata.name === ns)!;
  assert.equal((namespace.metadata as { labels?: Record<string, string> }).labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
  for (const dep of byKind('Deployment')) {
    const spec = (dep as unknown as { spec: { template: { spec: Record<string, unknown> } } }).spec.template.spec;
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: `${dep.metadata.name}-check`, namespace: ns }, spec };
    try {
      await core.createNamespacedPod({ namespace: ns, body: pod as never, dryRun: 'All' });
    } catch (err) {
      assert.fail(`${dep.metadata.name}'s pod is refused: ${(err as { body?: string }).body ?? (err as Error).message}`);
    }
  }
  // The policy is really enforced here: a container with the runtime's defaults (root allowed, privilege
  // escalation allowed, all default capabilities) is refused.
  const bad = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'defaults-check', namespace: ns },
    spec: { serviceAccountName: 'brokerflow-codec-server', automountServiceAccountToken: false, containers: [{ name: 'c', image: 'x' }] },
  };
  await assert.rejects(core.createNamespacedPod({ namespace: ns, body: bad as never, dryRun: 'All' }), /violates PodSecurity [^a-z]*restricted/);
});

/** A kubeconfig for a ServiceAccount built from the ConfigMap's in-cluster kubeconfig, pointed at the test server. */
async function inClusterKubeconfig(serviceAccount: string, dir: string, file = join(dir, `${serviceAccount}.kubeconfig`)): Promise<string> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const token = await core.createNamespacedServiceAccountToken({ name: serviceAccount, namespace: ns, body: { spec: { audiences: [], expirationSeconds: 3600 } } as never });
  const tokenFile = join(dir, `${serviceAccount}.token`);
  writeFileSync(tokenFile, token.status!.token);
  const cluster = kc.getCurrentCluster()!;
  const caFile = join(dir, 'ca.crt');
  writeFileSync(caFile, cluster.caData ? Buffer.from(cluster.caData, 'base64') : readFileSync(cluster.caFile!));
  const configMap = byKind('ConfigMap').find((c) => c.metadata.name === 'brokerflow-config') as Obj & { data: Record<string, string> };
  const text = configMap.data['in-cluster.kubeconfig']!
    .replace('https://kubernetes.default.svc', cluster.server)
    .replace('/var/run/secrets/kubernetes.io/serviceaccount/ca.crt', caFile)
    .replace('/var/run/secrets/kubernetes.io/serviceaccount/token', tokenFile);
  writeFileSync(file, text);
  return file;
}

test('RBAC: the worker keeps the registry and applies tenant objects, the broker only reads, the codec server has nothing', async () => {
  await applyForReal([...byKind('Namespace'), ...byKind('ServiceAccount'), ...byKind('Role'), ...byKind('RoleBinding')]);
  const dir = mkdtempSync(join(requireTestEnv('workDir'), 'deploy-rbac-'));
  // Every pod reads the same path (the mounted in-cluster.kubeconfig), each with its own token behind it; the file
  // is read when the registry starts, so one path serves both identities here.
  const kubeconfigPath = join(dir, 'in-cluster.kubeconfig');
  const registryAs = async (serviceAccount: string) => {
    const overrides: Partial<RuntimeConfigFile> = { registry: { backend: 'kubernetes', kubernetes: { namespace: ns } }, kubernetes: { kubeconfig: await inClusterKubeconfig(serviceAccount, dir, kubeconfigPath) } };
    return createRegistry(writeTestConfig(overrides).config);
  };

  // The worker, through the ConfigMap's kubeconfig and its own token: records an operation with credentials.
  const worker = await registryAs('brokerflow-worker');
  const broker = await registryAs('brokerflow-broker');
  const instanceId = `rbac-${randomUUID()}`;
  const bindingId = `rbac-b-${randomUUID()}`;
  try {
    const instance = await worker.registry.open('service-instance', instanceId);
    await worker.registry.beginOperation(instance, { operation: 'provision', operationId: `provision-${randomUUID()}` });
    await worker.registry.completeOperation(instance, { operationId: instance.getString('operation-id')! });
    const binding = await worker.registry.open('service-binding', bindingId, { instanceId });
    binding.set('credentials', { username: 'u', password: 'p-123' });
    await worker.registry.beginOperation(binding, { operation: 'bind', operationId: `bind-${randomUUID()}` });
    // The worker lists bindings (deprovision) within its namespace; the credentials are a Secret, in no ConfigMap.
    assert.deepEqual((await worker.registry.list('service-binding')).map((b) => b.id), [bindingId]);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const kindLabel = 'persistence.brokerflow.io/kind';
    assert.equal((await core.listNamespacedSecret({ namespace: ns, labelSelector: `${kindLabel}=RegistryCredentials` })).items.length, 1);
    assert.equal((await core.listNamespacedConfigMap({ namespace: ns, labelSelector: `${kindLabel}=RegistryCredentials` })).items.length, 0);

    // The broker reads both, credentials included, and can change nothing.
    assert.equal((await broker.registry.readOperation('service-instance', instanceId))?.state, 'succeeded');
    const seen = await broker.registry.open('service-binding', bindingId, { instanceId });
    assert.deepEqual(seen.get('credentials'), { username: 'u', password: 'p-123' });
    seen.set('note', 'x');
    await assert.rejects(seen.commit(), /forbidden|403|permission/i);
  } finally {
    await worker.close();
    await broker.close();
  }

  // The kubernetes resource driver's identity (the worker) applies ConfigMaps in the tenants namespace only.
  const workerKc = new k8s.KubeConfig();
  workerKc.loadFromFile(await inClusterKubeconfig('brokerflow-worker', dir));
  const asWorker = k8s.KubernetesObjectApi.makeApiClient(workerKc);
  const cm = (namespace: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `bf-${suffix}`, namespace }, data: { a: '1' } });
  await asWorker.patch(cm(tenantNs), undefined, undefined, fieldManager, true, applyPatch);
  await asWorker.delete(cm(tenantNs));
  await assert.rejects(asWorker.patch({ ...cm(tenantNs), kind: 'Secret' }, undefined, undefined, fieldManager, true, applyPatch), /forbidden|403/i);
  await assert.rejects(asWorker.patch(cm('default'), undefined, undefined, fieldManager, true, applyPatch), /forbidden|403/i);

  // The whole matrix, as the API server's authorizer answers it.
  const authz = kc.makeApiClient(k8s.AuthorizationV1Api);
  const can = async (sa: string, verb: string, resource: string, namespace?: string) => {
    const review = await authz.createSubjectAccessReview({
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: `system:serviceaccount:${ns}:${sa}`,
          groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
          resourceAttributes: { verb, resource, group: resource === 'deployments' ? 'apps' : '', ...(namespace ? { namespace } : {}) },
        },
      },
    });
    return review.status?.allowed === true;
  };
  const expectations: Array<[string, string, string, string | undefined, boolean]> = [
    // Exactly the calls of adapters/persistence/kubernetes.ts (see rbac.yaml): no watch, no patch, Secrets never listed.
    ['brokerflow-worker', 'create', 'configmaps', ns, true],
    ['brokerflow-worker', 'list', 'configmaps', ns, true],
    ['brokerflow-worker', 'get', 'secrets', ns, true],
    ['brokerflow-worker', 'create', 'secrets', ns, true],
    ['brokerflow-worker', 'update', 'secrets', ns, true],
    ['brokerflow-worker', 'delete', 'secrets', ns, true],
    ['brokerflow-worker', 'list', 'secrets', ns, false],
    ['brokerflow-worker', 'watch', 'configmaps', ns, false],
    ['brokerflow-worker', 'patch', 'configmaps', ns, false],
    ['brokerflow-worker', 'list', 'configmaps', undefined, false],
    ['brokerflow-worker', 'patch', 'configmaps', tenantNs, true],
    ['brokerflow-worker', 'get', 'secrets', tenantNs, false],
    ['brokerflow-worker', 'get', 'secrets', 'kube-system', false],
    ['brokerflow-worker', 'list', 'secrets', undefined, false],
    ['brokerflow-worker', 'create', 'pods', ns, false],
    ['brokerflow-worker', 'patch', 'deployments', ns, false],
    ['brokerflow-broker', 'get', 'secrets', ns, true],
    ['brokerflow-broker', 'get', 'configmaps', ns, true],
    ['brokerflow-broker', 'list', 'configmaps', ns, false],
    ['brokerflow-broker', 'list', 'secrets', ns, false],
    ['brokerflow-broker', 'update', 'configmaps', ns, false],
    ['brokerflow-broker', 'create', 'secrets', ns, false],
    ['brokerflow-broker', 'patch', 'configmaps', tenantNs, false],
    ['brokerflow-codec-server', 'get', 'configmaps', ns, false],
    ['brokerflow-codec-server', 'get', 'secrets', ns, false],
  ];
  const answers = await Promise.all(expectations.map(([sa, verb, res, where]) => can(sa, verb, res, where)));
  assert.deepEqual(
    expectations.map(([sa, verb, res, where], i) => `${sa} ${verb} ${res} in ${where ?? 'all namespaces'}: ${answers[i]}`),
    expectations.map(([sa, verb, res, where, allowed]) => `${sa} ${verb} ${res} in ${where ?? 'all namespaces'}: ${allowed}`),
  );
});

test('the ConfigMap\'s configuration is valid, and each Deployment mounts exactly the secrets and files it references', () => {
  const configMap = byKind('ConfigMap').find((c) => c.metadata.name === 'brokerflow-config') as Obj & { data: Record<string, string> };
  const dir = mkdtempSync(join(requireTestEnv('workDir'), 'deploy-config-'));
  // The image's /app is this repository; the in-cluster kubeconfig sits next to the file, as mounted.
  const file = join(dir, 'brokerflow.yaml');
  writeFileSync(file, configMap.data['brokerflow.yaml']!.replaceAll('/app/', `${repoRoot}/`));
  writeFileSync(join(dir, 'in-cluster.kubeconfig'), configMap.data['in-cluster.kubeconfig']!);
  const config = loadRuntimeConfig(file);
  assert.equal(config.registry?.backend, 'kubernetes');
  assert.equal(config.registry?.kubernetes?.namespace, 'brokerflow', 'the registry lives in the namespace the Roles grant');
  assert.equal(config.broker?.host, '0.0.0.0');
  assert.equal(config.codecServer?.host, '0.0.0.0');
  assert.ok(config.catalogData.services.length > 0);
  assert.ok(!/password:\s*[^{\s]/.test(configMap.data['brokerflow.yaml']!), 'no password is written in the ConfigMap');

  const secretFiles = {
    encryption: config.encryption!.keys.map((k) => (k.key as { file: string }).file),
    broker: (config.broker?.auth?.basic ?? []).map((b) => (b.password as { file: string }).file),
    codec: (config.codecServer?.auth?.basic ?? []).map((b) => (b.password as { file: string }).file),
    tenantEtcd: [(config.drivers!.etcd!.auth.password as { file: string }).file],
  };
  const needs: Record<string, string[]> = {
    'brokerflow-worker': [...secretFiles.encryption, ...secretFiles.tenantEtcd],
    'brokerflow-broker': [...secretFiles.broker, ...secretFiles.encryption],
    // Its own credential, not the platform's: a platform that may call the OSB API cannot read every payload.
    'brokerflow-codec-server': [...secretFiles.codec, ...secretFiles.encryption],
  };
  assert.deepEqual(secretFiles.codec, ['/var/run/secrets/brokerflow/codec-password']);
  assert.ok(!secretFiles.codec.some((f) => secretFiles.broker.includes(f)), 'the codec server does not share the broker\'s secret');
  for (const dep of byKind('Deployment')) {
    const pod = (dep as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
    const container = pod.containers[0]!;
    const configPath = container.args[container.args.indexOf('--config') + 1]!;
    assert.equal(configPath, '/var/lib/brokerflow/brokerflow.yaml');
    // The image's entrypoint is node: the process is a compiled module of dist/, built from a source of this checkout.
    const script = container.args[0]!;
    assert.match(script, /^dist\/.*\.js$/, `${dep.metadata.name} runs compiled JavaScript`);
    assert.ok(existsSync(join(repoRoot, script.replace(/^dist\//, '').replace(/\.js$/, '.ts'))), `${dep.metadata.name}: ${script} is built from a source that exists`);
    const mounted = new Map<string, string>();
    for (const m of container.volumeMounts) {
      const volume = pod.volumes.find((v) => v.name === m.name)!;
      if (volume.secret) for (const item of volume.secret.items ?? []) mounted.set(join(m.mountPath, item.path), `secret:${item.key}`);
      if (volume.configMap) mounted.set(m.mountPath, `configmap:${m.subPath ?? '*'}`);
      if (volume.emptyDir) mounted.set(m.mountPath, 'emptyDir');
    }
    assert.equal(mounted.get(configPath), 'configmap:brokerflow.yaml', `${dep.metadata.name} mounts the configuration`);
    assert.equal(mounted.get(dirname(configPath)), 'emptyDir', `${dep.metadata.name}'s configuration folder is writable`);
    assert.equal(mounted.get('/tmp'), 'emptyDir', `${dep.metadata.name} has a writable /tmp (the CLI's tsx cache, the SDK's temporary files) with a read-only root`);
    const secrets = [...mounted].filter(([, what]) => what.startsWith('secret:')).map(([path]) => path).sort();
    assert.deepEqual(secrets, [...new Set(needs[dep.metadata.name]!)].sort(), `${dep.metadata.name} gets exactly the secrets it reads`);
    const usesKube = dep.metadata.name !== 'brokerflow-codec-server';
    assert.equal(mounted.get('/var/lib/brokerflow/in-cluster.kubeconfig'), usesKube ? 'configmap:in-cluster.kubeconfig' : undefined);
  }
});

interface PodSpec {
  containers: Array<{ args: string[]; volumeMounts: Array<{ name: string; mountPath: string; subPath?: string }> }>;
  volumes: Array<{ name: string; secret?: { items?: Array<{ key: string; path: string }> }; configMap?: unknown; emptyDir?: unknown }>;
}

/** Runs a command to its end; resolves with its exit code and output. */
function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, out });
    });
  });
}

test('the Dockerfile\'s file set runs on production dependencies only: a worker runs workflows and the CLI reaches it', { timeout: 240_000 }, async () => {
  const dockerfile = readFileSync(join(repoRoot, 'deploy', 'Dockerfile'), 'utf8');
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const buildStage = dockerfile.slice(dockerfile.indexOf(' AS build\n'), dockerfile.lastIndexOf('\nFROM '));
  // What `docker run brokerflow` runs: the worker, compiled (no TypeScript loader in a long-lived process).
  const entrypoint = JSON.parse(/^ENTRYPOINT (.*)$/m.exec(finalStage)![1]!) as string[];
  const command = JSON.parse(/^CMD (.*)$/m.exec(finalStage)![1]!) as string[];
  assert.deepEqual(entrypoint, ['node']);
  assert.deepEqual(command.slice(0, 2), ['dist/worker/main.js', '--config']);
  assert.match(dockerfile, /^ARG NODE_IMAGE=node:20-/m, 'Node 20, as package.json engines says');
  assert.match(finalStage, /^USER [1-9]\d*:[1-9]\d*$/m, 'a numeric non-root user');
  assert.match(dockerfile, /npm ci --omit=dev/);
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  assert.ok(pkg.dependencies.tsx, 'tsx is a production dependency, so --omit=dev keeps it');

  // Build /app as the final stage does, instruction by instruction: COPY from the context, the deps stage's
  // node_modules (this checkout's, without what the lockfile marks dev), ENV (with /app mapped), RUN.
  const app = join(mkdtempSync(join(requireTestEnv('workDir'), 'image-')), 'app');
  mkdirSync(app);
  const imageEnv: Record<string, string> = {};
  const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const devOnly = Object.entries(lock.packages).filter(([path, p]) => path.startsWith('node_modules/') && p.dev).map(([path]) => path);
  assert.ok(devOnly.includes('node_modules/typescript') && devOnly.includes('node_modules/playwright-core'));
  const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TEMPORAL_') && !k.startsWith('BROKERFLOW_')));
  for (const line of finalStage.split('\n')) {
    const [instruction, ...rest] = line.trim().split(/\s+/);
    if (instruction === 'COPY' && rest[0] === '--from=build') {
      // The build stage compiles the sources (npm ci with dev dependencies, then npm run build): here, the same
      // compiler on the same sources, into the image's dist/.
      assert.deepEqual(rest.slice(1), ['/app/dist', './dist']);
      assert.match(buildStage, /^RUN npm ci /m);
      assert.match(buildStage, /^RUN npm run build$/m);
      const res = await run(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(repoRoot, 'tsconfig.build.json'), '--outDir', join(app, 'dist')], { cwd: repoRoot, timeoutMs: 180_000 });
      assert.equal(res.code, 0, `npm run build: ${res.out}`);
    } else if (instruction === 'COPY' && rest[0] === '--from=deps') {
      assert.deepEqual(rest.slice(1), ['/app/node_modules', './node_modules']);
      // Hard links of the real folder (a node_modules that is a symlink would be copied as the link, and the
      // removals below would then delete this checkout's own dev dependencies through it).
      execFileSync('cp', ['-al', `${realpathSync(join(repoRoot, 'node_modules'))}/.`, join(app, 'node_modules')]);
      assert.ok(!lstatSync(join(app, 'node_modules')).isSymbolicLink());
      for (const path of devOnly) rmSync(join(app, path), { recursive: true, force: true });
    } else if (instruction === 'COPY') {
      const dest = rest.pop()!;
      for (const src of rest) cpSync(join(repoRoot, src), dest.endsWith('/') ? join(app, dest, src.split('/').pop()!) : join(app, dest), { recursive: true });
    } else if (instruction === 'ENV') {
      // KEY=value pairs; a value in double quotes may hold spaces (NODE_OPTIONS) and '=' (its flags).
      for (const [, k, quoted, bare] of line.trim().slice('ENV '.length).matchAll(/(\w+)=(?:"([^"]*)"|(\S+))/g)) {
        imageEnv[k!] = (quoted ?? bare!).replace(/^\/app(?=\/|$)/, app);
      }
    } else if (instruction === 'RUN') {
      const cmd = line.trim().slice('RUN '.length);
      const res = await run('bash', ['-c', cmd], { cwd: app, env: { ...baseEnv, ...imageEnv }, timeoutMs: 180_000 });
      assert.equal(res.code, 0, `RUN ${cmd}: ${res.out}`);
    }
  }
  // The memory settings (docs/DEPLOY.md, "Memory") reach every process of the image, the worker run below too.
  assert.equal(imageEnv.MALLOC_ARENA_MAX, '2');
  assert.match(imageEnv.NODE_OPTIONS ?? '', /^--max-old-space-size=\d+ --max-semi-space-size=\d+$/);
  const bundleDir = imageEnv.BROKERFLOW_BUNDLE_DIR!;
  const bundles = readdirSync(bundleDir).sort();
  assert.equal(bundles.filter((f) => f.endsWith('.js')).length, 1, 'the image holds one prebuilt workflow bundle');
  assert.deepEqual(bundles.map((f) => f.replace(/^workflows-[0-9a-f]+/, 'workflows-<hash>')), ['workflows-<hash>.js', 'workflows-<hash>.js.sha256'], 'and the SHA-256 recorded when it was written');
  assert.equal(statSync(bundleDir).mode & 0o022, 0, 'the bundle folder is writable by nobody but its owner');

  const { file } = writeTestConfig({ catalog: join(app, 'config', 'catalog.example.yaml'), resourceSets: join(app, 'config', 'resource-sets.example.yaml') });
  const env = { ...baseEnv, ...imageEnv };
  const worker = spawn(process.execPath, [...entrypoint.slice(1), ...command.slice(0, 2), file], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let workerOut = '';
  worker.stdout.on('data', (d: Buffer) => (workerOut += d.toString()));
  worker.stderr.on('data', (d: Buffer) => (workerOut += d.toString()));
  const workerClosed = new Promise((r) => worker.once('close', r));
  try {
    const doctorRun = run(process.execPath, ['--import', 'tsx', 'bin/brokerflow.js', '--config', file, '--json', 'doctor', '--timeout', '150'], { cwd: app, env, timeoutMs: 180_000 });
    const first = await Promise.race([doctorRun, workerClosed.then(() => 'worker exited' as const)]);
    if (first === 'worker exited') assert.fail(`the worker exited before doctor reached it:\n${workerOut}`);
    const doctor = first;
    assert.equal(doctor.code, 0, `${doctor.out}\n--- worker ---\n${workerOut}`);
    const checks = (JSON.parse(doctor.out.trim().split('\n').pop()!) as { checks: Array<{ name: string; ok: boolean }> }).checks;
    assert.deepEqual(checks.map((c) => [c.name, c.ok]), [['temporal', true], ['registry', true], ['worker', true]]);
    assert.match(workerOut, /"msg":"worker started"/);
    assert.deepEqual(readdirSync(bundleDir).sort(), bundles, 'the worker used the prebuilt bundle instead of bundling again');
    assert.doesNotMatch(workerOut, /workflow bundle cache|cached workflow bundle/, 'and trusted it without a warning');
  } finally {
    worker.kill('SIGTERM');
    await workerClosed;
  }
});

test('the broker\'s readiness probe script passes on a ready broker and fails on wrong credentials or no broker', async () => {
  const { config } = writeTestConfig();
  const broker = await createBroker(config, createLogger('broker', { level: 'silent' }));
  const port = await freePort();
  await broker.app.listen({ host: '127.0.0.1', port });
  const dir = mkdtempSync(join(requireTestEnv('workDir'), 'probe-'));
  const passwordFile = join(dir, 'broker-password');
  writeFileSync(passwordFile, `${testBrokerUser.password}\n`);
  const probe = (env: Record<string, string>) =>
    run(process.execPath, [resolve(repoRoot, 'deploy', 'readyz-probe.js')], {
      env: { PATH: process.env.PATH ?? '', BROKERFLOW_PROBE_URL: `http://127.0.0.1:${port}/readyz`, BROKERFLOW_PROBE_USER: testBrokerUser.username, BROKERFLOW_PROBE_PASSWORD_FILE: passwordFile, ...env },
    });
  try {
    const ready = await probe({});
    assert.equal(ready.code, 0, ready.out);
    const wrongFile = join(dir, 'wrong');
    writeFileSync(wrongFile, 'not-the-password');
    const wrong = await probe({ BROKERFLOW_PROBE_PASSWORD_FILE: wrongFile });
    assert.equal(wrong.code, 1);
    assert.match(wrong.out, /readyz 401/);
    assert.ok(!wrong.out.includes('not-the-password'), 'the probe never prints the password');
  } finally {
    await broker.close();
  }
  const gone = await probe({});
  assert.equal(gone.code, 1, gone.out);
});
