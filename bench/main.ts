// `npm run bench`: starts the real stack once (Temporal dev server, etcd, a tenant etcd with authentication, moto,
// the Kubernetes control plane) in a temporary folder, bundles the workflows once, runs every
// bench/*.bench.ts, prints a table, writes bench/results/latest.json, the chart and docs/BENCHMARKS.md, and
// stops everything at the end, also on failure or interrupt.
//
//   npm run bench -- [--quick] [--scale N] [--runs N] [--only name[,name]] [--json] [--soak [--soak-minutes N]]
//                    [--endpoint-services N]
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import type { BenchContext, BenchRow, Benchmark } from './harness';
import { evaluateTargets, formatTable, outputPaths, writeReport, type BenchReport, type BenchmarkStatus } from './report';
import { collectVersions, machineInfo, startBenchStack, type BenchStack } from './stack-support';

/** The parsed command line. */
export interface BenchOptions {
  quick: boolean;
  scale: number;
  runs: number;
  only?: string[];
  json: boolean;
  /** Minutes of the soak, when one is asked for (`--soak`, `--soak-minutes N`, or `--only soak`). */
  soakMinutes?: number;
  /** Kubernetes services of the endpoint benchmark (`--endpoint-services N`, default 1,000). */
  endpointServices: number;
}

const USAGE = `usage: npm run bench -- [--quick] [--scale N] [--runs N] [--only name[,name]] [--json] [--soak [--soak-minutes N]]
  --quick        the smallest sizes that still say something (the whole run under 5 minutes on 2 cores)
  --scale N      multiply every benchmark's sizes by N (default 1)
  --runs N       repeated runs per figure, median with min/max reported (default 3, at least 2)
  --only a,b     only these benchmarks (bench/<name>.bench.ts)
  --json         print only the JSON report on stdout
  --soak         also the soak (bench/soak.bench.ts): worker memory over 10 minutes of operations
  --soak-minutes N  the soak's length in minutes (at least 3; implies --soak)
  --endpoint-services N  Kubernetes services (10 endpoints each) the endpoint benchmark mirrors (default 1000; the
                 targets are set for 1000 and 10000)`;

export function parseBenchArgs(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      scale: { type: 'string', default: '1' },
      runs: { type: 'string', default: '3' },
      only: { type: 'string' },
      json: { type: 'boolean', default: false },
      soak: { type: 'boolean', default: false },
      'soak-minutes': { type: 'string' },
      'endpoint-services': { type: 'string', default: '1000' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const scale = Number(values.scale);
  if (!(scale > 0) || !Number.isFinite(scale)) throw new Error(`--scale must be a positive number, not "${values.scale}"`);
  const runs = Number(values.runs);
  // A single run has no spread to report, and one outlier would be the result.
  if (!Number.isInteger(runs) || runs < 2 || runs > 100) throw new Error(`--runs must be an integer from 2 to 100, not "${values.runs}"`);
  const only = values.only
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const soakMinutes = values['soak-minutes'] === undefined ? 10 : Number(values['soak-minutes']);
  if (!Number.isInteger(soakMinutes) || soakMinutes < 3 || soakMinutes > 24 * 60) {
    throw new Error(`--soak-minutes must be a whole number of minutes from 3 to 1440, not "${values['soak-minutes']}"`);
  }
  const endpointServices = Number(values['endpoint-services']);
  if (!Number.isInteger(endpointServices) || endpointServices < 10 || endpointServices > 100_000) {
    throw new Error(`--endpoint-services must be a whole number from 10 to 100000, not "${values['endpoint-services']}"`);
  }
  const soak = values.soak || values['soak-minutes'] !== undefined || (only?.includes('soak') ?? false);
  return { quick: values.quick, scale, runs, ...(only?.length ? { only } : {}), json: values.json, ...(soak ? { soakMinutes } : {}), endpointServices };
}

/** Compacts etcd's history up to now and defragments its file. */
async function compactEtcd(endpoint: string): Promise<void> {
  const etcd = new Etcd3({ hosts: endpoint });
  try {
    const { header } = await etcd.get('/').exec();
    await etcd.kv.compact({ revision: header.revision, physical: true });
    await etcd.maintenance.defragment({});
  } finally {
    etcd.close();
  }
}

/** The benchmark files, by name (`osb` for osb.bench.ts). */
function discover(only: string[] | undefined): Array<{ name: string; file: string }> {
  const all = readdirSync(__dirname)
    .filter((f) => f.endsWith('.bench.ts'))
    .sort()
    .map((f) => ({ name: basename(f, '.bench.ts'), file: join(__dirname, f) }));
  if (!only) return all;
  const unknown = only.filter((n) => !all.some((b) => b.name === n));
  if (unknown.length) throw new Error(`--only: no benchmark named ${unknown.join(', ')} (there are: ${all.map((b) => b.name).join(', ')})`);
  return all.filter((b) => only.includes(b.name));
}

/** The first comment block of a file, as one paragraph. */
function leadingComment(file: string): string {
  const lines: string[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('//')) break;
    lines.push(line.replace(/^\/\/ ?/, ''));
  }
  return lines.join(' ').replace(/\s+/g, ' ').trim();
}

/** The start of an error message for the report, without this machine's paths (the report is committed). */
function firstLines(message: string): string {
  const root = join(__dirname, '..');
  let text = message.split('\n').slice(0, 3).join(' ').replace(/\s+/g, ' ').trim();
  text = text.split(`${root}/`).join('');
  if (process.env.HOME) text = text.split(process.env.HOME).join('$HOME');
  return text.length > 400 ? `${text.slice(0, 400)}…` : text;
}

function checkRows(name: string, rows: unknown): BenchRow[] {
  if (!Array.isArray(rows)) throw new Error(`${name}: run() returned no array of rows`);
  for (const r of rows as BenchRow[]) {
    if (![r.median, r.min, r.max].every(Number.isFinite) || (r.subject !== 'brokerflow' && r.subject !== 'baseline')) {
      throw new Error(`${name}: malformed row ${JSON.stringify(r)}`);
    }
  }
  return rows as BenchRow[];
}

async function main(): Promise<number> {
  const t0 = performance.now();
  const opts = parseBenchArgs(process.argv.slice(2));
  const say = (msg: string) => process.stderr.write(`${msg}\n`);
  // With --json stdout carries the report only: whatever a benchmark prints goes to stderr.
  if (opts.json) console.log = console.error;

  const machine = machineInfo();
  const files = discover(opts.only);
  const workDir = mkdtempSync(join(tmpdir(), 'brokerflow-bench-'));
  say(`# bench work dir: ${workDir} (server logs in ${join(workDir, 'logs')})`);
  let stack: BenchStack | undefined;
  let ok = false;
  try {
    const s0 = performance.now();
    stack = await startBenchStack(workDir);
    const stackStartSeconds = (performance.now() - s0) / 1000;
    say(`# servers ready in ${stackStartSeconds.toFixed(1)} s`);
    Object.assign(process.env, stack.env);
    // Loaded once the servers' addresses are in the environment, so a file may read them when it loads.
    const statuses: BenchmarkStatus[] = [];
    const loaded: Array<{ benchmark: Benchmark; status: BenchmarkStatus }> = [];
    for (const f of files) {
      const status: BenchmarkStatus = { name: f.name, file: relative(join(__dirname, '..'), f.file), status: 'not loaded', description: leadingComment(f.file), rows: 0 };
      statuses.push(status);
      try {
        const mod = require(f.file) as { benchmark?: Benchmark };
        if (!mod.benchmark || typeof mod.benchmark.run !== 'function') throw new Error('it exports no `benchmark: Benchmark`');
        loaded.push({ benchmark: mod.benchmark, status });
      } catch (err) {
        status.error = firstLines((err as Error).message);
        say(`${f.name}: not loaded: ${status.error}`);
      }
    }

    const ctx: BenchContext = {
      temporalAddress: stack.temporalAddress,
      etcdEndpoint: stack.etcdEndpoint,
      motoEndpoint: stack.motoEndpoint,
      kubeconfig: stack.kubeconfig,
      workDir,
      quick: opts.quick,
      scale: opts.scale,
      runs: opts.runs,
      ...(opts.soakMinutes !== undefined ? { soakMinutes: opts.soakMinutes } : {}),
      endpointServices: opts.endpointServices,
    };
    const rows: BenchRow[] = [];
    for (const { benchmark, status } of loaded) {
      if (benchmark.soakOnly && ctx.soakMinutes === undefined) {
        // Not asked for: listed as not run, so the report says how to run it.
        status.status = 'not run';
        status.error = 'runs only with --soak';
        continue;
      }
      say(`# ${benchmark.name}: running`);
      const b0 = performance.now();
      try {
        const got = checkRows(benchmark.name, await benchmark.run(ctx));
        rows.push(...got);
        status.status = 'ran';
        status.rows = got.length;
      } catch (err) {
        status.status = 'failed';
        status.error = firstLines((err as Error).stack ?? (err as Error).message);
      }
      status.seconds = Math.round((performance.now() - b0) / 100) / 10;
      say(`# ${benchmark.name}: ${status.status} in ${status.seconds} s${status.error ? `: ${status.error}` : ''}`);
      // What a benchmark wrote and deleted stays in etcd's history and file until compacted and defragmented, and
      // slows every later benchmark's etcd writes (seen: raw puts 2.7x slower after the datastore benchmark's
      // 100,000 keys). Each benchmark starts on a compacted etcd.
      const compacted = await compactEtcd(stack.etcdEndpoint).catch((err: Error) => `etcd not compacted: ${err.message}`);
      if (typeof compacted === 'string') say(`# ${compacted}`);
    }

    const argsText = process.argv.slice(2).join(' ');
    machine.loadAverageAtEnd = Math.round(loadavg()[0]! * 100) / 100;
    const report: BenchReport = {
      schema: 1,
      timestamp: new Date().toISOString(),
      command: `npm run bench${argsText ? ` -- ${argsText}` : ''}`,
      options: { quick: opts.quick, scale: opts.scale, runs: opts.runs, ...(opts.only ? { only: opts.only } : {}), ...(opts.soakMinutes !== undefined ? { soakMinutes: opts.soakMinutes } : {}), endpointServices: opts.endpointServices },
      wallSeconds: 0,
      stackStartSeconds: Math.round(stackStartSeconds * 10) / 10,
      machine,
      versions: collectVersions(),
      benchmarks: statuses,
      rows,
      targets: evaluateTargets(rows, statuses),
    };
    report.wallSeconds = Math.round((performance.now() - t0) / 100) / 10;
    const written = writeReport(report, outputPaths);
    if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else process.stdout.write(`\n${formatTable(report)}\n\n`);
    say(`# wrote ${written.map((p) => relative(process.cwd(), p)).join(', ')} in ${report.wallSeconds} s`);
    ok = statuses.every((s) => s.status === 'ran' || s.status === 'not run');
    return ok ? 0 : 1;
  } finally {
    await stack?.stop();
    if (ok) rmSync(workDir, { recursive: true, force: true });
    else say(`# kept ${workDir} for its logs`);
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: Error) => {
      process.stderr.write(`\nbench aborted: ${err.message}\n`);
      process.exit(1);
    },
  );
}
