import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { percentile, row, summarize, type BenchRow } from '../../bench/harness';
import {
  evaluateTargets,
  fmt,
  formatTable,
  niceTicks,
  pairRows,
  renderChart,
  renderMarkdown,
  writeReport,
  type BenchReport,
  type BenchmarkStatus,
  type TargetResult,
} from '../../bench/report';
import { parseBenchArgs } from '../../bench/main';
import { billableActions } from '../../bench/history-support';
import { oneActivityCase, ONE_ACTIVITY_RATIO_METRIC } from '../../bench/osb.bench';
import { requireTestEnv } from '../support/env';

const bf = (benchmark: string, kase: string, metric: string, unit: string, samples: number[]): BenchRow =>
  row({ benchmark, case: kase, subject: 'brokerflow', metric, unit }, samples);
const base = (benchmark: string, kase: string, metric: string, unit: string, samples: number[]): BenchRow =>
  row({ benchmark, case: kase, subject: 'baseline', metric, unit }, samples);

/** An OSB run at three levels, with the 10-client pair slower than its floor. */
function osbRows(paired10: number[]): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const [clients, bfMs, floorMs] of [
    [1, 400, 380],
    [10, 1500, 1000],
    [50, 6000, 5000],
  ] as const) {
    const kase = `provision, ${clients} client${clients === 1 ? '' : 's'}`;
    rows.push(bf('osb', kase, 'latency p50', 'ms', [bfMs, bfMs * 1.1, bfMs * 0.9]), base('osb', kase, 'latency p50', 'ms', [floorMs, floorMs * 1.1, floorMs * 0.9]));
    rows.push(bf('osb', kase, 'latency p99', 'ms', [bfMs * 2, bfMs * 2.1, bfMs * 1.9]), base('osb', kase, 'latency p99', 'ms', [floorMs * 2, floorMs * 2.2, floorMs * 1.8]));
    rows.push(bf('osb', kase, 'throughput', 'ops/s', [clients / (bfMs / 1000)]), base('osb', kase, 'throughput', 'ops/s', [clients / (floorMs / 1000)]));
  }
  rows.push(bf('osb', 'provision, 10 clients', 'throughput ÷ floor, paired per run', '×', paired10));
  const where = 'where the time goes, 10 clients (median per operation)';
  rows.push(bf('osb', where, 'run time on the server', 'ms', [1300]), base('osb', where, 'run time on the server', 'ms', [900]));
  rows.push(bf('osb', where, 'activity execution', 'ms', [400]), base('osb', where, 'activity execution', 'ms', [350]));
  rows.push(bf('osb', where, 'workflow task execution (local activities included)', 'ms', [850]), base('osb', where, 'workflow task execution (local activities included)', 'ms', [500]));
  rows.push(bf('osb', where, 'activity execution: recordComplete', 'ms', [90]));
  rows.push(bf('osb', 'provision, 50 clients', 'worker peak RSS', 'MB', [410, 420, 400]), base('osb', 'provision, 50 clients', 'worker peak RSS', 'MB', [220, 221, 219]));
  const mem = 'worker memory at start, by part (one probe process)';
  rows.push(bf('osb', mem, 'node + tsx', 'MB', [80]), bf('osb', mem, '+ a Worker created with it (its workflow sandbox loaded; after GC)', 'MB', [100]));
  return rows;
}

function report(rows: BenchRow[], benchmarks: BenchmarkStatus[]): BenchReport {
  return {
    schema: 1,
    timestamp: '2026-01-02T03:04:05.000Z',
    command: 'npm run bench -- --quick',
    options: { quick: true, scale: 1, runs: 3 },
    wallSeconds: 200,
    stackStartSeconds: 7,
    machine: { cpuModel: 'Test CPU', cores: 2, memoryMB: 4096, os: 'Linux test', node: 'v20.0.0', loadAverageAtStart: 0.2, loadAverageAtEnd: 0.4 },
    versions: { brokerflow: '0.1.0 (abc)', temporalCli: 'temporal 1', etcd: 'etcd 3.4', kubernetes: 'Kubernetes v1.34', moto: 'moto 5', node: 'v20', packages: { etcd3: '1.1.2' } },
    benchmarks,
    rows,
    targets: evaluateTargets(rows, benchmarks),
  };
}

const ran = (name: string): BenchmarkStatus => ({ name, file: `bench/${name}.bench.ts`, status: 'ran', description: `${name} measures things.`, seconds: 10, rows: 1 });

test('summarize gives the median of an even count as the mean of the middle two, and percentile is nearest-rank', () => {
  assert.deepEqual(summarize([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4 });
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(hundred, 50), 50);
  assert.equal(percentile(hundred, 99), 99);
  assert.equal(percentile([7], 99), 7);
});

test('rows pair brokerflow with its baseline by benchmark, case and metric, in reporting order', () => {
  const pairs = pairRows([bf('a', 'get', 'throughput', 'ops/s', [10]), bf('a', 'put', 'throughput', 'ops/s', [5]), base('a', 'get', 'throughput', 'ops/s', [20])]);
  assert.equal(pairs.length, 2);
  assert.equal(pairs[0]!.case, 'get');
  assert.equal(pairs[0]!.brokerflow!.median, 10);
  assert.equal(pairs[0]!.baseline!.median, 20);
  assert.equal(pairs[1]!.baseline, undefined);
});

test('a datastore throughput below 0.9 of raw etcd3 misses by how much it is short; above passes', () => {
  const rows = [
    bf('datastore', 'get', 'throughput', 'ops/s', [800, 790, 810]),
    base('datastore', 'get', 'throughput', 'ops/s', [1000, 990, 1010]),
    bf('datastore', 'put', 'throughput', 'ops/s', [950]),
    base('datastore', 'put', 'throughput', 'ops/s', [1000]),
    bf('datastore', 'get:cpu', 'client CPU per get', 'µs', [150]),
    base('datastore', 'get:cpu', 'client CPU per get', 'µs', [100]),
  ];
  const targets = evaluateTargets(rows, [ran('datastore')]).filter((t) => t.id === 'datastore-vs-raw');
  assert.deepEqual(
    targets.map((t) => [t.case, t.verdict]),
    [
      ['get', 'miss'],
      ['put', 'pass'],
    ],
  );
  const get = targets[0]!;
  assert.equal(get.value, 0.8);
  assert.match(get.shortfall!, /0\.8× of the baseline where 0\.9× is required: 11% short/);
  assert.match(get.why!, /Client CPU per unit of work: 150 µs for brokerflow against 100 µs raw \(1\.5×\), more in every run: the extra time is spent in brokerflow's own code/);
});

test('a datastore miss whose client CPU overlaps the raw client in some run does not blame brokerflow code', () => {
  const rows = [
    bf('datastore', 'put', 'throughput', 'ops/s', [700, 650, 980]),
    base('datastore', 'put', 'throughput', 'ops/s', [1000, 950, 1050]),
    bf('datastore', 'put:cpu', 'client CPU per put', 'µs', [190, 110, 215]),
    base('datastore', 'put:cpu', 'client CPU per put', 'µs', [113, 93, 120]),
  ];
  const t = evaluateTargets(rows, [ran('datastore')]).find((x) => x.id === 'datastore-vs-raw')!;
  assert.equal(t.verdict, 'miss');
  assert.match(t.why!, /but the runs overlap \(110–215 against 93–120 µs\): CPU does not settle/);
  assert.ok(!t.why!.includes('spent in brokerflow'));
});

test('for a time (ms), brokerflow must take at most baseline ÷ 0.9: 110 ms against 100 ms passes, 120 ms misses', () => {
  const check = (ms: number) =>
    evaluateTargets([bf('datastore', 'syncer-insync', 'time to InSync', 'ms', [ms]), base('datastore', 'syncer-insync', 'time to InSync', 'ms', [100])], [ran('datastore')]).find(
      (t) => t.id === 'datastore-vs-raw',
    )!.verdict;
  assert.equal(check(110), 'pass');
  assert.equal(check(120), 'miss');
});

test('time to InSync gets a verdict at each size, and a miss names what the raw client leaves out of the contract', () => {
  const rows = [10_000, 100_000].flatMap((n) => [
    bf('datastore', `syncer-insync, ${n} keys`, 'time to InSync', 'ms', [n / 80]),
    base('datastore', `syncer-insync, ${n} keys`, 'time to InSync', 'ms', [n / 100]),
    bf('datastore', `syncer-insync, ${n} keys:cpu`, 'client CPU per key to InSync', 'µs', [5]),
    base('datastore', `syncer-insync, ${n} keys:cpu`, 'client CPU per key to InSync', 'µs', [4]),
  ]);
  const targets = evaluateTargets(rows, [ran('datastore')]).filter((t) => t.id === 'datastore-vs-raw');
  assert.deepEqual(
    targets.map((t) => [t.case, t.verdict]),
    [
      ['syncer-insync, 10000 keys', 'miss'],
      ['syncer-insync, 100000 keys', 'miss'],
    ],
  );
  const [small, large] = targets as [TargetResult, TargetResult];
  assert.match(small.why!, /Client CPU per unit of work: 5 µs for brokerflow against 4 µs raw/);
  assert.match(small.why!, /also reads the key `prefix` itself from the same snapshot/);
  assert.match(small.why!, /hands every pair to its consumer as an update/);
  assert.ok(!small.why!.includes('requests one after the other'));
  assert.match(large.why!, /so 100000 keys take 2 requests one after the other where the raw client makes one/);
});

test('an endpoint change p99 over 200 ms misses by the excess; under passes', () => {
  const rows = (p99: number) => [
    bf('endpoints', 'service change -> registry', 'delay p50', 'ms', [120]),
    bf('endpoints', 'service change -> registry', 'delay p99', 'ms', [p99, p99 - 10, p99 + 10]),
  ];
  const miss = evaluateTargets(rows(240), [ran('endpoints')]).find((t) => t.id === 'endpoint-change-p99')!;
  assert.equal(miss.verdict, 'miss');
  assert.match(miss.shortfall!, /240 ms where at most 200 ms is allowed: 40 ms \(20%\) over/);
  assert.match(miss.why!, /The p50 of the same case is 120 ms/);
  assert.equal(evaluateTargets(rows(160), [ran('endpoints')]).find((t) => t.id === 'endpoint-change-p99')!.verdict, 'pass');
});

test('endpoint sync targets: by size, against raw etcd (at most 20x the time) and memory flat', () => {
  const kase = (n: number, what = 'initial sync') => `${what}, ${n} services × 10 endpoints; baseline: the same keys put straight into etcd`;
  const rows = [
    bf('endpoints', kase(1000), 'time to converged', 'ms', [900, 850, 950]),
    base('endpoints', kase(1000), 'time to converged', 'ms', [200, 190, 210]),
    bf('endpoints', kase(10000, 'resync of a registry that lost every key'), 'time to converged', 'ms', [120_000]),
    base('endpoints', kase(10000, 'resync of a registry that lost every key'), 'time to converged', 'ms', [5_000]),
    bf('endpoints', 'memory', 'retained heap growth over the runs, after the first sync to after the last resync', '%', [12]),
  ];
  const got = evaluateTargets(rows, [ran('endpoints')])
    .filter((t) => t.id.startsWith('endpoint-sync'))
    .map((t) => `${t.id} ${t.case?.split(',')[0] ?? ''} ${t.verdict}`);
  assert.deepEqual(got, [
    'endpoint-sync-1000 initial sync pass',
    'endpoint-sync-10000 resync of a registry that lost every key miss',
    'endpoint-sync-vs-raw initial sync pass',
    'endpoint-sync-vs-raw resync of a registry that lost every key miss',
    'endpoint-sync-memory memory miss',
  ]);
});

test('a target whose benchmark was not loaded is reported as not measured, with the load error', () => {
  const statuses: BenchmarkStatus[] = [{ name: 'datastore', file: 'bench/datastore.bench.ts', status: 'not loaded', description: '', error: 'Cannot find module ./x', rows: 0 }];
  const t = evaluateTargets([], statuses).find((x) => x.id === 'datastore-vs-raw')!;
  assert.equal(t.verdict, 'not measured');
  assert.equal(t.note, 'the datastore benchmark was not loaded: Cannot find module ./x');
  assert.equal(evaluateTargets([], []).find((x) => x.id === 'endpoint-change-p99')!.note, 'the endpoints benchmark was not run');
});

test('an OSB throughput miss says by how much and names the largest gap per operation', () => {
  const targets = evaluateTargets(osbRows([0.7, 0.72, 0.68]), [ran('osb')]);
  const t = targets.find((x) => x.id === 'osb-throughput')!;
  assert.equal(t.verdict, 'miss');
  assert.match(t.shortfall!, /0\.7× where at least 0\.8× is required: 13% short/);
  assert.match(t.why!, /a provision takes 1500 ms \(p50\) against the floor's 1000 ms/);
  assert.match(t.why!, /The largest gap is workflow tasks running on the worker \(local activities included\) \(\+350 ms per operation\)/);
  assert.match(t.why!, /Slowest activities: recordComplete 90 ms/);
  assert.ok(!/run-to-run variation/.test(t.why!), 'every paired run missed, so the miss is not noise');
  assert.equal(evaluateTargets(osbRows([0.95, 0.9, 1]), [ran('osb')]).find((x) => x.id === 'osb-throughput')!.verdict, 'pass');
});

test('a miss whose runs reach the target is called run-to-run variation', () => {
  const t = evaluateTargets(osbRows([0.75, 0.7, 0.85]), [ran('osb')]).find((x) => x.id === 'osb-throughput')!;
  assert.equal(t.verdict, 'miss');
  assert.match(t.why!, /The runs span 0\.7–0\.85×, which reaches the target/);
});

test('a worker RSS over 300 MB is explained by the floor worker beside it and the memory a worker holds at start', () => {
  const t = evaluateTargets(osbRows([1]), [ran('osb')]).find((x) => x.id === 'worker-rss')!;
  assert.equal(t.verdict, 'miss');
  assert.match(t.shortfall!, /410 MB where at most 300 MB is allowed: 110 MB \(37%\) over/);
  assert.match(t.why!, /peaks at 220 MB in the same run, so 190 MB come with brokerflow/);
  assert.match(t.why!, /holds 180 MB: node \+ tsx 80 MB, a Worker created with it \(its workflow sandbox loaded; after GC\) 100 MB/);
});

/** A soak's idle rows: the resident set before and after, each with its parts (MB) and the workflows cached. */
function soakRows(kase: string, idle: Record<'before' | 'after', [rss: number, heap: number, external: number, rest: number]>): BenchRow[] {
  return (['before', 'after'] as const).flatMap((when) => {
    const [rss, heap, external, rest] = idle[when];
    return [
      bf('soak', kase, `worker RSS idle, ${when} the soak`, 'MB', [rss]),
      bf('soak', kase, `worker main-thread V8 heap, idle ${when} the soak`, 'MB', [heap]),
      bf('soak', kase, `worker external memory (buffers), idle ${when} the soak`, 'MB', [external]),
      bf('soak', kase, `worker RSS outside both (workflow thread, SDK core, allocator), idle ${when} the soak`, 'MB', [rest]),
      bf('soak', kase, `workflows cached by the worker, idle ${when} the soak`, 'workflows', [1]),
    ];
  });
}

test('idle worker RSS with the endpoint watcher is checked before and after the soak; a miss after it names what grew', () => {
  const kase = 'worker memory over a soak of provisions and deprovisions, 10 clients, endpoint watcher running, 3 minutes';
  const targets = evaluateTargets(soakRows(kase, { before: [230, 100, 10, 120], after: [310, 126, 7, 177] }), [ran('soak')]).filter((x) => x.id === 'worker-rss-idle');
  assert.deepEqual(targets.map((t) => [t.metric, t.verdict]), [['worker RSS idle, before the soak', 'pass'], ['worker RSS idle, after the soak', 'miss']]);
  const after = targets[1]!;
  assert.match(after.shortfall!, /310 MB where at most 250 MB is allowed: 60 MB \(24%\) over/);
  assert.match(after.why!, /Idle after the soak the worker holds 310 MB: the main thread's V8 heap 126 MB, external memory \(buffers\) 7 MB, memory outside both \([^)]*\) 177 MB, with 1 workflow cached\./);
  assert.match(after.why!, /Before the soak it held 230 MB, so the load left 80 MB behind, most of it memory outside both \(\+57 MB; the main thread's V8 heap \+26 MB, external memory -3 MB/);
  // A soak whose worker ran without the watcher is no measure of this target.
  const without = evaluateTargets(soakRows('worker memory over a soak of provisions and deprovisions, 10 clients, 3 minutes', { before: [180, 90, 5, 85], after: [200, 100, 5, 95] }), [ran('soak')]);
  assert.deepEqual(without.filter((x) => x.id === 'worker-rss-idle').map((t) => t.verdict), ['not measured']);
});

test('the table has one line per figure with both sides, the ratio and the verdict, and lists benchmarks that did not run', () => {
  const statuses = [ran('osb'), { ...ran('datastore'), status: 'not loaded' as const, error: 'SyntaxError: Unexpected token' }];
  const text = formatTable(report(osbRows([0.7]), statuses));
  const lines = text.split('\n');
  assert.match(lines[0]!, /^benchmark\s+case\s+metric\s+brokerflow median \[min–max\]\s+baseline median \[min–max\]\s+ratio\s+target\s+verdict$/);
  const tp = lines.find((l) => l.includes('provision, 10 clients') && /\sthroughput\s/.test(l))!;
  assert.match(tp, /6\.67 ops\/s \[6\.67–6\.67\]\s+10 ops\/s \[10–10\]\s+0\.67×/);
  assert.match(lines.find((l) => l.includes('paired per run'))!, /≥ 0\.8×\s+MISS$/);
  assert.ok(lines.includes('datastore: not loaded: SyntaxError: Unexpected token'));
});

test('the page says what was measured, how to reproduce it, the machine, and each miss with its reason', () => {
  const statuses = [ran('osb'), { ...ran('endpoints'), status: 'failed' as const, error: 'Error: kube-apiserver refused' }];
  const text = renderMarkdown(report(osbRows([0.7]), statuses), '../bench/results/latency-vs-concurrency.svg');
  assert.match(text, /Generated by bench\/report\.ts from bench\/results\/latest\.json/);
  assert.match(text, /with `npm run bench -- --quick` \(quick sizes, 3 runs\)/);
  assert.match(text, /Test CPU, 2 cores, 4 GB memory/);
  assert.match(text, /npm run bench -- --quick/);
  assert.match(text, /!\[latency and throughput[^\]]*\]\(\.\.\/bench\/results\/latency-vs-concurrency\.svg\)/);
  assert.match(text, /### Where a target is missed: by how much, and why\n\n- \*\*OSB provision throughput at 10 clients ≥ 0\.8 × the bare-Temporal floor\*\* \(provision, 10 clients \/ throughput ÷ floor, paired per run\): 0\.7× where at least 0\.8× is required: 13% short\./);
  assert.match(text, /\*\*endpoint change -> registry p99 ≤ 200 ms at 10 changes\/s\*\*: the endpoints benchmark failed: Error: kube-apiserver refused/);
  assert.match(text, /### osb\n\nosb measures things\./);
});

test('the chart draws latency p50/p99 and throughput for brokerflow and the floor at every level measured', () => {
  const svg = renderChart(report(osbRows([1]), [ran('osb')]))!;
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  // Six series (four latency, two throughput), a point per level each.
  assert.equal((svg.match(/<polyline/g) ?? []).length, 6);
  assert.equal((svg.match(/<circle/g) ?? []).length, 18);
  assert.ok(!/NaN|undefined/.test(svg));
  for (const label of ['brokerflow p50', 'brokerflow p99', 'floor p50', 'floor p99', 'concurrent clients']) assert.ok(svg.includes(label), label);
  assert.equal(renderChart(report([], [])), undefined);
});

test('writing the report and regenerating the page from its JSON give the same page', () => {
  const dir = mkdtempSync(join(requireTestEnv('workDir'), 'bench-report-'));
  const paths = { json: join(dir, 'results', 'latest.json'), chart: join(dir, 'results', 'chart.svg'), doc: join(dir, 'docs', 'BENCHMARKS.md') };
  const r = report(osbRows([0.9]), [ran('osb')]);
  assert.deepEqual(writeReport(r, paths), [paths.json, paths.chart, paths.doc]);
  const page = readFileSync(paths.doc, 'utf8');
  assert.match(page, /\(\.\.\/results\/chart\.svg\)/);
  const again = JSON.parse(readFileSync(paths.json, 'utf8')) as BenchReport;
  assert.equal(renderMarkdown(again, '../results/chart.svg'), page);
});

test('numbers print with three significant figures and axis ticks cover the largest value', () => {
  assert.deepEqual([fmt(1234.5), fmt(56.78), fmt(3.14159), fmt(0.012345), fmt(0)], ['1235', '56.8', '3.14', '0.012', '0']);
  const ticks = niceTicks(1234);
  assert.equal(ticks[0], 0);
  assert.ok(ticks[ticks.length - 1]! >= 1234);
  assert.ok(ticks.length <= 7);
});

test('the command line refuses a single run and a non-positive scale, and splits --only', () => {
  assert.deepEqual(parseBenchArgs(['--quick', '--only', 'osb, datastore']), { quick: true, scale: 1, runs: 3, only: ['osb', 'datastore'], json: false, endpointServices: 1000 });
  assert.equal(parseBenchArgs(['--endpoint-services', '10000']).endpointServices, 10_000);
  assert.throws(() => parseBenchArgs(['--endpoint-services', '5']), /--endpoint-services must be a whole number from 10 to 100000/);
  assert.throws(() => parseBenchArgs(['--runs', '1']), /--runs must be an integer from 2 to 100/);
  assert.throws(() => parseBenchArgs(['--scale', '0']), /--scale must be a positive number/);
  assert.throws(() => parseBenchArgs(['--bogus']), /Unknown option/);
});

test('a soak runs only when asked for: --soak for 10 minutes, --soak-minutes for another length, or --only soak', () => {
  assert.equal(parseBenchArgs(['--quick']).soakMinutes, undefined);
  assert.equal(parseBenchArgs(['--soak']).soakMinutes, 10);
  assert.equal(parseBenchArgs(['--soak-minutes', '4']).soakMinutes, 4);
  assert.equal(parseBenchArgs(['--only', 'soak']).soakMinutes, 10);
  assert.throws(() => parseBenchArgs(['--soak-minutes', '2']), /--soak-minutes must be a whole number of minutes from 3/);
  assert.throws(() => parseBenchArgs(['--soak-minutes', 'ten']), /--soak-minutes must be a whole number/);
});

test('billable actions are counted from a history by Temporal Cloud\'s rules', () => {
  const events = [
    { eventId: 1, workflowExecutionStartedEventAttributes: {} }, // 1
    { eventId: 5, activityTaskScheduledEventAttributes: {} },
    { eventId: 6, activityTaskStartedEventAttributes: { attempt: 3 } }, // 3 attempts
    { eventId: 7, activityTaskScheduledEventAttributes: {} }, // cancelled before it started: nothing
    { eventId: 9, markerRecordedEventAttributes: { markerName: 'core_local_activity', workflowTaskCompletedEventId: 8 } },
    { eventId: 10, markerRecordedEventAttributes: { markerName: 'core_local_activity', workflowTaskCompletedEventId: 8 } }, // one task: 1
    { eventId: 11, markerRecordedEventAttributes: { markerName: 'core_patch', workflowTaskCompletedEventId: 8 } }, // versioning: 0
    { eventId: 13, markerRecordedEventAttributes: { markerName: 'core_local_activity', workflowTaskCompletedEventId: 12 } }, // 1
    { eventId: 14, timerStartedEventAttributes: {} }, // 1
    { eventId: 15, upsertWorkflowSearchAttributesEventAttributes: { searchAttributes: { indexedFields: { TemporalChangeVersion: {} } } } }, // 0
    { eventId: 16, upsertWorkflowSearchAttributesEventAttributes: { searchAttributes: { indexedFields: { OriginatingUser: {} } } } }, // 1
    { eventId: 17, workflowExecutionSignaledEventAttributes: {} }, // 1
    { eventId: 18, workflowExecutionUpdateAcceptedEventAttributes: {} }, // 1
    { eventId: 19, workflowExecutionCompletedEventAttributes: {} },
  ];
  assert.equal(billableActions(events as never), 1 + 3 + 1 + 1 + 1 + 1 + 1 + 1);
});

test('the provision targets against the one-activity floor read the rows the osb benchmark writes', () => {
  const rows: BenchRow[] = [
    row({ benchmark: 'osb', case: oneActivityCase(1), subject: 'brokerflow', metric: 'latency p50', unit: 'ms' }, [400, 420, 410]),
    row({ benchmark: 'osb', case: oneActivityCase(1), subject: 'baseline', metric: 'latency p50', unit: 'ms' }, [200, 210, 205]),
    row({ benchmark: 'osb', case: oneActivityCase(50), subject: 'brokerflow', metric: ONE_ACTIVITY_RATIO_METRIC, unit: '×' }, [0.75, 0.8, 0.72]),
    row({ benchmark: 'osb', case: 'where the time goes, 10 clients (median per operation)', subject: 'brokerflow', metric: 'history events', unit: 'count' }, [48, 48]),
    row({ benchmark: 'osb', case: 'where the time goes, 10 clients (median per operation)', subject: 'brokerflow', metric: 'billable actions (Temporal Cloud, from the history)', unit: 'count' }, [4, 4]),
  ];
  const verdicts = Object.fromEntries(evaluateTargets(rows).filter((t) => t.benchmark === 'osb' && t.case).map((t) => [t.id, t.verdict]));
  assert.deepEqual(verdicts, {
    'provision-p50-vs-one-activity': 'miss', // 410 ms against 205: 2× where 1.5× is allowed
    'provision-throughput-vs-one-activity': 'pass',
    'provision-history-events': 'miss',
    'provision-actions': 'pass',
  });
});
