// The audit trail as platforms and operators see it: the broker refuses a malformed X-Broker-API-Originating-Identity
// on every /v2 route and changes nothing; every accepted operation is recorded with who asked, what it changed
// (parameters by name, never by value), how it ended and how long it took; `brokerflow history` shows it from the
// registry alone; and the OriginatingUser search attribute finds a user's workflows
// (docs/design/contracts/osb-api.md#originating-identity, docs/design/contracts/registry.md#audit-trail).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { Etcd3 } from 'etcd3';
import { startTestStack, pollLastOperation, type TestStack } from '../support/stack';
import { requireTestEnv } from '../support/env';
import { cliRunner, EXIT, type Json } from '../support/cli';
import { ASYNC_ONLY_PLAN, PLAN, SERVICE, bindingPath, deleteQuery, instancePath, newId, provisionBody, workflowExists } from '../support/osb';
import { freePort } from '../../scripts/lib/process';

/** A parameter value that must never appear in a record, a search attribute or the CLI's output. */
const SECRET = `s3cret-${randomUUID()}`;
const run = randomUUID().slice(0, 8);
const alice = { platform: 'cloudfoundry', user: `alice-${run}` };
const bob = { platform: 'kubernetes', user: `bob-${run}` };

const cloudfoundry = (userId: string) => `cloudfoundry ${Buffer.from(JSON.stringify({ user_id: userId })).toString('base64')}`;
const kubernetes = (username: string) =>
  `kubernetes ${Buffer.from(JSON.stringify({ username, uid: randomUUID(), groups: ['ops'], extra: { token: [`extra-${SECRET}`] } })).toString('base64')}`;
const as = (header: string) => ({ 'x-broker-api-originating-identity': header });

let stack: TestStack;
let tenant: Etcd3;
before(async () => {
  // The example catalog, with the standard plan's parameter schemas left out so that a request may carry a password.
  const dir = mkdtempSync(join(requireTestEnv('workDir'), 'audit-'));
  const catalog = parse(readFileSync(resolve(__dirname, '..', '..', 'config', 'catalog.example.yaml'), 'utf8')) as { services: Array<{ plans: Array<{ id: string; schemas?: unknown }> }> };
  delete catalog.services[0]!.plans.find((p) => p.id === PLAN)!.schemas;
  const catalogFile = join(dir, 'catalog.yaml');
  writeFileSync(catalogFile, stringify(catalog));
  stack = await startTestStack({ overrides: { catalog: catalogFile } });
  tenant = new Etcd3({ hosts: requireTestEnv('tenantEtcdEndpoint'), auth: { username: 'root', password: requireTestEnv('tenantEtcdRootPassword') } });
});
after(async () => {
  tenant.close();
  await stack.close();
});

const { cli } = cliRunner(() => stack.configFile);

async function history(id: string, ...args: string[]): Promise<{ code: number | null; items: Json[]; json: Json; stdout: string; stderr: string }> {
  const r = await cli(['history', id, ...args]);
  return { code: r.code, items: (r.json.items as Json[] | undefined) ?? [], json: r.json, stdout: r.stdout, stderr: r.stderr };
}

/** Sends an OSB request and waits for the operation it started to end; returns its operation ID. */
async function operate(method: 'PUT' | 'PATCH' | 'DELETE', path: string, body: unknown, headers: Record<string, string>, expect: 'succeeded' | 'failed' | 'gone' = 'succeeded'): Promise<string> {
  const res = await stack.osb(method, path, body, headers);
  assert.equal(res.statusCode, 202, res.body);
  const operation = res.json().operation as string;
  const done = await pollLastOperation(stack, path.split('?')[0]!, operation);
  if (expect === 'gone') assert.equal(done.status, 410, JSON.stringify(done));
  else assert.equal(done.body.state, expect, JSON.stringify(done.body));
  return operation;
}

const malformed: Array<[string, string]> = [
  ['no space', `cloudfoundry${Buffer.from('{"user_id":"x"}').toString('base64')}`],
  ['empty platform', ` ${Buffer.from('{"user_id":"x"}').toString('base64')}`],
  ['value not base64', 'cloudfoundry {"user_id":"x"}'],
  ['not a JSON object', `cloudfoundry ${Buffer.from('["x"]').toString('base64')}`],
  ['too long', `cloudfoundry ${Buffer.from(JSON.stringify({ user_id: 'x', pad: 'p'.repeat(5000) })).toString('base64')}`],
];

test('a malformed originating identity is refused with 400 on every /v2 route, and nothing starts or is recorded', async () => {
  const id = newId('audit-bad');
  const bid = newId('audit-bad-b');
  for (const [what, header] of malformed) {
    const requests: Array<[string, 'PUT' | 'PATCH' | 'DELETE' | 'GET', string, unknown]> = [
      ['catalog', 'GET', '/v2/catalog', undefined],
      ['provision', 'PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody()],
      ['update', 'PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE }],
      ['deprovision', 'DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`, undefined],
      ['fetch', 'GET', instancePath(id), undefined],
      ['last_operation', 'GET', `${instancePath(id)}/last_operation`, undefined],
      ['bind', 'PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN }],
      ['unbind', 'DELETE', `${bindingPath(id, bid)}?accepts_incomplete=true&${deleteQuery()}`, undefined],
      ['binding last_operation', 'GET', `${bindingPath(id, bid)}/last_operation`, undefined],
    ];
    for (const [route, method, url, body] of requests) {
      const res = await stack.osb(method, url, body, as(header));
      assert.equal(res.statusCode, 400, `${what} on ${route}: ${res.body}`);
      assert.match(String(res.json().description), /^X-Broker-API-Originating-Identity is malformed: /, `${what} on ${route}`);
    }
  }
  assert.equal(await workflowExists(stack, id), false, 'no workflow started');
  assert.equal((await stack.osb('GET', `${instancePath(id)}/last_operation`, undefined, as(cloudfoundry(alice.user)))).statusCode, 404, 'nothing recorded');
  const h = await history(id);
  assert.equal(h.code, EXIT.notFound, h.stdout);
  assert.equal(h.json.error, `no history known for instance ${id}`);
});

test('a malformed identity on an existing instance changes nothing and adds nothing to its history', async () => {
  const id = newId('audit-keep');
  await operate('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 10 } }), as(cloudfoundry(alice.user)));
  const res = await stack.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 20 } }, as(malformed[2]![1]));
  assert.equal(res.statusCode, 400, res.body);
  const fetched = await stack.osb('GET', instancePath(id));
  assert.deepEqual(fetched.json().parameters, { quotaKeys: 10 });
  const h = await history(id);
  assert.equal(h.code, EXIT.ok, h.stderr);
  assert.deepEqual(h.items.map((i) => i.operation), ['provision']);
});

test('provision, update and bind by two users on two platforms: history names who, what changed, the outcome and the duration, never a value', async () => {
  const id = newId('audit');
  const bid = newId('audit-b');
  const provision = await operate('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 10, adminPassword: SECRET } }), as(cloudfoundry(alice.user)));
  const update = await operate(
    'PATCH',
    `${instancePath(id)}?accepts_incomplete=true`,
    { service_id: SERVICE, plan_id: ASYNC_ONLY_PLAN, parameters: { adminPassword: `${SECRET}-rotated`, region: 'eu' } },
    as(kubernetes(bob.user)),
  );
  const bind = await operate('PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: ASYNC_ONLY_PLAN, parameters: { readOnly: true } }, as(cloudfoundry(alice.user)));

  const h = await history(id);
  assert.equal(h.code, EXIT.ok, h.stderr);
  assert.ok(!h.stdout.includes(SECRET), 'no parameter value in the history');
  assert.ok(!h.stdout.includes('extra-'), 'nothing of the identity but platform and user');
  assert.deepEqual(
    h.items.map((i) => ({ operation: i.operation, operationId: i.operationId, bindingId: i.bindingId, requestedBy: i.requestedBy, origin: i.origin, state: i.state, changes: i.changes })),
    [
      {
        operation: 'provision',
        operationId: provision,
        bindingId: undefined,
        requestedBy: `cloudfoundry/${alice.user}`,
        origin: alice,
        state: 'succeeded',
        changes: { plan: { to: PLAN }, maintenanceVersion: { to: '1.0.0' }, parameters: { added: ['adminPassword', 'quotaKeys'], removed: [], changed: [] } },
      },
      {
        operation: 'update',
        operationId: update,
        bindingId: undefined,
        requestedBy: `kubernetes/${bob.user}`,
        origin: bob,
        state: 'succeeded',
        changes: { plan: { from: PLAN, to: ASYNC_ONLY_PLAN }, parameters: { added: ['region'], removed: [], changed: ['adminPassword'] } },
      },
      {
        operation: 'bind',
        operationId: bind,
        bindingId: bid,
        requestedBy: `cloudfoundry/${alice.user}`,
        origin: alice,
        state: 'succeeded',
        changes: { parameters: { added: ['readOnly'], removed: [], changed: [] } },
      },
    ],
  );
  for (const i of h.items) {
    assert.equal(typeof i.acceptedAt, 'string');
    assert.equal(typeof i.completedAt, 'string');
    assert.ok(typeof i.durationMs === 'number' && i.durationMs >= 0, JSON.stringify(i));
    assert.equal(i.durationMs, Date.parse(String(i.completedAt)) - Date.parse(String(i.acceptedAt)));
  }

  // The table a person reads: one row per operation, plan names from the catalog, parameter names only.
  const table = await cli(['history', id], { json: false });
  assert.equal(table.code, EXIT.ok, table.stderr);
  const lines = table.stdout.trim().split('\n');
  assert.match(lines[0]!, /^WHEN\s+OPERATION\s+WHO\s+WHAT CHANGED\s+OUTCOME\s+DURATION$/);
  assert.match(lines[2]!, new RegExp(`update\\s+kubernetes/${bob.user}\\s+plan standard -> async-only; parameters \\+region ~adminPassword\\s+succeeded`));
  assert.ok(!table.stdout.includes(SECRET));

  // One binding's history, and it outlives the binding.
  const unbind = await operate('DELETE', `${bindingPath(id, bid)}?accepts_incomplete=true&service_id=${SERVICE}&plan_id=${ASYNC_ONLY_PLAN}`, undefined, as(kubernetes(bob.user)), 'gone');
  const hb = await history(id, '--binding', bid);
  assert.equal(hb.code, EXIT.ok, hb.stderr);
  assert.deepEqual(
    hb.items.map((i) => [i.operation, i.operationId, i.requestedBy, i.state]),
    [
      ['bind', bind, `cloudfoundry/${alice.user}`, 'succeeded'],
      ['unbind', unbind, `kubernetes/${bob.user}`, 'succeeded'],
    ],
  );

  // The search attribute finds each user's workflows, and never holds a parameter.
  const runsOf = async (who: string) => {
    const found: string[] = [];
    for await (const w of stack.client.workflow.list({ query: `OriginatingUser = '${who}' AND InstanceId = '${id}'` })) found.push(`${w.type} ${w.workflowId}`);
    return found.sort();
  };
  const bobsRuns = await until(`bob's workflows in visibility`, async () => {
    const r = await runsOf(`kubernetes/${bob.user}`);
    return r.length === 2 ? r : undefined;
  });
  assert.deepEqual(bobsRuns, [`unbind binding/${bid}`, `update instance/${id}`]);
  const alicesRuns = await until(`alice's workflows in visibility`, async () => {
    const r = await runsOf(`cloudfoundry/${alice.user}`);
    return r.length === 2 ? r : undefined;
  });
  assert.deepEqual(alicesRuns, [`bind binding/${bid}`, `provision instance/${id}`]);
  const described = await stack.client.workflow.getHandle(`instance/${id}`).describe();
  assert.ok(!JSON.stringify(described.raw.workflowExecutionInfo?.searchAttributes ?? {}).includes(Buffer.from(SECRET).toString('base64')));
});

test('a failed operation is recorded as failed with its reason, and the trail outlives the instance', async () => {
  const id = newId('audit-fail');
  // Someone else's data sits at the keyspace: the provision fails at that resource.
  await tenant.put(`/tenants/${id}/foreign`).value('not ours');
  const provision = await operate('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody(), as(cloudfoundry(alice.user)), 'failed');
  const deprovision = await operate('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`, undefined, {}, 'gone');
  const h = await history(id);
  assert.equal(h.code, EXIT.ok, h.stderr);
  assert.deepEqual(
    h.items.map((i) => [i.operation, i.operationId, i.requestedBy, i.state]),
    [
      ['provision', provision, `cloudfoundry/${alice.user}`, 'failed'],
      ['deprovision', deprovision, 'unknown', 'succeeded'],
    ],
  );
  assert.match(String(h.items[0]!.description), /resource "keyspace" step applyCreateChange failed/);
  assert.equal(typeof h.items[0]!.durationMs, 'number');
});

test('history reads the registry alone, names CLI operations by their OS user, and says when nothing is known', async () => {
  const id = newId('audit-cli');
  const prov = await cli(['provision', id, '--service', 'etcd-keyspace', '--plan', 'standard', '--wait']);
  assert.equal(prov.code, EXIT.ok, prov.stdout + prov.stderr);

  // A configuration whose Temporal is nowhere: the history still answers.
  const cfg = parse(readFileSync(stack.configFile, 'utf8')) as { temporal: { address: string } };
  cfg.temporal.address = `127.0.0.1:${await freePort()}`;
  const offline = join(mkdtempSync(join(requireTestEnv('workDir'), 'audit-offline-')), 'brokerflow.yaml');
  writeFileSync(offline, stringify(cfg));
  const h = await cli(['history', id], { config: offline });
  assert.equal(h.code, EXIT.ok, h.stdout + h.stderr);
  const items = h.json.items as Json[];
  assert.equal(items.length, 1);
  assert.match(String(items[0]!.requestedBy), /^brokerflow-cli\/.+/);
  assert.equal(items[0]!.state, 'succeeded');

  const unknownBinding = await cli(['history', id, '--binding', newId('nope')]);
  assert.equal(unknownBinding.code, EXIT.notFound, unknownBinding.stdout);
  assert.match(String(unknownBinding.json.error), /^no history known for binding .* of instance /);
  const unknown = await cli(['history', newId('nope')], { json: false });
  assert.equal(unknown.code, EXIT.notFound);
  assert.match(unknown.stderr, /^brokerflow: no history known for instance /);
});

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
