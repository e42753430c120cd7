// What every reliability scenario records: its figures from this run, written as JSON to
// test/reliability/results/<id>.json (committed), after which docs/RELIABILITY.md is rendered again from all
// results, so the document always shows the latest run of each scenario and is never typed by hand.
import { test, type TestContext } from 'node:test';
import { cpus, loadavg } from 'node:os';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderReliabilityReport, resultsDir } from './report';

/** One measured figure: a label a reader understands, its value and unit. */
export interface Figure {
  label: string;
  value: number | string;
  unit?: string;
}

/** The figures every scenario's summary row shows (absent ones are left blank). */
export interface ScenarioSummary {
  /** Operations the scenario asked for. */
  attempted?: number;
  /** Operations that ended as the platform was told they would. */
  completed?: number;
  /** Resources or runs that exist more often than asked for. */
  duplicated?: number;
  /** Accepted operations that never completed, or resources that should exist and do not. */
  lost?: number;
  /** HTTP requests sent. */
  requests?: number;
  /** 5xx answers among them. */
  fiveXx?: number;
  /** The headline recovery time, in words (e.g. "41.2 s after the last kill"). */
  recovery?: string;
}

/** The results file of one scenario (test/reliability/results/<id>.json). */
export interface ScenarioResult {
  id: string;
  /** Position in the report. */
  order: number;
  title: string;
  /** What the scenario does to the system. */
  fault: string;
  /** What must hold afterwards (what the test asserts). */
  claim: string;
  outcome: 'passed' | 'failed';
  /** The first assertion that failed, when one did. */
  failure?: string;
  ranAt: string;
  durationMs: number;
  environment: { cpus: number; load1m: number; node: string };
  summary: ScenarioSummary;
  figures: Figure[];
  notes: string[];
}

/** Collects one scenario's figures while its tests run, and saves them once they are done. */
export class Scenario {
  readonly summary: ScenarioSummary = {};
  private readonly figures: Figure[] = [];
  private readonly notes: string[] = [];
  private readonly startedAt = Date.now();
  private readonly load1m = loadavg()[0] ?? 0;
  private failure: string | undefined;
  private testsRun = 0;

  constructor(readonly meta: { id: string; order: number; title: string; fault: string; claim: string }) {
    // node:test fails the file for an error raised outside any test body (a rejection nobody awaited, a throw in
    // a callback); the results must say failed then too, not only when an assertion inside a test fails.
    const outside = (kind: string) => (err: unknown) => {
      this.failure ??= `${kind} outside a test: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 400)}`;
    };
    process.on('unhandledRejection', outside('unhandled rejection'));
    process.on('uncaughtException', outside('uncaught exception'));
  }

  /** Sets a figure (replacing one of the same label), keeping the order of first appearance. */
  figure(label: string, value: number | string, unit?: string): void {
    const rounded = typeof value === 'number' && !Number.isInteger(value) ? Math.round(value * 100) / 100 : value;
    const f: Figure = { label, value: rounded, ...(unit ? { unit } : {}) };
    const i = this.figures.findIndex((x) => x.label === label);
    if (i >= 0) this.figures[i] = f;
    else this.figures.push(f);
  }

  note(text: string): void {
    if (!this.notes.includes(text)) this.notes.push(text);
  }

  /** A node:test test whose failure marks the scenario failed (with the failure's first line). */
  test(name: string, opts: { timeout: number }, fn: (t: TestContext) => Promise<void>): void {
    test(name, opts, async (t) => {
      this.testsRun += 1;
      try {
        await fn(t);
      } catch (err) {
        this.failure ??= `${name}: ${((err as Error).message ?? String(err)).split('\n')[0]!.slice(0, 400)}`;
        throw err;
      }
    });
  }

  /** Writes the results file and renders docs/RELIABILITY.md again. */
  save(): void {
    const result: ScenarioResult = {
      ...this.meta,
      outcome: this.failure || this.testsRun === 0 ? 'failed' : 'passed',
      ...(this.failure ? { failure: this.failure } : this.testsRun === 0 ? { failure: 'no test ran' } : {}),
      ranAt: new Date(this.startedAt).toISOString(),
      durationMs: Date.now() - this.startedAt,
      environment: { cpus: cpus().length, load1m: Math.round(this.load1m * 10) / 10, node: process.version },
      summary: this.summary,
      figures: this.figures,
      notes: this.notes,
    };
    mkdirSync(resultsDir, { recursive: true });
    const file = join(resultsDir, `${this.meta.id}.json`);
    writeFileSync(`${file}.tmp`, `${JSON.stringify(result, null, 2)}\n`);
    renameSync(`${file}.tmp`, file);
    renderReliabilityReport();
  }
}

/** Milliseconds as seconds with one decimal, for summaries. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** The median of some numbers (0 for none). */
export function median(values: number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The p-th percentile (0-100) of some numbers, nearest rank (0 for none). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results in input order. */
export async function mapConcurrently<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/** A random integer in [min, max]. */
export function randomBetween(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}
