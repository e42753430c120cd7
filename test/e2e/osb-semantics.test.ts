// docs/design/osb-semantics.md, pinned over HTTP: each test sends what a platform sends (through fastify inject,
// with real headers) and asserts what a platform sees, then reads the systems behind the broker — the tenant
// etcd, Temporal visibility, the registry, the test drivers' objects — to check that nothing else happened.
//
// The main stack reconciles test/support/fixtures/resource-sets.semantics.yaml: the real etcd keyspace and binding user,
// plus two resources of drivers this file controls inside its worker (`switch`: fails updates on demand, `gate`:
// holds a binding's deletion). The last tests serve instances provisioned here with an upgraded catalog
// (test/support/fixtures/catalog.upgraded.yaml) from a second stack on the same registry and task queue.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import type { Client } from '@temporalio/client';
import type { Context } from '@temporalio/activity';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { startTestStack, pollLastOperation, type TestStack } from '../support/stack';
import { requireTestEnv } from '../support/env';
import { TraceDriver, type TraceBehaviour } from '../support/trace-driver';
import { deferred } from '../support/deferred';
import type { ResourceState } from '../../domain/reconcile';
import type { DriverContext, ResourceDriver } from '../../adapters/resources/types';
import type { RuntimeConfigFile } from '../../config/runtime';
import { etcdOwnerKey } from '../../adapters/resources/etcd';
import { InstanceIdKey } from '../../workflows/searchAttributes';
import {
  ASYNC_ONLY_PLAN,
  ORG_SPACE,
  PLAN,
  SERVICE,
  asEtcdUser,
  bindAndWait,
  bindingPath,
  deleteQuery,
  instancePath,
  bindingWorkflowIdOf,
  instanceWorkflowIdOf,
  listRuns,
  newId,
  provisionAndWait,
  provisionBody,
  waitForRuns,
  workflowExists,
  type EtcdCredentials,
} from '../support/osb';

const fixtures = resolve(__dirname, '..', 'support', 'fixtures');
const semanticsResourceSets = join(fixtures, 'resource-sets.semantics.yaml');
const noBindingResourceSets = join(fixtures, 'resource-sets.nobindres.yaml');
const upgradedCatalog = join(fixtures, 'catalog.upgraded.yaml');
const bin = resolve(__dirname, '..', '..', 'bin', 'brokerflow.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The header a platform sends on a DELETE (or GET) that has no body. */
const JSON_WITHOUT_BODY = { 'content-type': 'application/json' };

type Json = Record<string, unknown>;

/**
 * A trace driver whose creations or deletions can be held: while armed for a step, every call of that step waits
 * until released, and ignores cancellation meanwhile, as a call already sent to an API would.
 */
class GateDriver extends TraceDriver {
  private held: { step: 'applyCreateChange' | 'applyDeleteChange'; entered: (id: string) => void; released: Promise<void> } | undefined;

  /** Holds the step from now on; `entered` resolves with the binding (or else instance) of the first one held. */
  arm(step: 'applyCreateChange' | 'applyDeleteChange' = 'applyDeleteChange'): { entered: Promise<string>; release: () => void } {
    const { promise: enteredP, resolve: entered } = deferred<string>();
    const { promise: released, resolve: release } = deferred();
    this.held = { step, entered, released };
    return {
      entered: enteredP,
      release: () => {
        this.held = undefined;
        release();
      },
    };
  }

  private async hold(step: 'applyCreateChange' | 'applyDeleteChange', ctx: DriverContext): Promise<void> {
    const held = this.held;
    if (held?.step !== step) return;
    held.entered(ctx.object.bindingId ?? ctx.object.instanceId);
    await held.released;
  }

  override async applyCreateChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    await this.hold('applyCreateChange', ctx);
    return super.applyCreateChange(state, ctx);
  }

  override async applyDeleteChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    await this.hold('applyDeleteChange', ctx);
    return super.applyDeleteChange(state, ctx);
  }
}

// The test drivers, shared by every stack of this file (their objects live in this process).
const behaviours: Record<string, TraceBehaviour> = { switch: {} };
const trace = new GateDriver(behaviours);
const gate = new GateDriver();
const testDrivers = () =>
  new Map<string, ResourceDriver>([
    ['trace', trace],
    ['gate', gate],
  ]);

/**
 * An activity interceptor that holds the first `recordComplete` of a `workflowType` run of instance `id` (only a
 * local one with `local`), before it writes or, with `after`, once it has written, until released.
 */
function holdRecordComplete(id: string, workflowType: string, opts: { after?: boolean; local?: boolean } = {}): {
  interceptor: ActivityInterceptorsFactory;
  /** True once held; false when nothing was held within a minute of asking. */
  entered: () => Promise<boolean>;
  release: () => void;
} {
  const { promise: entered, resolve: enter } = deferred<boolean>();
  const { promise: released, resolve: release } = deferred();
  let held = false;
  const matches = (info: Context['info']) =>
    !held &&
    info.activityType === 'recordComplete' &&
    info.workflowType === workflowType &&
    (!opts.local || info.isLocal) &&
    info.workflowExecution?.workflowId === instanceWorkflowIdOf(id);
  const hold = async () => {
    held = true;
    enter(true);
    await released;
  };
  const interceptor: ActivityInterceptorsFactory = (ctx) => ({
    inbound: {
      async execute(input, next) {
        const match = matches(ctx.info);
        if (match && !opts.after) await hold();
        const result: unknown = await next(input);
        if (match && opts.after) await hold();
        return result;
      },
    },
  });
  return { interceptor, entered: () => Promise.race([entered, sleep(60_000).then(() => false)]), release };
}

/** One stack for the two tests of a local activity's write that its run never learned of. */
const lostEnd: { stack?: TestStack; ids: { provision: string; update: string }; holds: Record<'provision' | 'update', ReturnType<typeof holdRecordComplete>> } = (() => {
  const ids = { provision: newId('lost-end'), update: newId('late-cancel') };
  return { ids, holds: { provision: holdRecordComplete(ids.provision, 'provision', { local: true }), update: holdRecordComplete(ids.update, 'update', { local: true }) } };
})();

// The main stack and the upgraded one share a registry folder and a task queue (never with both workers running).
const taskQueue = `tq-sem-${randomBytes(5).toString('hex')}`;
let registryDir = '';
function semanticsConfig(catalog?: string): Partial<RuntimeConfigFile> {
  return {
    resourceSets: semanticsResourceSets,
    temporal: { address: requireTestEnv('temporalAddress'), namespace: 'default', taskQueue },
    registry: { backend: 'file', file: { dirs: [registryDir] } },
    ...(catalog ? { catalog } : {}),
  };
}

let stack: TestStack;
let upgraded: TestStack | undefined;
let noBindingResources: TestStack | undefined;
let gated: TestStack | undefined;
let unclosed: TestStack | undefined;
let refusing: TestStack | undefined;
let superseded: TestStack | undefined;
let endingProvision: TestStack | undefined;
let tenant: Etcd3;
before(async () => {
  registryDir = mkdtempSync(join(requireTestEnv('workDir'), 'sem-registry-'));
  stack = await startTestStack({ overrides: semanticsConfig(), extraDrivers: testDrivers() });
  tenant = new Etcd3({ hosts: requireTestEnv('tenantEtcdEndpoint'), auth: { username: 'root', password: requireTestEnv('tenantEtcdRootPassword') } });
});
after(async () => {
  tenant.close();
  await upgraded?.close();
  await noBindingResources?.close();
  await gated?.close();
  await unclosed?.close();
  await refusing?.close();
  await superseded?.close();
  await endingProvision?.close();
  await lostEnd.stack?.close();
  await stack.close();
});

async function credentialsOf(s: TestStack, id: string, bid: string): Promise<EtcdCredentials> {
  const res = await s.osb('GET', bindingPath(id, bid));
  assert.equal(res.statusCode, 200, res.body);
  return res.json().credentials as EtcdCredentials;
}

/** Writes and reads a key as the binding's etcd user: the credentials work. */
async function credentialsWork(c: EtcdCredentials, key: string): Promise<void> {
  await asEtcdUser(c, async (app) => {
    await app.put(`${c.keyPrefix}${key}`).value('ok');
    assert.equal(await app.get(`${c.keyPrefix}${key}`).string(), 'ok');
  });
}

async function etcdUserExists(name: string): Promise<boolean> {
  return (await tenant.getUsers()).some((u) => u.name === name);
}

/** Polls `fn` until it returns something other than undefined. */
async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Whether a run of the instance's workflow is RUNNING now. */
async function instanceRunning(s: TestStack, id: string): Promise<boolean> {
  const d = await s.client.workflow
    .getHandle(instanceWorkflowIdOf(id))
    .describe()
    .catch(() => undefined);
  return d?.status.name === 'RUNNING';
}

/**
 * Holds the broker's Temporal starts that `match` selects (at the gRPC call, below the broker's own code), so a
 * test can let another request overtake one that has already been decided.
 */
function holdWorkflowStarts(client: Client, match: (req: { workflowId?: string | null; workflowType?: { name?: string | null } | null }) => boolean) {
  const service = client.connection.workflowService as unknown as Record<string, (req: never) => Promise<unknown>>;
  const names = ['startWorkflowExecution', 'signalWithStartWorkflowExecution'];
  const originals = names.map((n) => [n, service[n]!] as const);
  const { promise: enteredP, resolve: entered } = deferred();
  const { promise: released, resolve: release } = deferred();
  for (const [n, original] of originals) {
    service[n] = async (req: never) => {
      if (match(req)) {
        entered();
        await released;
      }
      return original.call(service, req);
    };
  }
  return {
    entered: enteredP,
    release: () => release(),
    restore: () => {
      for (const [n, original] of originals) service[n] = original;
      release();
    },
  };
}

// ---- bindings belong to one instance ---------------------------------------------------------------------

test('a binding exists only under its own instance: under another (or no) instance GET/last_operation 404, DELETE 410, PUT 409/404, and nothing changes', async () => {
  const x = newId('own-x');
  const y = newId('own-y');
  const z = newId('own-z');
  const b = newId('own-b');
  await provisionAndWait(stack, x);
  await provisionAndWait(stack, y);
  const bindOp = await bindAndWait(stack, x, b);
  const creds = await credentialsOf(stack, x, b);
  const bindBody = { service_id: SERVICE, plan_id: PLAN };

  for (const other of [y, z]) {
    const where = other === y ? 'under another provisioned instance' : 'under a never-provisioned instance';
    assert.equal((await stack.osb('GET', bindingPath(other, b))).statusCode, 404, `GET ${where}`);
    assert.equal((await stack.osb('GET', `${bindingPath(other, b)}/last_operation`)).statusCode, 404, `last_operation ${where}`);
    assert.equal((await stack.osb('GET', `${bindingPath(other, b)}/last_operation?operation=${encodeURIComponent(bindOp)}`)).statusCode, 404, `last_operation of the bind's operation ${where}`);
    assert.equal((await stack.osb('DELETE', `${bindingPath(other, b)}?accepts_incomplete=true&${deleteQuery()}`)).statusCode, 410, `async DELETE ${where}`);
    assert.equal((await stack.osb('DELETE', `${bindingPath(other, b)}?${deleteQuery()}`)).statusCode, 410, `sync DELETE ${where}`);
    // The binding ID is taken by X's binding: 409 under Y. Under Z the instance itself is absent, which the
    // decision table answers first: 404.
    const putStatus = other === y ? 409 : 404;
    const asyncPut = await stack.osb('PUT', `${bindingPath(other, b)}?accepts_incomplete=true`, bindBody);
    assert.equal(asyncPut.statusCode, putStatus, `async PUT ${where}: ${asyncPut.body}`);
    const syncPut = await stack.osb('PUT', bindingPath(other, b), bindBody);
    assert.equal(syncPut.statusCode, putStatus, `sync PUT ${where}: ${syncPut.body}`);
    assert.equal(asyncPut.json().credentials, undefined, `no credentials leak ${where}`);
    assert.equal(syncPut.json().credentials, undefined, `no credentials leak ${where}`);
  }

  // B is untouched: its credentials work, its etcd user exists, and under X it is still there.
  await credentialsWork(creds, 'still-mine');
  assert.ok(await etcdUserExists(creds.username), 'B\'s etcd user still exists');
  const again = await stack.osb('GET', bindingPath(x, b));
  assert.equal(again.statusCode, 200, again.body);
  assert.deepEqual(again.json().credentials, creds);
  assert.deepEqual((await stack.osb('GET', `${bindingPath(x, b)}/last_operation`)).json(), { state: 'succeeded' });

  // No workflow ran for Y or Z: visibility lists B's one bind (under X) and Y's one provision, nothing for Z.
  await waitForRuns(stack, `BindingId="${b}"`);
  await waitForRuns(stack, `InstanceId="${y}"`);
  await sleep(2000); // time for any run the requests above might have started to reach visibility
  const bRuns = await listRuns(stack, `BindingId="${b}"`);
  assert.deepEqual(bRuns.map((w) => [w.type, w.typedSearchAttributes.get(InstanceIdKey)]), [['bind', x]], 'B has exactly its one bind, under X');
  assert.deepEqual((await listRuns(stack, `InstanceId="${y}"`)).map((w) => w.type), ['provision'], 'nothing but its provision ran for Y');
  assert.deepEqual(await listRuns(stack, `InstanceId="${y}" AND BindingId="${b}"`), []);
  assert.deepEqual((await listRuns(stack, `InstanceId="${z}"`)).map((w) => w.workflowId), [], 'nothing ran for Z');
  assert.equal(await workflowExists(stack, z), false);
  assert.equal((await stack.osb('GET', `${instancePath(z)}/last_operation`)).statusCode, 404, 'Z was not created by the requests');
});

// ---- Content-Type without a body ------------------------------------------------------------------------

test('DELETE (unbind, deprovision) and GET with Content-Type: application/json and no body are served like without the header', async () => {
  const x = newId('ctype');
  await provisionAndWait(stack, x);
  const [b1, b2] = [newId('ctype-b1'), newId('ctype-b2')];
  await bindAndWait(stack, x, b1);
  await bindAndWait(stack, x, b2);

  // GETs (fetch, last_operation) with the header.
  const fetched = await stack.osb('GET', instancePath(x), undefined, JSON_WITHOUT_BODY);
  assert.equal(fetched.statusCode, 200, fetched.body);
  assert.equal(fetched.json().plan_id, PLAN);
  assert.deepEqual((await stack.osb('GET', `${instancePath(x)}/last_operation`, undefined, JSON_WITHOUT_BODY)).json(), { state: 'succeeded' });
  const fetchedBinding = await stack.osb('GET', bindingPath(x, b1), undefined, JSON_WITHOUT_BODY);
  assert.equal(fetchedBinding.statusCode, 200, fetchedBinding.body);

  // Unbind: async 202 then 410, sync 200, absent 410 — with and without the header alike.
  const unbind = await stack.osb('DELETE', `${bindingPath(x, b1)}?accepts_incomplete=true&${deleteQuery()}`, undefined, JSON_WITHOUT_BODY);
  assert.equal(unbind.statusCode, 202, unbind.body);
  assert.equal((await pollLastOperation(stack, bindingPath(x, b1), unbind.json().operation)).status, 410);
  const syncUnbind = await stack.osb('DELETE', `${bindingPath(x, b2)}?${deleteQuery()}`, undefined, JSON_WITHOUT_BODY);
  assert.equal(syncUnbind.statusCode, 200, syncUnbind.body);
  assert.deepEqual(syncUnbind.json(), {});
  for (const bid of [b1, b2, newId('ctype-never')]) {
    for (const headers of [JSON_WITHOUT_BODY, {}]) {
      const res = await stack.osb('DELETE', `${bindingPath(x, bid)}?accepts_incomplete=true&${deleteQuery()}`, undefined, headers);
      assert.equal(res.statusCode, 410, `unbind of an absent binding ${JSON.stringify(headers)}: ${res.body}`);
    }
  }

  // Deprovision: async 202 then 410, sync 200, absent 410.
  const del = await stack.osb('DELETE', `${instancePath(x)}?accepts_incomplete=true&${deleteQuery()}`, undefined, JSON_WITHOUT_BODY);
  assert.equal(del.statusCode, 202, del.body);
  assert.equal((await pollLastOperation(stack, instancePath(x), del.json().operation)).status, 410);
  const y = newId('ctype-sync');
  await provisionAndWait(stack, y);
  const syncDel = await stack.osb('DELETE', `${instancePath(y)}?${deleteQuery()}`, undefined, JSON_WITHOUT_BODY);
  assert.equal(syncDel.statusCode, 200, syncDel.body);
  assert.deepEqual(syncDel.json(), {});
  for (const id of [x, y, newId('ctype-never')]) {
    for (const headers of [JSON_WITHOUT_BODY, {}]) {
      const res = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`, undefined, headers);
      assert.equal(res.statusCode, 410, `deprovision of an absent instance ${JSON.stringify(headers)}: ${res.body}`);
    }
  }
});

// ---- provision needs the platform's org and space -------------------------------------------------------

test('a provision without organization_guid or space_guid, or with either empty, is 400 and creates nothing', async () => {
  const cases: Array<[string, Json, RegExp]> = [
    ['no organization_guid', { service_id: SERVICE, plan_id: PLAN, space_guid: ORG_SPACE.space_guid }, /organization_guid/],
    ['no space_guid', { service_id: SERVICE, plan_id: PLAN, organization_guid: ORG_SPACE.organization_guid }, /space_guid/],
    ['empty organization_guid', { ...provisionBody(), organization_guid: '' }, /organization_guid/],
    ['empty space_guid', { ...provisionBody(), space_guid: '' }, /space_guid/],
    ['neither', { service_id: SERVICE, plan_id: PLAN }, /organization_guid|space_guid/],
  ];
  for (const [what, body, names] of cases) {
    const id = newId('orgspace');
    for (const url of [`${instancePath(id)}?accepts_incomplete=true`, instancePath(id)]) {
      const res = await stack.osb('PUT', url, body);
      assert.equal(res.statusCode, 400, `${what} (${url}): ${res.body}`);
      assert.match(String(res.json().description), names, what);
    }
    assert.equal(await workflowExists(stack, id), false, `${what}: no workflow`);
    assert.equal((await stack.worker.registry.registry.open('service-instance', id)).exists(), false, `${what}: no registry entry`);
    assert.equal((await stack.osb('GET', `${instancePath(id)}/last_operation`)).statusCode, 404, `${what}: last_operation knows nothing`);
    assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 404, `${what}: nothing to fetch`);
  }
});

// ---- async-only plans and absent things -------------------------------------------------------------------

test('on the async-only plan, unbind and deprovision of something absent answer 410 even without accepts_incomplete', async () => {
  const q = deleteQuery(ASYNC_ONLY_PLAN);
  const never = newId('ao-never');
  assert.equal((await stack.osb('DELETE', `${instancePath(never)}?${q}`)).statusCode, 410, 'deprovision of a never-provisioned instance');
  assert.equal((await stack.osb('DELETE', `${bindingPath(never, newId('ao-b'))}?${q}`)).statusCode, 410, 'unbind under a never-provisioned instance');

  const id = newId('ao');
  await provisionAndWait(stack, id, { plan_id: ASYNC_ONLY_PLAN });
  assert.equal((await stack.osb('DELETE', `${bindingPath(id, newId('ao-none'))}?${q}`)).statusCode, 410, 'unbind of a never-bound binding');
  const bid = newId('ao-b');
  await bindAndWait(stack, id, bid, { plan_id: ASYNC_ONLY_PLAN });
  // What exists still needs accepts_incomplete on this plan.
  const syncUnbind = await stack.osb('DELETE', `${bindingPath(id, bid)}?${q}`);
  assert.equal(syncUnbind.statusCode, 422, syncUnbind.body);
  assert.equal(syncUnbind.json().error, 'AsyncRequired');
  const unbind = await stack.osb('DELETE', `${bindingPath(id, bid)}?accepts_incomplete=true&${q}`);
  assert.equal(unbind.statusCode, 202, unbind.body);
  assert.equal((await pollLastOperation(stack, bindingPath(id, bid), unbind.json().operation)).status, 410);
  assert.equal((await stack.osb('DELETE', `${bindingPath(id, bid)}?${q}`)).statusCode, 410, 'unbind of an unbound binding');

  const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${q}`);
  assert.equal(del.statusCode, 202, del.body);
  assert.equal((await pollLastOperation(stack, instancePath(id), del.json().operation)).status, 410);
  assert.equal((await stack.osb('DELETE', `${instancePath(id)}?${q}`)).statusCode, 410, 'deprovision of a deprovisioned instance');
  assert.equal((await stack.osb('DELETE', `${bindingPath(id, bid)}?${q}`)).statusCode, 410, 'unbind under a deprovisioned instance');
});

// ---- requests while a deprovision runs ----------------------------------------------------------------------

test('PUT of an existing instance while its deprovision runs is 422 ConcurrencyError, identical or not (so are PATCH and bind)', async () => {
  const id = newId('deprov-put');
  await provisionAndWait(stack, id, { parameters: { quotaKeys: 4 } });
  let deleteOp: string;
  await stack.stopWorker();
  try {
    const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(del.statusCode, 202, del.body);
    deleteOp = del.json().operation as string;
    for (const [what, body] of [
      ['identical', provisionBody({ parameters: { quotaKeys: 4 } })],
      ['different', provisionBody({ parameters: { quotaKeys: 5 } })],
    ] as const) {
      for (const url of [`${instancePath(id)}?accepts_incomplete=true`, instancePath(id)]) {
        const put = await stack.osb('PUT', url, body);
        assert.equal(put.statusCode, 422, `${what} PUT (${url}) during the deprovision: ${put.body}`);
        assert.equal(put.json().error, 'ConcurrencyError');
      }
    }
    const patch = await stack.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 6 } });
    assert.equal(patch.statusCode, 422, patch.body);
    assert.equal(patch.json().error, 'ConcurrencyError');
    const bind = await stack.osb('PUT', `${bindingPath(id, newId('late-b'))}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN });
    assert.equal(bind.statusCode, 422, bind.body);
    assert.equal(bind.json().error, 'ConcurrencyError');
    const again = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.deepEqual([again.statusCode, again.json().operation], [202, deleteOp], 'a repeated DELETE joins the running deprovision');
  } finally {
    await stack.startWorker();
  }
  assert.equal((await pollLastOperation(stack, instancePath(id), deleteOp!)).status, 410);
  assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 404);
  assert.equal(trace.objects.has(id), false, 'the deprovision deleted the instance\'s resources');
});

test('once a DELETE has stopped a provision, a repeat of that provision is 422 ConcurrencyError, not the provision joined, even before a worker handles the DELETE', async () => {
  // Found by the model (seed 20277044): with no worker up, the run's memo still names the provision.
  const id = newId('halted-put');
  const body = provisionBody({ parameters: { quotaKeys: 4 } });
  let deleteOp: string;
  await stack.stopWorker();
  try {
    const put = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, body);
    assert.equal(put.statusCode, 202, put.body);
    const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(del.statusCode, 202, del.body);
    deleteOp = del.json().operation as string;
    for (const url of [`${instancePath(id)}?accepts_incomplete=true`, instancePath(id)]) {
      const again = await stack.osb('PUT', url, body);
      assert.equal(again.statusCode, 422, `the deleted provision repeated (${url}): ${again.body}`);
      assert.equal(again.json().error, 'ConcurrencyError');
    }
    const delAgain = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.deepEqual([delAgain.statusCode, delAgain.json().operation], [202, deleteOp], 'a repeated DELETE joins the deprovision');
    const fetched = await stack.osb('GET', instancePath(id));
    assert.equal(fetched.statusCode, 404, `nothing was ever provisioned, so nothing is shown: ${fetched.body}`);
  } finally {
    await stack.startWorker();
  }
  assert.equal((await pollLastOperation(stack, instancePath(id), deleteOp!)).status, 410, 'the deprovision succeeded');
  assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 404);
  assert.equal(await tenant.get(etcdOwnerKey(`/tenants/${id}`)).string(), null, 'no keyspace is left');
});

test('GET during the deprovision of an instance whose provision failed is 404: nothing was applied', async () => {
  const id = newId('failed-get');
  // Someone else's key in the instance's prefix: the keyspace driver refuses to claim it, the provision fails.
  await tenant.put(`/tenants/${id}/foreign-data`).value('not ours');
  try {
    const put = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
    assert.equal(put.statusCode, 202, put.body);
    assert.equal((await pollLastOperation(stack, instancePath(id), put.json().operation as string)).body.state, 'failed');
    let deleteOp: string;
    await stack.stopWorker();
    try {
      const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
      assert.equal(del.statusCode, 202, del.body);
      deleteOp = del.json().operation as string;
      const fetched = await stack.osb('GET', instancePath(id));
      assert.equal(fetched.statusCode, 404, `while its deprovision waits for a worker: ${fetched.body}`);
    } finally {
      await stack.startWorker();
    }
    assert.equal((await pollLastOperation(stack, instancePath(id), deleteOp!)).status, 410, 'the deprovision succeeded');
    assert.equal(await tenant.get(`/tenants/${id}/foreign-data`).string(), 'not ours', 'someone else\'s key is left alone');
  } finally {
    await tenant.delete().prefix(`/tenants/${id}/`);
  }
});

test('while a binding operation runs, DELETE and PATCH of its instance are 422 ConcurrencyError, and another binding is bound meanwhile', async () => {
  const id = newId('bop');
  await provisionAndWait(stack, id);
  const [b1, b2] = [newId('bop-b1'), newId('bop-b2')];
  await bindAndWait(stack, id, b1);
  // b1's unbind is held at its gate resource: a binding operation that has begun and runs.
  const held = gate.arm();
  let unbindOp: string;
  try {
    const unbind = await stack.osb('DELETE', `${bindingPath(id, b1)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(unbind.statusCode, 202, unbind.body);
    unbindOp = unbind.json().operation as string;
    assert.equal(await Promise.race([held.entered, sleep(60_000).then(() => 'timeout')]), b1, 'the unbind is running');
    for (const url of [`${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`, `${instancePath(id)}?${deleteQuery()}`]) {
      const del = await stack.osb('DELETE', url);
      assert.equal(del.statusCode, 422, `DELETE of the instance while a binding operation runs (${url}): ${del.body}`);
      assert.equal(del.json().error, 'ConcurrencyError');
    }
    const patch = await stack.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 6 } });
    assert.equal(patch.statusCode, 422, patch.body);
    assert.equal(patch.json().error, 'ConcurrencyError');
    assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 200, 'the instance is still there');
    // Operations of different bindings run concurrently.
    await bindAndWait(stack, id, b2);
    assert.equal((await stack.osb('GET', `${bindingPath(id, b1)}/last_operation?operation=${encodeURIComponent(unbindOp)}`)).json().state, 'in progress', 'b1\'s unbind is still held');
  } finally {
    held.release();
  }
  assert.equal((await pollLastOperation(stack, bindingPath(id, b1), unbindOp!)).status, 410);
  const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
  assert.equal(del.statusCode, 202, `once the binding operation ended the DELETE is accepted: ${del.body}`);
  assert.equal((await pollLastOperation(stack, instancePath(id), del.json().operation)).status, 410);
  assert.equal((await stack.osb('GET', `${bindingPath(id, b2)}/last_operation`)).statusCode, 410, 'the deprovision removed b2');
});

test('a late PATCH: accepted, then overtaken by a DELETE, ends failed or gone, never stays in progress, and brings nothing back', async () => {
  const id = newId('late');
  await provisionAndWait(stack, id, { parameters: { quotaKeys: 4 } });
  // The PATCH is decided on a ready instance, but its workflow start is held until the DELETE has finished.
  const hold = holdWorkflowStarts(stack.client, (req) => req.workflowId === instanceWorkflowIdOf(id) && req.workflowType?.name === 'update');
  let patch: Awaited<ReturnType<TestStack['osb']>>;
  try {
    const patchAnswer = stack.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 77 } });
    const first = await Promise.race([hold.entered.then(() => 'held' as const), patchAnswer.then((r) => r), sleep(30_000).then(() => 'timeout' as const)]);
    assert.equal(first, 'held', `the PATCH's workflow start was not intercepted: ${typeof first === 'string' ? first : `${first.statusCode} ${first.body}`}`);
    const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(del.statusCode, 202, `the DELETE overtakes the held PATCH: ${del.body}`);
    assert.equal((await pollLastOperation(stack, instancePath(id), del.json().operation)).status, 410, 'the deprovision finished');
    hold.release();
    patch = await patchAnswer;
  } finally {
    hold.restore();
  }
  const label = patch.statusCode === 422 ? `422 ${String(patch.json().error)}` : String(patch.statusCode);
  assert.ok(['202', '404', '422 ConcurrencyError'].includes(label), `the late PATCH answers 202, 404 or 422 ConcurrencyError: ${label} ${patch.body}`);
  if (patch.statusCode === 202) {
    // pollLastOperation fails if the operation is still in progress after 60 s.
    const final = await pollLastOperation(stack, instancePath(id), patch.json().operation);
    assert.ok(final.status === 410 || (final.status === 200 && final.body.state === 'failed'), `the late update ends failed or gone: ${JSON.stringify(final)}`);
  }
  await until('no RUNNING workflow for the instance', async () => ((await instanceRunning(stack, id)) ? undefined : true));
  await sleep(1500);
  assert.deepEqual(await listRuns(stack, `InstanceId="${id}" AND ExecutionStatus="Running"`), [], 'nothing runs for the instance');
  // The instance stays deleted: no fetch, last_operation gone, no resource came back.
  assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 404);
  assert.equal((await stack.osb('GET', `${instancePath(id)}/last_operation`)).statusCode, 410);
  assert.equal((await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`)).statusCode, 410);
  assert.equal(await tenant.get(etcdOwnerKey(`/tenants/${id}`)).string(), null, 'the keyspace was not re-created');
  assert.equal(trace.objects.has(id), false, 'the switch resource was not re-created');
});

test('a synchronous provision interrupted by a DELETE never answers 201: it answers 500, and the DELETE\'s deprovision succeeds', async () => {
  const id = newId('sync-halt');
  let deleteOp: string;
  let putAnswer: ReturnType<TestStack['osb']>;
  await stack.stopWorker();
  try {
    putAnswer = stack.osb('PUT', instancePath(id), provisionBody());
    await until('the provision to be started', async () => ((await instanceRunning(stack, id)) ? true : undefined));
    const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(del.statusCode, 202, del.body);
    deleteOp = del.json().operation as string;
  } finally {
    await stack.startWorker();
  }
  const put = await putAnswer!;
  assert.equal(put.statusCode, 500, `the interrupted synchronous provision: ${put.statusCode} ${put.body}`);
  assert.ok(String(put.json().description ?? '').length > 0, 'the 500 says why');
  assert.equal((await pollLastOperation(stack, instancePath(id), deleteOp!)).status, 410, 'the DELETE\'s deprovision succeeded');
  assert.equal((await stack.osb('GET', instancePath(id))).statusCode, 404);
  assert.equal(await tenant.get(etcdOwnerKey(`/tenants/${id}`)).string(), null, 'no keyspace is left');
});

test('a DELETE that interrupts a provision while it records its begin still ends in a deprovision that succeeds', { timeout: 120_000 }, async () => {
  // A worker whose activities hold the provision's first registry write (recordBegin) of one instance until the
  // provision has been stopped by the DELETE and continued as a deprovision: the write lands late, after the
  // workflow gave up on it. The deprovision's own recordBegin waits for that late write.
  const id = newId('begin-race');
  const { promise: entered, resolve: provisionBeginEntered } = deferred();
  const { promise: released, resolve: releaseProvisionBegin } = deferred();
  const { promise: lateWriteDone, resolve: provisionBeginDone } = deferred();
  const s = (gated = await startTestStack({
    worker: true,
    activityInterceptors: [
      (ctx) => ({
        inbound: {
          async execute(input, next) {
            if (ctx.info.activityType === 'recordBegin' && ctx.info.workflowExecution?.workflowId === instanceWorkflowIdOf(id)) {
              if (ctx.info.workflowType === 'provision') {
                provisionBeginEntered();
                await released;
                try {
                  return await next(input);
                } finally {
                  provisionBeginDone();
                }
              }
              await Promise.race([lateWriteDone, sleep(20_000)]);
            }
            return next(input);
          },
        },
      }),
    ],
  }));
  let deleteOp: string;
  try {
    const put = await s.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
    assert.equal(put.statusCode, 202, put.body);
    await Promise.race([entered, sleep(30_000)]);
    const del = await s.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(del.statusCode, 202, del.body);
    deleteOp = del.json().operation as string;
    // The provision has stopped and continued as the deprovision before its begin is written.
    await until('the provision to continue as a deprovision', async () => {
      const d = await s.client.workflow.getHandle(instanceWorkflowIdOf(id)).describe().catch(() => undefined);
      return d?.type === 'deprovision' ? true : undefined;
    });
  } finally {
    releaseProvisionBegin();
  }
  const done = await pollLastOperation(s, instancePath(id), deleteOp!);
  assert.equal(done.status, 410, `the DELETE's deprovision succeeds: ${JSON.stringify(done)}`);
  assert.equal((await s.osb('GET', instancePath(id))).statusCode, 404);
  assert.equal((await s.osb('GET', `${instancePath(id)}/last_operation`)).statusCode, 410);
  assert.equal(await tenant.get(etcdOwnerKey(`/tenants/${id}`)).string(), null, 'no keyspace is left');
});

test('a DELETE that stops a provision while one of its creations is in flight waits for it, and the deprovision removes what it made', { timeout: 120_000 }, async () => {
  // The switch resource's creation is held as an API call in flight would be: it does not notice the
  // cancellation and lands when released. A deprovision that went ahead meanwhile would find nothing to delete
  // and leave the late creation behind.
  const id = newId('inflight');
  const held = trace.arm('applyCreateChange');
  let deleteOp: string;
  try {
    const put = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
    assert.equal(put.statusCode, 202, put.body);
    assert.equal(await Promise.race([held.entered, sleep(60_000).then(() => 'timeout')]), id, 'the creation is in flight');
    const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(del.statusCode, 202, del.body);
    deleteOp = del.json().operation as string;
    // Room for a deprovision that does not wait to run to its end (it takes about a second here).
    const early = await Promise.race([pollLastOperation(stack, instancePath(id), deleteOp), sleep(5_000).then(() => undefined)]);
    assert.equal(early, undefined, `the deprovision ended while a creation was still in flight: ${JSON.stringify(early)}`);
  } finally {
    held.release();
  }
  const done = await pollLastOperation(stack, instancePath(id), deleteOp!);
  assert.equal(done.status, 410, `the deprovision succeeds: ${JSON.stringify(done)}`);
  assert.equal(trace.objects.has(id), false, 'the late creation was removed by the deprovision');
  assert.equal(await tenant.get(etcdOwnerKey(`/tenants/${id}`)).string(), null, 'no keyspace is left');
});

test('a DELETE after a provision recorded its end, while no worker closes its run, is 202 at once and the deprovision runs', { timeout: 120_000 }, async () => {
  // A worker whose activities hold the provision's last registry write (recordComplete) of one instance open after
  // it has been written: the registry says "succeeded" but the run cannot take its last step, as when the worker
  // dies between the two. The next operation must not wait for that run (it never closes on its own).
  const id = newId('unclosed');
  const hold = holdRecordComplete(id, 'provision', { after: true });
  const s = (unclosed = await startTestStack({ worker: true, activityInterceptors: [hold.interceptor] }));
  let deleteOp: string;
  let provisionRun: string;
  try {
    const put = await s.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
    assert.equal(put.statusCode, 202, put.body);
    assert.ok(await hold.entered(), 'the provision recorded its end');
    const polled = await s.osb('GET', `${instancePath(id)}/last_operation?operation=${put.json().operation}`);
    assert.equal(polled.json().state, 'succeeded', 'the registry has the provision\'s end');
    provisionRun = (await s.client.workflow.getHandle(instanceWorkflowIdOf(id)).describe()).runId;
    const del = await s.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(del.statusCode, 202, del.body);
    deleteOp = del.json().operation as string;
  } finally {
    hold.release();
  }
  const done = await pollLastOperation(s, instancePath(id), deleteOp!);
  assert.equal(done.status, 410, `the deprovision succeeds: ${JSON.stringify(done)}`);
  const provision = await s.client.workflow.getHandle(instanceWorkflowIdOf(id), provisionRun!).describe();
  assert.equal(provision.status.name, 'TERMINATED', 'the unclosed provision run was superseded');
  // Visibility lists a run's close a moment after it happened.
  const runs = await until('visibility to list both runs closed', async () => {
    const out: string[] = [];
    for await (const w of s.client.workflow.list({ query: `InstanceId="${id}"` })) out.push(`${w.type} ${w.status.name}`);
    return out.some((r) => r.endsWith('RUNNING')) || out.length < 2 ? undefined : out.sort();
  });
  assert.deepEqual(runs, ['deprovision COMPLETED', 'provision TERMINATED'], 'one deprovision run, and the provision run it superseded');
  assert.equal(await tenant.get(etcdOwnerKey(`/tenants/${id}`)).string(), null, 'no keyspace is left');
});

test('a DELETE that decided to stop a provision which then ends before it is told decides again: 202, and a deprovision runs', { timeout: 120_000 }, async () => {
  // The provision's last registry write is held until the DELETE has decided to interrupt it; then the provision
  // is let finish, and only after its run has closed does the broker tell it to stop (seen under load: 500
  // "internal error", WorkflowNotFoundError from the signal).
  const id = newId('ending');
  const hold = holdRecordComplete(id, 'provision');
  const s = (endingProvision = await startTestStack({ worker: true, activityInterceptors: [hold.interceptor] }));
  const operations = (s.broker.osb as unknown as { deps: { operations: { interruptProvision(...args: unknown[]): Promise<unknown> } } }).deps.operations;
  const interrupt = operations.interruptProvision.bind(operations);
  let interruptions = 0;
  operations.interruptProvision = async (...args: unknown[]) => {
    interruptions++;
    if (interruptions === 1) {
      hold.release();
      await s.client.workflow.getHandle(instanceWorkflowIdOf(id)).result();
    }
    return interrupt(...args);
  };
  let deleteOp: string;
  try {
    const put = await s.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
    assert.equal(put.statusCode, 202, put.body);
    assert.ok(await hold.entered(), 'the provision is recording its end');
    const del = await s.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(del.statusCode, 202, del.body);
    deleteOp = del.json().operation as string;
    assert.equal(interruptions, 1, 'the DELETE decided to interrupt the provision once, and then to deprovision');
  } finally {
    hold.release();
  }
  const done = await pollLastOperation(s, instancePath(id), deleteOp!);
  assert.equal(done.status, 410, `the deprovision succeeds: ${JSON.stringify(done)}`);
  assert.equal(await tenant.get(etcdOwnerKey(`/tenants/${id}`)).string(), null, 'no keyspace is left');
});

test('a DELETE whose signal comes while the provision records its end in a local activity still ends in a deprovision that succeeds', { timeout: 120_000 }, async () => {
  // The provision's end is recorded by a local activity, inside a workflow task. The DELETE is decided (provision in
  // progress) and signalled while that activity is held; then it writes. Temporal refuses that task's completion
  // (a signal came meanwhile) and the activity's result is lost with it, but not its write: the next task sees the
  // DELETE first and finds the provision already recorded as succeeded (seen as "deprovision ... ended failed" in
  // the PUT/DELETE race scenario).
  const id = lostEnd.ids.provision;
  const hold = lostEnd.holds.provision;
  const s = (lostEnd.stack = await startTestStack({
    worker: true,
    // The semantics set: its `switch` resource's apply is a regular activity, so the end is recorded in a later
    // workflow task than the begin, as with every driver that is not etcd.
    overrides: { resourceSets: semanticsResourceSets },
    extraDrivers: testDrivers(),
    activityInterceptors: [lostEnd.holds.provision.interceptor, lostEnd.holds.update.interceptor],
  }));
  let deleteOp: string;
  try {
    const put = await s.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
    assert.equal(put.statusCode, 202, put.body);
    assert.ok(await hold.entered(), 'the provision is recording its end in a local activity');
    const del = await s.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(del.statusCode, 202, del.body);
    deleteOp = del.json().operation as string;
  } finally {
    hold.release();
  }
  const done = await pollLastOperation(s, instancePath(id), deleteOp!);
  assert.equal(done.status, 410, `the deprovision succeeds: ${JSON.stringify(done)}`);
  assert.equal(await tenant.get(etcdOwnerKey(`/tenants/${id}`)).string(), null, 'no keyspace is left');
});

test('an update cancelled while it records its success in a local activity is not undone: it ends succeeded', { timeout: 120_000 }, async () => {
  // As above, with a cancellation (brokerflow cancel, the Web UI) for the event that comes during the workflow task:
  // the task that ran the local activity is refused, and the run sees the cancellation before anything else. It
  // must find the recorded success and keep it, not undo an update the registry says succeeded.
  const s = lostEnd.stack;
  assert.ok(s, 'runs after the test that starts the lost-end stack');
  const id = lostEnd.ids.update;
  const hold = lostEnd.holds.update;
  await provisionAndWait(s, id, { parameters: { quotaKeys: 4 } });
  let updateOp: string;
  try {
    const patch = await s.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 6 } });
    assert.equal(patch.statusCode, 202, patch.body);
    updateOp = patch.json().operation as string;
    assert.ok(await hold.entered(), 'the update is recording its end in a local activity');
    await s.client.workflow.getHandle(instanceWorkflowIdOf(id)).cancel();
  } finally {
    hold.release();
  }
  // The registry has the success from the start; what matters is how the run ends and what it leaves applied.
  const ended = await s.client.workflow.getHandle(instanceWorkflowIdOf(id)).result().then(
    (r: unknown) => `completed ${JSON.stringify(r)}`,
    (err: Error) => `failed: ${err.message} ${(err.cause as Error | undefined)?.message ?? ''}`,
  );
  assert.match(ended, /^completed .*"state":"succeeded"/, 'the run ends succeeded');
  const done = await pollLastOperation(s, instancePath(id), updateOp!);
  assert.equal(done.body.state, 'succeeded', `the update's success stands: ${JSON.stringify(done)}`);
  assert.deepEqual(trace.objects.get(id), { id, plan: PLAN, quotaKeys: 6 }, 'and what it applied is not undone');
});

test('a bind refused because a DELETE overtook it can be repeated identically later: the repeat gets a new operation and runs', { timeout: 120_000 }, async () => {
  // The bind's first activity (recordBegin, which takes its share of the instance's lock) is held until the
  // instance has been deprovisioned: the bind was accepted (202) but runs on a state that moved, so it is refused
  // and records nothing. Its run still took its operation ID; an identical bind after the instance is provisioned
  // again must not be handed that closed, failed run.
  const id = newId('refused');
  const bid = newId('refused-b');
  const { promise: inBegin, resolve: entered } = deferred();
  const { promise: released, resolve: release } = deferred();
  const s = (refusing = await startTestStack({
    activityInterceptors: [
      (ctx) => ({
        inbound: {
          async execute(input, next) {
            if (ctx.info.activityType === 'recordBegin' && ctx.info.workflowExecution?.workflowId === bindingWorkflowIdOf(bid)) {
              entered();
              await Promise.race([released, sleep(60_000)]);
            }
            return next(input);
          },
        },
      }),
    ],
  }));
  await provisionAndWait(s, id);
  const bindBody = { service_id: SERVICE, plan_id: PLAN };
  const first = await s.osb('PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, bindBody);
  assert.equal(first.statusCode, 202, first.body);
  const firstOp = first.json().operation as string;
  await inBegin;
  try {
    const del = await s.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(del.statusCode, 202, del.body);
    assert.equal((await pollLastOperation(s, instancePath(id), del.json().operation)).status, 410, 'the deprovision went ahead');
  } finally {
    release();
  }
  const refused = await pollLastOperation(s, bindingPath(id, bid), firstOp);
  assert.ok(refused.status === 410 || refused.body.state === 'failed', `the overtaken bind ended failed or gone: ${JSON.stringify(refused)}`);

  await provisionAndWait(s, id);
  const again = await s.osb('PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, bindBody);
  assert.equal(again.statusCode, 202, again.body);
  const againOp = again.json().operation as string;
  assert.notEqual(againOp, firstOp, 'the repeat is a new operation, not the refused one');
  const done = await pollLastOperation(s, bindingPath(id, bid), againOp);
  assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));
  const fetched = await s.osb('GET', bindingPath(id, bid));
  assert.equal(fetched.statusCode, 200, fetched.body);
  assert.ok(fetched.json().credentials, 'the binding has credentials');
});

test('a synchronous DELETE whose run is superseded after it recorded its end still answers 200', { timeout: 120_000 }, async () => {
  // The deprovision's last registry write (recordComplete) is held open after it has been written, as when the
  // worker dies before the run closes. A PUT meanwhile supersedes (terminates) that run; the DELETE that waits
  // for it must answer from the registry's record (succeeded), not fail on the terminated run.
  const id = newId('sync-superseded');
  const { promise: written, resolve: recorded } = deferred();
  const { promise: released, resolve: release } = deferred();
  const s = (superseded = await startTestStack({
    activityInterceptors: [
      (ctx) => ({
        inbound: {
          async execute(input, next) {
            const result: unknown = await next(input);
            if (ctx.info.activityType === 'recordComplete' && ctx.info.workflowType === 'deprovision' && ctx.info.workflowExecution?.workflowId === instanceWorkflowIdOf(id)) {
              recorded();
              await Promise.race([released, sleep(60_000)]);
            }
            return result;
          },
        },
      }),
    ],
  }));
  await provisionAndWait(s, id);
  const deleting = s.osb('DELETE', `${instancePath(id)}?${deleteQuery()}`);
  try {
    await Promise.race([written, sleep(60_000)]);
    const put = await s.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
    assert.equal(put.statusCode, 202, put.body);
    const done = await pollLastOperation(s, instancePath(id), put.json().operation);
    assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));
  } finally {
    release();
  }
  const del = await deleting;
  assert.equal(del.statusCode, 200, `the synchronous DELETE: ${del.statusCode} ${del.body}`);
  assert.deepEqual(del.json(), {});
});

// ---- deprovision removes bindings -----------------------------------------------------------------------

test('a deprovision removes every binding (resources, entry, credentials); each binding\'s last_operation then answers 410', async () => {
  const id = newId('dep-b');
  await provisionAndWait(stack, id);
  const bids = [newId('dep-b1'), newId('dep-b2')];
  const creds: EtcdCredentials[] = [];
  for (const bid of bids) {
    await bindAndWait(stack, id, bid);
    creds.push(await credentialsOf(stack, id, bid));
  }
  const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
  assert.equal(del.statusCode, 202, del.body);
  assert.equal((await pollLastOperation(stack, instancePath(id), del.json().operation)).status, 410);
  for (const [i, bid] of bids.entries()) {
    assert.equal((await stack.osb('GET', `${bindingPath(id, bid)}/last_operation`)).statusCode, 410, `last_operation of ${bid}`);
    assert.equal((await stack.osb('GET', bindingPath(id, bid))).statusCode, 404);
    assert.equal((await stack.osb('DELETE', `${bindingPath(id, bid)}?accepts_incomplete=true&${deleteQuery()}`)).statusCode, 410);
    assert.equal((await stack.worker.registry.registry.open('service-binding', bid)).exists(), false, `the entry of ${bid} is gone`);
    assert.equal(await etcdUserExists(creds[i]!.username), false, `the etcd user of ${bid} is gone`);
    assert.equal(gate.objects.has(bid), false, `the gate resource of ${bid} is gone`);
  }
  assert.deepEqual((await stack.worker.registry.registry.list('service-binding')).filter((b) => b.values['instance-id'] === id).map((b) => b.id), []);
});

test('a deprovision removes the bindings\' entries and credentials even when the plan has no binding resources', async () => {
  const s = (noBindingResources = await startTestStack({ overrides: { resourceSets: noBindingResourceSets } }));
  const id = newId('nobind');
  await provisionAndWait(s, id);
  const bids = [newId('nobind-b1'), newId('nobind-b2')];
  for (const bid of bids) {
    await bindAndWait(s, id, bid);
    assert.equal((await s.osb('GET', bindingPath(id, bid))).statusCode, 200, 'the binding exists before the deprovision');
  }
  const del = await s.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
  assert.equal(del.statusCode, 202, del.body);
  assert.equal((await pollLastOperation(s, instancePath(id), del.json().operation)).status, 410);
  for (const bid of bids) {
    const lo = await s.osb('GET', `${bindingPath(id, bid)}/last_operation`);
    assert.equal(lo.statusCode, 410, `last_operation of ${bid}: ${lo.statusCode} ${lo.body}`);
    assert.equal((await s.osb('GET', bindingPath(id, bid))).statusCode, 404, `${bid} is not fetchable`);
    const entry = await s.worker.registry.registry.open('service-binding', bid);
    assert.equal(entry.exists(), false, `the entry of ${bid} is gone`);
    assert.equal(entry.get('credentials'), undefined, `the credentials of ${bid} are gone`);
  }
  assert.deepEqual((await s.worker.registry.registry.list('service-binding')).filter((b) => b.values['instance-id'] === id).map((b) => b.id), []);
});

// ---- the CLI follows the deprovision, not its bindings ----------------------------------------------------

/** Runs the CLI (`--json`) on a config; `lines` fills as JSON lines arrive. */
function startCli(configFile: string, args: string[]): { lines: Json[]; done: Promise<{ code: number | null; stdout: string; stderr: string; lines: Json[] }> } {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TEMPORAL_')));
  const child = spawn(process.execPath, [bin, '--config', configFile, '--json', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const lines: Json[] = [];
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    const complete = stdout.split('\n').slice(0, -1).filter((l) => l.trim() !== '');
    lines.splice(0, lines.length, ...complete.map((l) => JSON.parse(l) as Json));
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string; lines: Json[] }>((res) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr, lines: [...lines] });
    }),
  );
  return { lines, done };
}

test('status --watch during a deprovision that cleans up bindings shows the deprovision\'s operation, not a binding\'s', { timeout: 180_000 }, async () => {
  const id = newId('watch');
  await provisionAndWait(stack, id);
  const bids = [newId('watch-b1'), newId('watch-b2')];
  for (const bid of bids) await bindAndWait(stack, id, bid);
  // The deprovision's binding cleanup is held at the first binding deletion while we look.
  const held = gate.arm();
  let deleteOp: string;
  let watch: ReturnType<typeof startCli>;
  try {
    const del = await stack.osb('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
    assert.equal(del.statusCode, 202, del.body);
    deleteOp = del.json().operation as string;
    watch = startCli(stack.configFile, ['status', id, '--watch']);
    const heldBinding = await Promise.race([held.entered, sleep(60_000).then(() => undefined)]);
    assert.ok(heldBinding && bids.includes(heldBinding), `the deprovision is cleaning up a binding of the instance: ${String(heldBinding)}`);
    await until('the first --watch line', async () => (watch.lines.length > 0 ? true : undefined), 60_000);
    await sleep(2000); // several --watch polls while the binding cleanup is held
    const once = await startCli(stack.configFile, ['status', id]).done;
    assert.equal(once.code, 0, once.stdout + once.stderr);
    const snap = once.lines[once.lines.length - 1]!;
    assert.deepEqual([snap.operation, snap.operationId, snap.state, snap.instanceId, snap.bindingId], ['deprovision', deleteOp, 'in progress', id, undefined], 'a one-shot status while the bindings are cleaned up');
  } finally {
    held.release();
  }
  const run = await watch!.done;
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.ok(run.lines.length >= 2, run.stdout);
  for (const l of run.lines) {
    assert.deepEqual([l.operation, l.operationId, l.instanceId, l.bindingId], ['deprovision', deleteOp!, id, undefined], `every --watch line is the deprovision's: ${JSON.stringify(l)}`);
  }
  assert.deepEqual(run.lines.slice(0, -1).map((l) => l.state), run.lines.slice(0, -1).map(() => 'in progress'));
  const last = run.lines[run.lines.length - 1]!;
  assert.deepEqual([last.state, last.gone], ['succeeded', true], JSON.stringify(last));
});

// ---- after a catalog upgrade: maintenance versions and failed updates -----------------------------------

let prepared: Promise<{ s: TestStack; maint: string; failing: string }> | undefined;
/**
 * Provisions, with the example catalog (every plan at 1.0.0), the instances the upgrade tests use, then stops this
 * stack's worker and serves the same registry and task queue with the upgraded catalog (standard at 2.0.0).
 */
function prepareUpgrade(): Promise<{ s: TestStack; maint: string; failing: string }> {
  prepared ??= (async () => {
    const maint = newId('maint');
    const failing = newId('failing');
    await provisionAndWait(stack, maint, { parameters: { quotaKeys: 3 } });
    await provisionAndWait(stack, failing, { plan_id: ASYNC_ONLY_PLAN, parameters: { quotaKeys: 3 } });
    await stack.stopWorker();
    upgraded = await startTestStack({ overrides: semanticsConfig(upgradedCatalog), extraDrivers: testDrivers() });
    return { s: upgraded, maint, failing };
  })();
  return prepared;
}

test('PATCH without maintenance_info keeps the applied maintenance version; a version other than the plan\'s is 422 MaintenanceInfoConflict', async () => {
  const { s, maint } = await prepareUpgrade();
  const applied = { service_id: SERVICE, plan_id: PLAN, parameters: { quotaKeys: 3 }, maintenance_info: { version: '1.0.0' } };
  assert.deepEqual((await s.osb('GET', instancePath(maint))).json(), applied, 'provisioned at 1.0.0; the catalog now says 2.0.0');
  const runBefore = (await s.client.workflow.getHandle(instanceWorkflowIdOf(maint)).describe()).runId;

  for (const version of ['9.9.9', '1.0.0']) {
    const res = await s.osb('PATCH', `${instancePath(maint)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 4 }, maintenance_info: { version } });
    assert.equal(res.statusCode, 422, `maintenance_info ${version}: ${res.body}`);
    assert.equal(res.json().error, 'MaintenanceInfoConflict');
  }
  assert.equal((await s.client.workflow.getHandle(instanceWorkflowIdOf(maint)).describe()).runId, runBefore, 'a refused PATCH starts nothing');
  assert.deepEqual((await s.osb('GET', instancePath(maint))).json(), applied, 'a refused PATCH changes nothing');

  const patch = await s.osb('PATCH', `${instancePath(maint)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 4 } });
  assert.equal(patch.statusCode, 202, patch.body);
  assert.deepEqual((await pollLastOperation(s, instancePath(maint), patch.json().operation)).body, { state: 'succeeded' });
  assert.deepEqual((await s.osb('GET', instancePath(maint))).json(), { ...applied, parameters: { quotaKeys: 4 } }, 'the parameters changed, the maintenance version did not');
  assert.deepEqual(trace.objects.get(maint), { id: maint, plan: PLAN, quotaKeys: 4 });

  // Naming the plan's version is the upgrade.
  const upgrade = await s.osb('PATCH', `${instancePath(maint)}?accepts_incomplete=true`, { service_id: SERVICE, maintenance_info: { version: '2.0.0' } });
  assert.equal(upgrade.statusCode, 202, upgrade.body);
  assert.deepEqual((await pollLastOperation(s, instancePath(maint), upgrade.json().operation)).body, { state: 'succeeded' });
  assert.deepEqual((await s.osb('GET', instancePath(maint))).json(), { ...applied, parameters: { quotaKeys: 4 }, maintenance_info: { version: '2.0.0' } });
});

test('a failed update leaves the applied plan, parameters and maintenance version; an identical PATCH then starts a new update that runs', async () => {
  const { s, failing } = await prepareUpgrade();
  const applied = { service_id: SERVICE, plan_id: ASYNC_ONLY_PLAN, parameters: { quotaKeys: 3 }, maintenance_info: { version: '1.0.0' } };
  assert.deepEqual((await s.osb('GET', instancePath(failing))).json(), applied);
  // A plan change to the upgraded standard plan, new parameters, and the new plan's maintenance version.
  const target = { service_id: SERVICE, plan_id: PLAN, parameters: { quotaKeys: 5 }, maintenance_info: { version: '2.0.0' } };
  behaviours.switch!.failAlways = { applyUpdateChange: 'fatal' };
  let firstOp: string;
  try {
    const first = await s.osb('PATCH', `${instancePath(failing)}?accepts_incomplete=true`, target);
    assert.equal(first.statusCode, 202, first.body);
    firstOp = first.json().operation as string;
    const failed = await pollLastOperation(s, instancePath(failing), firstOp);
    assert.equal(failed.status, 200);
    assert.equal(failed.body.state, 'failed', JSON.stringify(failed.body));
    assert.equal(failed.body.instance_usable, true);
    assert.equal(failed.body.update_repeatable, true);
    assert.match(String(failed.body.description), /switch/, 'the description names the failing resource');
    const latest = await s.osb('GET', `${instancePath(failing)}/last_operation`);
    assert.equal(latest.json().state, 'failed', 'the failed update is the last instance operation');
    assert.deepEqual((await s.osb('GET', instancePath(failing))).json(), applied, 'fetch shows the applied values, not the failed target');
    assert.deepEqual(trace.objects.get(failing), { id: failing, plan: ASYNC_ONLY_PLAN, quotaKeys: 3 });
  } finally {
    delete behaviours.switch!.failAlways;
  }

  const retry = await s.osb('PATCH', `${instancePath(failing)}?accepts_incomplete=true`, target);
  assert.equal(retry.statusCode, 202, `an identical PATCH after the failure starts a new update: ${retry.statusCode} ${retry.body}`);
  const retryOp = retry.json().operation as string;
  assert.notEqual(retryOp, firstOp!, 'a new operation');
  assert.deepEqual((await pollLastOperation(s, instancePath(failing), retryOp)).body, { state: 'succeeded' });
  assert.deepEqual((await s.osb('GET', instancePath(failing))).json(), { service_id: SERVICE, plan_id: PLAN, parameters: { quotaKeys: 5 }, maintenance_info: { version: '2.0.0' } });
  assert.deepEqual(trace.objects.get(failing), { id: failing, plan: PLAN, quotaKeys: 5 }, 'the new update ran');
  // Now the target is what is applied: nothing to do.
  const same = await s.osb('PATCH', `${instancePath(failing)}?accepts_incomplete=true`, target);
  assert.equal(same.statusCode, 200, same.body);
  assert.deepEqual(same.json(), {});
});
