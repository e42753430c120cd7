// History service restarts on the multi-service cluster: provisions are in flight (accepted through two broker
// processes, run by two worker processes) when this scenario's own cluster's history service is restarted — first
// stopped gracefully (SIGTERM) and started again, as in a rolling restart, then killed with SIGKILL and started
// again, as in a crash. Frontend, matching, worker and PostgreSQL keep running. Every accepted provision must
// complete exactly once; the platform keeps getting answers from last_operation.
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { TemporalCluster } from '../../scripts/lib/temporal-cluster';
import { instancePath, provisionBody } from '../support/osb';
import { operationState, type Answer } from '../support/reliability/platform';
import { sharedTenantEtcd } from '../support/reliability/servers';
import { CompletionWatch, deleteTenantKeys, duplicatedRuns, prefixInventory, settledRuns, waitFor } from '../support/reliability/inspect';
import { Scenario, mapConcurrently, percentile, seconds } from '../support/reliability/scenario';
import { requireClusterShape, startClusterStack, startOwnCluster, type ClusterStack } from './support';

const PROVISIONS = Number(process.env.BROKERFLOW_CLUSTER_PROVISIONS ?? 60);

const scenario = new Scenario({
  id: 'cluster-history-restart',
  order: 21,
  title: 'Temporal cluster: the history service restarted during provisions',
  fault: `On the Temporal server run as users run it (frontend, history, matching and worker services as separate processes on PostgreSQL), ${PROVISIONS} provisions are accepted through two broker processes and run by two worker processes. They come in two waves of ${PROVISIONS / 2}: once a tenth of the first wave has finished (the rest still being sent), the history service alone is stopped (SIGTERM) and started again; then the second wave is sent, and once a tenth of it has finished, history is killed with SIGKILL and started again. The platform repeats a provision that is not accepted, 1 s apart. During each outage the platform asks for last_operation and sends a new provision.`,
  claim: 'Every accepted provision completes, exactly once (one run, one keyspace each); a provision sent during an outage succeeds (at once or when the platform retries it); last_operation keeps answering; no registry entry is left `in progress`.',
});
after(() => scenario.save());

let cluster: TemporalCluster | undefined;
let cs: ClusterStack | undefined;
let watching: CompletionWatch | undefined;
const etcd = sharedTenantEtcd();
const tag = `ch${randomBytes(4).toString('hex')}`;
after(async () => {
  // A failed test leaves the watch polling, which would keep this file's process alive.
  await watching?.stop();
  await cs?.close();
  await cluster?.stop();
  await deleteTenantKeys(etcd, tag).catch(() => undefined);
  etcd.close();
});

const describe = (a: Answer) => (a.status === 'no answer' ? `no answer (${a.error.slice(0, 80)})` : `HTTP ${a.status}`);

scenario.test('every provision completes exactly once across a graceful restart and a SIGKILL of the history service', { timeout: 900_000 }, async () => {
  requireClusterShape();
  cluster = await startOwnCluster('cluster-history-restart');
  const c = (cs = await startClusterStack({ temporalAddress: cluster.address }));
  const s = c.stack;
  const ids = Array.from({ length: PROVISIONS }, (_, i) => `${tag}-${String(i).padStart(3, '0')}`);
  const lates = ['graceful', 'kill'].map((k) => `${tag}-late-${k}`);
  const all = [...ids, ...lates];
  const watch = (watching = new CompletionWatch(s.worker.registry.registry, new Set(all), 'provision'));
  const operations = new Map<string, string>();

  const t0 = Date.now();
  const answers: Array<number | string> = [];
  // Two waves, one per restart, so that each restart meets provisions in flight.
  const waves = [ids.slice(0, PROVISIONS / 2), ids.slice(PROVISIONS / 2)];
  // The platform sends each provision and repeats it (1 s apart) until it is accepted: part of a wave is still being
  // sent when history goes down.
  const accept = async (wave: string[]) => {
    const got = await mapConcurrently(wave, 10, async (id, i) => {
      for (let attempt = 0; ; attempt++) {
        const res = await c.brokers[i % 2]!.send('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
        answers.push(res.status);
        if (res.status === 202) operations.set(id, String(res.body.operation));
        if (res.status === 202 || res.status === 200 || attempt >= 60) return res.status;
        await new Promise((r) => setTimeout(r, 1000));
      }
    });
    assert.deepEqual([...new Set(got)], [202], `every provision is accepted: ${got.join(',')}`);
  };

  const restarts: Array<{ how: string; finishedBefore: number; inProgress: number; downMs: number; lastOp: string; newPut: string; at: number; readyAt: number }> = [];
  for (const [w, how, late] of [[0, 'graceful', lates[0]!], [1, 'kill', lates[1]!]] as const) {
    const wave = waves[w]!;
    const sending = accept(wave);
    await waitFor(`a tenth of wave ${w + 1} to finish`, async () => {
      await watch.poll();
      return wave.filter((id) => watch.finished.has(id)).length >= wave.length / 10 ? true : undefined;
    }, 300_000, 200);
    const finishedBefore = wave.filter((id) => watch.finished.has(id)).length;
    const inProgress = watch.inProgress().filter((id) => wave.includes(id));
    const at = Date.now();
    // The restart and the platform's requests run together: the requests land while history is down or coming up.
    const pending = inProgress[0] ?? wave.find((id) => !watch.finished.has(id)) ?? wave[0]!;
    const restart = cluster.restartService('history', { kill: how === 'kill' });
    const [lastOp, newPut] = await Promise.all([
      (async () => {
        await new Promise((r) => setTimeout(r, 500));
        const t = Date.now();
        const st = await operationState(c.brokers[0]!.send, instancePath(pending), operations.get(pending));
        return `${st ?? 'no answer'} in ${Date.now() - t} ms`;
      })(),
      (async () => {
        await new Promise((r) => setTimeout(r, 500));
        const t = Date.now();
        const res = await c.brokers[1]!.send('PUT', `${instancePath(late)}?accepts_incomplete=true`, provisionBody());
        if (res.status === 202) operations.set(late, String(res.body.operation));
        return `${describe(res)} in ${Date.now() - t} ms`;
      })(),
    ]);
    const downMs = await restart;
    await sending;
    restarts.push({ how, finishedBefore, inProgress: inProgress.length, downMs, lastOp, newPut, at, readyAt: Date.now() });
  }

  // The platform retries the provisions that were not accepted during an outage (a repeat of an accepted one is
  // answered 202 with the same operation, or 200 once it has finished).
  const retried = await mapConcurrently(lates, 2, async (late) =>
    waitFor(
      `the provision ${late} to be accepted`,
      async () => {
        const res = await c.brokers[0]!.send('PUT', `${instancePath(late)}?accepts_incomplete=true`, provisionBody());
        if (res.status === 202) operations.set(late, String(res.body.operation));
        return res.status === 202 || res.status === 200 ? `HTTP ${res.status}` : undefined;
      },
      120_000,
      1000,
    ),
  );
  await waitFor('every provision to finish', async () => {
    await watch.poll();
    return watch.finished.size === all.length ? true : undefined;
  }, 300_000, 500);
  await watch.stop();
  const allDone = Math.max(...[...watch.finished.values()].map((f) => f.at));
  const lastReady = restarts[restarts.length - 1]!.readyAt;

  const states = await mapConcurrently(all, 10, async (id, i) => (await operationState(c.brokers[i % 2]!.send, instancePath(id), operations.get(id))) ?? 'no answer');
  const succeeded = states.filter((x) => x === 'succeeded').length;
  for (const [i, st] of states.entries()) if (st !== 'succeeded') scenario.note(`${all[i]}: ${st.slice(0, 300)}`);
  const entries = (await s.worker.registry.registry.list('service-instance')).filter((e) => e.id.startsWith(`${tag}-`));
  const leftInProgress = entries.filter((e) => e.operation?.state === 'in progress').length;
  const inventory = await prefixInventory(etcd, `${tag}-`);
  const twice = [...inventory.owners.values()].filter((v) => v.length > 1).length;
  const missing = all.filter((id) => !inventory.owners.has(id));
  const runs = await settledRuns(s.client, s.config.temporal.taskQueue, all.length);
  const duplicated = duplicatedRuns(runs, 'provision');
  const latencies = [...watch.finished.values()].map((f) => f.at - t0);

  scenario.summary.attempted = all.length;
  scenario.summary.completed = succeeded;
  scenario.summary.duplicated = duplicated.size + twice;
  scenario.summary.lost = all.length - succeeded + missing.length;
  scenario.summary.requests = answers.length + all.length + restarts.length * 2 + lates.length;
  scenario.summary.fiveXx =
    answers.filter((x) => typeof x === 'number' && x >= 500).length + states.filter((x) => /^HTTP 5/.test(x)).length + restarts.filter((r) => /^HTTP 5/.test(r.newPut)).length;
  scenario.summary.recovery = `${seconds(allDone - lastReady)} after history was back`;
  scenario.figure('Temporal', `${cluster.version}: frontend, history, matching, worker as 4 processes on PostgreSQL`);
  scenario.figure('server build from Go modules (once per version, cached)', `${cluster.build.seconds} s with ${cluster.build.go}`);
  scenario.figure('cluster start-up (PostgreSQL / schemas / services / namespaces / total)', `${seconds(cluster.startup.postgresMs)} / ${seconds(cluster.startup.schemaMs)} / ${seconds(cluster.startup.servicesMs)} / ${seconds(cluster.startup.namespacesMs)} / ${seconds(cluster.startup.totalMs)}`);
  scenario.figure('worker processes / broker processes', `${c.workers.length} / ${c.brokers.length}`);
  scenario.figure('provisions accepted (two waves, one before each restart)', ids.length);
  for (const r of restarts) {
    const label = r.how === 'kill' ? 'history killed (SIGKILL)' : 'history stopped (SIGTERM)';
    scenario.figure(`${label}: its wave of ${PROVISIONS / 2} provisions, finished before / in progress in the registry`, `${r.finishedBefore} / ${r.inProgress}`);
    scenario.figure(`${label}: down (stop until serving again)`, r.downMs, 'ms');
    scenario.figure(`${label}: last_operation during the outage`, r.lastOp);
    scenario.figure(`${label}: new provision during the outage`, r.newPut);
  }
  const refused = answers.filter((x) => x !== 202);
  scenario.figure('provision requests of the waves not accepted at once (repeated by the platform)', refused.length ? `${refused.length}: ${[...new Set(refused)].join(', ')}` : 0);
  scenario.figure('the provisions sent during the outages, repeated afterwards', retried.join(', '));
  scenario.figure('history back (last restart) to all provisions finished', allDone - lastReady, 'ms');
  scenario.figure('first PUT to finished (p50 / max)', `${seconds(percentile(latencies, 50))} / ${seconds(Math.max(...latencies))}`);
  scenario.figure('provisions succeeded', succeeded);
  scenario.figure('provision runs / instances with more than one', `${runs.filter((r) => r.type === 'provision').length} / ${duplicated.size}`);
  scenario.figure('keyspaces owned twice / missing', `${twice} / ${missing.length}`);
  scenario.figure('registry entries left in progress', leftInProgress);

  assert.ok(restarts.every((r) => r.finishedBefore < PROVISIONS / 2), 'each restart hit unfinished operations of its wave');
  assert.deepEqual(states.filter((x) => x !== 'succeeded'), [], 'every provision succeeded');
  assert.equal(leftInProgress, 0, 'no registry entry left in progress');
  assert.deepEqual(missing, [], 'every instance has its keyspace');
  assert.equal(twice, 0, 'no keyspace owned twice');
  assert.equal(duplicated.size, 0, `one provision run per instance: ${[...duplicated.keys()].slice(0, 5).join(', ')}`);
  assert.ok(restarts.every((r) => !r.lastOp.startsWith('no answer')), `last_operation answered during each outage: ${restarts.map((r) => r.lastOp).join('; ')}`);
});
