// The service-registry resource driver on one registry backend: the ownership rules of endpoint reconciliation
// (docs/design/contracts/resource-drivers.md#service-registry-driver), checked against what the registry itself
// then holds. Run against etcd and Cloud Map (test/integration/resources-service-registry.test.ts) and Service
// Directory's contract server (test/contract/servicedirectory-driver.contract.test.ts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ConflictError, ValidationError } from '../../adapters/errors';
import { ServiceRegistryDriver, type DriverContext } from '../../adapters/resources';
import { ServRegNotFoundError, type ServiceRegistry } from '../../adapters/service-registries';
import { reconcile, remove, viaHistory } from '../support/driver-steps';

/** How a suite reaches the backend under test. */
export interface ServiceRegistryDriverConformanceTarget {
  name: string;
  open(): Promise<ServiceRegistry>;
  close?(registry: ServiceRegistry): Promise<void>;
}

const hex = (n: number) => randomBytes(n).toString('hex');

function context(instanceId: string): DriverContext {
  return {
    object: { operationId: `op-${hex(4)}`, instanceId, serviceId: 'svc', planId: 'plan' },
    resourceName: 'registration',
    heartbeat: () => undefined,
    signal: new AbortController().signal,
  };
}

/** The driver's tests on one backend. */
export function serviceRegistryDriverConformance(target: ServiceRegistryDriverConformanceTarget): void {
  void describe(`service-registry resource driver on ${target.name}`, () => {
    let registry: ServiceRegistry;
    let driver: ServiceRegistryDriver;
    // Names are RFC 1035 labels, which every backend (Service Directory the strictest) accepts.
    const ns = `srd${hex(4)}`;

    before(async () => {
      registry = await target.open();
      driver = new ServiceRegistryDriver({ registry });
    });

    after(async () => {
      if (target.close) await target.close(registry);
      else await registry.close();
    });

    const specFor = (service: string, port = 2379, address = '10.0.0.7') => ({
      namespace: ns,
      service,
      metadata: { 'brokerflow.io/plan': 'standard' },
      endpoints: [{ name: 'client', address, port: String(port) }],
    });
    // Another instance's registration makes sure the namespace exists.
    const ensureNamespace = async () => {
      const other = hex(6);
      await reconcile(driver, specFor(`other-${other}`), context(other));
    };
    const owner = (instanceId: string) => `brokerflow/instance/${instanceId}`;
    const endpointsOf = async (service: string) =>
      (await registry.listEndp(ns, service)).map((e) => ({ name: e.name, address: e.address, port: e.port, metadata: e.metadata }));

    test('a create registers the service and its endpoint in the registry, both marked with the instance as owner', async () => {
      const instance = hex(6);
      const service = `etcd-${instance}`;
      const patch = await reconcile(driver, specFor(service), context(instance));
      assert.ok(patch.create, 'nothing existed: the patch creates');
      const serv = await registry.getServ(ns, service);
      assert.deepEqual(serv.metadata, { 'brokerflow.io/plan': 'standard', owner: owner(instance) });
      assert.deepEqual(await endpointsOf(service), [{ name: 'client', address: '10.0.0.7', port: 2379, metadata: { owner: owner(instance) } }]);
      assert.deepEqual(viaHistory(await driver.getCurrentState(specFor(service), context(instance))), viaHistory(await driver.getDesiredState(specFor(service), context(instance))));
    });

    test('repeating a reconcile, a create or a delete changes nothing and succeeds', async () => {
      const instance = hex(6);
      const service = `etcd-${instance}`;
      const ctx = context(instance);
      await reconcile(driver, specFor(service), ctx);
      assert.deepEqual(await reconcile(driver, specFor(service), ctx), {}, 'in sync: an empty patch');
      const desired = viaHistory(await driver.getDesiredState(specFor(service), ctx));
      await driver.applyCreateChange(desired, ctx);
      assert.deepEqual(await endpointsOf(service), [{ name: 'client', address: '10.0.0.7', port: 2379, metadata: { owner: owner(instance) } }]);

      const current = viaHistory(await driver.getCurrentState(specFor(service), ctx));
      await remove(driver, specFor(service), ctx);
      await driver.applyDeleteChange(current, ctx);
      assert.deepEqual(await remove(driver, specFor(service), ctx), {}, 'already gone: nothing to delete');
      await assert.rejects(registry.getServ(ns, service), ServRegNotFoundError);
    });

    test('a changed port updates the endpoint in place', async () => {
      const instance = hex(6);
      const service = `etcd-${instance}`;
      const ctx = context(instance);
      await reconcile(driver, specFor(service, 2379), ctx);
      const patch = await reconcile(driver, specFor(service, 23790), ctx);
      assert.ok(patch.update && !patch.create && !patch.delete, 'the patch updates');
      assert.deepEqual(await endpointsOf(service), [{ name: 'client', address: '10.0.0.7', port: 23790, metadata: { owner: owner(instance) } }]);
      assert.deepEqual(await reconcile(driver, specFor(service, 23790), ctx), {});
    });

    test('a delete removes the service and its endpoints', async () => {
      const instance = hex(6);
      const service = `etcd-${instance}`;
      const ctx = context(instance);
      await reconcile(driver, specFor(service), ctx);
      const patch = await remove(driver, specFor(service), ctx);
      assert.ok(patch.delete);
      await assert.rejects(registry.getServ(ns, service), ServRegNotFoundError);
      assert.equal(await driver.getCurrentState(specFor(service), ctx), null);
    });

    test('a foreign service of the same name is left untouched and the create fails with a clear conflict', async () => {
      const instance = hex(6);
      const service = `etcd-${instance}`;
      const ctx = context(instance);
      await ensureNamespace();
      await registry.createServ({ name: service, namespace: ns, metadata: { team: 'payments' } });
      await registry.createEndp({ name: 'client', namespace: ns, service, address: '10.9.9.9', port: 80, metadata: {} });

      assert.equal(await driver.getCurrentState(specFor(service), ctx), null, 'a foreign service reads as absent');
      const err = await reconcile(driver, specFor(service), ctx).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof ConflictError, String(err));
      assert.equal(err.retryable, false);
      assert.match(err.message, new RegExp(`service ${ns}/${service} exists and is not owned by instance ${instance}`));
      assert.deepEqual((await registry.getServ(ns, service)).metadata, { team: 'payments' });
      assert.deepEqual(await endpointsOf(service), [{ name: 'client', address: '10.9.9.9', port: 80, metadata: {} }]);

      assert.deepEqual(await remove(driver, specFor(service), ctx), {}, 'a delete finds nothing of ours');
      assert.deepEqual((await registry.getServ(ns, service)).metadata, { team: 'payments' });
    });

    test("the endpoint mirror's service (owner=brokerflow) of the same name is foreign to an instance too", async () => {
      const instance = hex(6);
      const service = `etcd-${instance}`;
      await ensureNamespace();
      await registry.createServ({ name: service, namespace: ns, metadata: { owner: 'brokerflow' } });
      await assert.rejects(reconcile(driver, specFor(service), context(instance)), ConflictError);
      assert.deepEqual((await registry.getServ(ns, service)).metadata, { owner: 'brokerflow' });
      assert.deepEqual(await registry.listEndp(ns, service), []);
    });

    test('a foreign endpoint taking a needed name is untouched and a conflict; on delete it stays and ours go', async () => {
      const instance = hex(6);
      const service = `etcd-${instance}`;
      const ctx = context(instance);
      const spec = { ...specFor(service), endpoints: [{ name: 'client', address: '10.0.0.7', port: 2379 }, { name: 'peer', address: '10.0.0.7', port: 2380 }] };
      await reconcile(driver, { ...spec, endpoints: [spec.endpoints[1]!] }, ctx);
      await registry.createEndp({ name: 'client', namespace: ns, service, address: '10.9.9.9', port: 80, metadata: { team: 'payments' } });

      const err = await reconcile(driver, spec, ctx).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof ConflictError, String(err));
      assert.match(err.message, new RegExp(`endpoint ${ns}/${service}/client exists and is not owned by instance ${instance}`));
      const foreign = { name: 'client', address: '10.9.9.9', port: 80, metadata: { team: 'payments' } };
      assert.deepEqual((await endpointsOf(service)).find((e) => e.name === 'client'), foreign);

      await remove(driver, spec, ctx);
      assert.deepEqual(await endpointsOf(service), [foreign], 'our endpoint is gone, the foreign one stays');
      // The foreign endpoint keeps our (now empty) service alive, so a repeated delete runs again, and succeeds.
      await remove(driver, spec, ctx);
      assert.deepEqual(await endpointsOf(service), [foreign]);
    });

    test('an existing namespace, ours or foreign, is used as it is and outlives the registrations in it', async () => {
      const instance = hex(6);
      const foreignNs = `fns${hex(4)}`;
      await registry.createNs({ name: foreignNs, metadata: { team: 'payments' } });
      const spec = { ...specFor(`etcd-${instance}`), namespace: foreignNs };
      await reconcile(driver, spec, context(instance));
      assert.deepEqual((await registry.getServ(foreignNs, `etcd-${instance}`)).metadata.owner, owner(instance));
      await remove(driver, spec, context(instance));
      assert.deepEqual((await registry.getNs(foreignNs)).metadata, { team: 'payments' });
      assert.deepEqual(await registry.listServ(foreignNs), []);
      await registry.deleteNs(foreignNs);

      // The namespace the driver created carries the plain brokerflow mark, which no instance's delete removes.
      await ensureNamespace();
      assert.deepEqual((await registry.getNs(ns)).metadata, { owner: 'brokerflow' });
    });

    test("deleting one instance's registration leaves a second instance's registration in the same namespace untouched", async () => {
      const [a, b] = [hex(6), hex(6)];
      await reconcile(driver, specFor(`etcd-${a}`, 2379, '10.0.0.1'), context(a));
      await reconcile(driver, specFor(`etcd-${b}`, 2379, '10.0.0.2'), context(b));
      // A's driver cannot even see B's service as its own, under B's name.
      assert.equal(await driver.getCurrentState(specFor(`etcd-${b}`), context(a)), null);
      await assert.rejects(reconcile(driver, specFor(`etcd-${b}`, 1, '10.0.0.1'), context(a)), ConflictError);

      await remove(driver, specFor(`etcd-${a}`), context(a));
      await assert.rejects(registry.getServ(ns, `etcd-${a}`), ServRegNotFoundError);
      assert.deepEqual((await registry.getServ(ns, `etcd-${b}`)).metadata, { 'brokerflow.io/plan': 'standard', owner: owner(b) });
      assert.deepEqual(await endpointsOf(`etcd-${b}`), [{ name: 'client', address: '10.0.0.2', port: 2379, metadata: { owner: owner(b) } }]);
    });

    test('a spec that cannot be registered is a validation error naming the field, before any registry call', async () => {
      const ctx = context(hex(6));
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ ...specFor('x'), endpoints: [] }, /spec\.endpoints must be a non-empty list/],
        [{ ...specFor('x'), endpoints: [{ name: 'client', address: 'not-an-ip', port: 1 }] }, /address/],
        [{ ...specFor('x'), endpoints: [{ name: 'client', address: '10.0.0.1', port: 70000 }] }, /port/],
        [{ ...specFor('x'), metadata: { owner: 'me' } }, /owner key "owner"/],
      ];
      for (const [spec, message] of cases) {
        await assert.rejects(driver.getDesiredState(spec, ctx), (e: unknown) => e instanceof ValidationError && message.test(e.message));
      }
    });
  });
}
