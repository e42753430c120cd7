// Contract tests of the Google Cloud Service Directory registry. This is a CONTRACT test, not an integration
// test, because no Service Directory emulator exists: the real `@google-cloud/service-directory` client talks
// gRPC to ./servicedirectory-server.ts, an in-memory RegistrationService built from the protos that client
// ships and following the documented API behaviour. What the real service does beyond those documents is
// not covered here.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { RegistrationServiceClient } from '@google-cloud/service-directory';
import { UnavailableError, ValidationError } from '../../adapters/errors';
import {
  ServRegAlreadyExistsError,
  ServRegNotFoundError,
  ServRegTimeoutError,
  ServiceDirectoryServiceRegistry,
  ServiceRegistryBroker,
} from '../../adapters/service-registries';
import { serviceRegistryConformance } from '../conformance/service-registry-conformance';
import { startServiceDirectoryContractServer, type ServiceDirectoryContractServer } from './servicedirectory-server';

const clientFor = (server: ServiceDirectoryContractServer) =>
  new RegistrationServiceClient({
    apiEndpoint: server.host,
    port: server.port,
    sslCreds: grpc.credentials.createInsecure(),
    projectId: 'brokerflow-test',
  });

let conformanceServer: ServiceDirectoryContractServer;
serviceRegistryConformance({
  name: 'Google Service Directory (contract server)',
  async open() {
    conformanceServer = await startServiceDirectoryContractServer();
    return new ServiceDirectoryServiceRegistry({
      projectId: 'brokerflow-test',
      location: 'us-east1',
      clientOptions: { apiEndpoint: conformanceServer.host, port: conformanceServer.port, sslCreds: grpc.credentials.createInsecure() },
    });
  },
  async close(registry) {
    await registry.close();
    await conformanceServer.stop();
  },
});

describe('Google Service Directory specifics (contract server)', () => {
  let server: ServiceDirectoryContractServer;
  let client: RegistrationServiceClient;
  let reg: ServiceDirectoryServiceRegistry;
  const parent = 'projects/brokerflow-test/locations/europe-west1';

  before(async () => {
    server = await startServiceDirectoryContractServer();
    client = clientFor(server);
    reg = new ServiceDirectoryServiceRegistry({ projectId: 'brokerflow-test', location: 'europe-west1', client });
  });

  after(async () => {
    await reg.close();
    await client.close();
    await server.stop();
  });

  test('resources are named projects/<p>/locations/<l>/namespaces/<ns>/services/<svc>/endpoints/<ep>', async () => {
    await reg.createNs({ name: 'shop', metadata: {} });
    await reg.createServ({ name: 'web', namespace: 'shop', metadata: {} });
    await reg.createEndp({ name: 'web-1', namespace: 'shop', service: 'web', address: '10.0.0.1', port: 80, metadata: {} });
    const [e] = await client.getEndpoint({ name: `${parent}/namespaces/shop/services/web/endpoints/web-1` });
    assert.equal(e.address, '10.0.0.1');
    assert.equal(e.port, 80);
  });

  test('namespace metadata is stored as labels, service and endpoint metadata as annotations', async () => {
    await reg.createNs({ name: 'meta', metadata: { owner: 'brokerflow', team: 'a' } });
    await reg.createServ({ name: 'web', namespace: 'meta', metadata: { 'example.com/tier': 'front' } });
    await reg.createEndp({ name: 'e1', namespace: 'meta', service: 'web', address: '10.0.0.1', port: 80, metadata: { zone: 'a' } });
    const [n] = await client.getNamespace({ name: `${parent}/namespaces/meta` });
    assert.deepEqual({ ...n.labels }, { owner: 'brokerflow', team: 'a' });
    const [s] = await client.getService({ name: `${parent}/namespaces/meta/services/web` });
    assert.deepEqual({ ...s.annotations }, { 'example.com/tier': 'front' });
    const [e] = await client.getEndpoint({ name: `${parent}/namespaces/meta/services/web/endpoints/e1` });
    assert.deepEqual({ ...e.annotations }, { zone: 'a' });
  });

  test('updates carry a field mask: fields outside it survive, and the API refuses an update without one', async () => {
    await reg.createNs({ name: 'masks', metadata: {} });
    await reg.createServ({ name: 'web', namespace: 'masks', metadata: {} });
    // `network` is set at creation only; an update of address, port and annotations must leave it alone.
    await client.createEndpoint({
      parent: `${parent}/namespaces/masks/services/web`,
      endpointId: 'e1',
      endpoint: { address: '10.0.0.1', port: 80, network: 'projects/123/locations/global/networks/default' },
    });
    await reg.updateEndp({ name: 'e1', namespace: 'masks', service: 'web', address: '10.0.0.2', port: 81, metadata: { zone: 'b' } });
    const [e] = await client.getEndpoint({ name: `${parent}/namespaces/masks/services/web/endpoints/e1` });
    assert.equal(e.address, '10.0.0.2');
    assert.equal(e.port, 81);
    assert.deepEqual({ ...e.annotations }, { zone: 'b' });
    assert.equal(e.network, 'projects/123/locations/global/networks/default');
    await assert.rejects(
      client.updateEndpoint({ endpoint: { name: `${parent}/namespaces/masks/services/web/endpoints/e1`, port: 1 } }),
      (err: { code?: number }) => err.code === grpc.status.INVALID_ARGUMENT,
    );
  });

  test('gRPC status codes map to the error set', async () => {
    await assert.rejects(reg.getNs('absent'), ServRegNotFoundError);
    await reg.createNs({ name: 'codes', metadata: {} });
    await assert.rejects(reg.createNs({ name: 'codes', metadata: {} }), ServRegAlreadyExistsError);
    // Label keys must be lowercase: INVALID_ARGUMENT from the API.
    await assert.rejects(reg.updateNs({ name: 'codes', metadata: { Team: 'a' } }), ValidationError);

    server.latencyMs = 300;
    const impatient = new ServiceDirectoryServiceRegistry({ projectId: 'brokerflow-test', location: 'europe-west1', client, callTimeoutMs: 50 });
    try {
      const err = await impatient.getNs('codes').then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof ServRegTimeoutError, String(err));
      assert.equal(err.retryable, true);
    } finally {
      server.latencyMs = 0;
    }

    const nowhere = new ServiceDirectoryServiceRegistry({
      projectId: 'brokerflow-test',
      location: 'europe-west1',
      clientOptions: { apiEndpoint: '127.0.0.1', port: 9, sslCreds: grpc.credentials.createInsecure() },
      callTimeoutMs: 5_000,
    });
    try {
      const err = await nowhere.getNs('codes').then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof UnavailableError, String(err));
      assert.equal(err.retryable, true);
    } finally {
      await nowhere.close();
    }
  });

  test('names Service Directory cannot hold are refused before any call reaches it', async () => {
    const before = [...server.calls.values()].reduce((a, b) => a + b, 0);
    for (const name of ['Upper', 'under_score', '9starts-with-digit', `a${'b'.repeat(63)}`]) {
      await assert.rejects(reg.createNs({ name, metadata: {} }), ValidationError, name);
    }
    assert.equal([...server.calls.values()].reduce((a, b) => a + b, 0), before);
  });

  test('an endpoint the API refuses is reported in the error map while the others go through', async () => {
    const b = new ServiceRegistryBroker(reg);
    await b.manageNs({ name: 'partial', metadata: {} });
    await b.manageServ({ name: 'web', namespace: 'partial', metadata: {} });
    // Endpoint annotations are limited to 512 characters in total.
    const errors = await b.manageServEndps('partial', 'web', [
      { name: 'ok', namespace: 'partial', service: 'web', address: '10.0.0.1', port: 80, metadata: {} },
      { name: 'big', namespace: 'partial', service: 'web', address: '10.0.0.2', port: 80, metadata: { note: 'x'.repeat(600) } },
    ]);
    assert.deepEqual([...errors.keys()], ['big']);
    assert.ok(errors.get('big') instanceof ValidationError);
    assert.deepEqual((await reg.listEndp('partial', 'web')).map((e) => e.name), ['ok']);
  });

  test('lists longer than a page come back whole', async () => {
    await reg.createNs({ name: 'paged', metadata: {} });
    await reg.createServ({ name: 'web', namespace: 'paged', metadata: {} });
    const names = Array.from({ length: 230 }, (_, i) => `e${String(i).padStart(3, '0')}`);
    for (const name of names) {
      await reg.createEndp({ name, namespace: 'paged', service: 'web', address: '10.0.0.1', port: 1000 + names.indexOf(name), metadata: {} });
    }
    const listsBefore = server.calls.get('ListEndpoints') ?? 0;
    assert.deepEqual((await reg.listEndp('paged', 'web')).map((e) => e.name), names);
    assert.equal((server.calls.get('ListEndpoints') ?? 0) - listsBefore, 3, 'three pages of at most 100');
  });

  test('the contract server deletes what is below a deleted namespace or service, as the API documents', async () => {
    await reg.createNs({ name: 'cascade', metadata: {} });
    await reg.createServ({ name: 'web', namespace: 'cascade', metadata: {} });
    await reg.createEndp({ name: 'e1', namespace: 'cascade', service: 'web', address: '10.0.0.1', port: 80, metadata: {} });
    await client.deleteNamespace({ name: `${parent}/namespaces/cascade` });
    await reg.createNs({ name: 'cascade', metadata: {} });
    await assert.rejects(client.getService({ name: `${parent}/namespaces/cascade/services/web` }), (err: { code?: number }) => err.code === grpc.status.NOT_FOUND);
  });
});
