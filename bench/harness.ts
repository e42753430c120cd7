// The benchmark harness contract: each `bench/*.bench.ts` exports `benchmark: Benchmark`; `npm run bench`
// starts the real stack once, runs every benchmark, prints a table and writes bench/results/latest.json.
// Every figure is measured beside its baseline in the same run; medians with min/max over several runs.

/** What a benchmark gets: the servers the harness started and the size it should run at. */
export interface BenchContext {
  temporalAddress: string;
  etcdEndpoint: string;
  motoEndpoint: string;
  /** Path of a kubeconfig for the local kube-apiserver, when the harness started one. */
  kubeconfig?: string;
  workDir: string;
  /** `--quick`: the smallest sizes that still say something, so the whole run stays under 5 minutes. */
  quick: boolean;
  /** `--scale N` multiplies each benchmark's sizes. */
  scale: number;
  /** How many repeated runs to take the median of. */
  runs: number;
  /** `--soak`: how long the soak runs, in minutes (only then do soak-only benchmarks run). */
  soakMinutes?: number;
  /** `--endpoint-services N`: Kubernetes services the endpoint benchmark mirrors (default 1,000). */
  endpointServices: number;
}

/** One measured figure. `subject` says whether it is brokerflow or the baseline it is compared with. */
export interface BenchRow {
  benchmark: string;
  case: string;
  subject: 'brokerflow' | 'baseline';
  metric: string;
  unit: string;
  median: number;
  min: number;
  max: number;
  runs: number;
}

/** A named benchmark. */
export interface Benchmark {
  name: string;
  /** Runs only with `--soak` (or when named with `--only`): it takes many minutes. */
  soakOnly?: boolean;
  run(ctx: BenchContext): Promise<BenchRow[]>;
}

/** Median, min and max of samples. */
export function summarize(samples: number[]): { median: number; min: number; max: number } {
  if (samples.length === 0) throw new Error('no samples');
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]! };
}

/** The p-th percentile (0..100) of samples, nearest-rank. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) throw new Error('no samples');
  const s = [...samples].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank]!;
}

/** Builds a row from repeated-run samples. */
export function row(
  fields: Omit<BenchRow, 'median' | 'min' | 'max' | 'runs'>,
  samples: number[],
): BenchRow {
  return { ...fields, ...summarize(samples), runs: samples.length };
}
