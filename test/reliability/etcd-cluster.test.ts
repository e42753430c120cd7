// etcd as users run it: a 3-member cluster holds the registry (etcd backend, through the datastore) and is the
// tenant etcd the etcd-prefix and etcd-user drivers manage. Provisions and binds run over the OSB API while one
// member at a time is killed with SIGKILL and started again: the leader (found through the maintenance status
// API), then a follower, then the leader again. The clients must move to the members that are left, so every
// operation completes exactly once: nothing lost, nothing doubled, nothing left in progress or holding a lock.
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { etcdUserName } from '../../adapters/resources';
import { startTestStack, type TestStack } from '../support/stack';
import { ORG_SPACE, PLAN, SERVICE, bindingPath, instancePath } from '../support/osb';
import { startOwnEtcdCluster, type OwnEtcdCluster } from '../support/reliability/servers';
import { duplicatedRuns, managedRoles, managedUsers, prefixInventory, settledRuns, waitFor } from '../support/reliability/inspect';
import { Scenario, percentile, seconds } from '../support/reliability/scenario';
import type { EtcdClusterMember } from '../../scripts/lib/etcd';

const INSTANCES = 30;
/** One instance (provision, then its bind) starts this often, so operations are in flight at every kill. */
const START_EVERY_MS = 900;
/** Which member each kill takes; the first comes once the workload runs, the next ones this far apart. */
const KILLS = ['leader', 'follower', 'leader'] as const;
const FIRST_KILL_AT_MS = 4_000;
const KILL_EVERY_MS = 9_000;
/** How long a killed member stays down before it is started again. */
const DOWN_MS = 4_000;
/** How long the platform waits on one operation before it calls it stuck. */
const STUCK_MS = 90_000;

const scenario = new Scenario({
  id: 'etcd-cluster',
  order: 8,
  title: 'etcd cluster: a member killed with SIGKILL during provisions and binds',
  fault: `A 3-member etcd cluster (authentication on) holds the registry (etcd backend) and is the tenant etcd the drivers manage; brokerflow is configured with all three client URLs. ${INSTANCES} instances are provisioned and bound over the OSB API, one starting every ${START_EVERY_MS} ms; meanwhile one member at a time is killed with SIGKILL (${KILLS.join(', then ')}; the leader found through the maintenance status API), left down for ${DOWN_MS / 1000} s and started again on its data. The platform repeats a request answered with a 5xx after its Retry-After.`,
  claim: 'Every provision and bind succeeds, exactly once (one workflow run each, one keyspace per instance, one user with its own role per binding); a request answered with a 5xx while a member was down succeeds when the platform repeats it; no registry entry is left in progress, no binding share is left held on an instance, no workflow run is left running; the restarted members catch up.',
});
after(() => scenario.save());

let etcd: OwnEtcdCluster | undefined;
let stack: TestStack | undefined;
after(async () => {
  await stack?.close();
  await etcd?.cluster.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One OSB request as the platform sent it, and what it got. */
interface Sent {
  at: number;
  answeredAt: number;
  what: 'provision' | 'bind' | 'last_operation';
  status: number;
}

/** One operation as the platform drove it. */
interface Op {
  kind: 'provision' | 'bind';
  instanceId: string;
  bindingId?: string;
  /** The 5xx answers to its PUT before it was accepted. */
  refused: number[];
  acceptedAt?: number;
  /** When last_operation first gave a final state (or a 200/201 answered the PUT itself). */
  finishedAt?: number;
  final?: string;
}

/** One member kill and what it cost. */
interface Kill {
  role: 'leader' | 'follower';
  member: string;
  at: number;
  /** When the members that are left agreed on a leader again (the old one for a follower kill). */
  leaderAt?: number;
  newLeader?: string;
  /** When the member answered /health again after its restart. */
  backAt?: number;
}

scenario.test(`${INSTANCES} provisions and binds complete exactly once while etcd members (the leader twice) are killed`, { timeout: 240_000 }, async () => {
  const e = (etcd = await startOwnEtcdCluster('etcd-cluster'));
  const auth = { username: 'root', password: e.rootPassword };
  const s = (stack = await startTestStack({
    overrides: {
      etcd: { endpoints: e.cluster.endpoints, prefix: `/bf-${randomBytes(4).toString('hex')}`, auth },
      registry: { backend: 'etcd' },
      drivers: { etcd: { endpoints: e.cluster.endpoints, auth } },
    },
  }));
  const tag = `ec${randomBytes(4).toString('hex')}`;
  const ids = Array.from({ length: INSTANCES }, (_, i) => `${tag}-${String(i).padStart(2, '0')}`);
  const bindingOf = (id: string) => `${id}-b`;

  const sent: Sent[] = [];
  const request = async (what: Sent['what'], method: 'GET' | 'PUT', url: string, body?: unknown): Promise<LightMyRequestResponse> => {
    const at = Date.now();
    const res = await s.osb(method, url, body);
    sent.push({ at, answeredAt: Date.now(), what, status: res.statusCode });
    return res;
  };

  // The platform: PUT until accepted (a 5xx is repeated after its Retry-After), then poll last_operation.
  const drive = async (op: Op): Promise<void> => {
    const path = op.bindingId ? bindingPath(op.instanceId, op.bindingId) : instancePath(op.instanceId);
    const body = op.bindingId ? { service_id: SERVICE, plan_id: PLAN } : { service_id: SERVICE, plan_id: PLAN, ...ORG_SPACE };
    const deadline = Date.now() + STUCK_MS;
    let operation: string | undefined;
    while (operation === undefined) {
      const res = await request(op.kind, 'PUT', `${path}?accepts_incomplete=true`, body);
      if (res.statusCode === 202) {
        operation = res.json().operation as string;
        op.acceptedAt = Date.now();
      } else if (res.statusCode === 200 || res.statusCode === 201) {
        // A repeat of a request whose first answer was a 5xx, after its operation had finished.
        op.acceptedAt = op.finishedAt = Date.now();
        op.final = 'succeeded';
        return;
      } else if (res.statusCode >= 500 && Date.now() < deadline) {
        op.refused.push(res.statusCode);
        await sleep(Number(res.headers['retry-after'] ?? 1) * 1000);
      } else {
        op.final = `HTTP ${res.statusCode}: ${res.body.slice(0, 200)}`;
        return;
      }
    }
    for (;;) {
      const res = await request('last_operation', 'GET', `${path}/last_operation?operation=${encodeURIComponent(operation)}`);
      if (res.statusCode === 200) {
        const b = res.json() as { state: string; description?: string };
        if (b.state !== 'in progress') {
          op.finishedAt = Date.now();
          op.final = b.state === 'failed' ? `failed: ${b.description ?? ''}` : b.state;
          return;
        }
      } else if (res.statusCode < 500) {
        op.finishedAt = Date.now();
        op.final = `HTTP ${res.statusCode}`;
        return;
      }
      if (Date.now() > deadline) {
        op.final = 'stuck';
        return;
      }
      await sleep(250);
    }
  };

  const ops: Op[] = [];
  const t0 = Date.now();
  const workload = Promise.all(
    ids.map(async (id, i) => {
      await sleep(i * START_EVERY_MS);
      const provision: Op = { kind: 'provision', instanceId: id, refused: [] };
      ops.push(provision);
      await drive(provision);
      if (provision.final !== 'succeeded') return;
      const bind: Op = { kind: 'bind', instanceId: id, bindingId: bindingOf(id), refused: [] };
      ops.push(bind);
      await drive(bind);
    }),
  );

  // The faults, while the workload runs.
  const kills: Kill[] = [];
  const nameOf = (m: EtcdClusterMember | undefined) => m?.name.replace(/^.*-(\d+)$/, 'member $1') ?? 'none';
  for (const [k, role] of KILLS.entries()) {
    await sleep(Math.max(0, t0 + FIRST_KILL_AT_MS + k * KILL_EVERY_MS - Date.now()));
    const leader = await waitFor('the members to agree on a leader', () => e.leader(), 20_000, 50);
    const victim = role === 'leader' ? leader : e.cluster.members.find((m) => m !== leader)!;
    const left = e.cluster.members.filter((m) => m !== victim);
    await victim.process.kill();
    const kill: Kill = { role, member: nameOf(victim), at: Date.now() };
    kills.push(kill);
    // The members that are left elect a new leader (a follower kill keeps the old one).
    const next = await waitFor('a leader among the members that are left', async () => (await e.leader(left)) ?? undefined, 20_000, 20);
    kill.leaderAt = Date.now();
    kill.newLeader = nameOf(next);
    await sleep(Math.max(0, kill.at + DOWN_MS - Date.now()));
    await victim.restart();
    kill.backAt = Date.now();
  }
  await workload;
  const lastBack = Math.max(...kills.map((k) => k.backAt!));

  // The members caught up: all three follow one leader and reach the same raft index.
  const caughtUp = await waitFor(
    'every member to follow one leader at one raft index',
    async () => {
      const st = await Promise.all(e.cluster.members.map((m) => e.status(m)));
      return new Set(st.map((x) => x.leader)).size === 1 && !st.some((x) => x.leader === '0') && new Set(st.map((x) => x.raftIndex)).size === 1 ? st : undefined;
    },
    30_000,
    200,
  );

  // What the registry holds now.
  const registry = s.worker.registry.registry;
  const instances = (await registry.list('service-instance')).filter((x) => x.id.startsWith(`${tag}-`));
  const bindings = (await registry.list('service-binding')).filter((x) => x.id.startsWith(`${tag}-`));
  const leftInProgress = [...instances, ...bindings].filter((x) => x.operation?.state === 'in progress').map((x) => x.id);
  const sharesHeld = (
    await Promise.all(
      ids.map(async (id) => {
        const entry = await registry.open('service-instance', id);
        return Object.keys(registry.bindingShares(entry)).length > 0 ? [id] : [];
      }),
    )
  ).flat();
  // What the tenant etcd holds.
  const root = e.root();
  const inventory = await prefixInventory(root, `${tag}-`);
  const expectedUsers = new Map(ids.map((id) => [etcdUserName(bindingOf(id)), id]));
  const users = await managedUsers(root, new Set(expectedUsers.keys()));
  const roles = (await managedRoles(root)).filter((r) => expectedUsers.has(r));
  root.close();
  const userProblems = users.flatMap((u) => {
    const id = expectedUsers.get(u.name)!;
    const p = u.permissions;
    const ok = u.roles.length === 1 && u.roles[0] === u.name && p.length === 1 && p[0]!.permission === 'Readwrite' && p[0]!.key === `/tenants/${id}/`;
    return ok ? [] : [`${u.name}: roles ${u.roles.join(',')}, permissions ${JSON.stringify(p)}`];
  });
  const missingUsers = [...expectedUsers.keys()].filter((n) => !users.some((u) => u.name === n));
  const keyspaceOwners = ids.map((id) => inventory.owners.get(id) ?? []);
  // What Temporal ran.
  const runs = await settledRuns(s.client, s.config.temporal.taskQueue, ops.filter((o) => o.acceptedAt !== undefined).length);
  const provisionRuns = runs.filter((r) => r.type === 'provision');
  const bindRuns = runs.filter((r) => r.type === 'bind');
  const duplicated = new Map([...duplicatedRuns(runs, 'provision'), ...duplicatedRuns(runs, 'bind')]);
  const stillRunning = runs.filter((r) => r.status === 'RUNNING').map((r) => r.workflowId);

  // Figures.
  const succeeded = ops.filter((o) => o.final === 'succeeded');
  const notSucceeded = ops.filter((o) => o.final !== 'succeeded').map((o) => `${o.kind} ${o.instanceId}: ${o.final ?? 'no answer'}`);
  const fiveXx = sent.filter((r) => r.status >= 500);
  const refusedOps = ops.filter((o) => o.refused.length > 0);
  const byStatus = (rs: Sent[]) => {
    const counts = new Map<string, number>();
    for (const r of rs) counts.set(`${r.what} ${r.status}`, (counts.get(`${r.what} ${r.status}`) ?? 0) + 1);
    return [...counts].map(([k, n]) => `${n}x ${k}`).join(', ') || 'none';
  };
  const latencies = succeeded.map((o) => o.finishedAt! - o.acceptedAt!);
  const allDone = Math.max(...ops.map((o) => o.finishedAt ?? Date.now()));
  const dupKeyspaces = keyspaceOwners.filter((o) => o.length > 1).length;
  const missingKeyspaces = keyspaceOwners.filter((o) => o.length === 0).length;

  scenario.summary.attempted = 2 * INSTANCES;
  scenario.summary.completed = succeeded.length;
  scenario.summary.duplicated = duplicated.size + dupKeyspaces + userProblems.length;
  scenario.summary.lost = 2 * INSTANCES - succeeded.length + missingKeyspaces + missingUsers.length;
  scenario.summary.requests = sent.length;
  scenario.summary.fiveXx = fiveXx.length;
  const leaderKills = kills.filter((k) => k.role === 'leader');
  const firstFinishedAfter = (at: number) => Math.min(...ops.map((o) => o.finishedAt ?? Infinity).filter((f) => f > at)) - at;
  scenario.summary.recovery = `new leader ${seconds(Math.max(...leaderKills.map((k) => k.leaderAt! - k.at)))} after a leader kill (worst)`;
  const version = await e.version();
  scenario.figure('etcd', `${version}: 3 members, authentication on; registry, datastore and tenant etcd on the one cluster`);
  scenario.figure('operations (provisions + binds) sent / accepted / succeeded', `${ops.length} / ${ops.filter((o) => o.acceptedAt).length} / ${succeeded.length}`);
  for (const [i, k] of kills.entries()) {
    const p = `kill ${i + 1} (${k.role}, ${k.member})`;
    const during = sent.filter((r) => r.at >= k.at && r.at < k.backAt!);
    const inFlight = ops.filter((o) => o.acceptedAt !== undefined && o.acceptedAt < k.at && (o.finishedAt ?? Infinity) > k.at).length;
    scenario.figure(`${p}: operations in flight`, inFlight);
    scenario.figure(
      `${p}: kill to a leader among the members left`,
      k.role === 'leader' ? `${k.leaderAt! - k.at} ms (${k.newLeader})` : `no election: ${k.newLeader} stayed leader (${k.leaderAt! - k.at} ms to confirm)`,
    );
    scenario.figure(`${p}: kill to the first operation finished`, firstFinishedAfter(k.at), 'ms');
    scenario.figure(`${p}: member down (kill until it answered /health again)`, k.backAt! - k.at, 'ms');
    scenario.figure(`${p}: requests sent while it was down / answered 5xx`, `${during.length} / ${during.filter((r) => r.status >= 500).length}`);
    scenario.figure(`${p}: 5xx answers while it was down, by request`, byStatus(during.filter((r) => r.status >= 500)));
    scenario.figure(`${p}: slowest answer to a request sent while it was down`, Math.max(0, ...during.map((r) => r.answeredAt - r.at)), 'ms');
  }
  scenario.figure('5xx answers in the whole run, by request', byStatus(fiveXx));
  scenario.figure('operations whose PUT got a 5xx / of those, succeeded when the platform repeated it', `${refusedOps.length} / ${refusedOps.filter((o) => o.final === 'succeeded').length}`);
  scenario.figure('operation latency, accepted to finished as the platform saw it (p50 / p95 / max)', `${seconds(percentile(latencies, 50))} / ${seconds(percentile(latencies, 95))} / ${seconds(Math.max(...latencies))}`);
  scenario.figure('last member back to all operations finished', Math.max(0, allDone - lastBack), 'ms');
  scenario.figure('members after the run: leader / raft index', `${nameOf([...e.memberIds].find(([, id]) => id === caughtUp[0]!.leader)?.[0])} / ${caughtUp[0]!.raftIndex} on all 3`);
  scenario.figure('provision runs / bind runs / instances or bindings with more than one run', `${provisionRuns.length} / ${bindRuns.length} / ${duplicated.size}`);
  scenario.figure('workflow runs still running', stillRunning.length);
  scenario.figure('registry entries left in progress / instances with a binding share still held', `${leftInProgress.length} / ${sharesHeld.length}`);
  scenario.figure('keyspaces with one owner key / none / more than one', `${keyspaceOwners.filter((o) => o.length === 1).length} / ${missingKeyspaces} / ${dupKeyspaces}`);
  scenario.figure('binding users as expected / missing / wrong; their roles', `${users.length - userProblems.length} / ${missingUsers.length} / ${userProblems.length}; ${roles.length}`);
  for (const f of notSucceeded.slice(0, 3)) scenario.note(`Not succeeded: ${f.slice(0, 400)}`);

  assert.equal(kills.length, KILLS.length);
  assert.ok(leaderKills.every((k) => k.newLeader !== k.member), 'a killed leader is replaced');
  assert.deepEqual(notSucceeded, [], 'every provision and bind succeeded');
  assert.equal(succeeded.length, 2 * INSTANCES);
  assert.deepEqual(
    refusedOps.filter((o) => o.final !== 'succeeded').map((o) => o.instanceId),
    [],
    'a request answered with a 5xx succeeds when the platform repeats it',
  );
  assert.deepEqual(leftInProgress, [], 'no registry entry left in progress');
  assert.deepEqual(sharesHeld, [], 'no binding share left held');
  assert.equal(instances.length, INSTANCES);
  assert.equal(bindings.length, INSTANCES);
  assert.deepEqual(stillRunning, [], 'no workflow run left running');
  assert.equal(duplicated.size, 0, `one run per operation: ${[...duplicated.keys()].slice(0, 5).join(', ')}`);
  assert.equal(provisionRuns.length, INSTANCES);
  assert.equal(bindRuns.length, INSTANCES);
  assert.ok(keyspaceOwners.every((o, i) => o.length === 1 && o[0] === ids[i]), `one owner key per keyspace: ${JSON.stringify(keyspaceOwners)}`);
  assert.deepEqual(inventory.otherKeys, [], 'nothing else written under the keyspaces');
  assert.deepEqual(missingUsers, [], 'every binding has its user');
  assert.deepEqual(userProblems, [], 'each user has exactly its own role and one permission');
  assert.equal(roles.length, INSTANCES, 'one role per binding');
});
