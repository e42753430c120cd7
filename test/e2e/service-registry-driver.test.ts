// The `registered` plan of the example catalog over HTTP, as a platform drives it: a provision registers the
// tenant etcd's client endpoint in the service registry, owned by the instance, and a deprovision removes it
// (docs/design/contracts/resource-drivers.md#service-registry-driver).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EtcdServiceRegistry, ServRegNotFoundError } from '../../adapters/service-registries';
import { requireTestEnv } from '../support/env';
import { deleteQuery, instancePath, newId, provisionAndWait } from '../support/osb';
import { pollLastOperation, startTestStack, type TestStack } from '../support/stack';

const REGISTERED_PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a04';
const etcd = { endpoints: [requireTestEnv('etcdEndpoint')], prefix: `/brokerflow-test-srd-e2e-${randomBytes(4).toString('hex')}` };

let stack: TestStack;
let registry: EtcdServiceRegistry;

before(async () => {
  stack = await startTestStack({
    overrides: {
      drivers: {
        etcd: { endpoints: [requireTestEnv('tenantEtcdEndpoint')], auth: { username: 'root', password: requireTestEnv('tenantEtcdRootPassword') } },
        serviceRegistry: { registry: 'etcd', etcd },
      },
    },
  });
  registry = EtcdServiceRegistry.connect(etcd);
});

after(async () => {
  await registry?.close();
  await stack?.close();
});

test('provisioning the registered plan registers the instance endpoint, owned by it; deprovisioning removes it', async () => {
  const id = newId('registered');
  await provisionAndWait(stack, id, { plan_id: REGISTERED_PLAN });

  const service = await registry.getServ('brokerflow-tenants', `etcd-${id}`);
  assert.deepEqual(service.metadata, { 'brokerflow.io/etcd-prefix': `/tenants/${id}`, owner: `brokerflow/instance/${id}` });
  const endpoints = await registry.listEndp('brokerflow-tenants', `etcd-${id}`);
  assert.deepEqual(
    endpoints.map((e) => ({ name: e.name, address: e.address, port: e.port, metadata: e.metadata })),
    // The example set registers the dev stack's tenant etcd (config/brokerflow.example.yaml: drivers.etcd on 2381).
    [{ name: 'client', address: '127.0.0.1', port: 2381, metadata: { owner: `brokerflow/instance/${id}` } }],
  );

  const res = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery(REGISTERED_PLAN)}`);
  assert.equal(res.statusCode, 202, res.body);
  const done = await pollLastOperation(stack, instancePath(id), (res.json() as { operation: string }).operation);
  assert.equal(done.status, 410, JSON.stringify(done.body));
  await assert.rejects(registry.getServ('brokerflow-tenants', `etcd-${id}`), ServRegNotFoundError);
});
