// A plan's maximum_polling_duration, kept (docs/design/contracts/operations.md#polling-bounds), as a platform sees
// it over HTTP and as the systems behind the broker show it. The resource set makes each operation wait for a
// ConfigMap that only the test marks ready (test/support/cancel-fixtures.ts): an operation the test does not let
// through is held still for as long as its bound allows, so nothing here depends on how fast the machine is.
// (A bind or update on the 5 s plan would need an instance of that plan provisioned within 5 s, which depends on
// the machine: those paths are checked on the time-skipping test server, test/workflows/operations.test.ts.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pollLastOperation, startTestStack, type TestStack } from '../support/stack';
import {
  BOUNDED_1H_PLAN,
  BOUNDED_5S_PLAN,
  SERVICE,
  bindingPath,
  bindingWorkflowIdOf,
  deleteQuery,
  instancePath,
  instanceWorkflowIdOf,
  newId,
  pollingCatalog,
  provisionBody,
} from '../support/osb';
import { kube } from '../support/endpoints-fixtures';
import { sharedTenantEtcd } from '../support/reliability/servers';
import { keyspaceOf } from '../support/reliability/inspect';
import { cancelResourceSets, configMapData, markReady, waitingForReadiness } from '../support/cancel-fixtures';

let stack: TestStack;
const etcd = sharedTenantEtcd();
const { core } = kube();
before(async () => {
  stack = await startTestStack({ overrides: { catalog: pollingCatalog, resourceSets: cancelResourceSets } });
});
after(async () => {
  etcd.close();
  await stack?.close();
});

const stopped = "stopped after the plan's maximum_polling_duration of 5 s";

/** A provisioned instance of `plan`: its provision is let through by marking the ConfigMap ready. */
async function provisioned(id: string, plan: string): Promise<void> {
  const res = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ plan_id: plan, parameters: { quotaKeys: 10 } }));
  assert.equal(res.statusCode, 202, res.body);
  await waitingForReadiness(core, stack.client, instanceWorkflowIdOf(id), id, 'applyCreateChange');
  await markReady(core, id, true);
  const done = await pollLastOperation(stack, instancePath(id), res.json().operation as string);
  assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));
}

async function deprovisioned(id: string, plan: string): Promise<void> {
  const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery(plan)}`);
  assert.equal(del.statusCode, 202, del.body);
  assert.equal((await pollLastOperation(stack, instancePath(id), del.json().operation as string)).status, 410);
}

test('a provision that outlives its plan\'s maximum_polling_duration is stopped, removes what it created and is reported failed', async () => {
  const id = newId('bound-p');
  const put = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ plan_id: BOUNDED_5S_PLAN, parameters: { quotaKeys: 10 } }));
  assert.equal(put.statusCode, 202, put.body);
  const operation = put.json().operation as string;

  // Nobody marks the ConfigMap ready: the platform polls until the bound ends the operation.
  const last = await pollLastOperation(stack, instancePath(id), operation);
  assert.deepEqual({ status: last.status, state: last.body.state, description: last.body.description }, { status: 200, state: 'failed', description: stopped });
  assert.deepEqual(await keyspaceOf(etcd, id), { keys: [] }, 'no keyspace and no owner mark in the tenant etcd');
  assert.equal(await configMapData(core, id), undefined, 'no ConfigMap');
  assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 404, 'a failed provision has no instance to fetch');
  // The bound is a durable timer of the run, visible in its history.
  const { events } = await stack.client.workflow.getHandle(instanceWorkflowIdOf(id)).fetchHistory();
  assert.ok(events?.some((e) => e.timerFiredEventAttributes), 'the bound fired as a timer');
  // The platform's orphan mitigation finds nothing to keep.
  await deprovisioned(id, BOUNDED_5S_PLAN);
});

test('operations that finish within their plan\'s maximum_polling_duration are unaffected', async () => {
  const id = newId('bound-ok');
  const bid = newId('bound-okb');
  await provisioned(id, BOUNDED_1H_PLAN);
  const put = await stack.osb('PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: BOUNDED_1H_PLAN });
  assert.equal(put.statusCode, 202, put.body);
  await waitingForReadiness(core, stack.client, bindingWorkflowIdOf(bid), bid, 'applyCreateChange');
  await markReady(core, bid, true);
  const bound = await pollLastOperation(stack, bindingPath(id, bid), put.json().operation as string);
  assert.equal(bound.body.state, 'succeeded', JSON.stringify(bound.body));
  const fetched = await stack.osb('GET', bindingPath(id, bid));
  assert.equal(fetched.statusCode, 200, fetched.body);
  assert.ok((fetched.json().credentials as { username?: string }).username, 'the binding has its credentials');
  assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 200);
  await deprovisioned(id, BOUNDED_1H_PLAN);
});
