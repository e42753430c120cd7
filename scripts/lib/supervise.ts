// Keeps one child process of the dev stack running: when it dies (crash, OOM, `kill -9`) it is started again
// after a backoff that doubles from 1 s up to 30 s and goes back to 1 s once a run has stayed up for a minute, so a
// child that crashes at once never spins. Each death is one line on the supervisor's stderr (which process, pid,
// exit code or signal, how long it ran, when the next attempt comes), followed by the child's last output lines
// when it failed by itself. Stopping the supervisor stops the child, also one that is still starting, and ends
// the restarts.
import { openSync, readSync, closeSync, statSync } from 'node:fs';
import type { ManagedProcess } from './process';

export interface BackoffPolicy {
  /** Delay before the first restart after a run that had stayed up. */
  initialMs: number;
  /** The cap the doubling stops at. */
  maxMs: number;
  /** A run that stayed up (ready) this long counts as healthy: the next delay starts again at initialMs. */
  stableMs: number;
}

export const defaultBackoff: BackoffPolicy = { initialMs: 1000, maxMs: 30_000, stableMs: 60_000 };

/** The delay before the next start after `failures` consecutive failed runs (1 = the first). */
export function backoffDelayMs(failures: number, policy: BackoffPolicy = defaultBackoff): number {
  return Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, Math.min(failures - 1, 30)));
}

export interface SuperviseOptions {
  name: string;
  /** The child's log file; the output of one run is what was appended after it started. */
  logFile: string;
  /**
   * Starts the child and resolves once it is ready; rejects when it exits before or is not ready in time (and has
   * been stopped). `logOffset` is where this run's output starts in the log file (a readiness check that looks for a
   * line must look after it); `onSpawn` must be handed to startProcess.
   */
  start(run: { logOffset: number; onSpawn: (child: ManagedProcess) => void }): Promise<ManagedProcess>;
  /** Where the one-line reports go (the dev stack: stderr). */
  log(line: string): void;
  backoff?: BackoffPolicy;
  /** How many of the child's last output lines to report after it failed by itself (default 10). */
  tailLines?: number;
}

export interface Supervisor {
  readonly name: string;
  /** The child now running or starting (undefined between a death and the next start). */
  current(): ManagedProcess | undefined;
  /** How many times it has been started again. */
  restarts(): number;
  /** Ends the restarts and stops the child (SIGTERM to its process group, SIGKILL after the grace time). */
  stop(): Promise<void>;
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** The last non-empty lines written to `file` after `offset` (at most the last 64 KiB of them). */
export function outputSince(file: string, offset: number, lines: number): string[] {
  let fd: number | undefined;
  try {
    const size = fileSize(file);
    const from = Math.max(offset, size - 64 * 1024);
    if (size <= from) return [];
    const buf = Buffer.alloc(size - from);
    fd = openSync(file, 'r');
    readSync(fd, buf, 0, buf.length, from);
    return buf
      .toString('utf8')
      .split('\n')
      .map((l) => l.trimEnd())
      .filter((l) => l.length > 0)
      .slice(-lines);
  } catch {
    return [];
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const seconds = (ms: number) =>
  ms % 1000 === 0 ? String(ms / 1000) : ms < 10_000 ? (ms / 1000).toFixed(1) : String(Math.round(ms / 1000));

/** How a run ended, for the report line. */
function describeExit(child: ManagedProcess | undefined, readyTimedOut: boolean): string {
  if (!child) return 'could not be started';
  if (readyTimedOut) return 'was not ready in time and was stopped';
  const sig = child.exitSignal();
  if (sig) return `was killed by ${sig}`;
  return `exited with code ${child.exitCode()}`;
}

/**
 * Starts the child (a failure of this first start rejects, as before: a stack that cannot start at all should say
 * so at once) and restarts it whenever it dies until {@link Supervisor.stop}.
 */
export async function supervise(opts: SuperviseOptions): Promise<Supervisor> {
  const policy = opts.backoff ?? defaultBackoff;
  const tailLines = opts.tailLines ?? 10;
  let current: ManagedProcess | undefined;
  let stopping = false;
  let restarts = 0;
  let wake: (() => void) | undefined;

  const startRun = async () => {
    const logOffset = fileSize(opts.logFile);
    let spawned: ManagedProcess | undefined;
    const startedAt = Date.now();
    try {
      const child = await opts.start({
        logOffset,
        onSpawn: (c) => {
          spawned = c;
          current = c;
        },
      });
      current = child;
      return { ok: true as const, child, logOffset, readyAt: Date.now(), startedAt };
    } catch (err) {
      return { ok: false as const, child: spawned, logOffset, startedAt, error: err as Error };
    }
  };

  const first = await startRun();
  if (!first.ok) throw first.error;

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const loop = (async () => {
    let run: { child: ManagedProcess; logOffset: number; readyAt: number } = first;
    let failures = 0;
    for (;;) {
      await run.child.exited;
      if (stopping) return;
      const upMs = Date.now() - run.readyAt;
      failures = upMs >= policy.stableMs ? 1 : failures + 1;
      let failed: { child: ManagedProcess | undefined; logOffset: number; ranMs: number; readyTimedOut: boolean } = {
        child: run.child,
        logOffset: run.logOffset,
        ranMs: upMs,
        readyTimedOut: false,
      };
      current = undefined;
      for (;;) {
        const delay = backoffDelayMs(failures, policy);
        const pid = failed.child ? ` (pid ${failed.child.pid})` : '';
        opts.log(
          `brokerflow dev: ${opts.name}${pid} ${describeExit(failed.child, failed.readyTimedOut)} after ${seconds(failed.ranMs)} s; ` +
            `restarting it in ${seconds(delay)} s (restart ${restarts + 1}${failures > 1 ? `; ${failures} failures in a row` : ''})`,
        );
        // A death by signal came from outside (kill -9, the OOM killer): its output says nothing about it. A
        // child that exited by itself, or never got ready, did say why: show its last words.
        if (failed.readyTimedOut || !failed.child?.exitSignal()) {
          const tail = outputSince(failed.child?.logFile ?? opts.logFile, failed.logOffset, tailLines);
          if (tail.length > 0) opts.log(`  last output of ${opts.name} (${opts.logFile}):\n${tail.map((l) => `  | ${l}`).join('\n')}`);
        }
        await pause(delay);
        if (stopping) return;
        const next = await startRun();
        if (stopping) return;
        restarts += 1;
        if (next.ok) {
          opts.log(`brokerflow dev: ${opts.name} is running again (pid ${next.child.pid}, ready ${seconds(next.readyAt - next.startedAt)} s after its start)`);
          run = next;
          break;
        }
        failures += 1;
        current = undefined;
        failed = {
          child: next.child,
          logOffset: next.logOffset,
          ranMs: Date.now() - next.startedAt,
          readyTimedOut: /was not ready within/.test(next.error.message),
        };
      }
    }
  })();

  return {
    name: opts.name,
    current: () => current,
    restarts: () => restarts,
    async stop() {
      stopping = true;
      wake?.();
      await current?.stop();
      await loop;
    },
  };
}
