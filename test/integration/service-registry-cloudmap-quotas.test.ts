// Cloud Map's quotas, kept on the client side: the per-service instance limit is refused before anything is
// written (before any call when the request alone is too big), and the rate budget spreads a burst so that an
// API that throttles (moto behind a throttling proxy, as AWS answers) refuses none of its calls.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  CloudMapServiceRegistry,
  EndpointLimitExceededError,
  ServiceRegistryBroker,
  type CallObserver,
  type Endpoint,
} from '../../adapters/service-registries';
import { UnavailableError } from '../../adapters/errors';
import { requireTestEnv } from '../support/env';
import { startThrottlingProxy, type ThrottlingProxy } from '../support/aws-throttling-proxy';

const motoEndpoint = requireTestEnv('motoEndpoint');
const clientConfig = (endpoint: string) => ({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });

/** An observer that counts what the backend reports. */
function counting(): CallObserver & { calls: number; throttles: number; waits: number } {
  const c = {
    calls: 0,
    throttles: 0,
    waits: 0,
    called: () => void c.calls++,
    throttled: () => void c.throttles++,
    waited: () => void c.waits++,
  };
  return c;
}

const endpoints = (names: string[], base: number): Endpoint[] =>
  names.map((name, i) => ({ name, namespace: '', service: '', address: `10.9.${base}.${i + 1}`, port: 8080, metadata: {} }));

describe('Cloud Map quotas on the client side', () => {
  const ns = `cq${randomBytes(4).toString('hex')}`;
  let setup: CloudMapServiceRegistry;
  let setupBroker: ServiceRegistryBroker;
  const proxies: ThrottlingProxy[] = [];
  // AWS-like throttling: a burst of 3, then 3 calls a second.
  const throttlingProxy = async () => {
    const p = await startThrottlingProxy(motoEndpoint, { perSecond: 3, burst: 3 });
    proxies.push(p);
    return p;
  };

  before(async () => {
    setup = new CloudMapServiceRegistry({ clientConfig: clientConfig(motoEndpoint), pollIntervalMs: 50, callsPerSecond: 10_000 });
    setupBroker = new ServiceRegistryBroker(setup);
    await setupBroker.manageNs({ name: ns, metadata: {} });
    for (const s of ['limit', 'foreign', 'within', 'budget', 'nobudget']) await setupBroker.manageServ({ name: s, namespace: ns, metadata: {} });
  });

  after(async () => {
    await setupBroker.removeNs(ns, true).catch(() => undefined);
    await setup.close();
    for (const p of proxies) await p.close();
  });

  test('a reconcile beyond the per-service limit is refused before any call, naming the service and the limit', async () => {
    const observer = counting();
    const reg = new CloudMapServiceRegistry({ clientConfig: clientConfig(motoEndpoint), maxInstancesPerService: 3, observer });
    try {
      const err = await new ServiceRegistryBroker(reg).manageServEndps(ns, 'limit', endpoints(['a', 'b', 'c', 'd'], 1)).then(
        () => assert.fail('a fourth endpoint was accepted'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof EndpointLimitExceededError, String(err));
      assert.equal(err.retryable, false, 'not retried: the service must shrink or the limit be raised');
      assert.match(err.message, new RegExp(`service ${ns}/limit would hold 4 endpoints, more than the registry's limit of 3`));
      assert.equal(observer.calls, 0, 'no Cloud Map call was made');
      assert.deepEqual(await setup.listEndp(ns, 'limit'), []);
    } finally {
      await reg.close();
    }
  });

  test('foreign instances count towards the limit: a reconcile that would pass it writes nothing', async () => {
    // Two instances someone else registered (no owner mark), then two of ours under a limit of 3.
    for (const e of endpoints(['f1', 'f2'], 2)) await setup.createEndp({ ...e, namespace: ns, service: 'foreign' });
    const reg = new CloudMapServiceRegistry({ clientConfig: clientConfig(motoEndpoint), maxInstancesPerService: 3 });
    try {
      await assert.rejects(
        new ServiceRegistryBroker(reg).manageServEndps(ns, 'foreign', endpoints(['o1', 'o2'], 3)),
        (e: unknown) => e instanceof EndpointLimitExceededError && /would hold 4 endpoints/.test(e.message),
      );
      assert.deepEqual((await setup.listEndp(ns, 'foreign')).map((e) => e.name).sort(), ['f1', 'f2']);
      // Within the limit the same reconcile goes through.
      const errors = await new ServiceRegistryBroker(reg).manageServEndps(ns, 'foreign', endpoints(['o1'], 3));
      assert.deepEqual([...errors.keys()].sort(), ['f1', 'f2'], 'only the foreign instances are reported, as not owned');
      assert.deepEqual((await setup.listEndp(ns, 'foreign')).map((e) => e.name).sort(), ['f1', 'f2', 'o1']);
    } finally {
      await reg.close();
    }
  });

  test('a single create beyond the limit is refused too, naming the service', async () => {
    const reg = new CloudMapServiceRegistry({ clientConfig: clientConfig(motoEndpoint), maxInstancesPerService: 2 });
    try {
      for (const e of endpoints(['w1', 'w2'], 4)) await reg.createEndp({ ...e, namespace: ns, service: 'within' });
      await assert.rejects(
        reg.createEndp({ ...endpoints(['w3'], 4)[0]!, namespace: ns, service: 'within' }),
        (e: unknown) => e instanceof EndpointLimitExceededError && e.message.includes(`service ${ns}/within`),
      );
      assert.equal((await setup.listEndp(ns, 'within')).length, 2);
    } finally {
      await reg.close();
    }
  });

  test('with the rate budget below the API limit, a burst that would be throttled goes through with 0 throttling answers', async () => {
    const names = ['b1', 'b2', 'b3'];
    const proxy = await throttlingProxy();
    // The control registers ten (24 calls, 8 at once): far more than a burst of 3 and 3 a second allow.
    const many = Array.from({ length: 10 }, (_, i) => `m${i}`);
    // The control: no budget to speak of, so the burst runs into the throttling (which shows the proxy bites).
    const wild = counting();
    const unbudgeted = new CloudMapServiceRegistry({ clientConfig: clientConfig(proxy.endpoint), pollIntervalMs: 50, callsPerSecond: 10_000, observer: wild });
    try {
      const errors = await new ServiceRegistryBroker(unbudgeted).manageServEndps(ns, 'nobudget', endpoints(many, 5)).catch((e: unknown) => new Map([['listing', e]]));
      assert.ok(proxy.throttled > 0, 'without a budget the proxy throttled calls');
      assert.equal(wild.throttles, proxy.throttled, 'each throttling answer is counted for the metric');
      assert.ok(errors.size > 0 && [...errors.values()].every((e) => e instanceof UnavailableError), 'throttled calls fail as retryable');
    } finally {
      await unbudgeted.close();
    }

    // Three endpoints with a budget of 2 calls a second, through a proxy of its own (the control emptied that one's
    // bucket): the margin below the API's 3 a second absorbs a delay of up to ~0.5 s between budget and API.
    const fresh = await throttlingProxy();
    const observer = counting();
    const budgeted = new CloudMapServiceRegistry({ clientConfig: clientConfig(fresh.endpoint), pollIntervalMs: 50, callsPerSecond: 2, observer });
    try {
      const errors = await new ServiceRegistryBroker(budgeted).manageServEndps(ns, 'budget', endpoints(names, 6));
      assert.deepEqual([...errors.entries()], [], 'every endpoint was registered');
      assert.deepEqual((await setup.listEndp(ns, 'budget')).map((e) => e.name).sort(), names);
      assert.equal(fresh.throttled, 0, 'Cloud Map throttled none of the calls');
      assert.equal(fresh.forwarded, observer.calls, 'every call the client made reached the API');
      assert.equal(observer.throttles, 0);
      assert.ok(observer.waits > 0, 'calls waited for the budget');
    } finally {
      await budgeted.close();
    }
  });
});
