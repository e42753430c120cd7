// docs/design/contracts/osb-api.md#request-validation: every request is authenticated and version-checked, and
// bad input gets a clear 4xx that starts nothing and writes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestStack, type TestStack } from '../support/stack';
import { basicAuth } from '../support/config';
import { ASYNC_ONLY_PLAN, ORG_SPACE, PLAN, SERVICE, bindingPath, deleteQuery, instancePath, newId, provisionBody, workflowExists, osbResourceSets } from '../support/osb';

let stack: TestStack;
before(async () => {
  stack = await startTestStack({ overrides: { resourceSets: osbResourceSets } });
});
after(() => stack.close());

const endpoints = (id: string, bid: string): Array<[string, string, unknown?]> => [
  ['GET', '/v2/catalog'],
  ['PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody()],
  ['PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE }],
  ['DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`],
  ['GET', instancePath(id)],
  ['GET', `${instancePath(id)}/last_operation`],
  ['PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN }],
  ['DELETE', `${bindingPath(id, bid)}?accepts_incomplete=true&${deleteQuery()}`],
  ['GET', bindingPath(id, bid)],
  ['GET', `${bindingPath(id, bid)}/last_operation`],
];

test('every OSB endpoint answers 401 without valid credentials and 412 without a supported version header', async () => {
  const id = newId('auth');
  for (const [method, url, body] of endpoints(id, 'b1')) {
    const noAuth = await stack.app.inject({ method: method as 'GET', url, headers: { 'x-broker-api-version': '2.17' }, ...(body ? { payload: body as object } : {}) });
    assert.equal(noAuth.statusCode, 401, `${method} ${url} without credentials`);
    assert.match(noAuth.headers['www-authenticate'] as string, /^Basic/);
    const wrong = await stack.app.inject({
      method: method as 'GET',
      url,
      headers: { 'x-broker-api-version': '2.17', authorization: basicAuth({ username: 'platform', password: 'wrong' }) },
      ...(body ? { payload: body as object } : {}),
    });
    assert.equal(wrong.statusCode, 401, `${method} ${url} with a wrong password`);
    for (const version of [undefined, '1.0', '3.0', '2.12', 'two']) {
      const res = await stack.app.inject({
        method: method as 'GET',
        url,
        headers: { authorization: basicAuth(), ...(version ? { 'x-broker-api-version': version } : {}) },
        ...(body ? { payload: body as object } : {}),
      });
      assert.equal(res.statusCode, 412, `${method} ${url} with version ${version}`);
      assert.ok(typeof res.json().description === 'string');
    }
  }
  assert.equal(await workflowExists(stack, id), false, 'no refused request started a workflow');
  assert.equal((await stack.worker.registry.registry.open('service-instance', id)).exists(), false);
});

test('/healthz answers without credentials; /metrics needs them', async () => {
  const res = await stack.app.inject({ method: 'GET', url: '/healthz' });
  assert.equal(res.statusCode, 200, '/healthz needs no credentials');
  const metrics = await stack.app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(metrics.statusCode, 401, '/metrics needs credentials');
});

test('the request identity is echoed back', async () => {
  const res = await stack.osb('GET', '/v2/catalog', undefined, { 'x-broker-api-request-identity': 'req-123' });
  assert.equal(res.headers['x-broker-api-request-identity'], 'req-123');
});

test('bad provision input gets 400 with a description, and starts and writes nothing', async () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['unknown service', { service_id: 'nope', plan_id: PLAN, ...ORG_SPACE }, /service_id "nope" is not in the catalog/],
    ['unknown plan', { service_id: SERVICE, plan_id: 'nope', ...ORG_SPACE }, /plan_id "nope" is not a plan/],
    ['schema-violating parameters', provisionBody({ parameters: { quotaKeys: 0 } }), /parameters\/quotaKeys must be >= 1/],
    ['unknown parameter', provisionBody({ parameters: { colour: 'red' } }), /must NOT have additional properties/],
    ['missing plan_id', { service_id: SERVICE, ...ORG_SPACE }, /plan_id/],
    ['parameters not an object', provisionBody({ parameters: [1] }), /parameters must be object/],
    ['malformed JSON', '{"service_id": ', /JSON/i],
  ];
  for (const [what, body, expected] of cases) {
    const id = newId('bad');
    const res = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, body);
    assert.equal(res.statusCode, 400, `${what}: ${res.body}`);
    assert.match(res.json().description, expected, what);
    assert.equal(await workflowExists(stack, id), false, `${what}: no workflow`);
    assert.equal((await stack.worker.registry.registry.open('service-instance', id)).exists(), false, `${what}: no registry entry`);
  }
});

test('instance IDs that could escape their prefix are refused before anything happens', async () => {
  for (const id of ['..', 'a%2Fb', 'a%00b', 'x'.repeat(10_000), 'a%20b', '%2E%2E']) {
    const res = await stack.osb('PUT', `/v2/service_instances/${id}?accepts_incomplete=true`, provisionBody());
    assert.ok([400, 404, 414].includes(res.statusCode), `id ${id.slice(0, 20)} -> ${res.statusCode}`);
  }
  const listed = await stack.worker.registry.registry.list('service-instance');
  assert.equal(listed.some((e) => e.id.includes('..') || e.id.includes('/')), false);
});

test('a wrong maintenance_info.version is 422 MaintenanceInfoConflict', async () => {
  const id = newId('mi');
  const res = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ maintenance_info: { version: '9.9.9' } }));
  assert.equal(res.statusCode, 422);
  assert.equal(res.json().error, 'MaintenanceInfoConflict');
  assert.equal(await workflowExists(stack, id), false);
});

test('an async-only plan without accepts_incomplete is 422 AsyncRequired', async () => {
  const id = newId('async');
  const res = await stack.osb('PUT', instancePath(id), provisionBody({ plan_id: ASYNC_ONLY_PLAN }));
  assert.equal(res.statusCode, 422);
  assert.equal(res.json().error, 'AsyncRequired');
  assert.equal(await workflowExists(stack, id), false);
});

test('deprovision without service_id and plan_id is 400; of an unknown instance 410; last_operation of one 404', async () => {
  const id = newId('gone');
  assert.equal((await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true`)).statusCode, 400);
  assert.equal((await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`)).statusCode, 410);
  assert.equal((await stack.osb('GET', `${instancePath(id)}/last_operation`)).statusCode, 404);
  assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 404);
  assert.equal((await stack.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE })).statusCode, 404);
  assert.equal((await stack.osb('DELETE', `${bindingPath(id, 'b')}?accepts_incomplete=true&${deleteQuery()}`)).statusCode, 410);
  assert.equal((await stack.osb('PUT', `${bindingPath(id, 'b')}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN })).statusCode, 404);
});

test('a body larger than the limit is refused with 413', async () => {
  const res = await stack.osb('PUT', `${instancePath(newId('big'))}?accepts_incomplete=true`, provisionBody({ parameters: { x: 'y'.repeat(2 * 1024 * 1024) } }));
  assert.equal(res.statusCode, 413);
});
