// Temporal restart: provisions are in flight when this scenario's own Temporal dev server is stopped and started
// again on the same SQLite file. Worker and broker keep their connections and must carry on by themselves; every
// accepted operation completes exactly once, and while Temporal is down the broker still answers last_operation
// from the registry (the registry is the record, Temporal the engine).
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { TemporalDevServer } from '../../scripts/lib/temporal';
import { startTestStack, type TestStack } from '../support/stack';
import { instancePath, provisionBody } from '../support/osb';
import { sharedTenantEtcd, startOwnTemporal } from '../support/reliability/servers';
import { CompletionWatch, deleteTenantKeys, duplicatedRuns, prefixInventory, settledRuns, waitFor } from '../support/reliability/inspect';
import { Scenario, mapConcurrently, seconds } from '../support/reliability/scenario';

const PROVISIONS = 40;

const scenario = new Scenario({
  id: 'temporal-restart',
  order: 2,
  title: 'Temporal dev server restarted during provisions',
  fault: `${PROVISIONS} provisions are accepted; once a quarter of them have finished, the Temporal dev server is stopped and started again on the same SQLite file. While it is down, the broker is asked for last_operation and for a new provision.`,
  claim: 'Every accepted provision completes, exactly once (one run, one keyspace each); a provision refused while Temporal was down succeeds when the platform retries it; last_operation keeps answering from the registry during the outage.',
});
after(() => scenario.save());

let temporal: TemporalDevServer | undefined;
let stack: TestStack | undefined;
const etcd = sharedTenantEtcd();
const tag = `tr${randomBytes(4).toString('hex')}`;
after(async () => {
  await stack?.close();
  await temporal?.stop();
  await deleteTenantKeys(etcd, tag).catch(() => undefined);
  etcd.close();
});

/** Runs `fn`, giving up after `ms`; reports the outcome and how long it took. */
async function timed<T>(ms: number, fn: () => Promise<T>): Promise<{ value?: T; error?: string; ms: number }> {
  const t = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const value = await Promise.race([fn(), new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`no answer within ${ms} ms`)), ms)))]);
    return { value, ms: Date.now() - t };
  } catch (err) {
    return { error: (err as Error).message, ms: Date.now() - t };
  } finally {
    clearTimeout(timer);
  }
}

scenario.test('every provision completes exactly once across a Temporal restart on the same SQLite file', { timeout: 420_000 }, async () => {
  temporal = await startOwnTemporal('temporal-restart');
  const taskQueue = `tq-${randomBytes(5).toString('hex')}`;
  const s = (stack = await startTestStack({ overrides: { temporal: { address: temporal.address, namespace: 'default', taskQueue } } }));
  const ids = Array.from({ length: PROVISIONS }, (_, i) => `${tag}-${String(i).padStart(3, '0')}`);
  const late = `${tag}-late`;
  const watch = new CompletionWatch(s.worker.registry.registry, new Set([...ids, late]), 'provision');

  const operations = new Map<string, string>();
  const answers = await mapConcurrently(ids, 10, async (id) => {
    const res = await s.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
    if (res.statusCode === 202) operations.set(id, res.json().operation as string);
    return res.statusCode;
  });
  assert.deepEqual([...new Set(answers)], [202]);
  // Stopped once a quarter has finished and the registry records one begun and not finished: the poll below asks
  // about that one, which the registry can answer alone (one not begun yet has no record: unknown, a correct 503).
  await waitFor('a quarter of the provisions to finish while another is recorded in progress', async () => {
    await watch.poll();
    return watch.finished.size >= PROVISIONS / 4 && watch.inProgress().length > 0 ? true : undefined;
  }, 120_000, 50);
  const finishedBefore = watch.finished.size;
  const inProgress = watch.inProgress();

  const stopAt = Date.now();
  await temporal.stop();
  const stoppedAt = Date.now();
  // The platform keeps polling, and sends a new request, while Temporal is down.
  const pending = inProgress[0]!;
  const [lastOp, newPut] = await Promise.all([
    timed(60_000, () => s.osb('GET', `${instancePath(pending)}/last_operation?operation=${encodeURIComponent(operations.get(pending)!)}`)),
    timed(60_000, () => s.osb('PUT', `${instancePath(late)}?accepts_incomplete=true`, provisionBody())),
  ]);
  await temporal.restart();
  const readyAt = Date.now();

  // The platform retries the provision it could not get accepted.
  const retried = await waitFor(
    'the retried provision to be accepted',
    async () => {
      const res = await s.osb('PUT', `${instancePath(late)}?accepts_incomplete=true`, provisionBody());
      return res.statusCode === 202 || res.statusCode === 200 ? res : undefined;
    },
    60_000,
    1000,
  );
  if (retried.statusCode === 202) operations.set(late, retried.json().operation as string);
  await waitFor('every provision to finish', async () => {
    await watch.poll();
    return watch.finished.size === PROVISIONS + 1 ? true : undefined;
  }, 240_000, 500);
  await watch.stop();
  const allDone = Math.max(...[...watch.finished.values()].map((f) => f.at));

  const all = [...ids, late];
  const states = await mapConcurrently(all, 10, async (id) => {
    const res = await s.osb('GET', `${instancePath(id)}/last_operation${operations.has(id) ? `?operation=${encodeURIComponent(operations.get(id)!)}` : ''}`);
    if (res.statusCode !== 200) return `HTTP ${res.statusCode}`;
    const body = res.json() as { state: string; description?: string };
    return body.state === 'failed' ? `failed: ${body.description ?? ''}` : body.state;
  });
  const succeeded = states.filter((x) => x === 'succeeded').length;
  const unsucceeded = states.flatMap((st, i) => (st === 'succeeded' ? [] : [`${all[i]}: ${st.slice(0, 300)}`]));
  for (const n of unsucceeded.slice(0, 5)) scenario.note(n);
  const entries = (await s.worker.registry.registry.list('service-instance')).filter((e) => e.id.startsWith(`${tag}-`));
  const inventory = await prefixInventory(etcd, `${tag}-`);
  const runs = await settledRuns(s.client, taskQueue, all.length);
  const duplicated = duplicatedRuns(runs, 'provision');
  const twice = [...inventory.owners.values()].filter((v) => v.length > 1).length;
  const missing = all.filter((id) => !inventory.owners.has(id));

  const lastOpAnswer = lastOp.value ? `HTTP ${lastOp.value.statusCode} ${lastOp.value.statusCode === 200 ? (lastOp.value.json().state as string) : ''}`.trim() : lastOp.error!;
  const putAnswer = newPut.value ? `HTTP ${newPut.value.statusCode}` : newPut.error!;
  scenario.summary.attempted = all.length;
  scenario.summary.completed = succeeded;
  scenario.summary.duplicated = duplicated.size + twice;
  scenario.summary.lost = all.length - succeeded + missing.length;
  scenario.summary.requests = ids.length + all.length + 2;
  scenario.summary.fiveXx = answers.filter((c) => c >= 500).length + states.filter((x) => /^HTTP 5/.test(x)).length + (newPut.value && newPut.value.statusCode >= 500 ? 1 : 0);
  scenario.summary.recovery = `${seconds(allDone - readyAt)} after Temporal was back`;
  scenario.figure('provisions accepted before the restart', operations.size - (operations.has(late) ? 1 : 0));
  scenario.figure('finished before Temporal stopped', finishedBefore);
  scenario.figure('in progress in the registry when Temporal stopped', inProgress.length);
  scenario.figure('Temporal stop (SIGTERM until exit)', stoppedAt - stopAt, 'ms');
  scenario.figure('Temporal down (stop until ready again)', readyAt - stopAt, 'ms');
  scenario.figure('last_operation while Temporal was down', `${lastOpAnswer} in ${lastOp.ms} ms`);
  scenario.figure('new provision while Temporal was down', `${putAnswer} in ${newPut.ms} ms`);
  scenario.figure('that provision, retried after the restart', `HTTP ${retried.statusCode}, then ${states[states.length - 1]}`);
  scenario.figure('Temporal ready to all provisions finished', allDone - readyAt, 'ms');
  scenario.figure('provisions succeeded', succeeded);
  scenario.figure('provision runs / instances with more than one', `${runs.filter((r) => r.type === 'provision').length} / ${duplicated.size}`);
  scenario.figure('keyspaces owned twice / missing', `${twice} / ${missing.length}`);
  scenario.figure('registry entries left in progress', entries.filter((e) => e.operation?.state === 'in progress').length);

  assert.ok(inProgress.length > 0 && finishedBefore < PROVISIONS, 'the restart hit unfinished operations');
  assert.deepEqual(states.filter((x) => x !== 'succeeded'), [], 'every provision succeeded');
  assert.equal(entries.filter((e) => e.operation?.state === 'in progress').length, 0);
  assert.deepEqual(missing, []);
  assert.equal(twice, 0);
  assert.equal(duplicated.size, 0);
  assert.equal(lastOp.value?.statusCode, 200, `last_operation answers from the registry while Temporal is down: ${lastOpAnswer}`);
});
