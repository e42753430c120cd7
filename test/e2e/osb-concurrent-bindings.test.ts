// docs/design/osb-semantics.md, "Bindings": binds and unbinds of different bindings of one instance run
// concurrently (each binding has its own workflow), so a platform binding many applications at once gets no
// ConcurrencyError. Figures are printed so they land in the test output.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { startTestStack, pollLastOperation, type TestStack } from '../support/stack';
import { requireTestEnv } from '../support/env';
import { PLAN, SERVICE, asEtcdUser, bindingPath, bindingWorkflowIdOf, deleteQuery, instancePath, newId, provisionAndWait, waitForRuns, type EtcdCredentials } from '../support/osb';

const N = 20;

let stack: TestStack;
let tenant: Etcd3;
before(async () => {
  stack = await startTestStack();
  tenant = new Etcd3({ hosts: requireTestEnv('tenantEtcdEndpoint'), auth: { username: 'root', password: requireTestEnv('tenantEtcdRootPassword') } });
});
after(async () => {
  tenant.close();
  await stack.close();
});

const isConcurrencyError = (a: { statusCode: number; json(): Record<string, unknown> }) => a.statusCode === 422 && a.json().error === 'ConcurrencyError';

const id = newId('many');
const bids = Array.from({ length: N }, (_, i) => `${newId('cb')}-${i}`);
const credentials = new Map<string, EtcdCredentials>();

test(`${N} concurrent async binds of different bindings on one instance all succeed, each with its own working credentials`, { timeout: 300_000 }, async () => {
  await provisionAndWait(stack, id);
  const t0 = Date.now();
  const answers = await Promise.all(bids.map((bid) => stack.osb('PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN })));
  const finals = await Promise.all(
    answers.map((a, i) => (a.statusCode === 202 ? pollLastOperation(stack, bindingPath(id, bids[i]!), a.json().operation as string, 120_000) : Promise.resolve(undefined))),
  );
  const wallMs = Date.now() - t0;
  const succeeded = finals.filter((f) => f?.status === 200 && f.body.state === 'succeeded').length;
  const concurrencyErrors = answers.filter(isConcurrencyError).length;
  for (const bid of bids) {
    const res = await stack.osb('GET', bindingPath(id, bid));
    if (res.statusCode === 200) credentials.set(bid, res.json().credentials as EtcdCredentials);
  }
  const distinct = new Set([...credentials.values()].map((c) => `${c.username}\u0000${c.password}`)).size;
  console.log(`# ${N} concurrent binds on one instance: ${succeeded} succeeded / ${concurrencyErrors} ConcurrencyError / ${distinct} distinct credentials / ${wallMs} ms wall time (first PUT to last succeeded)`);

  assert.deepEqual(answers.map((a) => a.statusCode), bids.map(() => 202), answers.map((a) => `${a.statusCode} ${a.body}`).join('\n'));
  assert.equal(concurrencyErrors, 0);
  assert.equal(succeeded, N, JSON.stringify(finals.filter((f) => f?.body.state !== 'succeeded')));
  assert.equal(distinct, N, 'every binding has credentials of its own');
  assert.equal(new Set([...credentials.values()].map((c) => c.username)).size, N, 'one etcd user per binding');
  // Each works against the tenant etcd, within the instance's prefix.
  await Promise.all(
    [...credentials].map(([bid, c]) =>
      asEtcdUser(c, async (app) => {
        await app.put(`${c.keyPrefix}${bid}`).value(bid);
        assert.equal(await app.get(`${c.keyPrefix}${bid}`).string(), bid);
      }),
    ),
  );
  // Each operation is its own workflow, findable by the instance and binding search attributes.
  for (const [i, bid] of bids.entries()) {
    const runs = await waitForRuns(stack, `InstanceId="${id}" AND BindingId="${bid}"`);
    const op = answers[i]!.json().operation as string;
    assert.ok(
      runs.some((w) => w.type === 'bind' && w.workflowId === bindingWorkflowIdOf(bid)),
      `the bind of ${bid} (${op}) runs as ${bindingWorkflowIdOf(bid)}: ${runs.map((w) => `${w.workflowId} ${w.type}`).join(', ')}`,
    );
  }
});

test(`${N} concurrent async unbinds of those bindings all succeed and remove their etcd users`, { timeout: 300_000 }, async () => {
  assert.equal(credentials.size, N, 'the binds above succeeded');
  const t0 = Date.now();
  const answers = await Promise.all(bids.map((bid) => stack.osb('DELETE', `${bindingPath(id, bid)}?accepts_incomplete=true&${deleteQuery()}`)));
  const finals = await Promise.all(
    answers.map((a, i) => (a.statusCode === 202 ? pollLastOperation(stack, bindingPath(id, bids[i]!), a.json().operation as string, 120_000) : Promise.resolve(undefined))),
  );
  const wallMs = Date.now() - t0;
  const gone = finals.filter((f) => f?.status === 410).length;
  const concurrencyErrors = answers.filter(isConcurrencyError).length;
  console.log(`# ${N} concurrent unbinds on one instance: ${gone} succeeded (410) / ${concurrencyErrors} ConcurrencyError / ${wallMs} ms wall time`);

  assert.deepEqual(answers.map((a) => a.statusCode), bids.map(() => 202), answers.map((a) => `${a.statusCode} ${a.body}`).join('\n'));
  assert.equal(gone, N, JSON.stringify(finals.filter((f) => f?.status !== 410)));
  const users = new Set((await tenant.getUsers()).map((u) => u.name));
  assert.deepEqual([...credentials.values()].filter((c) => users.has(c.username)).map((c) => c.username), [], 'no binding user is left');
  const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
  assert.equal(del.statusCode, 202, del.body);
  assert.equal((await pollLastOperation(stack, instancePath(id), del.json().operation)).status, 410);
});
