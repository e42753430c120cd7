// Child processes for benchmarks: node scripts in their own process (so their memory is their own) with the
// image's environment, the broker and the worker compiled as production runs them, readiness of a Temporal worker
// seen from the server (a new poller on its task queue), and peak-RSS sampling from /proc.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { repoRoot, startProcess, type ManagedProcess } from '../scripts/lib/process';

/** One operation as its client saw it: latency (ms), when it was sent (epoch ms) and the workflow that ran it. */
export interface OperationTiming {
  ms: number;
  sentAt: number;
  workflowId: string;
}

/**
 * The operation's client was told it failed (last_operation `failed`, or the floor's run not completed). A
 * benchmark counts these and goes on; anything else that goes wrong (an HTTP error, a timeout) stops it.
 */
export class OperationReportedFailed extends Error {
  constructor(
    readonly workflowId: string,
    readonly description: string,
  ) {
    super(`${workflowId} reported failed: ${description}`);
  }
}

let built: string | undefined;

/**
 * The compiled build of the product (`npm run build`: dist/), made once per benchmark run from the sources of
 * this checkout, as the image's build stage makes it. Returns the folder.
 */
export function compiledBuild(): string {
  if (built) return built;
  const res = spawnSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(repoRoot, 'tsconfig.build.json')], { cwd: repoRoot, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`npm run build failed (exit ${res.status}): ${res.stdout}${res.stderr}`);
  return (built = join(repoRoot, 'dist'));
}

/**
 * The environment the image gives its processes (the ENV lines of deploy/Dockerfile's final stage), without the
 * paths inside the image. Every process a benchmark starts runs with it, brokerflow's and the floor's alike, so
 * their memory is a deployed process's: the allocator's arenas and V8's heap bounds are set there.
 */
export function imageEnv(): Record<string, string> {
  const dockerfile = readFileSync(join(repoRoot, 'deploy', 'Dockerfile'), 'utf8');
  const env: Record<string, string> = {};
  for (const line of dockerfile.slice(dockerfile.lastIndexOf('\nFROM ')).split('\n')) {
    if (!line.startsWith('ENV ')) continue;
    for (const [, key, quoted, bare] of line.slice('ENV '.length).matchAll(/(\w+)=(?:"([^"]*)"|(\S+))/g)) {
      const value = quoted ?? bare!;
      if (!value.startsWith('/app')) env[key!] = value;
    }
  }
  return env;
}

/**
 * Starts a script from the repository root and waits for `ready`: `node --import tsx <script>`, or with `compiled`
 * the script's compiled module under dist/ as production runs it (`node dist/worker/main.js`; no TypeScript loader
 * in the process, so its memory is what a deployed process's is).
 */
export function startNodeScript(opts: {
  name: string;
  script: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  logDir: string;
  ready: () => Promise<boolean>;
  readyTimeoutMs?: number;
  compiled?: boolean;
}): Promise<ManagedProcess> {
  const entry = opts.compiled ? [join(compiledBuild(), opts.script.replace(/\.ts$/, '.js'))] : ['--import', 'tsx', opts.script];
  return startProcess({
    name: opts.name,
    command: process.execPath,
    args: [...entry, ...opts.args],
    cwd: repoRoot,
    env: { ...process.env, ...imageEnv(), ...opts.env },
    logDir: opts.logDir,
    ready: opts.ready,
    readyTimeoutMs: opts.readyTimeoutMs ?? 120_000,
    hint: `See the process log for why ${opts.script} did not get ready.`,
  });
}

/** Identities of the workers polling a task queue for workflow tasks, as the server sees them. */
export async function workflowPollers(client: Client, taskQueue: string): Promise<Set<string>> {
  const res = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue },
    // 1 = TASK_QUEUE_TYPE_WORKFLOW
    taskQueueType: 1,
  });
  return new Set((res.pollers ?? []).map((p) => p.identity ?? '').filter(Boolean));
}

/**
 * A readiness check for workers about to start: true once `atLeast` identities that were not polling before poll
 * the task queue. A worker process is ready when the server can hand it a task, not when it logs that it started.
 * Workers started together each wait for the count including themselves, so when all are ready, all poll.
 */
export async function newPollerCheck(client: Client, taskQueue: string, atLeast = 1): Promise<() => Promise<boolean>> {
  const before = await workflowPollers(client, taskQueue);
  return async () => [...(await workflowPollers(client, taskQueue))].filter((id) => !before.has(id)).length >= atLeast;
}

/** A process's resident set (VmRSS) and its peak (VmHWM) in kB, from /proc; undefined when it is gone. */
export function procStatus(pid: number): { rssKb: number; hwmKb: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
  } catch {
    return undefined;
  }
}

/**
 * Samples a process's RSS while a piece of work runs and reports the peak (MB). The kernel's own peak (VmHWM) is
 * reset first, so start-up (the worker bundles its workflows) does not count; where the reset is not allowed,
 * the peak is the largest sample.
 */
export class PeakRssSampler {
  private timer: NodeJS.Timeout | undefined;
  private maxKb = 0;
  private hwmReset = false;

  constructor(
    readonly pid: number,
    private readonly intervalMs = 50,
  ) {}

  start(): void {
    try {
      // "5" resets the peak resident set size of the process (proc(5), clear_refs).
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
      this.hwmReset = true;
    } catch {
      this.hwmReset = false;
    }
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs).unref();
  }

  private sample(): void {
    const s = procStatus(this.pid);
    if (s && Number.isFinite(s.rssKb)) this.maxKb = Math.max(this.maxKb, s.rssKb);
  }

  /** Stops sampling; the peak in MB (1 MB = 1024 kB, as ps and top count). */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    const s = procStatus(this.pid);
    const peakKb = this.hwmReset && s && Number.isFinite(s.hwmKb) ? Math.max(this.maxKb, s.hwmKb) : this.maxKb;
    if (peakKb === 0) throw new Error(`no RSS sample of process ${this.pid}: /proc/${this.pid}/status unreadable`);
    return peakKb / 1024;
  }
}
