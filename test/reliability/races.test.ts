// Races on one instance: PUT against DELETE on a new instance, PATCH against DELETE and bind against DELETE on a
// provisioned one, sent concurrently, many rounds. Each answer must be one the OSB spec allows, every accepted
// operation must end, and the state must be consistent afterwards: what the registry says exists is exactly what
// exists in Kubernetes (the plan's ConfigMap) and the tenant etcd (keyspace, binding user), and what the last
// accepted operation asked for. After each round the platform deletes the instance; nothing may be left behind.
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { etcdUserName } from '../../adapters/resources';
import { instanceWorkflowId } from '../../workflows/messages';
import { startTestStack, type TestStack } from '../support/stack';
import { requireTestEnv } from '../support/env';
import { deferred } from '../support/deferred';
import { PLAN, SERVICE, bindingPath, deleteQuery, instancePath, osbResourceSets, provisionBody } from '../support/osb';
import { sharedTenantEtcd } from '../support/reliability/servers';
import { deleteTenantKeys, keyspaceOf, managedUsers, prefixInventory } from '../support/reliability/inspect';
import { injectSender, isFailure, repeatUntilDone, settle, type Answer, type Send } from '../support/reliability/platform';
import { Scenario, mapConcurrently, randomBetween } from '../support/reliability/scenario';

/** Rounds per race kind; the issue suggests 30 (BROKERFLOW_RELIABILITY_RACE_ROUNDS scales it). */
const ROUNDS = Number(process.env.BROKERFLOW_RELIABILITY_RACE_ROUNDS ?? 30);
/** Rounds run side by side (each on its own instance). */
const PARALLEL = 10;

type Kind = 'PUT/DELETE' | 'PATCH/DELETE' | 'bind/DELETE';
const kinds: Kind[] = ['PUT/DELETE', 'PATCH/DELETE', 'bind/DELETE'];

const scenario = new Scenario({
  id: 'races',
  order: 5,
  title: 'Concurrent conflicting requests on one instance',
  fault: `${ROUNDS} rounds each of PUT vs DELETE (new instance), PATCH vs DELETE and bind vs DELETE (provisioned instance), the two requests sent concurrently in random order, the second 0-300 ms after the first, ${PARALLEL} rounds at a time, on the plan with a Kubernetes ConfigMap and an etcd keyspace (test/support/fixtures/resource-sets.osb.yaml).`,
  claim: 'Every answer is one the OSB spec allows; every accepted operation ends; afterwards registry, Kubernetes and etcd agree with each other and with the last accepted operation; after the platform deletes the instance nothing is left in etcd (keys, bf- users), Kubernetes or the registry. The narrowest PUT/DELETE window — a DELETE arriving while the provision records its end, held open on purpose — still deletes the instance.',
});
after(() => scenario.save());

/** Answers OSB v2.17 allows for each request in these races (async requests; 422 only as ConcurrencyError). */
const allowed: Record<string, Set<string>> = {
  provision: new Set(['202', '200', '422 ConcurrencyError']),
  deprovision: new Set(['202', '200', '410', '422 ConcurrencyError']),
  update: new Set(['202', '200', '422 ConcurrencyError', '404']),
  bind: new Set(['202', '200', '201', '422 ConcurrencyError', '404']),
};
const label = (a: Answer) => (a.status === 'no answer' ? 'no answer' : a.status === 422 ? `422 ${String(a.body.error)}` : String(a.status));

let stack: TestStack | undefined;
let gatedStack: TestStack | undefined;
const etcd = sharedTenantEtcd();
const tag = `ra${randomBytes(4).toString('hex')}`;
const kc = new KubeConfig();
kc.loadFromFile(requireTestEnv('kubeconfig'));
const core = kc.makeApiClient(CoreV1Api);
after(async () => {
  await gatedStack?.close();
  await stack?.close();
  await deleteTenantKeys(etcd, tag).catch(() => undefined);
  etcd.close();
});

async function configMap(id: string): Promise<Record<string, string> | undefined> {
  try {
    return ((await core.readNamespacedConfigMap({ name: `bf-${id}`, namespace: 'default' })).data ?? {}) as Record<string, string>;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

interface RoundResult {
  kind: Kind;
  id: string;
  answers: Array<{ request: string; answer: string }>;
  disallowed: string[];
  unfinished: string[];
  inconsistent: string[];
  leftovers: string[];
  lastRun: string;
  /** The last operation that changed the instance was its deprovision. */
  deleted: boolean;
}

const roundId = (kind: Kind, n: number) => `${tag}-${kind.split('/')[0]!.toLowerCase()}-${n}`;

async function round(s: TestStack, send: Send, kind: Kind, n: number): Promise<RoundResult> {
  const id = roundId(kind, n);
  const bid = `${id}-b`;
  const result: RoundResult = { kind, id, answers: [], disallowed: [], unfinished: [], inconsistent: [], leftovers: [], lastRun: '', deleted: false };
  const provision = { method: 'PUT' as const, url: `${instancePath(id)}?accepts_incomplete=true`, path: instancePath(id), body: provisionBody() };
  const deprovision = { method: 'DELETE' as const, url: `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`, path: instancePath(id) };
  if (kind !== 'PUT/DELETE') {
    const setup = await repeatUntilDone(send, provision);
    if (setup.final !== 'succeeded') throw new Error(`setup provision of ${id} ended ${setup.final}`);
  }
  const other =
    kind === 'PUT/DELETE'
      ? { name: 'provision', ...provision }
      : kind === 'PATCH/DELETE'
        ? { name: 'update', method: 'PATCH' as const, url: `${instancePath(id)}?accepts_incomplete=true`, path: instancePath(id), body: { service_id: SERVICE, parameters: { quotaKeys: 500 + n } } }
        : { name: 'bind', method: 'PUT' as const, url: `${bindingPath(id, bid)}?accepts_incomplete=true`, path: bindingPath(id, bid), body: { service_id: SERVICE, plan_id: PLAN } };
  const requests = [other, { name: 'deprovision', ...deprovision }];
  if (Math.random() < 0.5) requests.reverse();
  const offset = randomBetween(0, 300);
  const answers = await Promise.all(
    requests.map(async (r, i) => {
      if (i === 1) await new Promise((res) => setTimeout(res, offset));
      return { r, a: await send(r.method, r.url, 'body' in r ? r.body : undefined) };
    }),
  );
  const finals: Array<{ name: string; operation: string; final: string }> = [];
  for (const { r, a } of answers) {
    const l = label(a);
    result.answers.push({ request: r.name, answer: l });
    if (!allowed[r.name]!.has(l)) result.disallowed.push(`${r.name} -> ${l} ${a.status !== 'no answer' ? JSON.stringify(a.body).slice(0, 160) : ''}`);
    if (a.status === 202) {
      const operation = String(a.body.operation);
      finals.push({ name: r.name, operation, final: await settle(send, r.path, operation).catch((err: Error) => `unfinished: ${err.message}`) });
    }
  }

  // The last run on the instance's workflow ID is the last accepted operation: the state must be what it asked for.
  const handle = s.client.workflow.getHandle(instanceWorkflowId(id));
  const desc = await handle.describe().catch(() => undefined);
  result.lastRun = desc ? `${desc.type} ${desc.status.name}` : 'none';
  // A run that begins after a deprovision has taken the instance ends at once as failed and changes nothing
  // (docs/design/osb-semantics.md "Races"): the deprovision is then still the last operation that changed the state.
  const deprovisionGone = finals.some((f) => f.name === 'deprovision' && f.final === 'gone');
  const lateRunFailed = desc !== undefined && desc.type !== 'deprovision' && deprovisionGone && finals.some((f) => f.name !== 'deprovision' && (isFailure(f.final) || f.final === 'gone'));
  if (lateRunFailed) result.lastRun += ' (began after the deprovision, ended at once)';
  const deletedLast = desc?.type === 'deprovision' || lateRunFailed;
  result.deleted = deletedLast;
  // Every accepted operation ends: a deprovision as gone; the others as succeeded, or — when the instance was deleted
  // after them — as gone (410, or 404 for a binding removed with its instance) or failed: a provision stopped by the
  // DELETE, or an update or bind whose run began after the deprovision had taken the instance (it ends at once as
  // failed, docs/design/osb-semantics.md "Races").
  for (const f of finals) {
    const ok =
      f.name === 'deprovision'
        ? f.final === 'gone'
        : f.final === 'succeeded' || (deletedLast && (['gone', 'HTTP 404'].includes(f.final) || isFailure(f.final)));
    if (!ok) result.unfinished.push(`${f.name} ${f.operation} ended ${f.final} (last run ${result.lastRun})`);
  }
  const shouldExist = desc !== undefined && !deletedLast;
  const registry = s.worker.registry.registry;
  const record = await registry.readOperation('service-instance', id);
  const entryExists = record !== undefined && !record.gone;
  const cm = await configMap(id);
  const ks = await keyspaceOf(etcd, id);
  const owners = ks.owner !== undefined ? [ks.owner] : [];
  const binding = await registry.readOperation('service-binding', bid, { instanceId: id });
  const bindingExists = binding !== undefined && !binding.gone;
  const user = (await managedUsers(etcd, new Set([etcdUserName(bid)])))[0];
  // A deprovision that failed keeps the entry (deletion finishes only when every delete succeeded); that failure is
  // reported above, and the entry existing is then consistent.
  const failedDeprovision = record?.operation === 'deprovision' && record.state === 'failed';
  if (entryExists !== shouldExist && !failedDeprovision) result.inconsistent.push(`registry entry ${entryExists ? 'exists' : 'absent'} after a last run of ${result.lastRun}`);
  if (shouldExist && record?.state === 'succeeded') {
    if (!cm) result.inconsistent.push('ConfigMap missing for an existing instance');
    if (owners.length !== 1) result.inconsistent.push(`${owners.length} owner keys for an existing instance`);
    if (kind === 'PATCH/DELETE' && cm) {
      const params = (await registry.open('service-instance', id)).get<{ quotaKeys?: number }>('parameters') ?? {};
      if (String(params.quotaKeys ?? 1000) !== cm.quotaKeys) result.inconsistent.push(`ConfigMap quotaKeys ${cm.quotaKeys} but registry parameters ${JSON.stringify(params)}`);
    }
  }
  if (!entryExists) {
    if (cm) result.inconsistent.push('ConfigMap left for a deleted instance');
    if (owners.length) result.inconsistent.push('keyspace left for a deleted instance');
    if (bindingExists) result.inconsistent.push('binding entry left for a deleted instance');
  }
  if (bindingExists && binding.state === 'succeeded' && binding.operation === 'bind' && !user) result.inconsistent.push('binding recorded but its etcd user is missing');
  if (!bindingExists && user) result.inconsistent.push('etcd user left without its binding');

  // The platform deletes the instance; afterwards nothing of it may remain.
  const cleanup = await repeatUntilDone(send, deprovision);
  if (cleanup.final !== 'gone') result.leftovers.push(`cleanup delete ended ${cleanup.final}`);
  if (await configMap(id)) result.leftovers.push('ConfigMap');
  const left = await keyspaceOf(etcd, id);
  if (left.owner !== undefined || left.keys.length) result.leftovers.push('etcd keyspace');
  if ((await managedUsers(etcd, new Set([etcdUserName(bid)]))).length) result.leftovers.push('etcd user');
  const after = await registry.readOperation('service-instance', id);
  if (after && !after.gone) result.leftovers.push('registry instance entry');
  const afterBinding = await registry.readOperation('service-binding', bid, { instanceId: id });
  if (afterBinding && !afterBinding.gone) result.leftovers.push('registry binding entry');
  return result;
}

scenario.test(`${ROUNDS} rounds each of PUT/DELETE, PATCH/DELETE and bind/DELETE end in allowed answers and consistent state`, { timeout: 900_000 }, async () => {
  const s = (stack = await startTestStack({ overrides: { resourceSets: osbResourceSets } }));
  const send = injectSender(s.app);
  const t0 = Date.now();
  const jobs = kinds.flatMap((kind) => Array.from({ length: ROUNDS }, (_, n) => ({ kind, n })));
  // Interleave the kinds so every batch mixes them.
  jobs.sort((a, b) => a.n - b.n || kinds.indexOf(a.kind) - kinds.indexOf(b.kind));
  // A round that cannot even be set up (or whose checks throw) counts as failed with its reason; the others go on.
  const results = await mapConcurrently(jobs, PARALLEL, ({ kind, n }) =>
    round(s, send, kind, n).catch(async (err: Error): Promise<RoundResult> => {
      const id = roundId(kind, n);
      await repeatUntilDone(send, { method: 'DELETE', url: `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`, path: instancePath(id) }).catch(() => undefined);
      return { kind, id, answers: [], disallowed: [], unfinished: [`round failed: ${err.message.slice(0, 300)}`], inconsistent: [], leftovers: [], lastRun: '', deleted: false };
    }),
  );
  const elapsed = Date.now() - t0;

  const entries = [...(await s.worker.registry.registry.list('service-instance')), ...(await s.worker.registry.registry.list('service-binding'))].filter((e) => e.id.startsWith(tag));
  const inventory = await prefixInventory(etcd, `${tag}-`);
  const users = await managedUsers(etcd, new Set(results.map((r) => etcdUserName(`${r.id}-b`))));
  const configMaps = (await core.listNamespacedConfigMap({ namespace: 'default' })).items.filter((c) => c.metadata?.name?.startsWith(`bf-${tag}`));

  const count = (pred: (r: RoundResult) => boolean) => results.filter(pred).length;
  for (const kind of kinds) {
    const mine = results.filter((r) => r.kind === kind);
    const combos = new Map<string, number>();
    for (const r of mine) {
      const key = r.answers.map((a) => `${a.request} ${a.answer}`).sort().join(' + ') || 'round failed before the race';
      combos.set(key, (combos.get(key) ?? 0) + 1);
    }
    scenario.figure(
      `${kind}: answer combinations seen`,
      [...combos].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v}x (${k})`).join('; '),
    );
    const survived = mine.filter((r) => !r.deleted).length;
    scenario.figure(`${kind}: rounds where the instance survived the race / was deleted`, `${survived} / ${mine.length - survived}`);
  }
  const requests = results.reduce((n, r) => n + r.answers.length, 0);
  scenario.figure('rounds', results.length);
  scenario.figure('racing requests', requests);
  scenario.figure('answers the spec does not allow', count((r) => r.disallowed.length > 0));
  scenario.figure('accepted operations that did not end as they should', results.reduce((n, r) => n + r.unfinished.length, 0));
  scenario.figure('rounds with inconsistent state after the race', count((r) => r.inconsistent.length > 0));
  scenario.figure('rounds that left something behind after the platform deleted the instance', count((r) => r.leftovers.length > 0));
  scenario.figure('left at the end: registry entries / etcd keyspaces / bf- users / ConfigMaps', `${entries.length} / ${inventory.owners.size + inventory.otherKeys.length} / ${users.length} / ${configMaps.length}`);
  scenario.figure('time for all rounds', elapsed, 'ms');
  for (const r of results.filter((x) => x.disallowed.length || x.unfinished.length || x.inconsistent.length || x.leftovers.length).slice(0, 5)) {
    scenario.note(`${r.kind} round ${r.id}: ${[...r.disallowed, ...r.unfinished, ...r.inconsistent, ...r.leftovers.map((l) => `left ${l}`)].join('; ').slice(0, 400)}`);
  }
  const accepted = results.reduce((n, r) => n + r.answers.filter((a) => a.answer === '202').length, 0);
  scenario.summary.attempted = requests;
  scenario.summary.completed = accepted - results.reduce((n, r) => n + r.unfinished.length, 0);
  scenario.summary.lost = results.reduce((n, r) => n + r.unfinished.length, 0);
  scenario.summary.duplicated = inventory.otherKeys.length + [...inventory.owners.values()].filter((v) => v.length > 1).length;
  scenario.summary.requests = requests;
  scenario.summary.fiveXx = results.reduce((n, r) => n + r.answers.filter((a) => a.answer.startsWith('5')).length, 0);
  scenario.note('"Completed" counts accepted (202) racing operations that ended as they should; the others were refused with an allowed answer.');

  assert.deepEqual(results.flatMap((r) => r.disallowed.map((d) => `${r.id}: ${d}`)), [], 'every answer is allowed');
  assert.deepEqual(results.flatMap((r) => r.unfinished.map((d) => `${r.id}: ${d}`)), [], 'every accepted operation ended');
  assert.deepEqual(results.flatMap((r) => r.inconsistent.map((d) => `${r.id}: ${d}`)), [], 'state consistent after each race');
  assert.deepEqual(results.flatMap((r) => r.leftovers.map((d) => `${r.id}: ${d}`)), [], 'nothing left after the platform deleted the instance');
  assert.equal(entries.length, 0, 'no registry entry left');
  assert.equal(inventory.owners.size + inventory.otherKeys.length, 0, 'no etcd key left');
  assert.equal(users.length, 0, 'no bf- user left');
  assert.equal(configMaps.length, 0, 'no ConfigMap left');
});

scenario.test('a DELETE that arrives while a provision records its end still deletes the instance', { timeout: 180_000 }, async () => {
  // A worker whose recordComplete for one instance waits until the test lets it go: the DELETE lands exactly in the
  // window between the provision's reconciliation and the close of its run.
  const id = `${tag}-gate`;
  const { promise: inRecordComplete, resolve: entered } = deferred();
  const { promise: released, resolve: release } = deferred();
  const s = (gatedStack = await startTestStack({
    activityInterceptors: [
      (ctx) => ({
        inbound: {
          async execute(input, next) {
            if (ctx.info.activityType === 'recordComplete' && ctx.info.workflowExecution?.workflowId === instanceWorkflowId(id)) {
              entered();
              await Promise.race([released, new Promise((r) => setTimeout(r, 20_000))]);
            }
            return next(input);
          },
        },
      }),
    ],
  }));
  const send = injectSender(s.app);
  const put = await send('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
  assert.equal(put.status, 202);
  await inRecordComplete;
  const del = await send('DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
  release();
  const answer = label(del);
  const final = del.status === 202 ? await settle(send, instancePath(id), String(del.body.operation)) : answer;
  const desc = await s.client.workflow.getHandle(instanceWorkflowId(id)).describe();
  const record = await s.worker.registry.registry.readOperation('service-instance', id);
  const keyspace = (await keyspaceOf(etcd, id)).owner !== undefined;
  const gone = record?.gone === true && !keyspace;
  scenario.figure('DELETE while the provision records its end: answer / its last_operation / instance afterwards', `${answer} / ${final} / ${gone ? 'deleted' : `still there (registry: ${record?.operation} ${record?.state}; keyspace: ${keyspace ? 'yes' : 'no'}; last run: ${desc.type})`}`);
  // Whatever happened, the platform cleans up as it would.
  await repeatUntilDone(send, { method: 'DELETE', url: `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`, path: instancePath(id) });
  await s.stopWorker();

  assert.ok(allowed.deprovision!.has(answer), `allowed answer: ${answer}`);
  if (del.status === 202) {
    assert.equal(final, 'gone', 'the accepted DELETE ends with the instance gone (410)');
    assert.ok(gone, `the instance is deleted: registry ${record?.operation} ${record?.state}, keyspace ${keyspace}, last run ${desc.type}`);
  }
});
