// The OSB happy paths end to end on the multi-service Temporal cluster, over HTTP, with two broker processes and two
// worker processes: each instance is provisioned through one broker and polled through the other, bound, its
// credentials fetched, unbound and deprovisioned, alternating brokers at every step. Temporal's SQL visibility on
// PostgreSQL must list each operation's run by brokerflow's search attributes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { bindingPath, deleteQuery, instancePath, PLAN, provisionBody, SERVICE } from '../support/osb';
import { settle, type Send } from '../support/reliability/platform';
import { mapConcurrently } from '../support/reliability/scenario';
import { sharedTenantEtcd } from '../support/reliability/servers';
import { deleteTenantKeys, keyspaceOf, waitFor } from '../support/reliability/inspect';
import { requireClusterShape, startClusterStack, type ClusterStack } from './support';

const INSTANCES = 6;
const tag = `ce${randomBytes(4).toString('hex')}`;
const etcd = sharedTenantEtcd();
let cs: ClusterStack;

before(async () => {
  requireClusterShape();
  cs = await startClusterStack();
});
after(async () => {
  await cs?.close();
  await deleteTenantKeys(etcd, tag).catch(() => undefined);
  etcd.close();
});

/** Sends a request that must be accepted (202) and returns its operation. */
async function accepted(send: Send, method: 'PUT' | 'DELETE', url: string, body?: unknown): Promise<string> {
  const res = await send(method, url, body);
  assert.equal(res.status, 202, `${method} ${url}: ${JSON.stringify(res)}`);
  return String((res as { body: Record<string, unknown> }).body.operation);
}

test('both brokers serve the catalog', async () => {
  for (const b of cs.brokers) {
    const res = await b.send('GET', '/v2/catalog');
    assert.equal(res.status, 200, JSON.stringify(res));
    assert.ok(Array.isArray((res as { body: { services?: unknown[] } }).body.services));
  }
});

test(`${INSTANCES} instances: provision, bind, fetch, unbind, deprovision over HTTP across two brokers and two workers`, { timeout: 300_000 }, async () => {
  const ids = Array.from({ length: INSTANCES }, (_, i) => `${tag}-${i}`);
  const results = await mapConcurrently(ids, INSTANCES, async (id, i) => {
    const a = cs.brokers[i % 2]!.send;
    const b = cs.brokers[(i + 1) % 2]!.send;
    const bid = `${id}-b`;
    const steps: string[] = [];
    const provision = await accepted(a, 'PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 10 } }));
    steps.push(`provision ${await settle(b, instancePath(id), provision)}`);
    const keyspace = await keyspaceOf(etcd, id);
    const bind = await accepted(b, 'PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN });
    steps.push(`bind ${await settle(a, bindingPath(id, bid), bind)}`);
    const fetched = await a('GET', bindingPath(id, bid));
    const creds = fetched.status === 200 ? ((fetched as { body: Record<string, unknown> }).body.credentials as Record<string, unknown>) : undefined;
    const unbind = await accepted(a, 'DELETE', `${bindingPath(id, bid)}?accepts_incomplete=true&${deleteQuery()}`);
    steps.push(`unbind ${await settle(b, bindingPath(id, bid), unbind)}`);
    const deprovision = await accepted(b, 'DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    steps.push(`deprovision ${await settle(a, instancePath(id), deprovision)}`);
    const after = await a('GET', `${instancePath(id)}/last_operation`);
    return { id, bid, steps, keyspace, creds, goneAfter: after.status, keyspaceAfter: await keyspaceOf(etcd, id) };
  });
  for (const r of results) {
    // An unbind or deprovision that succeeded answers 410 Gone from last_operation (the tombstone).
    assert.deepEqual(r.steps, ['provision succeeded', 'bind succeeded', 'unbind gone', 'deprovision gone'], r.id);
    assert.equal(r.keyspace.owner, r.id, `keyspace of ${r.id} owned by it while provisioned`);
    assert.equal(r.creds?.prefix, `/tenants/${r.id}`, `credentials of ${r.bid}`);
    assert.ok(typeof r.creds?.password === 'string' && r.creds.password.length >= 16);
    assert.equal(r.goneAfter, 410);
    assert.equal(r.keyspaceAfter.owner, undefined, `keyspace of ${r.id} removed`);
  }

  // SQL visibility on PostgreSQL answers queries on brokerflow's search attributes: one run per operation.
  const client = cs.stack.client;
  for (const r of results) {
    const instanceRuns = await waitFor(
      `visibility to list the provision and deprovision of ${r.id}`,
      async () => {
        const runs: string[] = [];
        for await (const w of client.workflow.list({ query: `InstanceId = "${r.id}" AND WorkflowId = "instance/${r.id}"` })) runs.push(`${w.type}:${w.status.name}`);
        return runs.length >= 2 ? runs.sort() : undefined;
      },
      30_000,
      500,
    );
    assert.deepEqual(instanceRuns, ['deprovision:COMPLETED', 'provision:COMPLETED'], r.id);
    const bindingRuns = await waitFor(
      `visibility to list the bind and unbind of ${r.bid}`,
      async () => {
        const runs: string[] = [];
        for await (const w of client.workflow.list({ query: `BindingId = "${r.bid}"` })) runs.push(`${w.type}:${w.status.name}`);
        return runs.length >= 2 ? runs.sort() : undefined;
      },
      30_000,
      500,
    );
    assert.deepEqual(bindingRuns, ['bind:COMPLETED', 'unbind:COMPLETED'], r.bid);
  }
});

test('a synchronous provision and deprovision (no accepts_incomplete) answer 201 and 200 on the cluster', { timeout: 180_000 }, async () => {
  const id = `${tag}-sync`;
  const put = await cs.brokers[0]!.send('PUT', instancePath(id), provisionBody());
  assert.equal(put.status, 201, JSON.stringify(put));
  const del = await cs.brokers[1]!.send('DELETE', `${instancePath(id)}?${deleteQuery()}`);
  assert.equal(del.status, 200, JSON.stringify(del));
});
