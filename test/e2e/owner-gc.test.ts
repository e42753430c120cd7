// With the registry on Kubernetes, objects a plan creates are owned by the instance's registry entry: deleting
// the entry garbage-collects them (docs/design/contracts/registry.md#owner-references; the role finalizers
// played).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestStack, type TestStack } from '../support/stack';
import { requireTestEnv } from '../support/env';
import { newId, osbResourceSets, provisionAndWait } from '../support/osb';

let stack: TestStack | undefined;
after(() => stack?.close());

test('objects created for an instance are garbage-collected when its Kubernetes registry entry goes', { timeout: 120_000 }, async () => {
  stack = await startTestStack({ overrides: { resourceSets: osbResourceSets, registry: { backend: 'kubernetes', kubernetes: { namespace: 'default' } } } });
  const id = newId('owned');
  await provisionAndWait(stack, id);
  const { KubeConfig, CoreV1Api } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromFile(requireTestEnv('kubeconfig'));
  const core = kc.makeApiClient(CoreV1Api);
  const cm = await core.readNamespacedConfigMap({ name: `bf-${id}`, namespace: 'default' });
  const owners = cm.metadata?.ownerReferences ?? [];
  assert.equal(owners.length, 1, 'the ConfigMap names its owner');
  const entry = await stack.worker.registry.registry.open('service-instance', id);
  assert.equal(owners[0]!.uid, entry.getOwnerReference()?.uid, 'the owner is the instance registry entry');
  await entry.delete();
  const deadline = Date.now() + 60_000;
  for (;;) {
    const gone = await core.readNamespacedConfigMap({ name: `bf-${id}`, namespace: 'default' }).then(() => false, () => true);
    if (gone) break;
    if (Date.now() > deadline) assert.fail('the garbage collector did not delete the owned ConfigMap');
    await new Promise((r) => setTimeout(r, 250));
  }
});
