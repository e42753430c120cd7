import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import { readFileSync } from 'node:fs';
import { ConfigError, credentialPolicy, loadCatalog, planAsynchrony, publicCatalog, validateCatalog } from '../../config/catalog';
import { validateRuntimeConfig, resolveSecret } from '../../config/runtime';

const examplePath = resolve(__dirname, '..', '..', 'config', 'catalog.example.yaml');
const example = () => parse(readFileSync(examplePath, 'utf8'));

test('the example catalog is valid and its served form hides brokerflow plan settings', () => {
  const catalog = loadCatalog(examplePath);
  assert.ok(catalog.services.length >= 1);
  const served = JSON.stringify(publicCatalog(catalog));
  assert.ok(!served.includes('brokerflow'), 'served catalog leaks internal plan settings');
  assert.ok(!served.includes('resourceSet'));
});

test('a duplicate plan id is refused with the field that repeats it', () => {
  const raw = example();
  raw.services[0].plans[1].id = raw.services[0].plans[0].id;
  assert.throws(() => validateCatalog(raw), (err: Error) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /services\[0\]\.plans\[1\]\.id: duplicate plan id/);
    return true;
  });
});

test('a service without plans is refused naming services[0].plans', () => {
  const raw = example();
  raw.services[0].plans = [];
  assert.throws(() => validateCatalog(raw), /services\[0\]\.plans: must NOT have fewer than 1 items/);
});

test('an unknown catalog field is refused by name', () => {
  const raw = example();
  raw.services[0].plans[0].colour = 'blue';
  assert.throws(() => validateCatalog(raw), /services\[0\]\.plans\[0\]: unknown field "colour"/);
});

test('a parameter schema with an external $ref is refused', () => {
  const raw = example();
  raw.services[0].plans[0].schemas.service_instance.create.parameters.properties.x = { $ref: 'https://example.com/s.json' };
  assert.throws(() => validateCatalog(raw), /external \$ref is not allowed/);
});

test('a parameter schema that does not compile is refused', () => {
  const raw = example();
  raw.services[0].plans[0].schemas.service_instance.create.parameters.properties.x = { type: 'no-such-type' };
  assert.throws(() => validateCatalog(raw), /not a valid JSON Schema/);
});

test('a plan chooses instance and binding asynchrony separately; asyncOnly stays shorthand for both required', () => {
  const catalog = loadCatalog(examplePath);
  const byName = (name: string) => catalog.services[0]!.plans.find((p) => p.name === name)!;
  assert.deepEqual(planAsynchrony(byName('standard')), { instances: 'optional', bindings: 'optional' });
  assert.deepEqual(planAsynchrony(byName('async-only')), { instances: 'required', bindings: 'required' });
  assert.deepEqual(planAsynchrony(byName('async-instances')), { instances: 'required', bindings: 'never' });
});

test('asyncOnly combined with instancesAsync or bindingsAsync is refused naming the field', () => {
  const raw = example();
  raw.services[0].plans[1].brokerflow.bindingsAsync = 'never';
  assert.throws(() => validateCatalog(raw), /services\[0\]\.plans\[1\]\.brokerflow\.asyncOnly: cannot be combined with instancesAsync or bindingsAsync/);
});

test('an unknown asynchrony mode is refused', () => {
  const raw = example();
  raw.services[0].plans[0].brokerflow.bindingsAsync = 'sometimes';
  assert.throws(() => validateCatalog(raw), /services\[0\]\.plans\[0\]\.brokerflow\.bindingsAsync: must be equal to one of the allowed values/);
});

test('bindings that can be asynchronous need bindings_retrievable: true; bindingsAsync: never does not', () => {
  const raw = example();
  raw.services[0].bindings_retrievable = false;
  assert.throws(() => validateCatalog(raw), (err: Error) => {
    assert.match(err.message, /services\[0\]\.plans\[0\]\.brokerflow\.bindingsAsync: bindings of this plan can be asynchronous \("optional"\), so service "etcd-keyspace" must set bindings_retrievable: true/);
    assert.match(err.message, /services\[0\]\.plans\[1\]\.brokerflow\.bindingsAsync: .*\("required"\)/);
    const never = (raw.services[0].plans as Array<{ name: string }>).findIndex((p) => p.name === 'async-instances');
    assert.ok(never > 0, 'the example catalog has the async-instances plan');
    assert.doesNotMatch(err.message, new RegExp(`plans\\[${never}\\]`), 'the plan whose bindings are never asynchronous is fine');
    return true;
  });
  for (const plan of raw.services[0].plans) if (!plan.brokerflow.asyncOnly) plan.brokerflow.bindingsAsync = 'never';
  delete raw.services[0].plans[1].brokerflow.asyncOnly;
  raw.services[0].plans[1].brokerflow.bindingsAsync = 'never';
  assert.doesNotThrow(() => validateCatalog(raw));
});

test('a runtime config with a bad field is refused naming that field', () => {
  assert.throws(
    () => validateRuntimeConfig({ catalog: examplePath, broker: { port: 99999 } }, 'cfg', '/'),
    /broker\.port: must be <= 65535/,
  );
  assert.throws(
    () => validateRuntimeConfig({ catalog: examplePath, temporal: { adress: 'x' } }, 'cfg', '/'),
    /temporal: unknown field "adress"/,
  );
  assert.throws(
    () =>
      validateRuntimeConfig(
        { catalog: examplePath, encryption: { currentKeyId: 'b', keys: [{ id: 'a', key: 'x' }] } },
        'cfg',
        '/',
      ),
    /encryption\.currentKeyId "b" names no key/,
  );
});

test('a secret from a missing environment variable names the variable, not a value', () => {
  delete process.env.BROKERFLOW_TEST_NO_SUCH_VAR;
  assert.throws(() => resolveSecret({ env: 'BROKERFLOW_TEST_NO_SUCH_VAR' }, 'broker.auth.basic[0].password'), (err: Error) => {
    assert.match(err.message, /broker\.auth\.basic\[0\]\.password: environment variable BROKERFLOW_TEST_NO_SUCH_VAR is not set/);
    return true;
  });
});

test('the service-registry driver section is checked at start-up, each error naming its field', () => {
  const load = (serviceRegistry: unknown) => () => validateRuntimeConfig({ catalog: examplePath, drivers: { serviceRegistry } }, 'cfg', '/');
  assert.throws(load({ registry: 'consul' }), /drivers\.serviceRegistry\.registry: must be equal to one of the allowed values/);
  assert.throws(load({ registry: 'cloudmap' }), (err: Error) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /drivers\.serviceRegistry\.cloudmap is required when drivers\.serviceRegistry\.registry is cloudmap/);
    return true;
  });
  assert.throws(load({ registry: 'etcd', etcd: { endpoints: ['http://127.0.0.1:2379'] }, ownerKey: '' }), /drivers\.serviceRegistry\.ownerKey: must NOT have fewer than 1 characters/);
  assert.throws(load({ registry: 'etcd', etcd: { endpoints: ['http://127.0.0.1:2379'] }, owner: 'x' }), /drivers\.serviceRegistry: unknown field "owner"/);
  const cfg = validateRuntimeConfig(
    { catalog: examplePath, drivers: { serviceRegistry: { registry: 'servicedirectory', servicedirectory: { projectId: 'p', location: 'us-east1' } } } },
    'cfg',
    '/',
  );
  assert.equal(cfg.drivers?.serviceRegistry?.registry, 'servicedirectory');
});

test('the cloud registries\' quota settings are checked at start-up, each error naming its field', () => {
  const load = (cloudmap: unknown) => () =>
    validateRuntimeConfig({ catalog: examplePath, drivers: { serviceRegistry: { registry: 'cloudmap', cloudmap } } }, 'cfg', '/');
  assert.throws(load({ region: 'us-east-1', callsPerSecond: 0 }), /drivers\.serviceRegistry\.cloudmap\.callsPerSecond: must be >= 1/);
  assert.throws(load({ region: 'us-east-1', callsPerSecond: 2.5 }), /drivers\.serviceRegistry\.cloudmap\.callsPerSecond: must be integer/);
  assert.throws(load({ region: 'us-east-1', maxInstancesPerService: 0 }), /drivers\.serviceRegistry\.cloudmap\.maxInstancesPerService: must be >= 1/);
  const cfg = validateRuntimeConfig(
    { catalog: examplePath, drivers: { serviceRegistry: { registry: 'cloudmap', cloudmap: { region: 'us-east-1', callsPerSecond: 20, maxInstancesPerService: 500 } } } },
    'cfg',
    '/',
  );
  assert.deepEqual(cfg.drivers?.serviceRegistry?.cloudmap, { region: 'us-east-1', callsPerSecond: 20, maxInstancesPerService: 500 });
});

test('the example rotating plan is binding_rotatable (served) with a credential policy (not served)', () => {
  const catalog = loadCatalog(examplePath);
  const plan = catalog.services[0]!.plans.find((p) => p.name === 'rotating')!;
  assert.equal(plan.id, '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a06');
  assert.deepEqual(credentialPolicy(plan), { ttlSeconds: 86_400, renewBeforeSeconds: 7_200 });
  const served = publicCatalog(catalog).services[0]!.plans.find((p) => p.name === 'rotating')!;
  assert.equal(served.binding_rotatable, true);
  assert.ok(!JSON.stringify(served).includes('ttl'));
  assert.equal(credentialPolicy(catalog.services[0]!.plans.find((p) => p.name === 'standard')!), undefined);
});

test('a credential policy is checked at start-up, each error naming its field', () => {
  const withPolicy = (credentials: unknown) => {
    const raw = example();
    raw.services[0].plans[0].brokerflow.credentials = credentials;
    return () => validateCatalog(raw);
  };
  assert.throws(withPolicy({ ttl: 'a day' }), /services\[0\]\.plans\[0\]\.brokerflow\.credentials\.ttl: "a day" is not a duration: write a whole number followed by s, m, h or d/);
  assert.throws(withPolicy({ ttl: '0s' }), /credentials\.ttl: must be longer than 0/);
  assert.throws(withPolicy({ ttl: '1h', renewBefore: '2h' }), /credentials\.renewBefore: "2h" is longer than the ttl "1h"/);
  assert.throws(withPolicy({ ttl: '1h', renewBefore: 'soon' }), /credentials\.renewBefore: "soon" is not a duration/);
  assert.throws(withPolicy({ renewBefore: '1h' }), /credentials: missing required field "ttl"/);
  assert.throws(withPolicy({ ttl: '1h', grace: '1h' }), /credentials: unknown field "grace"/);
  const raw = example();
  raw.services[0].plans[0].brokerflow.credentials = { ttl: '7d', renewBefore: '7d' };
  assert.deepEqual(credentialPolicy(validateCatalog(raw).services[0]!.plans[0]!), { ttlSeconds: 604_800, renewBeforeSeconds: 604_800 });
});

test('binding_rotatable on a plan that is not bindable is refused', () => {
  const raw = example();
  raw.services[0].plans[0].bindable = false;
  delete raw.services[0].plans[0].schemas.service_binding;
  raw.services[0].plans[0].binding_rotatable = true;
  assert.throws(() => validateCatalog(raw), /services\[0\]\.plans\[0\]\.binding_rotatable: the plan is not bindable/);
});
