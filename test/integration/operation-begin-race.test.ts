// A DELETE that stops a provision does not wait for the provision's begin activity: it may write the provision's
// record after the deprovision that follows (the same workflow, continued as new) has read the entry. The
// deprovision's begin then meets an open provision when it commits. That provision will never record an end (its
// workflow has moved on), so the deprovision must close it and begin, not fail "still in progress" (found by the
// PUT/DELETE race scenario on a loaded machine). Here the late write is made to happen at exactly that moment, by a
// second worker's activities on the same file registry.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRegistry, type RegistryBundle } from '../../adapters/factory';
import type { Registry } from '../../adapters/registry';
import type { Catalog } from '../../config/catalog';
import { createOperationActivities } from '../../activities/operations';
import { deprovisionAfterProvisionId, type OperationInput } from '../../workflows/messages';
import { writeTestConfig } from '../support/config';

const bundles: RegistryBundle[] = [];
after(async () => {
  for (const b of bundles) await b.close();
});

const activitiesOn = (registry: Registry) => createOperationActivities({ registry, catalog: {} as Catalog, resourceSets: [], drivers: new Map() });

test("a deprovision closes the provision it continues when that provision's begin is written while the deprovision begins", async () => {
  const { config } = writeTestConfig();
  const ours = await createRegistry(config);
  const lateWorker = await createRegistry(config);
  bundles.push(ours, lateWorker);

  const provision: OperationInput = {
    operation: 'provision',
    operationId: 'provision-race-1',
    instanceId: 'race-1',
    serviceId: 'svc',
    planId: 'plan',
    parameters: {},
    context: {},
    fingerprint: 'fingerprint-1',
  };
  const deprovision: OperationInput = { ...provision, operation: 'deprovision', operationId: deprovisionAfterProvisionId(provision.operationId) };

  // The provision's begin lands between the deprovision's read of the entry and its write.
  let lateBegins = 0;
  const racing = new Proxy(ours.registry, {
    get(target, prop, receiver) {
      if (prop === 'beginOperation') {
        return async (...args: Parameters<Registry['beginOperation']>) => {
          if (args[1].operation === 'deprovision' && lateBegins === 0) {
            lateBegins++;
            await activitiesOn(lateWorker.registry).recordBegin(provision);
          }
          return target.beginOperation(...args);
        };
      }
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });

  const outcome = await activitiesOn(racing as Registry).recordBegin(deprovision);
  assert.equal(lateBegins, 1, 'the provision began while the deprovision was beginning');
  assert.deepEqual(outcome, { alreadySucceeded: false });
  const record = await ours.registry.readOperation('service-instance', provision.instanceId);
  assert.equal(record?.operationId, deprovision.operationId, 'the deprovision is the open operation');
  assert.equal(record?.state, 'in progress');
});
