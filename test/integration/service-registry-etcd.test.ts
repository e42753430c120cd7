// The etcd service registry on the real etcd of the test run: the shared conformance suite, then what is
// specific to etcd (key layout, JSON values, prefixes, subtree deletes at key level, leftovers of an
// interrupted delete, the parent check racing a delete).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { EtcdDatastore } from '../../adapters/datastore';
import type { Datastore, KVPair } from '../../adapters/datastore';
import { EtcdServiceRegistry, ServRegNotFoundError, ServiceRegistryBroker, EndpointNotOwnedError } from '../../adapters/service-registries';
import { requireTestEnv } from '../support/env';
import { serviceRegistryConformance } from '../conformance/service-registry-conformance';

const endpoint = requireTestEnv('etcdEndpoint');
const run = randomBytes(4).toString('hex');

serviceRegistryConformance({
  name: 'etcd',
  async open() {
    return new EtcdServiceRegistry(new EtcdDatastore({ endpoints: [endpoint], prefix: `/brokerflow-test-sr-${run}-conf` }), { ownsDatastore: true });
  },
});

describe('etcd service registry specifics', () => {
  const prefix = `/brokerflow-test-sr-${run}`;
  let raw: Etcd3;
  let ds: EtcdDatastore;
  let reg: EtcdServiceRegistry;

  before(() => {
    raw = new Etcd3({ hosts: endpoint });
    ds = new EtcdDatastore({ endpoints: [endpoint], prefix });
    reg = new EtcdServiceRegistry(ds);
  });

  after(async () => {
    await ds.clean();
    await ds.close();
    raw.close();
  });

  test('objects are stored at namespaces/<ns>/services/<svc>/endpoints/<ep> under the prefix as JSON', async () => {
    await reg.createNs({ name: 'shop', metadata: { owner: 'brokerflow' } });
    await reg.createServ({ name: 'web', namespace: 'shop', metadata: { 'example.com/tier': 'front' } });
    await reg.createEndp({ name: 'web-1', namespace: 'shop', service: 'web', address: '10.0.0.1', port: 8080, metadata: { zone: 'a' } });
    const keys = (await raw.getAll().prefix(`${prefix}/`).keys()).sort();
    assert.deepEqual(keys, [
      `${prefix}/namespaces/shop`,
      `${prefix}/namespaces/shop/services/web`,
      `${prefix}/namespaces/shop/services/web/endpoints/web-1`,
    ]);
    assert.deepEqual(JSON.parse((await raw.get(`${prefix}/namespaces/shop`).string())!), { name: 'shop', metadata: { owner: 'brokerflow' } });
    assert.deepEqual(JSON.parse((await raw.get(`${prefix}/namespaces/shop/services/web`).string())!), {
      name: 'web',
      namespace: 'shop',
      metadata: { 'example.com/tier': 'front' },
    });
    assert.deepEqual(JSON.parse((await raw.get(`${prefix}/namespaces/shop/services/web/endpoints/web-1`).string())!), {
      name: 'web-1',
      namespace: 'shop',
      service: 'web',
      address: '10.0.0.1',
      port: 8080,
      metadata: { zone: 'a' },
    });
  });

  test('the prefix defaults to /service-registry/ and takes a trailing slash or none', async () => {
    const ns = `sr-test-${run}`;
    const regs = [
      EtcdServiceRegistry.connect({ endpoints: [endpoint] }),
      EtcdServiceRegistry.connect({ endpoints: [endpoint], prefix: `/brokerflow-test-sr-${run}-slash/` }),
      EtcdServiceRegistry.connect({ endpoints: [endpoint], prefix: `/brokerflow-test-sr-${run}-bare` }),
    ];
    const expected = [
      `/service-registry/namespaces/${ns}`,
      `/brokerflow-test-sr-${run}-slash/namespaces/${ns}`,
      `/brokerflow-test-sr-${run}-bare/namespaces/${ns}`,
    ];
    try {
      for (const [i, r] of regs.entries()) {
        await r.createNs({ name: ns, metadata: {} });
        assert.notEqual(await raw.get(expected[i]!).string(), null, expected[i]);
        await r.deleteNs(ns);
        assert.equal(await raw.get(expected[i]!).string(), null);
      }
    } finally {
      for (const r of regs) await r.close();
    }
  });

  test('deleting namespaces/a removes exactly its subtree: namespaces/ab and its children stay', async () => {
    for (const n of ['a', 'ab']) {
      await reg.createNs({ name: n, metadata: {} });
      await reg.createServ({ name: 's', namespace: n, metadata: {} });
      await reg.createEndp({ name: 'e', namespace: n, service: 's', address: '10.0.0.1', port: 80, metadata: {} });
    }
    await reg.createServ({ name: 'sb', namespace: 'a', metadata: {} });
    await reg.deleteServ('a', 's');
    assert.deepEqual((await raw.getAll().prefix(`${prefix}/namespaces/a/`).keys()).sort(), [`${prefix}/namespaces/a/services/sb`]);
    await reg.deleteNs('a');
    const keys = (await raw.getAll().prefix(`${prefix}/namespaces/a`).keys()).sort();
    assert.deepEqual(keys, [`${prefix}/namespaces/ab`, `${prefix}/namespaces/ab/services/s`, `${prefix}/namespaces/ab/services/s/endpoints/e`]);
  });

  test('a value that does not parse reads as an object without metadata, so the Broker treats it as foreign', async () => {
    await reg.createNs({ name: 'garbled', metadata: {} });
    await reg.createServ({ name: 'web', namespace: 'garbled', metadata: {} });
    await raw.put(`${prefix}/namespaces/garbled/services/web/endpoints/odd`).value('not json {');
    assert.deepEqual(await reg.getEndp('garbled', 'web', 'odd'), { name: 'odd', namespace: 'garbled', service: 'web', address: '', port: 0, metadata: {} });
    const errors = await new ServiceRegistryBroker(reg).manageServEndps('garbled', 'web', []);
    assert.ok(errors.get('odd') instanceof EndpointNotOwnedError);
    assert.equal(await raw.get(`${prefix}/namespaces/garbled/services/web/endpoints/odd`).string(), 'not json {');
  });

  test('keys left below a deleted namespace stay invisible and are swept when the namespace is created again', async () => {
    // What an interrupted deleteNs leaves: children whose namespace key is gone.
    await raw.put(`${prefix}/namespaces/ghost/services/old`).value(JSON.stringify({ name: 'old', namespace: 'ghost', metadata: {} }));
    await raw.put(`${prefix}/namespaces/ghost/services/old/endpoints/e`).value('{}');
    await assert.rejects(reg.getServ('ghost', 'old'), ServRegNotFoundError);
    await assert.rejects(reg.listServ('ghost'), ServRegNotFoundError);
    assert.equal((await reg.listNs()).some((n) => n.name === 'ghost'), false);
    await reg.createNs({ name: 'ghost', metadata: {} });
    assert.deepEqual(await reg.listServ('ghost'), []);
    assert.deepEqual(await raw.getAll().prefix(`${prefix}/namespaces/ghost/`).keys(), []);
  });

  test('a service whose namespace is deleted between the parent check and the create does not survive', async () => {
    await reg.createNs({ name: 'racy', metadata: {} });
    // The interleaving of a concurrent removeNs, made deterministic: the namespace key goes right after the create.
    const racing = new Proxy(ds, {
      get(target, prop, receiver) {
        if (prop === 'create') {
          return async (key: string, value: string): Promise<KVPair> => {
            const pair = await target.create(key, value);
            await target.delete('/namespaces/racy');
            return pair;
          };
        }
        const v: unknown = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as Datastore;
    await assert.rejects(new EtcdServiceRegistry(racing).createServ({ name: 'web', namespace: 'racy', metadata: {} }), ServRegNotFoundError);
    assert.deepEqual(await raw.getAll().prefix(`${prefix}/namespaces/racy`).keys(), []);
  });

  const endp = (ns: string, service: string, name: string, i: number) => ({ name, namespace: ns, service, address: `10.3.${i >> 8}.${i & 255}`, port: 8080, metadata: {} });
  const revision = async () => BigInt((await raw.get('/').exec()).header.revision);

  test('a service\'s endpoint changes are written in transactions of up to 127 writes, not one key at a time', async () => {
    const b = new ServiceRegistryBroker(reg);
    await b.manageNs({ name: 'bulk', metadata: {} });
    await b.manageServ({ name: 'web', namespace: 'bulk', metadata: {} });
    const wanted = Array.from({ length: 300 }, (_, i) => endp('bulk', 'web', `e${i}`, i));
    const before = await revision();
    assert.deepEqual([...(await b.manageServEndps('bulk', 'web', wanted)).keys()], []);
    // etcd's revision grows by one per transaction: 300 creates in 3 (127 + 127 + 46).
    assert.equal((await revision()) - before, 3n);
    assert.equal((await reg.listEndp('bulk', 'web')).length, 300);
    // Updates and deletes together: 10 changed ports, 290 gone.
    const changed = wanted.slice(0, 10).map((e) => ({ ...e, port: 9090 }));
    const before2 = await revision();
    assert.deepEqual([...(await b.manageServEndps('bulk', 'web', changed)).keys()], []);
    assert.equal((await revision()) - before2, 3n);
    assert.deepEqual((await reg.listEndp('bulk', 'web')).map((e) => `${e.name}:${e.port}`).sort(), changed.map((e) => `${e.name}:9090`).sort());
  });

  test('a batch whose guard fails writes nothing and hands its changes back, to be written one by one', async () => {
    await reg.createNs({ name: 'guard', metadata: {} });
    await reg.createServ({ name: 'web', namespace: 'guard', metadata: {} });
    await reg.createEndp(endp('guard', 'web', 'taken', 1));
    // A create of a key that exists fails the guard of its batch: the other create is not written either.
    const left = await reg.applyEndpoints('guard', 'web', { create: [endp('guard', 'web', 'taken', 2), endp('guard', 'web', 'fresh', 3)], update: [], delete: [] });
    assert.deepEqual(left.create.map((e) => e.name), ['taken', 'fresh']);
    assert.deepEqual((await reg.listEndp('guard', 'web')).map((e) => `${e.name}:${e.address}`), ['taken:10.3.0.1']);
    // An update of a key that is gone fails too.
    const gone = await reg.applyEndpoints('guard', 'web', { create: [], update: [endp('guard', 'web', 'ghost', 4)], delete: ['taken'] });
    assert.deepEqual([gone.update.map((e) => e.name), gone.delete], [['ghost'], ['taken']]);
    assert.equal((await reg.listEndp('guard', 'web')).length, 1, 'the delete in the failed batch did not happen');
    // Without its service nothing is written: the parent rule, in the same transaction.
    const orphan = await reg.applyEndpoints('guard', 'nosuch', { create: [endp('guard', 'nosuch', 'x', 5)], update: [], delete: [] });
    assert.deepEqual(orphan.create.map((e) => e.name), ['x']);
    assert.deepEqual(await raw.getAll().prefix(`${prefix}/namespaces/guard/services/nosuch`).keys(), []);
    // Through the Broker, the leftovers are written one by one and each reports its own error.
    const errors = await new ServiceRegistryBroker(reg).manageServEndps('guard', 'web', [endp('guard', 'web', 'fresh', 3), { ...endp('guard', 'web', 'taken', 1), metadata: { owner: 'brokerflow' } }]);
    assert.deepEqual([...errors.keys()], ['taken'], 'the foreign endpoint is reported, the new one written');
    assert.deepEqual((await reg.listEndp('guard', 'web')).map((e) => e.name).sort(), ['fresh', 'taken']);
  });

  test('a whole-registry sync: one snapshot, the differing services written in few guarded transactions, ownership kept', async () => {
    const b = new ServiceRegistryBroker(reg);
    const owned = { owner: 'brokerflow' };
    await b.manageNs({ name: 'sync', metadata: {} });
    // In sync already; owned with a wrong and a stale endpoint; foreign; foreign endpoint in an owned service.
    await b.manageServ({ name: 'same', namespace: 'sync', metadata: {} });
    await b.manageServEndps('sync', 'same', [endp('sync', 'same', 's1', 1)]);
    await b.manageServ({ name: 'drift', namespace: 'sync', metadata: {} });
    await b.manageServEndps('sync', 'drift', [endp('sync', 'drift', 'd1', 1), endp('sync', 'drift', 'stale', 2)]);
    await reg.createServ({ name: 'theirs', namespace: 'sync', metadata: { owner: 'someone-else' } });
    await b.manageServ({ name: 'mixed', namespace: 'sync', metadata: {} });
    await reg.createEndp({ ...endp('sync', 'mixed', 'm1', 7), metadata: { owner: 'someone-else' } });
    // A leftover endpoint below a service that is gone (an interrupted delete): removed when the service comes back.
    await raw.put(`${prefix}/namespaces/sync/services/fresh/endpoints/old`).value(JSON.stringify({ name: 'old', metadata: { owner: 'someone-else' } }));
    const wanted = {
      same: [endp('sync', 'same', 's1', 1)],
      drift: [{ ...endp('sync', 'drift', 'd1', 1), port: 81 }],
      theirs: [endp('sync', 'theirs', 't1', 3)],
      mixed: [endp('sync', 'mixed', 'm1', 4), endp('sync', 'mixed', 'm2', 5)],
      fresh: Array.from({ length: 10 }, (_, i) => endp('sync', 'fresh', `f${i}`, 10 + i)),
    };
    const snap = await reg.snapshot();
    const plans = Object.entries(wanted).map(([name, endpoints]) => ({ name, ...b.planServiceWrite(snap, { service: { name, namespace: 'sync', metadata: {} }, endpoints }) }));
    assert.deepEqual(
      plans.map((p) => [p.name, p.write ? `${p.write.put ? 'put ' : ''}${p.write.endpoints.map((e) => e.name).join(',')} -${p.write.deletes.join(',')}` : 'none', p.untouched.join()]),
      [
        ['same', 'none', ''],
        ['drift', 'd1 -stale', ''],
        ['theirs', 'none', 'service-not-owned'],
        ['mixed', 'm2 -', 'm1'],
        ['fresh', 'put f0,f1,f2,f3,f4,f5,f6,f7,f8,f9 -old', ''],
      ],
    );
    const writes = plans.flatMap((p) => (p.write ? [p.write] : []));
    const before = await revision();
    assert.deepEqual(await reg.writeServices(snap, writes), []);
    assert.equal((await revision()) - before, 1n, 'three services in one transaction');
    assert.deepEqual((await reg.listEndp('sync', 'drift')).map((e) => `${e.name}:${e.port}`), ['d1:81']);
    assert.deepEqual((await reg.listEndp('sync', 'mixed')).map((e) => `${e.name}:${e.metadata.owner}`), ['m1:someone-else', 'm2:brokerflow']);
    assert.deepEqual((await reg.getServ('sync', 'fresh')).metadata, owned);
    assert.deepEqual((await reg.listEndp('sync', 'fresh')).map((e) => e.name).sort(), wanted.fresh.map((e) => e.name).sort());
    assert.deepEqual((await reg.getServ('sync', 'theirs')).metadata, { owner: 'someone-else' });

    // Someone writes a service after the snapshot: its write is handed back and nothing of it lands; the others do.
    const snap2 = await reg.snapshot();
    const w2 = ['drift', 'fresh'].map((name) => b.planServiceWrite(snap2, { service: { name, namespace: 'sync', metadata: { v: '2' } }, endpoints: [endp('sync', name, 'z', 99)] }).write!);
    await reg.updateEndp({ ...endp('sync', 'fresh', 'f0', 10), metadata: { owner: 'someone-else' } });
    const left = await reg.writeServices(snap2, w2);
    assert.deepEqual(left.map((w) => w.service), ['fresh']);
    assert.deepEqual((await reg.getServ('sync', 'fresh')).metadata, owned, 'the refused write left the service as it was');
    assert.equal((await reg.listEndp('sync', 'fresh')).length, 10);
    assert.deepEqual((await reg.getServ('sync', 'drift')).metadata, { ...owned, v: '2' });
    assert.deepEqual((await reg.listEndp('sync', 'drift')).map((e) => e.name), ['z']);
    // A namespace deleted after the snapshot: nothing is written below it.
    const snap3 = await reg.snapshot();
    const w3 = b.planServiceWrite(snap3, { service: { name: 'same', namespace: 'sync', metadata: {} }, endpoints: [endp('sync', 'same', 'n', 5)] }).write!;
    await reg.deleteNs('sync');
    assert.deepEqual((await reg.writeServices(snap3, [w3])).map((w) => w.service), ['same']);
    assert.deepEqual(await raw.getAll().prefix(`${prefix}/namespaces/sync`).keys(), []);
  });
});
