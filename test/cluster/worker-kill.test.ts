// Worker kill on the multi-service cluster: provisions are accepted through two broker processes while one of the two
// worker processes is killed with SIGKILL at random moments and started again (the other keeps polling). Every
// provision must succeed exactly once and nothing may be left `in progress`.
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { instancePath, provisionBody } from '../support/osb';
import { operationState } from '../support/reliability/platform';
import { sharedTenantEtcd } from '../support/reliability/servers';
import { CompletionWatch, deleteTenantKeys, duplicatedRuns, prefixInventory, settledRuns, waitFor } from '../support/reliability/inspect';
import { Scenario, mapConcurrently, median, percentile, randomBetween, seconds } from '../support/reliability/scenario';
import { requireClusterShape, startClusterStack, type ClusterStack } from './support';

const PROVISIONS = Number(process.env.BROKERFLOW_CLUSTER_PROVISIONS ?? 60);
const KILLS = 3;

const scenario = new Scenario({
  id: 'cluster-worker-kill',
  order: 20,
  title: 'Temporal cluster: a worker process killed with SIGKILL during provisions',
  fault: `On the Temporal server run as users run it (frontend, history, matching and worker services as separate processes on PostgreSQL), ${PROVISIONS} provisions of the etcd-keyspace plan are accepted through two broker processes (alternately); they come in ${KILLS} waves, and 1-3 s after each wave is accepted one of the two worker processes (the same one each time) is killed with SIGKILL and started again, while the other keeps running.`,
  claim: 'Every provision succeeds; each instance has exactly one etcd keyspace and exactly one provision run; no registry entry is left `in progress`.',
});
after(() => scenario.save());

let cs: ClusterStack | undefined;
let watching: CompletionWatch | undefined;
const etcd = sharedTenantEtcd();
const tag = `ck${randomBytes(4).toString('hex')}`;
after(async () => {
  // A failed test leaves the watch polling, which would keep this file's process alive.
  await watching?.stop();
  await cs?.close();
  await deleteTenantKeys(etcd, tag).catch(() => undefined);
  etcd.close();
});

scenario.test(`${PROVISIONS} provisions succeed exactly once while one of two workers is killed ${KILLS} times`, { timeout: 600_000 }, async () => {
  requireClusterShape();
  const c = (cs = await startClusterStack());
  const s = c.stack;
  const ids = Array.from({ length: PROVISIONS }, (_, i) => `${tag}-${String(i).padStart(3, '0')}`);
  const watch = (watching = new CompletionWatch(s.worker.registry.registry, new Set(ids), 'provision'));
  const startups = c.workers.map((w) => w.readyAt - w.spawnedAt);

  const accepted = new Map<string, { operation: string; at: number }>();
  const t0 = Date.now();
  const answers: number[] = [];
  watch.start(1000);

  // One wave of provisions per kill: a restarted worker bundles the workflow code first (seconds under load), so
  // without new work a later kill could find everything finished.
  const kills: Array<{ at: number; unfinished: number; inProgress: number }> = [];
  const perWave = Math.ceil(PROVISIONS / KILLS);
  for (let k = 0; k < KILLS; k++) {
    const wave = ids.slice(k * perWave, (k + 1) * perWave);
    const got = await mapConcurrently(wave, 10, async (id, i) => {
      const res = await c.brokers[i % 2]!.send('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
      if (res.status === 202) accepted.set(id, { operation: String(res.body.operation), at: Date.now() });
      return res.status === 'no answer' ? 0 : res.status;
    });
    answers.push(...got);
    assert.deepEqual([...new Set(got)], [202], `every provision is accepted: ${got.join(',')}`);
    await new Promise((r) => setTimeout(r, randomBetween(1000, 3000)));
    await watch.poll();
    const unfinished = accepted.size - watch.finished.size;
    const inProgress = watch.inProgress().length;
    const at = Date.now();
    startups.push(await c.killAndRestartWorker(0));
    kills.push({ at, unfinished, inProgress });
  }
  const lastKill = kills[kills.length - 1]!.at;
  await waitFor(
    `all ${PROVISIONS} provisions to finish`,
    async () => {
      await watch.poll();
      return watch.finished.size === PROVISIONS ? true : undefined;
    },
    300_000,
    1000,
  );
  await watch.stop();
  const allDone = Math.max(...[...watch.finished.values()].map((f) => f.at));

  // What the platform sees, through the other broker than the one that accepted each provision.
  const states = await mapConcurrently(ids, 10, async (id, i) => (await operationState(c.brokers[(i + 1) % 2]!.send, instancePath(id), accepted.get(id)!.operation)) ?? 'no answer');
  const succeeded = states.filter((x) => x === 'succeeded').length;
  const entries = (await s.worker.registry.registry.list('service-instance')).filter((e) => e.id.startsWith(`${tag}-`));
  const leftInProgress = entries.filter((e) => e.operation?.state === 'in progress').map((e) => e.id);
  const inventory = await prefixInventory(etcd, `${tag}-`);
  const twice = [...inventory.owners.values()].filter((v) => v.length > 1).length;
  const missing = ids.filter((id) => !inventory.owners.has(id));
  const runs = await settledRuns(s.client, s.config.temporal.taskQueue, PROVISIONS);
  const duplicated = duplicatedRuns(runs, 'provision');
  const latencies = ids.map((id) => watch.finished.get(id)!.at - accepted.get(id)!.at);

  scenario.summary.attempted = PROVISIONS;
  scenario.summary.completed = succeeded;
  scenario.summary.duplicated = duplicated.size + twice;
  scenario.summary.lost = PROVISIONS - succeeded + missing.length;
  scenario.summary.requests = PROVISIONS * 2;
  scenario.summary.fiveXx = answers.filter((x) => x >= 500).length + states.filter((x) => /^HTTP 5/.test(x)).length;
  scenario.summary.recovery = `${seconds(allDone - lastKill)} after the last kill`;
  scenario.figure('Temporal shape', 'frontend, history, matching, worker: 4 processes on PostgreSQL');
  scenario.figure('worker processes / broker processes', `${c.workers.length} / ${c.brokers.length}`);
  scenario.figure('provisions accepted (202)', accepted.size);
  scenario.figure('provisions succeeded (last_operation, asked of the other broker)', succeeded);
  scenario.figure('worker kills (SIGKILL, the same worker each time)', kills.length);
  scenario.figure('operations unfinished at each kill', kills.map((k) => k.unfinished).join(', '));
  scenario.figure('operations in progress in the registry at each kill', kills.map((k) => k.inProgress).join(', '));
  scenario.figure('worker start-up, spawn to polling (median / max)', `${seconds(median(startups))} / ${seconds(Math.max(...startups))}`);
  scenario.figure('last kill to all provisions finished', allDone - lastKill, 'ms');
  scenario.figure('first PUT to all provisions finished', allDone - t0, 'ms');
  scenario.figure('provision latency, accepted to succeeded (p50 / p95 / max)', `${seconds(percentile(latencies, 50))} / ${seconds(percentile(latencies, 95))} / ${seconds(Math.max(...latencies))}`);
  scenario.figure('provision runs / instances with more than one', `${runs.filter((r) => r.type === 'provision').length} / ${duplicated.size}`);
  scenario.figure('keyspaces owned twice / missing / foreign keys', `${twice} / ${missing.length} / ${inventory.otherKeys.length}`);
  scenario.figure('registry entries left in progress', leftInProgress.length);
  scenario.note('The surviving worker keeps taking new tasks; tasks the killed worker held are retried after their timeouts (10 s start-to-close or heartbeat, 10 s for a sticky workflow task).');

  assert.ok(kills.every((k) => k.unfinished > 0), `every kill hit unfinished operations: ${kills.map((k) => k.unfinished).join(',')}`);
  assert.deepEqual(states.filter((x) => x !== 'succeeded'), [], 'every provision succeeded');
  assert.deepEqual(leftInProgress, [], 'no registry entry left in progress');
  assert.equal(entries.length, PROVISIONS);
  assert.deepEqual(missing, [], 'every instance has its keyspace');
  assert.equal(twice, 0, 'no keyspace owned twice');
  assert.equal(duplicated.size, 0, `one provision run per instance: ${[...duplicated.keys()].slice(0, 5).join(', ')}`);
  assert.equal(runs.filter((r) => r.type === 'provision').length, PROVISIONS);
});
