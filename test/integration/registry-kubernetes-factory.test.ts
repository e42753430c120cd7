// The registry exactly as the factory builds it on the kubernetes backend, against the test kube-apiserver:
// binding credentials (and driver secrets) land in Secrets and in no ConfigMap, entries in ConfigMaps, and every
// call stays in the registry's namespace (a namespaced Role is enough; see deploy/kubernetes/rbac.yaml).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import type { CoreV1Api } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { createRegistry, driverSecretStore, type RegistryBundle } from '../../adapters/factory';
import { RegistryKind } from '../../adapters/registry';
import { writeTestConfig } from '../support/config';
import { requireTestEnv } from '../support/env';

const kubeconfigPath = requireTestEnv('kubeconfig');
const ns = `bf-regfac-${randomBytes(4).toString('hex')}`;
const KIND_LABEL = 'persistence.brokerflow.io/kind';

let api: CoreV1Api;
let bundle: RegistryBundle;
before(async () => {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  api = kc.makeApiClient(k8s.CoreV1Api);
  await api.createNamespace({ body: { metadata: { name: ns } } });
  bundle = await createRegistry(writeTestConfig({ registry: { backend: 'kubernetes', kubernetes: { namespace: ns } }, kubernetes: { kubeconfig: kubeconfigPath } }).config);
});
after(async () => {
  await bundle?.close();
  await api.deleteNamespace({ name: ns }).catch(() => undefined);
});

test('after a bind through the factory-built registry, the credentials are in a Secret and in no ConfigMap; records are ConfigMaps', async () => {
  const { registry } = bundle;
  const instanceId = `i-${randomUUID()}`;
  const bindingId = `b-${randomUUID()}`;
  const instance = await registry.open('service-instance', instanceId);
  await registry.beginOperation(instance, { operation: 'provision', operationId: `provision-${randomUUID()}` });
  await registry.completeOperation(instance, { operationId: instance.getString('operation-id')! });
  const binding = await registry.open('service-binding', bindingId, { instanceId });
  binding.set('credentials', { username: 'u', password: 'never-in-a-configmap' });
  await registry.beginOperation(binding, { operation: 'bind', operationId: `bind-${randomUUID()}` });
  await registry.completeOperation(binding, { operationId: binding.getString('operation-id')! });
  await driverSecretStore(bundle.secrets).ensure(`etcd-user/${bindingId}`, () => 'generated-password');

  const secrets = (await api.listNamespacedSecret({ namespace: ns })).items;
  const maps = (await api.listNamespacedConfigMap({ namespace: ns })).items;
  const kindsOf = (items: Array<{ metadata?: { labels?: Record<string, string> } }>) =>
    items.map((i) => i.metadata?.labels?.[KIND_LABEL]).filter((k): k is string => k !== undefined).sort();

  // Credentials and the driver's secret: Secrets, one each.
  assert.deepEqual(kindsOf(secrets), ['DriverSecret', RegistryKind.Credentials]);
  const credentialSecret = secrets.find((s) => s.metadata?.labels?.[KIND_LABEL] === RegistryKind.Credentials)!;
  assert.ok(credentialSecret.metadata!.name!.endsWith(binding.name));
  assert.equal(credentialSecret.type, 'Opaque');
  // Encrypted at rest inside the Secret too: the clear password is not even in the decoded data.
  assert.ok(!Buffer.from(credentialSecret.data!['object.json']!, 'base64').toString('utf8').includes('never-in-a-configmap'));

  // Records: ConfigMaps (the two entries), and nothing of the secret store among them, not even ciphertext.
  assert.deepEqual(kindsOf(maps), [RegistryKind.Entry, RegistryKind.Entry]);
  const text = JSON.stringify(maps);
  assert.ok(!text.includes('never-in-a-configmap') && !text.includes('generated-password'));
  assert.ok(!text.includes('"encrypted"'), 'no encrypted envelope in a ConfigMap');

  // Read back through the registry (credentials included), and listed from the namespace alone.
  assert.deepEqual((await registry.open('service-binding', bindingId, { instanceId })).get('credentials'), { username: 'u', password: 'never-in-a-configmap' });
  assert.deepEqual((await registry.list('service-binding')).map((b) => b.id), [bindingId]);

  // Unbinding removes the Secret.
  await (await registry.open('service-binding', bindingId, { instanceId })).delete();
  assert.deepEqual(kindsOf((await api.listNamespacedSecret({ namespace: ns })).items), ['DriverSecret']);
});

test('an entry in a namespace the registry does not serve is refused before any call to the API server', async () => {
  // Its lists would never see it, and the RBAC grants nothing there.
  await assert.rejects(bundle.registry.open('service-instance', `elsewhere-${randomUUID()}`, { namespace: 'default' }), /not one this replica serves/);
});
