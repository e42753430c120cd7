// etcd outage: the tenant etcd — the one the etcd-prefix and etcd-user drivers manage — is stopped for 20 s while
// provisions and binds are in flight. The drivers' calls fail as Unavailable, Temporal retries them with the step
// policy's backoff (visible as activity attempts in history), and once etcd is back every operation completes
// with each write made exactly once: one owner key per keyspace, one user and one role with one permission per
// binding, and a password that still logs in.
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { etcdUserName } from '../../adapters/resources';
import { startTestStack, type TestStack } from '../support/stack';
import { ORG_SPACE, PLAN, SERVICE, bindingPath, bindingWorkflowIdOf, instancePath, instanceWorkflowIdOf } from '../support/osb';
import { startOwnTenantEtcd, type OwnTenantEtcd } from '../support/reliability/servers';
import { activityAttempts, managedRoles, managedUsers, prefixInventory, waitFor } from '../support/reliability/inspect';
import { Scenario, mapConcurrently, seconds } from '../support/reliability/scenario';

const BOUND = 12;
const FRESH = 12;
const OUTAGE_MS = 20_000;

const scenario = new Scenario({
  id: 'etcd-outage',
  order: 3,
  title: 'Tenant etcd stopped for 20 s during provisions and binds',
  fault: `${BOUND} instances are provisioned; then ${BOUND} binds (one per instance) and ${FRESH} new provisions are accepted and the tenant etcd the drivers manage is stopped at once, for ${OUTAGE_MS / 1000} s, then started again on the same data.`,
  claim: 'Operations wait with backoff (activity attempts > 1 in their histories) and then all succeed; every keyspace has exactly one owner key, every binding exactly one user with exactly its own role and one permission on its prefix, no other brokerflow user or role exists, and every binding password logs in.',
});
after(() => scenario.save());

let tenant: OwnTenantEtcd | undefined;
let stack: TestStack | undefined;
after(async () => {
  await stack?.close();
  await tenant?.server.stop();
});

type Op = { kind: 'bind' | 'provision'; instanceId: string; bindingId?: string; path: string; operation: string };

scenario.test('operations wait out a 20 s tenant etcd outage with backoff, then complete with no lost or doubled write', { timeout: 360_000 }, async () => {
  const t = (tenant = await startOwnTenantEtcd('etcd-outage'));
  const s = (stack = await startTestStack({
    overrides: { drivers: { etcd: { endpoints: [t.server.endpoint], auth: { username: 'root', password: t.rootPassword } } } },
  }));
  const tag = `eo${randomBytes(4).toString('hex')}`;
  const bound = Array.from({ length: BOUND }, (_, i) => `${tag}-b${i}`);
  const fresh = Array.from({ length: FRESH }, (_, i) => `${tag}-f${i}`);

  const accept = async (kind: Op['kind'], instanceId: string, bindingId?: string): Promise<Op> => {
    const path = bindingId ? bindingPath(instanceId, bindingId) : instancePath(instanceId);
    const res = await s.osb('PUT', `${path}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN, ...(bindingId ? {} : ORG_SPACE) });
    assert.equal(res.statusCode, 202, `${kind} ${instanceId}: ${res.body}`);
    return { kind, instanceId, ...(bindingId ? { bindingId } : {}), path, operation: res.json().operation as string };
  };
  const stateOf = async (op: Op) => {
    const res = await s.osb('GET', `${op.path}/last_operation?operation=${encodeURIComponent(op.operation)}`);
    if (res.statusCode !== 200) return { state: `HTTP ${res.statusCode}` };
    const body = res.json() as { state: string; description?: string };
    return { state: body.state, ...(body.description ? { description: body.description } : {}) };
  };
  const finished = new Map<Op, { at: number; state: string; description?: string }>();
  const waitAll = async (ops: Op[], timeoutMs: number) =>
    waitFor(
      `${ops.length} operations to finish`,
      async () => {
        await mapConcurrently(ops, 8, async (op) => {
          if (finished.has(op)) return;
          const st = await stateOf(op);
          if (st.state !== 'in progress') finished.set(op, { at: Date.now(), ...st });
        });
        return ops.every((op) => finished.has(op)) ? true : undefined;
      },
      timeoutMs,
      1000,
    );

  const setup = await mapConcurrently(bound, 6, (id) => accept('provision', id));
  await waitAll(setup, 120_000);
  assert.deepEqual(setup.map((op) => finished.get(op)!.state), setup.map(() => 'succeeded'));

  const during = await mapConcurrently([...bound.map((id) => ['bind', id] as const), ...fresh.map((id) => ['provision', id] as const)], 8, ([kind, id]) =>
    accept(kind, id, kind === 'bind' ? `${id}-bind` : undefined),
  );
  const stopAt = Date.now();
  await t.server.stop();
  await new Promise((r) => setTimeout(r, Math.max(0, stopAt + OUTAGE_MS - Date.now())));
  const finishedDuringOutage = during.filter((op) => finished.has(op)).length;
  await t.server.restart();
  const backAt = Date.now();
  await waitAll(during, 180_000);
  const allDone = Math.max(...during.map((op) => finished.get(op)!.at));

  // Backoff, as Temporal recorded it: the attempt each activity ended on, and how long it spent retrying.
  // A bind runs on its binding's workflow, a provision on its instance's (docs/design/osb-semantics.md).
  const workflowOf = (op: Op) => (op.bindingId ? bindingWorkflowIdOf(op.bindingId) : instanceWorkflowIdOf(op.instanceId));
  const attempts = await mapConcurrently(during, 6, async (op) => ({ op, acts: await activityAttempts(s.client.workflow.getHandle(workflowOf(op))) }));
  const retried = attempts.filter((a) => a.acts.some((x) => x.attempt > 1));
  const maxAttempt = Math.max(...attempts.flatMap((a) => a.acts.map((x) => x.attempt)));
  const maxRetrying = Math.max(...attempts.flatMap((a) => a.acts.map((x) => x.retryingMs)));
  const failureSample = attempts.flatMap((a) => a.acts.filter((x) => x.lastFailure).map((x) => `${x.type}: ${x.lastFailure}`))[0] ?? '';

  // What etcd holds now.
  const root = t.root();
  const inventory = await prefixInventory(root, `${tag}-`);
  const users = await managedUsers(root);
  const roles = await managedRoles(root);
  const expectedUsers = new Map(bound.map((id) => [etcdUserName(`${id}-bind`), id]));
  const userProblems = users.flatMap((u) => {
    const id = expectedUsers.get(u.name);
    if (!id) return [`unexpected user ${u.name}`];
    const p = u.permissions;
    const ok =
      u.roles.length === 1 && u.roles[0] === u.name && p.length === 1 && p[0]!.permission === 'Readwrite' && p[0]!.key === `/tenants/${id}/` && p[0]!.rangeEnd === `/tenants/${id}0`;
    return ok ? [] : [`${u.name}: roles ${u.roles.join(',')}, permissions ${JSON.stringify(p)}`];
  });
  const missingUsers = [...expectedUsers.keys()].filter((n) => !users.some((u) => u.name === n));
  // Each binding's credentials, as the application gets them, still log in and reach only their prefix.
  const logins = await mapConcurrently(bound, 4, async (id) => {
    const res = await s.osb('GET', bindingPath(id, `${id}-bind`));
    const c = res.json().credentials as { username: string; password: string; keyPrefix: string };
    const app = new Etcd3({ hosts: t.server.endpoint, auth: { username: c.username, password: c.password } });
    try {
      await app.put(`${c.keyPrefix}probe`).value('ok');
      const inside = await app.get(`${c.keyPrefix}probe`).string();
      const outside = await app
        .put(`/tenants/${tag}-elsewhere/x`)
        .value('no')
        .then(
          () => 'allowed',
          () => 'denied',
        );
      return inside === 'ok' && outside === 'denied';
    } finally {
      app.close();
    }
  });
  root.close();
  const keyspaceOwners = [...bound, ...fresh].map((id) => inventory.owners.get(id) ?? []);
  const strayKeys = inventory.otherKeys.filter((k) => !/\/probe$/.test(k));

  const states = during.map((op) => finished.get(op)!.state);
  const succeeded = states.filter((x) => x === 'succeeded').length;
  scenario.summary.attempted = during.length;
  scenario.summary.completed = succeeded;
  scenario.summary.duplicated = keyspaceOwners.filter((o) => o.length > 1).length + userProblems.length;
  scenario.summary.lost = during.length - succeeded + keyspaceOwners.filter((o) => o.length === 0).length + missingUsers.length;
  scenario.summary.recovery = `${seconds(allDone - backAt)} after etcd was back`;
  scenario.figure('operations in flight when etcd stopped (binds + provisions)', `${BOUND} + ${FRESH}`);
  scenario.figure('etcd outage', backAt - stopAt, 'ms');
  scenario.figure('operations finished while etcd was down', finishedDuringOutage);
  scenario.figure('operations with an activity retried (attempt > 1)', `${retried.length} of ${during.length}`);
  scenario.figure('highest activity attempt', maxAttempt);
  scenario.figure('longest time an activity spent retrying', maxRetrying, 'ms');
  scenario.figure('etcd back to all operations finished', allDone - backAt, 'ms');
  scenario.figure('operations succeeded', succeeded);
  scenario.figure('keyspaces with one owner key / none / more than one', `${keyspaceOwners.filter((o) => o.length === 1).length} / ${keyspaceOwners.filter((o) => o.length === 0).length} / ${keyspaceOwners.filter((o) => o.length > 1).length}`);
  scenario.figure('binding users as expected / missing / wrong', `${users.length - userProblems.length} / ${missingUsers.length} / ${userProblems.length}`);
  scenario.figure('brokerflow roles in etcd (expected one per binding)', roles.length);
  scenario.figure('binding passwords that log in and are confined to their prefix', `${logins.filter(Boolean).length} of ${BOUND}`);
  if (failureSample) scenario.note(`The failure Temporal recorded before the last attempt, for example: "${failureSample.slice(0, 200)}".`);
  scenario.note(
    'Retries follow the step policy of workflows/reconcile.ts (1 s initial interval, doubling, 30 s cap, 7 attempts): an activity that ' +
      'started failing when etcd stopped makes its 6th attempt about 31 s later, so a 20 s outage costs up to ~11 s more after etcd is back.',
  );

  const failures = during.filter((op) => finished.get(op)!.state !== 'succeeded').map((op) => `${op.kind} ${op.instanceId}: ${finished.get(op)!.description ?? finished.get(op)!.state}`);
  for (const f of failures.slice(0, 3)) scenario.note(`Failed: ${f.slice(0, 400)}`);
  assert.deepEqual(failures, [], 'every operation succeeded');
  assert.ok(retried.length > 0, 'the outage is visible as retried activities in history');
  assert.ok(keyspaceOwners.every((o, i) => o.length === 1 && o[0] === [...bound, ...fresh][i]), `one owner key per keyspace: ${JSON.stringify(keyspaceOwners)}`);
  assert.deepEqual(strayKeys, [], 'nothing else written under the keyspaces');
  assert.deepEqual(missingUsers, [], 'every binding has its user');
  assert.deepEqual(userProblems, [], 'each user has exactly its own role and one permission');
  assert.equal(roles.length, BOUND, 'no orphaned role');
  assert.deepEqual(logins, bound.map(() => true), 'every binding password logs in and stays in its prefix');
});
