// The one conformance suite of docs/design/contracts/service-registries.md: every bullet about the Broker and
// the ServiceRegistry backends is a test here, and each backend's test file calls `serviceRegistryConformance`
// once (etcd and Cloud Map on real servers, Service Directory on its contract server). Data is isolated per test
// by random namespace names, so files can share one server; every namespace a test creates is deleted afterwards.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { NotFoundError, ValidationError } from '../../adapters/errors';
import {
  EndpointNotOwnedError,
  NamespaceHasForeignServicesError,
  NamespaceNameNotProvidedError,
  NamespaceNotEmptyError,
  NamespaceNotOwnedError,
  ServRegAlreadyExistsError,
  ServRegNotFoundError,
  ServiceHasForeignEndpointsError,
  ServiceNameNotProvidedError,
  ServiceNotEmptyError,
  ServiceNotOwnedError,
  ServiceRegistryBroker,
  EndpointNameNotProvidedError,
  type Endpoint,
  type Metadata,
  type Namespace,
  type Service,
  type ServiceRegistry,
} from '../../adapters/service-registries';

/** A backend under test: how to open it, and how to release what opening took. */
export interface ConformanceTarget {
  name: string;
  open(): Promise<ServiceRegistry>;
  close?(registry: ServiceRegistry): Promise<void>;
}

const owner = { owner: 'brokerflow' };
const foreign = { owner: 'someone-else' };

const ns = (name: string, metadata: Metadata = {}): Namespace => ({ name, metadata });
const svc = (namespace: string, name: string, metadata: Metadata = {}): Service => ({ name, namespace, metadata });
const ep = (namespace: string, service: string, name: string, address: string, port: number, metadata: Metadata = {}): Endpoint => ({
  name,
  namespace,
  service,
  address,
  port,
  metadata,
});

/** Sorts by name, so lists from any backend compare equal. */
const byName = <T extends { name: string }>(items: T[]): T[] => [...items].sort((a, b) => a.name.localeCompare(b.name));

/** Wraps a registry so a test can see which writes reached it (the real registry still does the work). */
export function recordWrites(registry: ServiceRegistry): { registry: ServiceRegistry; writes: string[] } {
  const writes: string[] = [];
  const proxy = new Proxy(registry, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        if (typeof prop === 'string' && /^(create|update|delete)/.test(prop)) writes.push(prop);
        return fn.apply(target, args);
      };
    },
  });
  return { registry: proxy, writes };
}

/** Defines the whole suite for one backend. */
export function serviceRegistryConformance(target: ConformanceTarget): void {
  describe(`service registry conformance: ${target.name}`, () => {
    let reg: ServiceRegistry;
    const created = new Set<string>();
    const run = randomBytes(3).toString('hex');
    let seq = 0;
    /** A fresh namespace name (lowercase, starts with a letter: valid for every backend). */
    const fresh = (): string => {
      const name = `cf${run}n${++seq}`;
      created.add(name);
      return name;
    };

    before(async () => {
      reg = await target.open();
    });

    after(async () => {
      for (const name of created) {
        await reg.deleteNs(name).catch((err: unknown) => {
          if (!(err instanceof NotFoundError)) throw err;
        });
      }
      if (target.close) await target.close(reg);
      else await reg.close();
    });

    const broker = (r: ServiceRegistry = reg) => new ServiceRegistryBroker(r, { persistentMetadata: [{ key: 'cluster', value: 'c1' }] });

    // ---- the backends

    test('a namespace round-trips: created, read, listed, its metadata replaced by an update, deleted', async () => {
      const n = fresh();
      assert.deepEqual(await reg.createNs(ns(n, { team: 'a', tier: 'gold' })), ns(n, { team: 'a', tier: 'gold' }));
      assert.deepEqual(await reg.getNs(n), ns(n, { team: 'a', tier: 'gold' }));
      assert.deepEqual((await reg.listNs()).find((x) => x.name === n), ns(n, { team: 'a', tier: 'gold' }));
      await reg.updateNs(ns(n, { team: 'b' }));
      assert.deepEqual(await reg.getNs(n), ns(n, { team: 'b' }), 'a key left out of the update is removed');
      await reg.deleteNs(n);
      await assert.rejects(reg.getNs(n), ServRegNotFoundError);
      assert.equal((await reg.listNs()).some((x) => x.name === n), false);
    });

    test('creating a namespace twice fails with already-exists; a missing one is not-found for get, update and delete', async () => {
      const n = fresh();
      await reg.createNs(ns(n));
      await assert.rejects(reg.createNs(ns(n)), ServRegAlreadyExistsError);
      const missing = fresh();
      await assert.rejects(reg.getNs(missing), ServRegNotFoundError);
      await assert.rejects(reg.updateNs(ns(missing, { a: 'b' })), ServRegNotFoundError);
      await assert.rejects(reg.deleteNs(missing), ServRegNotFoundError);
      await assert.rejects(reg.getNs(missing), ServRegNotFoundError, 'an update of a missing namespace must not create it');
    });

    test('a service needs its namespace: creating or listing under a missing namespace is not-found', async () => {
      const missing = fresh();
      await assert.rejects(reg.createServ(svc(missing, 'web')), ServRegNotFoundError);
      await assert.rejects(reg.listServ(missing), ServRegNotFoundError);
      await assert.rejects(reg.getServ(missing, 'web'), ServRegNotFoundError);
    });

    test('a service round-trips with its metadata and is listed only under its own namespace', async () => {
      const a = fresh();
      const b = fresh();
      await reg.createNs(ns(a));
      await reg.createNs(ns(b));
      await reg.createServ(svc(a, 'web', { 'example.com/tier': 'front' }));
      await reg.createServ(svc(b, 'web', { 'example.com/tier': 'back' }));
      await reg.createServ(svc(a, 'db'));
      assert.deepEqual(await reg.getServ(a, 'web'), svc(a, 'web', { 'example.com/tier': 'front' }));
      assert.deepEqual(await reg.getServ(b, 'web'), svc(b, 'web', { 'example.com/tier': 'back' }));
      assert.deepEqual(byName(await reg.listServ(a)), [svc(a, 'db'), svc(a, 'web', { 'example.com/tier': 'front' })]);
      await assert.rejects(reg.createServ(svc(a, 'web')), ServRegAlreadyExistsError);
      await reg.updateServ(svc(a, 'web', { 'example.com/owner': 'x' }));
      assert.deepEqual(await reg.getServ(a, 'web'), svc(a, 'web', { 'example.com/owner': 'x' }));
      assert.deepEqual(await reg.getServ(b, 'web'), svc(b, 'web', { 'example.com/tier': 'back' }), 'the other namespace is untouched');
      await assert.rejects(reg.updateServ(svc(a, 'nope', {})), ServRegNotFoundError);
      await assert.rejects(reg.deleteServ(a, 'nope'), ServRegNotFoundError);
    });

    test('an endpoint round-trips address, port and metadata, and an update replaces all three', async () => {
      const n = fresh();
      await reg.createNs(ns(n));
      await reg.createServ(svc(n, 'web'));
      const e1 = ep(n, 'web', 'e1', '10.1.0.1', 8080, { zone: 'a' });
      assert.deepEqual(await reg.createEndp(e1), e1);
      assert.deepEqual(await reg.getEndp(n, 'web', 'e1'), e1);
      await reg.createEndp(ep(n, 'web', 'e2', '2001:db8::2', 443));
      assert.deepEqual(byName(await reg.listEndp(n, 'web')), [e1, ep(n, 'web', 'e2', '2001:db8::2', 443)]);
      const changed = ep(n, 'web', 'e1', '10.1.0.9', 9090, { region: 'eu' });
      await reg.updateEndp(changed);
      assert.deepEqual(await reg.getEndp(n, 'web', 'e1'), changed);
      assert.equal((await reg.listEndp(n, 'web')).filter((e) => e.name === 'e1').length, 1, 'an update leaves one endpoint');
      await reg.deleteEndp(n, 'web', 'e1');
      await assert.rejects(reg.getEndp(n, 'web', 'e1'), ServRegNotFoundError);
      assert.deepEqual((await reg.listEndp(n, 'web')).map((e) => e.name), ['e2']);
    });

    test('an endpoint needs its service; a duplicate is already-exists and a missing one is not-found', async () => {
      const n = fresh();
      await reg.createNs(ns(n));
      await assert.rejects(reg.createEndp(ep(n, 'web', 'e1', '10.0.0.1', 80)), ServRegNotFoundError);
      await assert.rejects(reg.listEndp(n, 'web'), ServRegNotFoundError);
      await reg.createServ(svc(n, 'web'));
      await reg.createEndp(ep(n, 'web', 'e1', '10.0.0.1', 80));
      await assert.rejects(reg.createEndp(ep(n, 'web', 'e1', '10.0.0.2', 81)), ServRegAlreadyExistsError);
      assert.equal((await reg.getEndp(n, 'web', 'e1')).address, '10.0.0.1', 'the failed create changed nothing');
      await assert.rejects(reg.getEndp(n, 'web', 'e9'), ServRegNotFoundError);
      await assert.rejects(reg.updateEndp(ep(n, 'web', 'e9', '10.0.0.3', 80)), ServRegNotFoundError);
      await assert.rejects(reg.deleteEndp(n, 'web', 'e9'), ServRegNotFoundError);
    });

    test('deleting a namespace deletes its services and endpoints and spares a namespace whose name extends it', async () => {
      const a = fresh();
      const ab = `${a}b`;
      created.add(ab);
      for (const name of [a, ab]) {
        await reg.createNs(ns(name));
        await reg.createServ(svc(name, 'web'));
        await reg.createEndp(ep(name, 'web', 'e1', '10.0.0.1', 80));
      }
      await reg.deleteNs(a);
      await assert.rejects(reg.getNs(a), ServRegNotFoundError);
      await assert.rejects(reg.getServ(a, 'web'), ServRegNotFoundError);
      assert.deepEqual((await reg.listEndp(ab, 'web')).map((e) => e.name), ['e1'], `${ab} keeps its endpoint`);
      await reg.createNs(ns(a));
      assert.deepEqual(await reg.listServ(a), [], 'a namespace created again starts empty');
    });

    test('deleting a service deletes its endpoints and spares a service whose name extends it', async () => {
      const n = fresh();
      await reg.createNs(ns(n));
      for (const s of ['web', 'webb']) {
        await reg.createServ(svc(n, s));
        await reg.createEndp(ep(n, s, 'e1', '10.0.0.1', 80));
      }
      await reg.deleteServ(n, 'web');
      await assert.rejects(reg.getServ(n, 'web'), ServRegNotFoundError);
      assert.deepEqual((await reg.listServ(n)).map((s) => s.name), ['webb']);
      assert.deepEqual((await reg.listEndp(n, 'webb')).map((e) => e.name), ['e1']);
      await reg.createServ(svc(n, 'web'));
      assert.deepEqual(await reg.listEndp(n, 'web'), [], 'a service created again starts empty');
    });

    test('names that could escape a key or resource name are rejected with a validation error', async () => {
      for (const bad of ['../x', 'a/b', '..', 'a\u0000b', 'a\nb', 'x'.repeat(300), ' a', '-a']) {
        await assert.rejects(reg.getNs(bad), ValidationError, JSON.stringify(bad));
        await assert.rejects(reg.createNs(ns(bad)), ValidationError, JSON.stringify(bad));
        await assert.rejects(reg.listServ(bad), ValidationError, JSON.stringify(bad));
        await assert.rejects(reg.createEndp(ep('ok', 'ok', bad, '10.0.0.1', 80)), ValidationError, JSON.stringify(bad));
      }
      await assert.rejects(reg.getNs(''), NamespaceNameNotProvidedError);
      await assert.rejects(reg.getServ('ok', ''), ServiceNameNotProvidedError);
      await assert.rejects(reg.getEndp('ok', 'ok', ''), EndpointNameNotProvidedError);
      assert.equal((await reg.listNs()).some((x) => x.name.includes('..') || x.name.includes('/')), false);
    });

    test('an endpoint whose address is not an IP or whose port is out of range is rejected', async () => {
      const n = fresh();
      await reg.createNs(ns(n));
      await reg.createServ(svc(n, 'web'));
      for (const [address, port] of [['example.com', 80], ['10.0.0.1:80', 80], ['10.0.0.1', 0], ['10.0.0.1', 70000], ['10.0.0.1', 1.5]] as const) {
        await assert.rejects(reg.createEndp(ep(n, 'web', 'e1', address, port)), ValidationError, `${address} ${port}`);
      }
      assert.deepEqual(await reg.listEndp(n, 'web'), []);
    });

    // ---- the Broker: namespaces and services

    test('manageNs creates a missing namespace marked with the owner pair', async () => {
      const n = fresh();
      const got = await broker().manageNs(ns(n, { team: 'a' }));
      assert.deepEqual(got, ns(n, { team: 'a', ...owner }));
      assert.deepEqual(await reg.getNs(n), ns(n, { team: 'a', ...owner }));
    });

    test('manageNs updates an owned namespace only when its metadata differs, ignoring the owner pair', async () => {
      const n = fresh();
      await reg.createNs(ns(n, { team: 'a', ...owner }));
      const rec = recordWrites(reg);
      const b = broker(rec.registry);
      assert.deepEqual(await b.manageNs(ns(n, { team: 'a' })), ns(n, { team: 'a', ...owner }));
      assert.deepEqual(rec.writes, [], 'equal but for the owner pair: no write');
      await b.manageNs(ns(n, { team: 'b' }));
      assert.deepEqual(rec.writes, ['updateNs']);
      assert.deepEqual(await reg.getNs(n), ns(n, { team: 'b', ...owner }));
    });

    test('manageNs returns a foreign namespace untouched and without error', async () => {
      const n = fresh();
      await reg.createNs(ns(n, { team: 'x', ...foreign }));
      const got = await broker().manageNs(ns(n, { team: 'y' }));
      assert.deepEqual(got, ns(n, { team: 'x', ...foreign }));
      assert.deepEqual(await reg.getNs(n), ns(n, { team: 'x', ...foreign }));
    });

    test('the owner pair is configurable: objects marked with the default pair are foreign to a broker with another', async () => {
      const n = fresh();
      const mine = new ServiceRegistryBroker(reg, { ownerPair: { key: 'managed-by', value: 'tester' } });
      assert.deepEqual(await mine.manageNs(ns(n)), ns(n, { 'managed-by': 'tester' }));
      const other = fresh();
      await broker().manageNs(ns(other, { team: 'a' }));
      assert.deepEqual(await mine.manageNs(ns(other, { team: 'b' })), ns(other, { team: 'a', ...owner }), 'left untouched');
      await assert.rejects(mine.removeNs(other, true), NamespaceNotOwnedError);
    });

    test('manageServ creates a missing service with the owner pair and the persistent metadata', async () => {
      const n = fresh();
      await broker().manageNs(ns(n));
      const got = await broker().manageServ(svc(n, 'web', { 'example.com/tier': 'front' }));
      const want = svc(n, 'web', { 'example.com/tier': 'front', cluster: 'c1', ...owner });
      assert.deepEqual(got, want);
      assert.deepEqual(await reg.getServ(n, 'web'), want);
    });

    test('manageServ updates an owned service only when its metadata differs and keeps the persistent metadata', async () => {
      const n = fresh();
      await broker().manageNs(ns(n));
      await reg.createServ(svc(n, 'web', { 'example.com/tier': 'front', cluster: 'c1', ...owner }));
      const rec = recordWrites(reg);
      await broker(rec.registry).manageServ(svc(n, 'web', { 'example.com/tier': 'front' }));
      assert.deepEqual(rec.writes, []);
      await broker(rec.registry).manageServ(svc(n, 'web', { 'example.com/tier': 'back' }));
      assert.deepEqual(rec.writes, ['updateServ']);
      assert.deepEqual(await reg.getServ(n, 'web'), svc(n, 'web', { 'example.com/tier': 'back', cluster: 'c1', ...owner }));
    });

    test('manageServ returns a foreign service untouched, and fails with not-found when the namespace is missing', async () => {
      const n = fresh();
      await broker().manageNs(ns(n));
      await reg.createServ(svc(n, 'web', { 'example.com/tier': 'x', ...foreign }));
      assert.deepEqual(await broker().manageServ(svc(n, 'web', { 'example.com/tier': 'y' })), svc(n, 'web', { 'example.com/tier': 'x', ...foreign }));
      assert.deepEqual(await reg.getServ(n, 'web'), svc(n, 'web', { 'example.com/tier': 'x', ...foreign }));
      await assert.rejects(broker().manageServ(svc(fresh(), 'web')), ServRegNotFoundError);
    });

    // ---- the Broker: endpoints

    test('manageServEndps creates missing endpoints, updates changed address, port or metadata and deletes owned ones no longer listed', async () => {
      const n = fresh();
      const b = broker();
      await b.manageNs(ns(n));
      await b.manageServ(svc(n, 'web'));
      let errors = await b.manageServEndps(n, 'web', [ep(n, 'web', 'e1', '10.0.0.1', 80), ep(n, 'web', 'e2', '10.0.0.2', 80), ep(n, 'web', 'e3', '10.0.0.3', 80)]);
      assert.deepEqual([...errors], []);
      assert.deepEqual(byName(await reg.listEndp(n, 'web')), [
        ep(n, 'web', 'e1', '10.0.0.1', 80, owner),
        ep(n, 'web', 'e2', '10.0.0.2', 80, owner),
        ep(n, 'web', 'e3', '10.0.0.3', 80, owner),
      ]);
      errors = await b.manageServEndps(n, 'web', [
        ep(n, 'web', 'e1', '10.0.0.1', 81),
        ep(n, 'web', 'e2', '10.0.0.22', 80),
        ep(n, 'web', 'e3', '10.0.0.3', 80, { zone: 'b' }),
        ep(n, 'web', 'e4', '10.0.0.4', 80),
      ]);
      assert.deepEqual([...errors], []);
      assert.deepEqual(byName(await reg.listEndp(n, 'web')), [
        ep(n, 'web', 'e1', '10.0.0.1', 81, owner),
        ep(n, 'web', 'e2', '10.0.0.22', 80, owner),
        ep(n, 'web', 'e3', '10.0.0.3', 80, { zone: 'b', ...owner }),
        ep(n, 'web', 'e4', '10.0.0.4', 80, owner),
      ]);
      errors = await b.manageServEndps(n, 'web', [ep(n, 'web', 'e4', '10.0.0.4', 80)]);
      assert.deepEqual([...errors], []);
      assert.deepEqual(await reg.listEndp(n, 'web'), [ep(n, 'web', 'e4', '10.0.0.4', 80, owner)]);

      const rec = recordWrites(reg);
      await broker(rec.registry).manageServEndps(n, 'web', [ep(n, 'web', 'e4', '10.0.0.4', 80)]);
      assert.deepEqual(rec.writes, [], 'nothing changed: no write');
    });

    test('manageServEndps with an empty list deletes every owned endpoint and keeps foreign ones, reporting them as not owned', async () => {
      const n = fresh();
      const b = broker();
      await b.manageNs(ns(n));
      await b.manageServ(svc(n, 'web'));
      await b.manageServEndps(n, 'web', [ep(n, 'web', 'e1', '10.0.0.1', 80), ep(n, 'web', 'e2', '10.0.0.2', 80)]);
      await reg.createEndp(ep(n, 'web', 'ext', '192.0.2.1', 80, foreign));
      const errors = await b.manageServEndps(n, 'web', []);
      assert.deepEqual([...errors.keys()], ['ext']);
      assert.ok(errors.get('ext') instanceof EndpointNotOwnedError);
      assert.deepEqual(await reg.listEndp(n, 'web'), [ep(n, 'web', 'ext', '192.0.2.1', 80, foreign)]);
    });

    test('manageServEndps never touches a foreign endpoint, even one listed under its name', async () => {
      const n = fresh();
      const b = broker();
      await b.manageNs(ns(n));
      await b.manageServ(svc(n, 'web'));
      await reg.createEndp(ep(n, 'web', 'ext', '192.0.2.1', 80, foreign));
      const errors = await b.manageServEndps(n, 'web', [ep(n, 'web', 'ext', '10.0.0.9', 90), ep(n, 'web', 'e1', '10.0.0.1', 80)]);
      assert.deepEqual([...errors.keys()], ['ext']);
      assert.ok(errors.get('ext') instanceof EndpointNotOwnedError);
      assert.deepEqual(await reg.getEndp(n, 'web', 'ext'), ep(n, 'web', 'ext', '192.0.2.1', 80, foreign));
      assert.deepEqual(await reg.getEndp(n, 'web', 'e1'), ep(n, 'web', 'e1', '10.0.0.1', 80, owner));
    });

    test('manageServEndps ignores the namespace and service names inside the endpoint objects', async () => {
      const n = fresh();
      const b = broker();
      await b.manageNs(ns(n));
      await b.manageServ(svc(n, 'web'));
      const errors = await b.manageServEndps(n, 'web', [ep('elsewhere', 'other', 'e1', '10.0.0.1', 80)]);
      assert.deepEqual([...errors], []);
      assert.deepEqual(await reg.listEndp(n, 'web'), [ep(n, 'web', 'e1', '10.0.0.1', 80, owner)]);
    });

    test('manageServEndps throws one error and changes nothing when nothing can be done', async () => {
      const n = fresh();
      const b = broker();
      await b.manageNs(ns(n));
      await assert.rejects(b.manageServEndps(n, 'web', [ep(n, 'web', 'e1', '10.0.0.1', 80)]), ServRegNotFoundError);
      await b.manageServ(svc(n, 'web'));
      await b.manageServEndps(n, 'web', [ep(n, 'web', 'e1', '10.0.0.1', 80)]);
      await assert.rejects(b.manageServEndps(n, 'web', [ep(n, 'web', 'e2', '10.0.0.2', 80), ep(n, 'web', 'e3', 'not-an-ip', 80)]), ValidationError);
      await assert.rejects(b.manageServEndps(n, 'web', [ep(n, 'web', 'e2', '10.0.0.2', 80), ep(n, 'web', 'e2', '10.0.0.3', 80)]), ValidationError);
      await assert.rejects(b.manageServEndps(n, '../web', []), ValidationError);
      assert.deepEqual(await reg.listEndp(n, 'web'), [ep(n, 'web', 'e1', '10.0.0.1', 80, owner)], 'e1 neither deleted nor joined by e2');
    });

    // ---- the Broker: removals

    test('removeNs and removeServ of something missing succeed', async () => {
      const n = fresh();
      await broker().removeNs(n, false);
      await broker().removeServ(n, 'web', false);
      await broker().manageNs(ns(n));
      await broker().removeServ(n, 'web', true);
      await broker().removeNs(n, false);
      await assert.rejects(reg.getNs(n), ServRegNotFoundError, 'an empty owned namespace is deleted');
    });

    test('removeNs of a non-empty namespace without force fails with not-empty and deletes nothing', async () => {
      const n = fresh();
      const b = broker();
      await b.manageNs(ns(n));
      await b.manageServ(svc(n, 'web'));
      await assert.rejects(b.removeNs(n, false), NamespaceNotEmptyError);
      assert.deepEqual((await reg.listServ(n)).map((s) => s.name), ['web']);
    });

    test('removeNs with force deletes an owned namespace with its owned services and endpoints', async () => {
      const n = fresh();
      const b = broker();
      await b.manageNs(ns(n));
      for (const s of ['web', 'db']) {
        await b.manageServ(svc(n, s));
        await b.manageServEndps(n, s, [ep(n, s, 'e1', '10.0.0.1', 80), ep(n, s, 'e2', '10.0.0.2', 80)]);
      }
      await b.removeNs(n, true);
      await assert.rejects(reg.getNs(n), ServRegNotFoundError);
    });

    test('removeNs with a foreign service deletes the owned services, keeps the rest and fails with contains-not-owned', async () => {
      const n = fresh();
      const b = broker();
      await b.manageNs(ns(n));
      await b.manageServ(svc(n, 'web'));
      await b.manageServEndps(n, 'web', [ep(n, 'web', 'e1', '10.0.0.1', 80)]);
      await reg.createServ(svc(n, 'theirs', foreign));
      await assert.rejects(b.removeNs(n, true), NamespaceHasForeignServicesError);
      assert.deepEqual((await reg.listServ(n)).map((s) => s.name), ['theirs']);
      assert.deepEqual(await reg.getNs(n), ns(n, owner));
    });

    test('removeNs of a foreign namespace fails with not-owned and deletes nothing', async () => {
      const n = fresh();
      await reg.createNs(ns(n, foreign));
      await reg.createServ(svc(n, 'web', owner));
      await assert.rejects(broker().removeNs(n, true), NamespaceNotOwnedError);
      assert.deepEqual((await reg.listServ(n)).map((s) => s.name), ['web']);
      const empty = fresh();
      await reg.createNs(ns(empty, foreign));
      await assert.rejects(broker().removeNs(empty, false), NamespaceNotOwnedError);
      assert.deepEqual(await reg.getNs(empty), ns(empty, foreign));
    });

    test('removeNs with force keeps a namespace whose owned service holds a foreign endpoint', async () => {
      const n = fresh();
      const b = broker();
      await b.manageNs(ns(n));
      await b.manageServ(svc(n, 'web'));
      await b.manageServEndps(n, 'web', [ep(n, 'web', 'e1', '10.0.0.1', 80)]);
      await reg.createEndp(ep(n, 'web', 'ext', '192.0.2.1', 80, foreign));
      await assert.rejects(b.removeNs(n, true), ServiceHasForeignEndpointsError);
      assert.deepEqual(await reg.listEndp(n, 'web'), [ep(n, 'web', 'ext', '192.0.2.1', 80, foreign)], 'the owned endpoint went, the foreign one stays');
      assert.deepEqual(await reg.getNs(n), ns(n, owner));
    });

    test('removeServ of a non-empty service without force fails with not-empty; with force it goes with its endpoints', async () => {
      const n = fresh();
      const b = broker();
      await b.manageNs(ns(n));
      await b.manageServ(svc(n, 'web'));
      await b.manageServEndps(n, 'web', [ep(n, 'web', 'e1', '10.0.0.1', 80)]);
      await assert.rejects(b.removeServ(n, 'web', false), ServiceNotEmptyError);
      assert.equal((await reg.listEndp(n, 'web')).length, 1);
      await b.removeServ(n, 'web', true);
      await assert.rejects(reg.getServ(n, 'web'), ServRegNotFoundError);
      assert.deepEqual(await reg.getNs(n), ns(n, owner), 'the namespace stays');
    });

    test('removeServ with a foreign endpoint deletes the owned endpoints, keeps the foreign one and fails with contains-not-owned', async () => {
      const n = fresh();
      const b = broker();
      await b.manageNs(ns(n));
      await b.manageServ(svc(n, 'web'));
      await b.manageServEndps(n, 'web', [ep(n, 'web', 'e1', '10.0.0.1', 80), ep(n, 'web', 'e2', '10.0.0.2', 80)]);
      await reg.createEndp(ep(n, 'web', 'ext', '192.0.2.1', 80, foreign));
      await assert.rejects(b.removeServ(n, 'web', true), ServiceHasForeignEndpointsError);
      assert.deepEqual(await reg.listEndp(n, 'web'), [ep(n, 'web', 'ext', '192.0.2.1', 80, foreign)]);
    });

    test('removeServ of a foreign service fails with not-owned and deletes nothing', async () => {
      const n = fresh();
      await broker().manageNs(ns(n));
      await reg.createServ(svc(n, 'web', foreign));
      await reg.createEndp(ep(n, 'web', 'e1', '10.0.0.1', 80, owner));
      await assert.rejects(broker().removeServ(n, 'web', true), ServiceNotOwnedError);
      assert.deepEqual(await reg.listEndp(n, 'web'), [ep(n, 'web', 'e1', '10.0.0.1', 80, owner)]);
    });
  });
}
