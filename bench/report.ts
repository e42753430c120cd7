// The report of `npm run bench`: the JSON kept in bench/results/latest.json, the targets checked against its rows
// (with by how much and why where one is missed), the console table, the latency-vs-concurrency chart (SVG) and
// docs/BENCHMARKS.md. Everything here is computed from the JSON alone, so the page can be regenerated:
//
//   node --import tsx bench/report.ts [bench/results/latest.json]
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import type { BenchRow } from './harness';
import type { MachineInfo, Versions } from './stack-support';

const repoRoot = resolve(__dirname, '..');

/** Where `npm run bench` writes its outputs (all committed). */
export const outputPaths = {
  json: join(repoRoot, 'bench', 'results', 'latest.json'),
  chart: join(repoRoot, 'bench', 'results', 'latency-vs-concurrency.svg'),
  doc: join(repoRoot, 'docs', 'BENCHMARKS.md'),
};

/** What happened to one benchmark file in a run. */
export interface BenchmarkStatus {
  name: string;
  file: string;
  status: 'ran' | 'failed' | 'not loaded' | 'not run';
  /** The first comment block of the file: what it measures and against which baseline. */
  description: string;
  seconds?: number;
  error?: string;
  rows: number;
}

/** bench/results/latest.json. */
export interface BenchReport {
  schema: 1;
  timestamp: string;
  command: string;
  options: { quick: boolean; scale: number; runs: number; only?: string[]; soakMinutes?: number; endpointServices?: number };
  /** From start to the report being written (servers' start included, their stop not). */
  wallSeconds: number;
  stackStartSeconds: number;
  machine: MachineInfo;
  versions: Versions;
  benchmarks: BenchmarkStatus[];
  rows: BenchRow[];
  targets: TargetResult[];
}

// ---- targets -----------------------------------------------------------------------------------------------

/** How a target compares: against the baseline row, or the figure itself against a bound. */
export type TargetKind = 'ratio' | 'at most' | 'at least';

/** A target of issue 11, and the rows it applies to. */
export interface TargetSpec {
  id: string;
  description: string;
  benchmark: string;
  /**
   * `ratio`: brokerflow's performance relative to its baseline row (throughput ratio, or the inverse ratio for
   * times) must be at least `threshold`. `at most` / `at least`: brokerflow's median, in the row's unit.
   */
  kind: TargetKind;
  threshold: number;
  /** Whether a brokerflow row is one this target checks. */
  applies(row: BenchRow): boolean;
}

/** The case names come from osb.bench.ts (`provision, N clients`) and the other benchmarks' own rows. */
export const TARGETS: TargetSpec[] = [
  {
    id: 'osb-throughput',
    description: 'OSB provision throughput at 10 clients ≥ 0.8 × the bare-Temporal floor',
    benchmark: 'osb',
    // Checked on the ratio of each run's back-to-back pair, which the load of a shared machine disturbs least.
    kind: 'at least',
    threshold: 0.8,
    applies: (r) => r.case === 'provision, 10 clients' && r.metric === 'throughput ÷ floor, paired per run',
  },
  {
    id: 'provision-p50-vs-one-activity',
    description: 'provision p50 at 1 client ≤ 1.5 × the one-activity floor',
    benchmark: 'osb',
    // For times, `ratio` is floor ÷ brokerflow: at least 1 / 1.5.
    kind: 'ratio',
    threshold: 1 / 1.5,
    applies: (r) => r.case === 'provision vs the one-activity floor, 1 client' && r.metric === 'latency p50',
  },
  {
    id: 'provision-throughput-vs-one-activity',
    description: 'provision throughput at 50 clients ≥ 0.7 × the one-activity floor',
    benchmark: 'osb',
    kind: 'at least',
    threshold: 0.7,
    applies: (r) => r.case === 'provision vs the one-activity floor, 50 clients' && r.metric === 'throughput ÷ one-activity floor, paired per run',
  },
  {
    id: 'provision-history-events',
    description: 'a provision records ≤ 20 history events',
    benchmark: 'osb',
    kind: 'at most',
    threshold: 20,
    applies: (r) => r.case.startsWith('where the time goes') && r.metric === 'history events',
  },
  {
    id: 'provision-actions',
    description: 'a provision costs ≤ 4 billable Temporal actions (counted from its history)',
    benchmark: 'osb',
    kind: 'at most',
    threshold: 4,
    applies: (r) => r.case.startsWith('where the time goes') && r.metric.startsWith('billable actions'),
  },
  {
    id: 'cloudmap-throttling',
    description: 'Cloud Map with the default rate budget: 0 throttling answers',
    benchmark: 'cloudmap-budget',
    kind: 'at most',
    threshold: 0,
    applies: (r) => r.metric === 'throttling answers',
  },
  {
    id: 'datastore-vs-raw',
    description: 'datastore ≥ 0.9 × raw etcd3 (throughput; time to InSync)',
    benchmark: 'datastore',
    kind: 'ratio',
    threshold: 0.9,
    // Client CPU rows explain a miss; the target is on what users wait for.
    applies: (r) => !/cpu/i.test(r.case) && !/cpu/i.test(r.metric),
  },
  {
    id: 'endpoint-sync-1000',
    description: 'initial sync and resync of 1,000 services × 10 endpoints ≤ 10 s',
    benchmark: 'endpoints',
    kind: 'at most',
    threshold: 10_000,
    applies: (r) => /sync/.test(r.case) && /\b1000 services\b/.test(r.case) && r.metric === 'time to converged',
  },
  {
    id: 'endpoint-sync-10000',
    description: 'initial sync and resync of 10,000 services × 10 endpoints ≤ 100 s (`--endpoint-services 10000`)',
    benchmark: 'endpoints',
    kind: 'at most',
    threshold: 100_000,
    applies: (r) => /sync/.test(r.case) && /\b10000 services\b/.test(r.case) && r.metric === 'time to converged',
  },
  {
    id: 'endpoint-sync-vs-raw',
    description: 'initial sync and resync ≤ 20 × the time of putting the same keys into etcd directly',
    benchmark: 'endpoints',
    kind: 'ratio',
    threshold: 1 / 20,
    applies: (r) => /sync/.test(r.case) && r.metric === 'time to converged',
  },
  {
    id: 'endpoint-sync-memory',
    description: 'memory flat over repeated syncs: retained heap growth ≤ 10 % from after the first initial sync to after the last resync',
    benchmark: 'endpoints',
    kind: 'at most',
    threshold: 10,
    applies: (r) => r.metric.startsWith('retained heap growth over the runs'),
  },
  {
    id: 'endpoint-change-p99',
    description: 'endpoint change -> registry p99 ≤ 200 ms at 10 changes/s',
    benchmark: 'endpoints',
    kind: 'at most',
    threshold: 200,
    applies: (r) => r.unit === 'ms' && /p99/i.test(r.metric) && /change|delay|propagat/i.test(`${r.case} ${r.metric}`),
  },
  {
    id: 'last-operation-p99',
    description: 'last_operation p99 ≤ 20 ms, with the step lookup',
    benchmark: 'last-operation',
    kind: 'at most',
    threshold: 20,
    applies: (r) => r.metric === 'latency p99' && r.unit === 'ms',
  },
  {
    id: 'worker-rss-soak',
    description: 'worker RSS flat over the soak: growth ≤ 10 % from its second minute to its last (`--soak`)',
    benchmark: 'soak',
    kind: 'at most',
    threshold: 10,
    applies: (r) => r.metric === 'worker RSS growth, second to last minute',
  },
  {
    id: 'worker-rss-idle',
    // Checked on both idle figures: before the soak is a worker that has just started its watcher; after the soak
    // is the stricter one, since it also holds what the load left behind (a grown V8 heap, the allocator's free
    // memory), which is what a worker between bursts keeps. The target is met when both pass.
    description: 'worker RSS idle with the endpoint watcher running ≤ 250 MB, before the soak and after it (`--soak`)',
    benchmark: 'soak',
    kind: 'at most',
    threshold: 250,
    applies: (r) => r.case.includes('endpoint watcher running') && /^worker RSS idle, (before|after) the soak$/.test(r.metric),
  },
  {
    id: 'worker-rss',
    description: 'worker peak RSS at 50 clients ≤ 300 MB',
    benchmark: 'osb',
    kind: 'at most',
    threshold: 300,
    applies: (r) => r.case === 'provision, 50 clients' && r.metric === 'worker peak RSS',
  },
];

/** How one target fared against one row. */
export interface TargetResult {
  id: string;
  description: string;
  benchmark: string;
  kind: TargetKind;
  threshold: number;
  verdict: 'pass' | 'miss' | 'not measured';
  case?: string;
  metric?: string;
  unit?: string;
  /** ratio: brokerflow's relative performance (1 = the baseline's); otherwise brokerflow's median. */
  value?: number;
  /** What the runs span: for ratio the least and most favourable pairing of min and max; otherwise min and max. */
  range?: [number, number];
  /** For a miss: by how much, in words. */
  shortfall?: string;
  /** For a miss: why, from the other figures of the same run. */
  why?: string;
  /** For not measured: why not. */
  note?: string;
}

/** Throughput-like units grow with performance; times, sizes and counts shrink. */
export function higherIsBetter(unit: string): boolean {
  return /\/s$/.test(unit);
}

const rowKey = (r: Pick<BenchRow, 'benchmark' | 'case' | 'metric'>) => `${r.benchmark}\u0000${r.case}\u0000${r.metric}`;

/** A brokerflow figure and its baseline, paired by benchmark, case and metric, in the order they were reported. */
export interface RowPair {
  benchmark: string;
  case: string;
  metric: string;
  unit: string;
  brokerflow?: BenchRow;
  baseline?: BenchRow;
}

export function pairRows(rows: BenchRow[]): RowPair[] {
  const pairs = new Map<string, RowPair>();
  for (const r of rows) {
    const k = rowKey(r);
    const p = pairs.get(k) ?? { benchmark: r.benchmark, case: r.case, metric: r.metric, unit: r.unit };
    p[r.subject] = r;
    pairs.set(k, p);
  }
  return [...pairs.values()];
}

/** brokerflow ÷ baseline of the medians, as the table shows it (undefined without both). */
export function ratioOf(p: RowPair): number | undefined {
  if (!p.brokerflow || !p.baseline || p.baseline.median === 0) return undefined;
  return p.brokerflow.median / p.baseline.median;
}

/** brokerflow's performance relative to the baseline, with the span the runs allow. */
export function relativePerformance(p: RowPair): { value: number; range: [number, number] } | undefined {
  const b = p.brokerflow;
  const base = p.baseline;
  if (!b || !base || b.median <= 0 || base.median <= 0 || b.min <= 0 || base.min <= 0) return undefined;
  return higherIsBetter(p.unit)
    ? { value: b.median / base.median, range: [b.min / base.max, b.max / base.min] }
    : { value: base.median / b.median, range: [base.min / b.max, base.max / b.min] };
}

/** Checks every target against the rows; a target with no row says why it was not measured. */
export function evaluateTargets(rows: BenchRow[], benchmarks: BenchmarkStatus[] = []): TargetResult[] {
  const pairs = pairRows(rows);
  const out: TargetResult[] = [];
  for (const t of TARGETS) {
    const base = { id: t.id, description: t.description, benchmark: t.benchmark, kind: t.kind, threshold: t.threshold };
    const matching = pairs.filter((p) => p.benchmark === t.benchmark && p.brokerflow && t.applies(p.brokerflow));
    for (const p of matching) {
      const where = { case: p.case, metric: p.metric, unit: p.unit };
      if (t.kind === 'ratio') {
        const rel = relativePerformance(p);
        if (!rel) {
          out.push({ ...base, ...where, verdict: 'not measured', note: 'no baseline row beside it' });
          continue;
        }
        const pass = rel.value >= t.threshold;
        out.push({
          ...base,
          ...where,
          verdict: pass ? 'pass' : 'miss',
          value: rel.value,
          range: rel.range,
          ...(pass ? {} : { shortfall: `${fmt(rel.value)}× of the baseline where ${fmt(t.threshold)}× is required: ${pct(1 - rel.value / t.threshold)} short` }),
        });
      } else {
        const b = p.brokerflow!;
        const pass = t.kind === 'at most' ? b.median <= t.threshold : b.median >= t.threshold;
        const off = Math.abs(b.median - t.threshold);
        out.push({
          ...base,
          ...where,
          verdict: pass ? 'pass' : 'miss',
          value: b.median,
          range: [b.min, b.max],
          ...(pass
            ? {}
            : {
                shortfall:
                  t.kind === 'at most'
                    ? `${withUnit(b.median, p.unit)} where at most ${withUnit(t.threshold, p.unit)} is allowed: ${withUnit(off, p.unit)} (${pct(off / t.threshold)}) over`
                    : `${withUnit(b.median, p.unit)} where at least ${withUnit(t.threshold, p.unit)} is required: ${pct(off / t.threshold)} short`,
              }),
        });
      }
    }
    if (matching.length === 0) {
      const status = benchmarks.find((b) => b.name === t.benchmark);
      const note = !status
        ? `the ${t.benchmark} benchmark was not run`
        : status.status === 'not loaded'
          ? `the ${t.benchmark} benchmark was not loaded: ${status.error ?? 'unknown error'}`
          : status.status === 'failed'
            ? `the ${t.benchmark} benchmark failed: ${status.error ?? 'unknown error'}`
            : status.status === 'not run'
              ? `the ${t.benchmark} benchmark ${status.error ?? 'was not run'}`
              : `the ${t.benchmark} benchmark reported no row this target applies to`;
      out.push({ ...base, verdict: 'not measured', note });
    }
  }
  for (const r of out) if (r.verdict === 'miss') r.why = explainMiss(r, rows);
  return out;
}

/** Why a target was missed, from the other rows of the run. */
export function explainMiss(t: TargetResult, rows: BenchRow[]): string {
  const pairs = pairRows(rows);
  const find = (benchmark: string, kase: string, metric: string) => pairs.find((p) => p.benchmark === benchmark && p.case === kase && p.metric === metric);
  const reasons: string[] = [];
  if (t.id === 'osb-throughput') {
    const lat = find('osb', 'provision, 10 clients', 'latency p50');
    const tp = find('osb', 'provision, 10 clients', 'throughput');
    if (tp?.brokerflow && tp.baseline) {
      reasons.push(`Throughput was ${fmt(tp.brokerflow.median)} ops/s against the floor's ${fmt(tp.baseline.median)} ops/s (ratio of the medians ${fmt(tp.brokerflow.median / tp.baseline.median)}×).`);
    }
    if (lat?.brokerflow && lat.baseline) {
      reasons.push(`With 10 clients each waiting for its provision, throughput follows latency: a provision takes ${fmt(lat.brokerflow.median)} ms (p50) against the floor's ${fmt(lat.baseline.median)} ms.`);
    }
    const parts = pairs.filter((p) => p.benchmark === 'osb' && p.case.startsWith('where the time goes'));
    const part = (metric: string) => parts.find((p) => p.metric === metric);
    const named: Array<[string, string]> = [
      ['request sent -> run started (HTTP, checks, start call)', 'from the request to the start of the run'],
      ['run time on the server', 'the workflow run on the server'],
      ['activity execution', 'activity execution'],
      ['activity queue wait', 'activities waiting in the task queue'],
      ['workflow task execution (local activities included)', 'workflow tasks running on the worker (local activities included)'],
      ['workflow task queue wait', 'workflow tasks waiting for a poll'],
      ['round trips and server bookkeeping', 'round trips and server bookkeeping'],
      ['run closed -> client saw success (polling)', 'from the close of the run to the client seeing success'],
    ];
    const described = named
      .map(([m, label]) => [label, part(m)] as const)
      .filter((x): x is readonly [string, RowPair] => Boolean(x[1]?.brokerflow && x[1].baseline))
      .map(([label, p]) => ({ label, bf: p.brokerflow!.median, floor: p.baseline!.median }));
    if (described.length) {
      reasons.push(`Per operation (medians): ${described.map((d) => `${d.label} ${fmt(d.bf)} ms vs ${fmt(d.floor)} ms`).join('; ')}.`);
      const gaps = described.filter((d) => d.label !== 'the workflow run on the server').sort((a, b) => b.bf - b.floor - (a.bf - a.floor));
      if (gaps[0]) reasons.push(`The largest gap is ${gaps[0].label} (+${fmt(gaps[0].bf - gaps[0].floor)} ms per operation).`);
    }
    const byType = parts
      .filter((p) => p.metric.startsWith('activity execution: ') && p.brokerflow)
      .sort((a, b) => b.brokerflow!.median - a.brokerflow!.median)
      .slice(0, 3);
    if (byType.length) reasons.push(`Slowest activities: ${byType.map((p) => `${p.metric.slice('activity execution: '.length)} ${fmt(p.brokerflow!.median)} ms`).join(', ')}.`);
    const events = part('history events');
    const size = part('history size');
    if (events?.brokerflow && events.baseline) {
      reasons.push(
        `A provision's history has ${fmt(events.brokerflow.median)} events${size?.brokerflow ? ` (${fmt(size.brokerflow.median / 1024)} KiB)` : ''} against the floor's ${fmt(events.baseline.median)}${size?.baseline ? ` (${fmt(size.baseline.median / 1024)} KiB)` : ''}.`,
      );
    }
  } else if (t.id === 'worker-rss') {
    const p = find('osb', t.case ?? '', 'worker peak RSS');
    if (p?.baseline) {
      reasons.push(
        `The floor's worker (the Temporal SDK with the same concurrency limits, no brokerflow code) peaks at ${fmt(p.baseline.median)} MB in the same run, so ${fmt(Math.max(0, (t.value ?? 0) - p.baseline.median))} MB come with brokerflow.`,
      );
    }
    const parts = pairs.filter((x) => x.benchmark === 'osb' && x.case.startsWith('worker memory at start') && x.brokerflow);
    if (parts.length) {
      const total = parts.reduce((sum, x) => sum + x.brokerflow!.median, 0);
      reasons.push(
        `Before its first task a worker process holds ${fmt(total)} MB: ${parts.map((x) => `${x.metric.replace(/^\+ /, '')} ${fmt(x.brokerflow!.median)} MB`).join(', ')}; the rest is workflow caches and in-flight work under load.`,
      );
    }
  } else if (t.id === 'worker-rss-idle') {
    const when = /before/.test(t.metric ?? '') ? 'before' : 'after';
    const part = (metric: string, w = when) => find('soak', t.case ?? '', `${metric}, idle ${w} the soak`)?.brokerflow?.median;
    const names = ['worker main-thread V8 heap', 'worker external memory (buffers)', 'worker RSS outside both (workflow thread, SDK core, allocator)'] as const;
    const labels = ["the main thread's V8 heap", 'external memory (buffers)', "memory outside both (the workflow thread's V8 heap, the SDK's native core, the C allocator's free memory, code)"];
    const short = ["the main thread's V8 heap", 'external memory', 'memory outside both'];
    const parts = names.map((n) => part(n));
    const cached = part('workflows cached by the worker');
    if (parts.every((x) => x !== undefined)) {
      reasons.push(
        `Idle ${when} the soak the worker holds ${fmt(t.value ?? 0)} MB: ${parts.map((x, i) => `${labels[i]} ${fmt(x!)} MB`).join(', ')}${cached !== undefined ? `, with ${fmt(cached)} workflow${cached === 1 ? '' : 's'} cached` : ''}.`,
      );
    }
    const before = find('soak', t.case ?? '', 'worker RSS idle, before the soak')?.brokerflow?.median;
    if (when === 'after' && before !== undefined) {
      const grown = names.map((n, i) => ({ label: short[i]!, by: (part(n, 'after') ?? NaN) - (part(n, 'before') ?? NaN) })).filter((g) => Number.isFinite(g.by));
      const most = [...grown].sort((a, b) => b.by - a.by)[0];
      reasons.push(
        `Before the soak it held ${fmt(before)} MB, so the load left ${fmt((t.value ?? 0) - before)} MB behind${most && most.by > 0 ? `, most of it ${most.label} (+${fmt(most.by)} MB; ${grown.map((g) => `${g.label} ${g.by >= 0 ? '+' : ''}${fmt(g.by)} MB`).join(', ')})` : ''}.`,
      );
    } else if (when === 'before' && parts[0] !== undefined) {
      reasons.push('No operation has run yet: this is what the process loads and keeps to run workflows, activities and the watcher.');
    }
  } else if (t.case !== undefined && t.metric !== undefined) {
    const cpu = pairs.find((p) => p.benchmark === t.benchmark && p.case === `${t.case}:cpu`);
    if (cpu?.brokerflow && cpu.baseline) {
      const r = cpu.brokerflow.median / cpu.baseline.median;
      const cpuText = `Client CPU per unit of work: ${fmt(cpu.brokerflow.median)} ${cpu.unit} for brokerflow against ${fmt(cpu.baseline.median)} ${cpu.unit} raw (${fmt(r)}×)`;
      reasons.push(
        cpu.brokerflow.min > cpu.baseline.max
          ? `${cpuText}, more in every run: the extra time is spent in brokerflow's own code on the client side.`
          : r <= 1.1
            ? `${cpuText}: brokerflow's code costs no more CPU than the raw client, so the gap is in waiting (the server, or the machine's other load), not in brokerflow's code.`
            : `${cpuText}, but the runs overlap (${fmt(cpu.brokerflow.min)}–${fmt(cpu.brokerflow.max)} against ${fmt(cpu.baseline.min)}–${fmt(cpu.baseline.max)} ${cpu.unit}): CPU does not settle whether brokerflow's code is the cause.`,
      );
    }
    const p99 = find(t.benchmark, t.case, t.metric);
    const p50 = find(t.benchmark, t.case, t.metric.replace(/p99/i, 'p50'));
    if (t.kind === 'at most' && p50?.brokerflow && p50 !== p99) reasons.push(`The p50 of the same case is ${fmt(p50.brokerflow.median)} ${p50.unit}: the tail, not the typical change, misses.`);
    if (t.id === 'datastore-vs-raw') reasons.push(...datastoreBaselineGaps(t.case, t.metric));
  }
  if (t.range && (t.kind === 'at most' ? t.range[0] <= t.threshold : t.range[1] >= t.threshold)) {
    reasons.push(`The runs span ${spanText(t)}, which reaches the target: on this machine the miss is within run-to-run variation.`);
  }
  return reasons.join(' ') || 'No other figure of this run explains it.';
}

/** The datastore's default page of a list (adapters/datastore/etcd.ts, `listPageSize`). */
const DATASTORE_LIST_PAGE = 50_000;

/**
 * What the raw client of datastore.bench.ts leaves out of a list, or of the list and watch to InSync, that the
 * datastore contract (docs/design/contracts/datastore.md) requires of brokerflow.
 */
function datastoreBaselineGaps(kase: string, metric: string): string[] {
  const syncer = kase.startsWith('syncer-insync');
  if (!syncer && kase !== 'list') return [];
  const keys = Number(/(\d+) keys/.exec(`${kase} ${metric}`)?.[1] ?? 0);
  const pages = Math.ceil(keys / DATASTORE_LIST_PAGE);
  const gaps = [
    'The raw client does less than the datastore contract asks of a list: one range over the keys under `prefix/`, ' +
      'where the datastore also reads the key `prefix` itself from the same snapshot (a transaction of two ranges)' +
      (pages > 1
        ? ` and reads at most ${fmt(DATASTORE_LIST_PAGE)} keys per request, so ${fmt(keys)} keys take ${pages} requests one after the other where the raw client makes one.`
        : '.'),
  ];
  if (syncer) {
    gaps.push(
      "The raw client's map is the whole of its picture; the Syncer keeps the same map (key to revision) and also hands every pair to its consumer as an update, in batches of up to 10,000, before it reports InSync.",
    );
  }
  return gaps;
}

// ---- formatting ----------------------------------------------------------------------------------------------

/** A number with three significant figures at most, no exponent. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a >= 100) return String(Math.round(n));
  if (a >= 10) return n.toFixed(1).replace(/\.0$/, '');
  if (a >= 1) return n.toFixed(2).replace(/\.?0+$/, '');
  if (a === 0) return '0';
  return n.toPrecision(2).replace(/\.?0+$/, '');
}

function pct(fraction: number): string {
  return `${Math.round(fraction * 100)}%`;
}

function figure(r: BenchRow | undefined): string {
  return r ? `${withUnit(r.median, r.unit)} [${fmt(r.min)}–${fmt(r.max)}]` : '—';
}

function withUnit(n: number, unit: string | undefined): string {
  return unit === '×' ? `${fmt(n)}×` : `${fmt(n)} ${unit ?? ''}`.trim();
}

function targetText(t: TargetResult): string {
  if (t.kind === 'ratio') return `≥ ${fmt(t.threshold)}× baseline`;
  return `${t.kind === 'at most' ? '≤' : '≥'} ${withUnit(t.threshold, t.unit)}`;
}

function measuredText(t: TargetResult): string {
  if (t.value === undefined) return '—';
  return t.kind === 'ratio' ? `${fmt(t.value)}× of baseline` : withUnit(t.value, t.unit);
}

function spanText(t: TargetResult): string {
  if (!t.range) return '—';
  const unit = t.kind === 'ratio' ? '×' : t.unit;
  return unit === '×' ? `${fmt(t.range[0])}–${fmt(t.range[1])}×` : `${fmt(t.range[0])}–${fmt(t.range[1])} ${unit ?? ''}`.trim();
}

function verdictText(t: TargetResult | undefined): string {
  if (!t) return '';
  return t.verdict === 'pass' ? 'pass' : t.verdict === 'miss' ? 'MISS' : 'not measured';
}

/** The lines of the table: benchmark, case, metric, both figures, ratio, target, verdict. */
export function tableRows(report: Pick<BenchReport, 'rows' | 'targets'>): string[][] {
  const header = ['benchmark', 'case', 'metric', 'brokerflow median [min–max]', 'baseline median [min–max]', 'ratio', 'target', 'verdict'];
  const targetOf = (p: RowPair) => report.targets.find((t) => t.benchmark === p.benchmark && t.case === p.case && t.metric === p.metric);
  const body = pairRows(report.rows).map((p) => {
    const ratio = ratioOf(p);
    const t = targetOf(p);
    return [p.benchmark, p.case, p.metric, figure(p.brokerflow), figure(p.baseline), ratio === undefined ? '' : `${fmt(ratio)}×`, t ? targetText(t) : '', verdictText(t)];
  });
  return [header, ...body];
}

/** The console table, columns padded. */
export function formatTable(report: Pick<BenchReport, 'rows' | 'targets' | 'benchmarks'>): string {
  const rows = tableRows(report);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => [...r[c]!].length)));
  const line = (r: string[]) => r.map((cell, c) => cell + ' '.repeat(widths[c]! - [...cell].length)).join('  ').trimEnd();
  const out = [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)];
  for (const b of report.benchmarks) {
    if (b.status !== 'ran') out.push(`${b.name}: ${b.status}: ${b.error ?? 'no error message'}`);
  }
  for (const t of report.targets) if (t.verdict === 'not measured' && !t.case) out.push(`target "${t.description}": not measured (${t.note ?? ''})`);
  return out.join('\n');
}

const md = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function markdownTable(rows: string[][]): string {
  const [head, ...body] = rows;
  return [`| ${head!.map(md).join(' | ')} |`, `|${head!.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.map(md).join(' | ')} |`)].join('\n');
}

function duration(seconds: number): string {
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

/** docs/BENCHMARKS.md, from the report alone. `chartLink` is the chart's path relative to the doc, if drawn. */
export function renderMarkdown(report: BenchReport, chartLink?: string): string {
  const o = report.options;
  const m = report.machine;
  const v = report.versions;
  const lines: string[] = [];
  lines.push('# Benchmarks', '');
  lines.push(
    '<!-- Generated by bench/report.ts from bench/results/latest.json. Do not edit: run `npm run bench`, or',
    '     `node --import tsx bench/report.ts bench/results/latest.json` to regenerate from the JSON. -->',
    '',
  );
  lines.push(
    `Measured ${report.timestamp.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')} with \`${report.command}\`` +
      ` (${o.quick ? 'quick sizes' : 'full sizes'}${o.scale !== 1 ? `, scale ${o.scale}` : ''}, ${o.runs} runs${o.only ? `, only ${o.only.join(', ')}` : ''});` +
      ` the whole run took ${duration(report.wallSeconds)}, of which ${duration(report.stackStartSeconds)} to start the servers.`,
    '',
    'Every figure is the **median of the runs, with the min–max over those runs in brackets**; a percentile (p50, p99)',
    'is taken within each run, then its median across runs. Every brokerflow figure has its **baseline measured beside it,',
    'on the same servers, in the same run**, and the ratio column is brokerflow ÷ baseline of the medians (for',
    'throughput higher is better, for times and memory lower is better).',
    '',
  );

  lines.push('## Targets', '');
  const targetRows = [['target', 'case', 'measured', 'runs span', 'verdict']];
  for (const t of report.targets) {
    targetRows.push([t.description, t.case ? `${t.case} / ${t.metric}` : t.note ?? '', measuredText(t), spanText(t), verdictText(t)]);
  }
  lines.push(markdownTable(targetRows), '');
  const misses = report.targets.filter((t) => t.verdict === 'miss');
  if (misses.length) {
    lines.push('### Where a target is missed: by how much, and why', '');
    for (const t of misses) lines.push(`- **${t.description}** (${t.case} / ${t.metric}): ${t.shortfall}. ${t.why ?? ''}`.trimEnd());
    lines.push('');
  }
  const unmeasured = report.targets.filter((t) => t.verdict === 'not measured');
  if (unmeasured.length) {
    lines.push('### Not measured', '');
    for (const t of unmeasured) lines.push(`- **${t.description}**: ${t.note ?? 'no figure'}.`);
    lines.push('');
  }

  lines.push('## Machine and versions', '');
  lines.push(
    `- Machine: ${m.cpuModel}, ${m.cores} cores, ${fmt(m.memoryMB / 1024)} GB memory, ${m.os}, Node ${m.node}.`,
    `- Load average (1 min) at the start ${fmt(m.loadAverageAtStart)}${m.loadAverageAtEnd !== undefined ? `, at the end ${fmt(m.loadAverageAtEnd)}` : ''}` +
      (m.loadAverageAtStart > m.cores * 0.5 ? ': the machine was busy with other work, which widens every min–max and lowers absolute figures; ratios are steadier because both sides ran under the same load.' : '.'),
    `- brokerflow ${v.brokerflow}; ${v.temporalCli}; ${v.etcd}; ${v.kubernetes}; ${v.moto}.`,
    `- Packages: ${Object.entries(v.packages)
      .map(([n, ver]) => `${n} ${ver}`)
      .join(', ')}.`,
    '',
  );

  lines.push('## How to reproduce', '');
  lines.push(
    '```sh',
    'npm run bench                                # every benchmark at full size (several minutes)',
    'npm run bench -- --quick                     # the smallest sizes that still say something (under 5 minutes on 2 cores)',
    'npm run bench -- --scale 4 --runs 5          # sizes × 4, median of 5 runs',
    'npm run bench -- --only osb,datastore        # some benchmarks (names are the bench/<name>.bench.ts files)',
    'npm run bench -- --json                      # print only the JSON report on stdout',
    'node --import tsx bench/report.ts bench/results/latest.json   # regenerate this page and the chart',
    '```',
    '',
    'The harness starts its own servers once (Temporal dev server, etcd, a tenant etcd with authentication, moto, the',
    'Kubernetes control plane) in a temporary folder, runs each `bench/*.bench.ts`, writes',
    '`bench/results/latest.json`, the chart and this page, and stops everything, also on failure.',
    '',
  );

  lines.push('## Results', '');
  for (const b of report.benchmarks) {
    lines.push(`### ${b.name}`, '');
    if (b.status !== 'ran') {
      lines.push(`**${b.status}**: ${b.error ?? 'no error message'}`, '');
    }
    if (b.description) lines.push(b.description, '');
    if (b.seconds !== undefined) lines.push(`Ran in ${duration(b.seconds)} (\`${b.file}\`).`, '');
    if (b.name === 'osb' && chartLink) lines.push(`![latency and throughput against concurrent clients, brokerflow and the bare-Temporal floor](${chartLink})`, '');
    const rows = report.rows.filter((r) => r.benchmark === b.name);
    if (rows.length) {
      const table = tableRows({ rows, targets: report.targets }).map((r) => r.slice(1));
      lines.push(markdownTable(table), '');
    }
  }
  return lines.join('\n');
}

// ---- chart -----------------------------------------------------------------------------------------------------

interface Series {
  label: string;
  color: string;
  dashed: boolean;
  points: Array<BenchRow | undefined>;
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round tick values from 0 to at least `max`. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** 1-2-5 ticks spanning [min, max] for a logarithmic axis. */
export function logTicks(min: number, max: number): number[] {
  const lo = 10 ** Math.floor(Math.log10(min));
  const ticks: number[] = [];
  for (let decade = lo; decade <= max * 10; decade *= 10) {
    for (const f of [1, 2, 5]) {
      const v = Number((decade * f).toPrecision(6));
      if (v >= lo && (ticks.length === 0 || ticks[ticks.length - 1]! < max)) ticks.push(v);
    }
  }
  // Start at the tick just below the smallest value.
  const first = ticks.findLastIndex((t) => t <= min);
  return ticks.slice(Math.max(0, first));
}

function panel(x0: number, y0: number, w: number, h: number, title: string, unit: string, levels: number[], series: Series[], scale: 'linear' | 'log'): string {
  const shown = series.flatMap((s) => s.points.flatMap((p) => (p ? [p.min, p.max] : []))).filter((v) => v > 0);
  const ticks = scale === 'log' && shown.length ? logTicks(Math.min(...shown), Math.max(...shown)) : niceTicks(Math.max(...shown, 0));
  const bottomTick = ticks[0]!;
  const top = ticks[ticks.length - 1]!;
  const left = x0 + 56;
  const right = x0 + w - 10;
  const bottom = y0 + h - 40;
  const upper = y0 + 28;
  // Series sit side by side around each level so their min–max bars do not hide each other.
  const x = (i: number, k: number) => left + ((right - left) * (i + 0.5)) / levels.length + (k - (series.length - 1) / 2) * 5;
  const frac = (v: number) => (scale === 'log' ? (Math.log10(Math.max(v, bottomTick)) - Math.log10(bottomTick)) / (Math.log10(top) - Math.log10(bottomTick)) : v / top);
  const y = (v: number) => bottom - (bottom - upper) * frac(v);
  const out: string[] = [];
  out.push(`<text x="${x0 + w / 2}" y="${y0 + 16}" text-anchor="middle" font-size="14" font-weight="bold">${xmlEscape(title)}</text>`);
  for (const t of ticks) {
    out.push(`<line x1="${left}" x2="${right}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end" font-size="11">${fmt(t)}</text>`);
  }
  out.push(`<line x1="${left}" x2="${left}" y1="${upper}" y2="${bottom}" stroke="#444"/>`);
  out.push(`<line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" stroke="#444"/>`);
  const yLabel = `${unit}${scale === 'log' ? ' (log scale)' : ''}`;
  out.push(`<text x="${x0 + 14}" y="${(upper + bottom) / 2}" text-anchor="middle" font-size="11" transform="rotate(-90 ${x0 + 14} ${(upper + bottom) / 2})">${xmlEscape(yLabel)}</text>`);
  levels.forEach((l, i) => out.push(`<text x="${x(i, (series.length - 1) / 2).toFixed(1)}" y="${bottom + 16}" text-anchor="middle" font-size="11">${l}</text>`));
  out.push(`<text x="${(left + right) / 2}" y="${bottom + 32}" text-anchor="middle" font-size="11">concurrent clients</text>`);
  series.forEach((s, k) => {
    const pts = s.points.map((p, i) => (p ? ([x(i, k), y(p.median), y(p.min), y(p.max)] as const) : undefined));
    const path = pts.flatMap((p) => (p ? [`${p[0].toFixed(1)},${p[1].toFixed(1)}`] : [])).join(' ');
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${path}"/>`);
    for (const p of pts) {
      if (!p) continue;
      const [px, py, ymin, ymax] = p;
      // The min–max over runs, as an error bar.
      out.push(`<line x1="${px.toFixed(1)}" x2="${px.toFixed(1)}" y1="${ymin.toFixed(1)}" y2="${ymax.toFixed(1)}" stroke="${s.color}" stroke-width="1"/>`);
      out.push(`<line x1="${(px - 4).toFixed(1)}" x2="${(px + 4).toFixed(1)}" y1="${ymin.toFixed(1)}" y2="${ymin.toFixed(1)}" stroke="${s.color}"/>`);
      out.push(`<line x1="${(px - 4).toFixed(1)}" x2="${(px + 4).toFixed(1)}" y1="${ymax.toFixed(1)}" y2="${ymax.toFixed(1)}" stroke="${s.color}"/>`);
      out.push(`<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="3.5" fill="${s.color}"/>`);
    }
  });
  return out.join('\n');
}

/** The OSB levels measured, from the `provision, N clients` cases. */
export function osbLevels(rows: BenchRow[]): number[] {
  const levels = new Set<number>();
  for (const r of rows) {
    const m = r.benchmark === 'osb' ? /^provision, (\d+) clients?$/.exec(r.case) : null;
    if (m) levels.add(Number(m[1]));
  }
  return [...levels].sort((a, b) => a - b);
}

/** The chart: latency p50/p99 and throughput against concurrent clients, brokerflow and the floor. Undefined without OSB rows. */
export function renderChart(report: Pick<BenchReport, 'rows' | 'timestamp' | 'options' | 'machine'>): string | undefined {
  const levels = osbLevels(report.rows);
  if (levels.length === 0) return undefined;
  const get = (subject: 'brokerflow' | 'baseline', metric: string) =>
    levels.map((l) => report.rows.find((r) => r.benchmark === 'osb' && r.subject === subject && r.metric === metric && r.case === `provision, ${l} client${l === 1 ? '' : 's'}`));
  const BF = '#1f77b4';
  const FLOOR = '#e6770b';
  const latency: Series[] = [
    { label: 'brokerflow p50', color: BF, dashed: false, points: get('brokerflow', 'latency p50') },
    { label: 'brokerflow p99', color: BF, dashed: true, points: get('brokerflow', 'latency p99') },
    { label: 'floor p50', color: FLOOR, dashed: false, points: get('baseline', 'latency p50') },
    { label: 'floor p99', color: FLOOR, dashed: true, points: get('baseline', 'latency p99') },
  ];
  const throughput: Series[] = [
    { label: 'brokerflow', color: BF, dashed: false, points: get('brokerflow', 'throughput') },
    { label: 'floor', color: FLOOR, dashed: false, points: get('baseline', 'throughput') },
  ];
  const W = 900;
  const H = 400;
  const legend = latency
    .map((s, i) => {
      const lx = 70 + i * 170;
      return (
        `<line x1="${lx}" x2="${lx + 28}" y1="52" y2="52" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>` +
        `<text x="${lx + 34}" y="56" font-size="12">${xmlEscape(s.label)}</text>`
      );
    })
    .join('\n');
  const subtitle = `median of ${report.options.runs} runs, bars: min–max over runs · ${report.machine.cores} cores · ${report.timestamp.slice(0, 10)}${report.options.quick ? ' · quick sizes' : ''}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">OSB provision: brokerflow vs the bare-Temporal floor</text>`,
    `<text x="${W / 2}" y="36" text-anchor="middle" font-size="11" fill="#555">${xmlEscape(subtitle)}</text>`,
    legend,
    panel(0, 64, W / 2, H - 64, 'latency (PUT -> succeeded)', 'ms', levels, latency, 'log'),
    panel(W / 2, 64, W / 2, H - 64, 'throughput', 'operations/s', levels, throughput, 'linear'),
    '</svg>',
    '',
  ].join('\n');
}

// ---- files -------------------------------------------------------------------------------------------------------

function writeAtomically(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** Writes the JSON (when given a path), the chart and the doc; returns what was written. */
export function writeReport(report: BenchReport, paths: { json?: string; chart: string; doc: string } = outputPaths): string[] {
  const written: string[] = [];
  if (paths.json) {
    writeAtomically(paths.json, `${JSON.stringify(report, null, 2)}\n`);
    written.push(paths.json);
  }
  const chart = renderChart(report);
  if (chart) {
    writeAtomically(paths.chart, chart);
    written.push(paths.chart);
  }
  writeAtomically(paths.doc, renderMarkdown(report, chart ? relative(dirname(paths.doc), paths.chart) : undefined));
  written.push(paths.doc);
  return written;
}

if (require.main === module) {
  const file = resolve(process.argv[2] ?? outputPaths.json);
  const report = JSON.parse(readFileSync(file, 'utf8')) as BenchReport;
  // Targets are recomputed, so a change of a target or its explanation shows without measuring again.
  report.targets = evaluateTargets(report.rows, report.benchmarks);
  const written = writeReport(report, { chart: outputPaths.chart, doc: outputPaths.doc });
  console.log(formatTable(report));
  console.error(`\nwrote ${written.map((p) => relative(process.cwd(), p)).join(', ')}`);
}
