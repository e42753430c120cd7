// The AWS Cloud Map service registry on the moto server of the test run: the shared conformance suite, then
// how objects look in Cloud Map itself (HTTP namespaces and services, tags, instance attributes).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  GetServiceCommand,
  ListInstancesCommand,
  ListNamespacesCommand,
  ListServicesCommand,
  ListTagsForResourceCommand,
  ServiceDiscoveryClient,
} from '@aws-sdk/client-servicediscovery';
import { UnavailableError, ValidationError } from '../../adapters/errors';
import { CloudMapServiceRegistry } from '../../adapters/service-registries';
import { requireTestEnv } from '../support/env';
import { serviceRegistryConformance } from '../conformance/service-registry-conformance';

const clientConfig = {
  endpoint: requireTestEnv('motoEndpoint'),
  region: 'us-east-1',
  credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
};
// moto finishes operations at once; a short poll interval keeps a real PENDING answer cheap too.
const open = () => new CloudMapServiceRegistry({ clientConfig, pollIntervalMs: 50, operationTimeoutMs: 10_000, callTimeoutMs: 10_000 });

serviceRegistryConformance({ name: 'AWS Cloud Map (moto)', open: async () => open() });

describe('AWS Cloud Map specifics', () => {
  const ns = `cm${randomBytes(4).toString('hex')}`;
  let reg: CloudMapServiceRegistry;
  let raw: ServiceDiscoveryClient;

  before(() => {
    reg = open();
    raw = new ServiceDiscoveryClient(clientConfig);
  });

  after(async () => {
    await reg.deleteNs(ns).catch(() => undefined);
    await reg.close();
    raw.destroy();
  });

  const nsSummary = async () => {
    const out = await raw.send(new ListNamespacesCommand({}));
    const found = (out.Namespaces ?? []).find((n) => n.Name === ns);
    assert.ok(found, `namespace ${ns} exists in Cloud Map`);
    return found;
  };
  const serviceId = async (name: string) => {
    const nsId = (await nsSummary()).Id;
    const out = await raw.send(new ListServicesCommand({}));
    for (const s of out.Services ?? []) {
      if (s.Name !== name) continue;
      const full = await raw.send(new GetServiceCommand({ Id: s.Id }));
      if (full.Service?.NamespaceId === nsId) return { id: s.Id!, arn: s.Arn!, type: full.Service?.Type };
    }
    assert.fail(`service ${name} not found in Cloud Map`);
  };
  const tagsOf = async (arn: string) => {
    const out = await raw.send(new ListTagsForResourceCommand({ ResourceARN: arn }));
    return Object.fromEntries((out.Tags ?? []).map((t) => [t.Key, t.Value]));
  };

  test('namespaces and services are HTTP ones whose tags hold the metadata, and an update drops tags left out', async () => {
    await reg.createNs({ name: ns, metadata: { owner: 'brokerflow', team: 'a' } });
    const summary = await nsSummary();
    assert.equal(summary.Type, 'HTTP');
    assert.deepEqual(await tagsOf(summary.Arn!), { owner: 'brokerflow', team: 'a' });
    await reg.updateNs({ name: ns, metadata: { owner: 'brokerflow' } });
    assert.deepEqual(await tagsOf(summary.Arn!), { owner: 'brokerflow' });

    await reg.createServ({ name: 'web', namespace: ns, metadata: { 'example.com/tier': 'front', x: 'y' } });
    const web = await serviceId('web');
    assert.equal(web.type, 'HTTP');
    assert.deepEqual(await tagsOf(web.arn), { 'example.com/tier': 'front', x: 'y' });
    await reg.updateServ({ name: 'web', namespace: ns, metadata: { x: 'z' } });
    assert.deepEqual(await tagsOf(web.arn), { x: 'z' });
  });

  test('endpoints are registered instances whose attributes hold the address, the port and the metadata', async () => {
    await reg.createNs({ name: ns, metadata: {} }).catch(() => undefined);
    await reg.createServ({ name: 'api', namespace: ns, metadata: {} });
    await reg.createEndp({ name: 'api-v4', namespace: ns, service: 'api', address: '10.0.0.7', port: 8443, metadata: { zone: 'a' } });
    await reg.createEndp({ name: 'api-v6', namespace: ns, service: 'api', address: '2001:db8::7', port: 443, metadata: {} });
    const out = await raw.send(new ListInstancesCommand({ ServiceId: (await serviceId('api')).id }));
    const attrs = Object.fromEntries((out.Instances ?? []).map((i) => [i.Id, i.Attributes]));
    assert.deepEqual(attrs, {
      'api-v4': { AWS_INSTANCE_IPV4: '10.0.0.7', AWS_INSTANCE_PORT: '8443', zone: 'a' },
      'api-v6': { AWS_INSTANCE_IPV6: '2001:db8::7', AWS_INSTANCE_PORT: '443' },
    });
  });

  test('endpoint metadata keys starting with AWS_ are refused: Cloud Map reserves them', async () => {
    await assert.rejects(
      reg.createEndp({ name: 'e', namespace: ns, service: 'api', address: '10.0.0.1', port: 80, metadata: { AWS_INSTANCE_PORT: '1' } }),
      ValidationError,
    );
  });

  test('a Cloud Map that cannot be reached fails as unavailable, which callers may retry', async () => {
    const dead = new CloudMapServiceRegistry({ clientConfig: { ...clientConfig, endpoint: 'http://127.0.0.1:9' }, callTimeoutMs: 5_000 });
    try {
      const err = await dead.getNs(ns).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof UnavailableError, String(err));
      assert.equal(err.retryable, true);
    } finally {
      await dead.close();
    }
  });
});
