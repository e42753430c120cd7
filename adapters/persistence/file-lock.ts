// A cross-process lock file (O_EXCL create) per stored object, so a compare-and-write is atomic between the
// broker and worker processes sharing one directory. Node has no flock(), so a holder that died (SIGKILL, power
// loss) is detected instead: same machine and its process is gone, or the lock is older than `staleMs`.
import { randomBytes } from 'node:crypto';
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { UnavailableError } from '../errors';

/** How a lock is taken: whose it is and how long to wait. */
export interface LockOptions {
  machineId: string;
  /** Give up (UnavailableError, retryable) after this long; default 10 s. */
  timeoutMs?: number;
  /** A lock older than this is broken even when its holder cannot be checked (another machine); default 30 s. */
  staleMs?: number;
}

/** A lock held by this process; `release()` removes it. */
export interface HeldLock {
  release(): Promise<void>;
}

// Callers in this process queue here per path before touching the lock file, so a lock file carrying this
// process's own PID can only be left from an earlier process that had the same PID (PIDs restart in containers).
const localQueues = new Map<string, Promise<void>>();

async function localTurn(path: string): Promise<() => void> {
  const previous = localQueues.get(path) ?? Promise.resolve();
  let done!: () => void;
  const mine = new Promise<void>((resolve) => (done = resolve));
  const tail = previous.then(() => mine);
  localQueues.set(path, tail);
  await previous;
  return () => {
    done();
    if (localQueues.get(path) === tail) localQueues.delete(path);
  };
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

async function isStale(path: string, content: string, opts: Required<LockOptions>): Promise<boolean> {
  const [machine, pidText] = content.split(' ');
  const pid = Number(pidText);
  if (machine === opts.machineId && Number.isInteger(pid) && pid > 0) {
    if (pid === process.pid || processGone(pid)) return true;
  }
  const st = await stat(path).catch(() => undefined);
  // A lock file that is still empty was caught between create and write; only age can tell it is dead.
  return st !== undefined && Date.now() - st.mtimeMs > opts.staleMs;
}

async function tryCreate(path: string, content: string): Promise<boolean> {
  try {
    const fh = await open(path, 'wx', 0o600);
    try {
      await fh.writeFile(content);
    } finally {
      await fh.close();
    }
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/**
 * Removes a stale lock. Breakers serialize on `<lock>.break` and re-check the content under it, so two
 * breakers can never remove a lock that a live process has just taken.
 */
async function breakStale(path: string, staleContent: string): Promise<void> {
  const breaker = `${path}.break`;
  if (!(await tryCreate(breaker, `${process.pid}`))) {
    // Breaking takes microseconds: a breaker lock this old belongs to a process that died inside it.
    const st = await stat(breaker).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > 5_000) await unlink(breaker).catch(() => undefined);
    return;
  }
  try {
    const now = await readFile(path, 'utf8').catch(() => undefined);
    if (now === staleContent) await unlink(path).catch(() => undefined);
  } finally {
    await unlink(breaker).catch(() => undefined);
  }
}

/** Takes the lock at `path`, waiting (bounded by the timeout) while a live holder has it. */
export async function acquireLock(path: string, options: LockOptions): Promise<HeldLock> {
  const opts: Required<LockOptions> = { timeoutMs: 10_000, staleMs: 30_000, ...options };
  const content = `${opts.machineId} ${process.pid} ${randomBytes(8).toString('hex')}`;
  const deadline = Date.now() + opts.timeoutMs;
  const leaveQueue = await localTurn(path);
  let pause = 1;
  // Waiting for a lock held for a few milliseconds is polling with a deadline, not a retry of a failure.
  try {
    for (;;) {
      if (await tryCreate(path, content)) break;
      const current = await readFile(path, 'utf8').catch(() => undefined);
      if (current !== undefined && (await isStale(path, current, opts))) {
        await breakStale(path, current);
        continue;
      }
      if (Date.now() > deadline) throw new UnavailableError(`timed out after ${opts.timeoutMs} ms waiting for a file lock`);
      await sleep(pause);
      pause = Math.min(pause * 2, 20);
    }
  } catch (err) {
    leaveQueue();
    throw err;
  }
  return {
    async release() {
      try {
        await unlink(path).catch(() => undefined);
      } finally {
        leaveQueue();
      }
    },
  };
}
