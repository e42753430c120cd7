import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { routeResourceSet, validateResourceSets, AmbiguousResourceSetError, type ResourceSetDef } from '../../config/resource-sets';
import { loadCatalog, ConfigError } from '../../config/catalog';
import { renderSpec, TemplateRenderError } from '../../adapters/resources/template';

const catalog = loadCatalog(resolve(__dirname, '..', '..', 'config', 'catalog.example.yaml'));
const set = (name: string, versions?: string[]): ResourceSetDef => ({
  name,
  ...(versions ? { maintenanceVersions: versions } : {}),
  instance: [{ name: 'r', driver: 'trace', spec: {} }],
  binding: [{ name: 'b', driver: 'trace', spec: {} }],
});

test('the router picks the one set that handles the plan version', () => {
  const route = routeResourceSet([set('etcd', ['1.0.0']), set('etcd', ['2.0.0'])], 'etcd', '2.0.0');
  assert.equal(route.kind, 'set');
  assert.deepEqual(route.kind === 'set' && route.set.maintenanceVersions, ['2.0.0']);
});

test('the router skips a plan version no set handles', () => {
  const route = routeResourceSet([set('etcd', ['1.0.0'])], 'etcd', '3.0.0');
  assert.equal(route.kind, 'skipped');
  assert.match(route.kind === 'skipped' ? route.reason : '', /no resource set named "etcd" handles version 3\.0\.0/);
});

test('the router refuses two sets that both claim a plan version', () => {
  assert.throws(() => routeResourceSet([set('etcd'), set('etcd', ['1.0.0'])], 'etcd', '1.0.0'), AmbiguousResourceSetError);
});

test('resource sets are checked against the catalog at start-up', () => {
  assert.throws(
    () => validateResourceSets({ resourceSets: [set('other')] }, 'sets', catalog),
    (err: Error) => err instanceof ConfigError && /no resource set named "etcd-keyspace" handles version 1\.0\.0/.test(err.message),
  );
  // The example catalog's `registered` plan has a set of its own.
  const registered = set('etcd-keyspace-registered');
  assert.doesNotThrow(() => validateResourceSets({ resourceSets: [set('etcd-keyspace'), registered] }, 'sets', catalog));
  const noBinding = { ...set('etcd-keyspace'), binding: undefined };
  assert.throws(() => validateResourceSets({ resourceSets: [noBinding, registered] }, 'sets', catalog), /is bindable but resource set/);
});

test('duplicate resource names in a set are refused by field', () => {
  const dup = { name: 'x', instance: [{ name: 'a', driver: 'trace', spec: {} }, { name: 'a', driver: 'trace', spec: {} }] };
  assert.throws(() => validateResourceSets({ resourceSets: [dup] }, 'sets'), /resourceSets\[0\]\.instance\[1\]\.name: duplicate resource name "a"/);
});

test('templates render values from the request and refuse what they cannot render', () => {
  const ctx = {
    instance: { id: 'i-1', serviceId: 's', planId: 'p', parameters: { quota: 5 }, context: {} },
    operation: { id: 'op', type: 'provision' },
  };
  assert.deepEqual(renderSpec('r', { prefix: '/t/${instance.id}', quota: { $eval: 'instance.parameters.quota' } }, ctx), {
    prefix: '/t/i-1',
    quota: 5,
  });
  assert.throws(() => renderSpec('r', { q: { $eval: 'instance.parameters.missing.deeper' } }, ctx), TemplateRenderError);
  assert.throws(() => renderSpec('r', { $eval: '[1]' }, ctx), /not an object/);
});
