// Broker crash between accepting a request and starting (or answering for) its workflow. First exactly: the OSB
// service runs on an OperationsClient whose start throws just before, or just after, the Temporal start — every
// operation type, each crash point. Then for real: broker processes (`client/broker/main.ts`) are killed with
// SIGKILL while provisions are in flight. Either way no operation may be left `in progress` for ever, and the
// platform's ordinary behaviour — poll last_operation, repeat the request — must finish the job exactly once.
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { etcdUserName } from '../../adapters/resources';
import { OperationsClient, type StartOutcome } from '../../client/operations';
import { OsbService } from '../../client/broker/service';
import { buildBrokerApp } from '../../client/broker/app';
import { brokerCredentials } from '../../client/broker/server';
import { createLogger } from '../../platform/logging';
import { freePort } from '../../scripts/lib/process';
import type { OperationInput } from '../../workflows/messages';
import { startTestStack, type TestStack } from '../support/stack';
import { PLAN, SERVICE, bindingPath, bindingWorkflowIdOf, deleteQuery, instancePath, instanceWorkflowIdOf, provisionBody } from '../support/osb';
import { startBrokerProcess, type ChildProcessHandle } from '../support/reliability/processes';
import { sharedTenantEtcd } from '../support/reliability/servers';
import { deleteTenantKeys, keyspaceOf, managedUsers, prefixInventory, settledRuns, waitFor } from '../support/reliability/inspect';
import { httpSender, injectSender, repeatUntilDone, settle } from '../support/reliability/platform';
import { Scenario, mapConcurrently, randomBetween } from '../support/reliability/scenario';

const ROUNDS = 3;
const PER_ROUND = 8;

const scenario = new Scenario({
  id: 'broker-crash',
  order: 4,
  title: 'Broker crash between accepting a request and starting its workflow',
  fault:
    'Injected: the broker\'s OperationsClient throws just before, or just after, starting the workflow, once for each operation type (provision, update, bind, unbind, deprovision) and each crash point; the platform gets a 500. ' +
    `Real: ${ROUNDS} broker processes are killed with SIGKILL at a random moment (0-150 ms) after the first answer to ${PER_ROUND} provisions sent to each 50 ms apart, so some requests never get an answer.`,
  claim: 'No operation is left `in progress`; polling last_operation and repeating the same request (as platforms do) completes every operation, with exactly one workflow run per operation, and the final state matches what the platform asked for. A synchronous request the broker stops waiting for (after 1 ms here) leaves exactly what the platform was told: nothing after a 4xx, nothing after orphan mitigation for a 5xx.',
});
after(() => scenario.save());

/** An OperationsClient that dies around the Temporal start once, when told to. */
class CrashingOperations extends OperationsClient {
  crashNext: 'before start' | 'after start' | undefined;

  override async start(input: OperationInput): Promise<StartOutcome> {
    const when = this.crashNext;
    this.crashNext = undefined;
    if (when === 'before start') throw new Error('broker crashed before starting the workflow');
    const outcome = await super.start(input);
    if (when === 'after start') throw new Error('broker crashed after starting the workflow');
    return outcome;
  }
}

let stack: TestStack | undefined;
let broker: ChildProcessHandle | undefined;
const etcd = sharedTenantEtcd();
const tag = `bc${randomBytes(4).toString('hex')}`;
after(async () => {
  await broker?.kill();
  await stack?.close();
  await deleteTenantKeys(etcd, tag).catch(() => undefined);
  etcd.close();
});

/** A broker app (HTTP shell and OSB routes) around the given operations client, on the stack's registry. */
async function brokerApp(s: TestStack, operations: OperationsClient, syncTimeoutMs: number) {
  const osb = new OsbService({ catalog: s.config.catalogData, registry: s.worker.registry.registry, operations, syncTimeoutMs });
  return buildBrokerApp({
    catalog: s.config.catalogData,
    credentials: brokerCredentials(s.config),
    logger: createLogger('broker', { level: 'silent' }),
    osb,
  });
}

const injected: Array<{ operation: string; crash: string; crashAnswer: string; afterCrash: string; answers: string[]; final: string }> = [];

scenario.test('a crash just before or just after the workflow start never leaves an operation in progress, and the platform\'s retry completes it once', { timeout: 300_000 }, async () => {
  const s = (stack ??= await startTestStack());
  const ops = new CrashingOperations(s.client, s.config.temporal.taskQueue, s.worker.registry.registry);
  const app = await brokerApp(s, ops, 10_000);
  const send = injectSender(app);

  for (const crash of ['before start', 'after start'] as const) {
    const id = `${tag}-${crash === 'before start' ? 'pre' : 'post'}`;
    const bid = `${id}-bind`;
    const steps: Array<{ operation: string; method: 'PUT' | 'PATCH' | 'DELETE'; url: string; path: string; body?: unknown; expect: string }> = [
      { operation: 'provision', method: 'PUT', url: `${instancePath(id)}?accepts_incomplete=true`, path: instancePath(id), body: provisionBody(), expect: 'succeeded' },
      { operation: 'update', method: 'PATCH', url: `${instancePath(id)}?accepts_incomplete=true`, path: instancePath(id), body: { service_id: SERVICE, parameters: { quotaKeys: 7 } }, expect: 'succeeded' },
      { operation: 'bind', method: 'PUT', url: `${bindingPath(id, bid)}?accepts_incomplete=true`, path: bindingPath(id, bid), body: { service_id: SERVICE, plan_id: PLAN }, expect: 'succeeded' },
      { operation: 'unbind', method: 'DELETE', url: `${bindingPath(id, bid)}?accepts_incomplete=true&${deleteQuery()}`, path: bindingPath(id, bid), expect: 'gone' },
      { operation: 'deprovision', method: 'DELETE', url: `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`, path: instancePath(id), expect: 'gone' },
    ];
    for (const step of steps) {
      ops.crashNext = crash;
      const crashed = await send(step.method, step.url, step.body);
      // Right after the crash the platform polls: the operation is unknown, or running, or done — never stuck.
      const afterCrash = await settle(send, step.path);
      const { answers, final } = await repeatUntilDone(send, step);
      const normalized = final === 'done' ? 'succeeded' : final;
      injected.push({ operation: step.operation, crash, crashAnswer: String(crashed.status), afterCrash, answers, final: normalized });
    }
  }

  const runs = await settledRuns(s.client, s.config.temporal.taskQueue, 10);
  const perInstance = ['pre', 'post'].map((k) => {
    // The instance's operations run on its workflow, the binding's on the binding's (docs/design/osb-semantics.md).
    const workflows = [instanceWorkflowIdOf(`${tag}-${k}`), bindingWorkflowIdOf(`${tag}-${k}-bind`)];
    const mine = runs.filter((r) => workflows.includes(r.workflowId));
    const types = mine.map((r) => r.type).sort();
    return { k, types };
  });
  const inventory = await prefixInventory(etcd, `${tag}-`);
  const users = await managedUsers(etcd, new Set(['pre', 'post'].map((k) => etcdUserName(`${tag}-${k}-bind`))));

  scenario.figure('injected crashes (5 operation types x before/after the start)', injected.length);
  scenario.figure('answers to the crashed requests', [...new Set(injected.map((i) => i.crashAnswer))].join(', '));
  scenario.figure('last_operation right after a crash before the start', [...new Set(injected.filter((i) => i.crash === 'before start').map((i) => i.afterCrash))].join(', '));
  scenario.figure('last_operation right after a crash after the start', [...new Set(injected.filter((i) => i.crash === 'after start').map((i) => i.afterCrash))].join(', '));
  scenario.figure('repeated requests needed to finish (per crash)', injected.map((i) => i.answers.length).join(', '));
  scenario.figure('injected-crash operations that ended as asked', injected.filter((i) => i.final === (['unbind', 'deprovision'].includes(i.operation) ? 'gone' : 'succeeded')).length);
  scenario.figure('workflow runs per instance (crash before / after the start)', perInstance.map((p) => p.types.length).join(' / '));

  const wrong = injected.filter((i) => i.final !== (['unbind', 'deprovision'].includes(i.operation) ? 'gone' : 'succeeded'));
  assert.deepEqual(injected.map((i) => i.crashAnswer), injected.map(() => '500'), 'the platform sees the crash as an error');
  assert.deepEqual(wrong, [], 'every operation finished as asked after the platform repeated it');
  for (const p of perInstance) assert.deepEqual(p.types, ['bind', 'deprovision', 'provision', 'unbind', 'update'], `one run per operation on ${p.k}`);
  assert.equal(inventory.owners.size, 0, 'deprovisioned keyspaces are gone');
  assert.deepEqual(users, [], 'unbound users are gone');
  await app.close();
});

scenario.test('killing broker processes mid-request leaves nothing in progress; repeated requests complete every provision exactly once', { timeout: 300_000 }, async () => {
  const s = (stack ??= await startTestStack());
  const port = await freePort();
  const send = httpSender(`http://127.0.0.1:${port}`);
  const cut: string[] = [];
  const answered: string[] = [];
  const all: string[] = [];
  const startups: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    broker = await startBrokerProcess(s.configFile, port);
    startups.push(broker.readyAt - broker.spawnedAt);
    const ids = Array.from({ length: PER_ROUND }, (_, i) => `${tag}-k${round}-${i}`);
    all.push(...ids);
    // Requests go out 50 ms apart; the kill comes at a random moment just after the first answer, so some are
    // answered, some are being processed and some have not arrived.
    const inflight = ids.map((id, i) =>
      new Promise((r) => setTimeout(r, i * 50)).then(async () => ({ id, a: await send('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody()) })),
    );
    await Promise.race([Promise.race(inflight), new Promise((r) => setTimeout(r, 5000))]);
    await new Promise((r) => setTimeout(r, randomBetween(0, 150)));
    await broker.kill();
    for (const { id, a } of await Promise.all(inflight)) (a.status === 'no answer' ? cut : answered).push(id);
  }
  broker = await startBrokerProcess(s.configFile, port);
  startups.push(broker.readyAt - broker.spawnedAt);

  // The platform, for every provision: poll what it knows, then repeat the request until it has an answer.
  const recovery = await mapConcurrently(all, 6, async (id) => {
    const known = await settle(send, instancePath(id));
    const r = await repeatUntilDone(send, { method: 'PUT', url: `${instancePath(id)}?accepts_incomplete=true`, path: instancePath(id), body: provisionBody() });
    return { id, known, ...r };
  });
  const runs = await settledRuns(s.client, s.config.temporal.taskQueue, 10 + all.length);
  const provisionRuns = new Map<string, number>();
  for (const r of runs) if (r.type === 'provision') provisionRuns.set(r.workflowId, (provisionRuns.get(r.workflowId) ?? 0) + 1);
  const inventory = await prefixInventory(etcd, `${tag}-k`);
  const entries = (await s.worker.registry.registry.list('service-instance')).filter((e) => e.id.startsWith(`${tag}-k`));
  const succeeded = recovery.filter((r) => r.final === 'succeeded' || r.final === 'done').length;
  const startedBeforeCrash = recovery.filter((r) => cut.includes(r.id) && r.known !== 'HTTP 404').length;
  const dup = all.filter((id) => (provisionRuns.get(`instance/${id}`) ?? 0) > 1);

  scenario.figure('broker processes killed (SIGKILL)', ROUNDS);
  scenario.figure('broker start-up, spawn to listening (median)', startups.sort((a, b) => a - b)[Math.floor(startups.length / 2)]!, 'ms');
  scenario.figure('provisions sent to a broker that was then killed', all.length);
  scenario.figure('requests cut by the kill (no answer)', cut.length);
  scenario.figure('of those, with their workflow already started', startedBeforeCrash);
  scenario.figure('provisions completed after the platform repeated them', succeeded);
  scenario.figure('provision runs per instance above one', dup.length);
  scenario.figure('registry entries left in progress', entries.filter((e) => e.operation?.state === 'in progress').length);
  const attempted = injected.length + all.length;
  const completedInjected = injected.filter((i) => i.final === (['unbind', 'deprovision'].includes(i.operation) ? 'gone' : 'succeeded')).length;
  scenario.summary.attempted = attempted;
  scenario.summary.completed = completedInjected + succeeded;
  scenario.summary.duplicated = dup.length + [...inventory.owners.values()].filter((v) => v.length > 1).length;
  scenario.summary.lost = attempted - completedInjected - succeeded + all.filter((id) => !inventory.owners.has(id)).length;
  scenario.summary.recovery = 'platform retry';

  assert.ok(cut.length > 0, 'the kills cut requests');
  assert.equal(succeeded, all.length, `every provision completed: ${JSON.stringify(recovery.filter((r) => r.final !== 'succeeded' && r.final !== 'done').slice(0, 3))}`);
  assert.deepEqual(dup, [], 'exactly one provision run per instance');
  assert.equal(entries.filter((e) => e.operation?.state === 'in progress').length, 0);
  assert.ok(all.every((id) => inventory.owners.get(id)?.length === 1), 'one keyspace per instance');
});

const syncCases: Array<{ operation: string; answer: string; platformBelieves: string; actually: string }> = [];

scenario.test('a synchronous request the broker stops waiting for leaves nothing the platform does not know about', { timeout: 300_000 }, async () => {
  const s = (stack ??= await startTestStack());
  const registry = s.worker.registry.registry;
  // The broker waits 1 ms for a synchronous request: no operation is that fast, so every one outlives the wait.
  const app = await brokerApp(s, new OperationsClient(s.client, s.config.temporal.taskQueue, registry), 1);
  const send = injectSender(app);
  const idle = (workflowId: string) =>
    waitFor(
      `the workflow ${workflowId} to finish`,
      async () => {
        const d = await s.client.workflow.getHandle(workflowId).describe().catch(() => undefined);
        return !d || d.status.name !== 'RUNNING' ? true : undefined;
      },
      120_000,
      500,
    );
  /** What a platform does with an answer to a synchronous create: 2xx it exists, 4xx it does not, else orphan mitigation. */
  const platform = async (res: Awaited<ReturnType<typeof send>>, del: { url: string; path: string }) => {
    if (res.status !== 'no answer' && res.status >= 200 && res.status < 300) return 'exists';
    if (res.status !== 'no answer' && res.status >= 400 && res.status < 500) return 'nothing';
    await repeatUntilDone(send, { method: 'DELETE', ...del });
    return 'nothing (after orphan mitigation)';
  };
  const label = (res: Awaited<ReturnType<typeof send>>) => (res.status === 'no answer' ? 'no answer' : `${res.status}${res.body.error ? ` ${String(res.body.error)}` : ''}`);

  const id = `${tag}-sync`;
  const put = await send('PUT', instancePath(id), provisionBody());
  const believesInstance = await platform(put, { url: `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`, path: instancePath(id) });
  await idle(instanceWorkflowIdOf(id));
  const record = await registry.readOperation('service-instance', id);
  const keyspace = (await keyspaceOf(etcd, id)).owner !== undefined;
  const instanceExists = record !== undefined && !record.gone && record.operation === 'provision' && record.state === 'succeeded';
  syncCases.push({
    operation: 'provision',
    answer: label(put),
    platformBelieves: believesInstance,
    actually: instanceExists || keyspace ? `exists (registry: ${record?.operation} ${record?.state}; keyspace: ${keyspace ? 'yes' : 'no'})` : 'nothing',
  });

  // A binding, synchronously, on an instance that exists for sure.
  const host = `${tag}-synchost`;
  const made = await repeatUntilDone(send, { method: 'PUT', url: `${instancePath(host)}?accepts_incomplete=true`, path: instancePath(host), body: provisionBody() });
  assert.equal(made.final, 'succeeded');
  const bid = `${host}-b`;
  const bind = await send('PUT', bindingPath(host, bid), { service_id: SERVICE, plan_id: PLAN });
  const believesBinding = await platform(bind, { url: `${bindingPath(host, bid)}?accepts_incomplete=true&${deleteQuery()}`, path: bindingPath(host, bid) });
  await idle(bindingWorkflowIdOf(bid));
  const bRecord = await registry.readOperation('service-binding', bid, { instanceId: host });
  const user = (await managedUsers(etcd, new Set([etcdUserName(bid)]))).length > 0;
  const bindingExists = bRecord !== undefined && !bRecord.gone && bRecord.operation === 'bind' && bRecord.state === 'succeeded';
  syncCases.push({
    operation: 'bind',
    answer: label(bind),
    platformBelieves: believesBinding,
    actually: bindingExists || user ? `exists (registry: ${bRecord?.operation} ${bRecord?.state}; etcd user: ${user ? 'yes' : 'no'})` : 'nothing',
  });
  for (const c of syncCases) scenario.figure(`synchronous ${c.operation} the broker stopped waiting for: answer / platform believes / actually`, `${c.answer} / ${c.platformBelieves} / ${c.actually}`);
  const orphans = syncCases.filter((c) => c.platformBelieves.startsWith('nothing') !== c.actually.startsWith('nothing'));
  scenario.figure('synchronous requests whose outcome the platform was told wrongly (orphans)', orphans.length);
  // Cleanup: the platform deletes whatever it (or the broker) made.
  for (const x of [id, host]) await repeatUntilDone(send, { method: 'DELETE', url: `${instancePath(x)}?accepts_incomplete=true&${deleteQuery()}`, path: instancePath(x) });
  await app.close();

  assert.ok(syncCases.every((c) => !/^2/.test(c.answer)), 'the broker stopped waiting before the operations ended');
  assert.deepEqual(orphans.map((c) => `${c.operation}: answered ${c.answer}, yet ${c.actually}`), [], 'what the platform is told is what exists');
});
