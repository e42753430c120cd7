// Cloud Map addresses namespaces and services by ID; brokerflow by name. Resolving a service's name costs more calls
// than most changes (ListNamespaces, ListServices pages, GetService), all on the same rate budget, so the adapter
// remembers what it resolved. These tests hold it to that, against moto, and to never acting on an ID that is gone:
// a namespace or service deleted and made again under the same name by someone else is found under its new ID, and
// one deleted for good is reported as not found.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CloudMapServiceRegistry, ServRegNotFoundError, type CallObserver, type Endpoint } from '../../adapters/service-registries';
import { requireTestEnv } from '../support/env';

const motoEndpoint = requireTestEnv('motoEndpoint');
const clientConfig = { endpoint: motoEndpoint, region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };

/** An observer that counts the API calls the adapter makes. */
function counting(): CallObserver & { calls: number } {
  const c = { calls: 0, called: () => void c.calls++ };
  return c;
}

const endpoint = (namespace: string, service: string, name: string, last: number): Endpoint => ({
  name,
  namespace,
  service,
  address: `10.7.0.${last}`,
  port: 8080,
  metadata: {},
});

describe('Cloud Map names and IDs', () => {
  const ns = `cn${randomBytes(4).toString('hex')}`;
  const observer = counting();
  // The adapter under test, and "someone else": another process on the same account.
  let ours: CloudMapServiceRegistry;
  let other: CloudMapServiceRegistry;

  before(async () => {
    ours = new CloudMapServiceRegistry({ clientConfig, pollIntervalMs: 50, callsPerSecond: 10_000, observer });
    other = new CloudMapServiceRegistry({ clientConfig, pollIntervalMs: 50, callsPerSecond: 10_000 });
    await other.createNs({ name: ns, metadata: {} });
  });

  after(async () => {
    await other.deleteNs(ns).catch(() => undefined);
    await ours.close();
    await other.close();
  });

  test('a service resolved once is addressed by its ID afterwards: listing its endpoints is one ListInstances', async () => {
    await ours.createServ({ name: 'web', namespace: ns, metadata: {} });
    await ours.createEndp(endpoint(ns, 'web', 'web-1', 1));
    const before = observer.calls;
    const listed = await ours.listEndp(ns, 'web');
    assert.deepEqual(
      listed.map((e) => e.name),
      ['web-1'],
    );
    assert.equal(observer.calls - before, 1, 'one call: the instances of the service, no name resolved again');
  });

  test('a service deleted and made again under the same name by someone else is found under its new ID', async () => {
    await ours.createServ({ name: 'api', namespace: ns, metadata: {} });
    await ours.createEndp(endpoint(ns, 'api', 'api-1', 2));
    await other.deleteServ(ns, 'api');
    await other.createServ({ name: 'api', namespace: ns, metadata: { made: 'again' } });

    assert.deepEqual(await ours.listEndp(ns, 'api'), [], 'the new service has no endpoints');
    await ours.createEndp(endpoint(ns, 'api', 'api-2', 3));
    assert.deepEqual(
      (await other.listEndp(ns, 'api')).map((e) => e.name),
      ['api-2'],
      'the endpoint went into the service that exists now',
    );
    assert.deepEqual((await ours.getServ(ns, 'api')).metadata, { made: 'again' });
  });

  test('a service deleted for good is not found, and stays not found', async () => {
    await ours.createServ({ name: 'gone', namespace: ns, metadata: {} });
    await ours.listEndp(ns, 'gone');
    await other.deleteServ(ns, 'gone');
    await assert.rejects(ours.listEndp(ns, 'gone'), (err) => err instanceof ServRegNotFoundError && err.level === 'service');
    await assert.rejects(ours.createEndp(endpoint(ns, 'gone', 'gone-1', 4)), (err) => err instanceof ServRegNotFoundError && err.level === 'service');
  });

  test('a namespace deleted and made again by someone else is found under its new ID, with its new services', async () => {
    const ns2 = `cn${randomBytes(4).toString('hex')}`;
    await other.createNs({ name: ns2, metadata: {} });
    try {
      await ours.createServ({ name: 'db', namespace: ns2, metadata: {} });
      await ours.createEndp(endpoint(ns2, 'db', 'db-1', 5));
      await other.deleteNs(ns2);
      await other.createNs({ name: ns2, metadata: { made: 'again' } });
      await other.createServ({ name: 'db', namespace: ns2, metadata: {} });

      assert.deepEqual(await ours.listEndp(ns2, 'db'), []);
      assert.deepEqual((await ours.getNs(ns2)).metadata, { made: 'again' });
      await ours.createServ({ name: 'cache', namespace: ns2, metadata: {} });
      assert.deepEqual(
        (await other.listServ(ns2)).map((s) => s.name).sort(),
        ['cache', 'db'],
        'a service made after the namespace came back is in the namespace that exists now',
      );
    } finally {
      await other.deleteNs(ns2).catch(() => undefined);
    }
  });
});
