// Managed child processes for the dev stack, the test runner and the benchmarks: each child runs in its own
// process group with its output in a log file, readiness is awaited with a deadline, a child that exits early
// fails the wait at once with the tail of its log, and every child still running is killed when we exit.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** The repository root (this file lives in scripts/lib). */
export const repoRoot = resolve(__dirname, '..', '..');

/** Where installers cache downloaded or built tools, outside the repository. */
export function toolsDir(): string {
  return process.env.BROKERFLOW_TOOLS_DIR ?? join(process.env.HOME ?? '/tmp', '.cache', 'brokerflow', 'tools');
}

/**
 * Runs one of scripts/install/*.sh and returns the path it prints on its last stdout line. Its progress
 * (stderr) is passed on; when it fails, the error carries the installer's own last words.
 */
export function runInstaller(name: 'temporal' | 'temporal-test-server' | 'etcd' | 'moto' | 'kube'): string {
  const script = join(repoRoot, 'scripts', 'install', `${name}.sh`);
  const res = spawnSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  if (res.stderr) process.stderr.write(res.stderr);
  if (res.status !== 0) {
    const said = (res.stderr ?? '').trim().split('\n').slice(-5).join('\n') || res.error?.message || `exit code ${res.status}`;
    throw new Error(`installing ${name} failed (scripts/install/${name}.sh): ${said}`);
  }
  const lines = (res.stdout ?? '').trim().split('\n');
  const path = lines[lines.length - 1]?.trim();
  if (!path) throw new Error(`scripts/install/${name}.sh printed no path`);
  return path;
}

/** Asks the kernel for a free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolvePort(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Fails with a clear message when a fixed port is already taken (free ports need no check). */
export async function assertPortFree(port: number, what: string): Promise<void> {
  await new Promise<void>((ok, fail) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) =>
      fail(
        new Error(
          err.code === 'EADDRINUSE'
            ? `port ${port} for ${what} is already in use on 127.0.0.1: stop whatever holds it (\`ss -ltnp 'sport = :${port}'\`) or choose another port`
            : `cannot bind port ${port} for ${what}: ${err.message}`,
        ),
      ),
    );
    srv.listen(port, '127.0.0.1', () => srv.close(() => ok()));
  });
}

export interface StartOptions {
  /** Short name used in messages and as the log file name. */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Folder for `<name>.log`. */
  logDir: string;
  /** Resolves true once the process serves; called repeatedly until the deadline. */
  ready: () => Promise<boolean>;
  readyTimeoutMs?: number;
  /** What to tell the user when readiness never comes. */
  hint?: string;
  /** Called once the child is spawned, before readiness: lets a supervisor stop a child that is still starting. */
  onSpawn?: (child: ManagedProcess) => void;
}

/** A child process started by {@link startProcess}. */
export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Exit code once exited, else undefined (-1 when a signal ended it or it could not be spawned). */
  exitCode(): number | null | undefined;
  /** The signal that ended it, null when it exited by itself, undefined while it runs. */
  exitSignal(): NodeJS.Signals | null | undefined;
  /** Resolves when it has exited (or could not be spawned). */
  readonly exited: Promise<void>;
  /** SIGTERM to the whole process group, SIGKILL after graceMs. Resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL to the whole process group, for crash tests. */
  kill(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const child of live) {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

/** The last lines of a log file, for error messages. */
export function logTail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a child process and waits until it is ready, or fails fast with its log tail. */
export async function startProcess(opts: StartOptions): Promise<ManagedProcess> {
  installExitHook();
  mkdirSync(opts.logDir, { recursive: true });
  const logFile = join(opts.logDir, `${opts.name}.log`);
  mkdirSync(dirname(logFile), { recursive: true });
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(opts.command, opts.args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd);
  }
  let exited: number | null | undefined;
  let exitSignal: NodeJS.Signals | null | undefined;
  let spawnError: Error | undefined;
  const exitedPromise = new Promise<void>((res) => {
    child.once('exit', (code, signal) => {
      exited = code ?? (signal ? -1 : null);
      exitSignal = signal;
      live.delete(child);
      res();
    });
    child.once('error', (err) => {
      spawnError = err;
      exited = -1;
      exitSignal = null;
      live.delete(child);
      res();
    });
  });
  live.add(child);

  const signalGroup = (sig: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, sig);
    } catch {
      /* already gone */
    }
  };
  const managed: ManagedProcess = {
    name: opts.name,
    pid: child.pid ?? -1,
    logFile,
    exitCode: () => exited,
    exitSignal: () => exitSignal,
    exited: exitedPromise,
    async stop(graceMs = 5000) {
      if (exited !== undefined) return;
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
      await exitedPromise;
      clearTimeout(timer);
      signalGroup('SIGKILL'); // grandchildren that ignored SIGTERM
    },
    async kill() {
      signalGroup('SIGKILL');
      await exitedPromise;
    },
  };
  opts.onSpawn?.(managed);

  const timeoutMs = opts.readyTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (spawnError) {
      throw new Error(`${opts.name}: could not start ${opts.command}: ${spawnError.message}`);
    }
    if (exited !== undefined) {
      throw new Error(
        `${opts.name} exited with code ${exited} before it was ready.\n--- last lines of ${logFile} ---\n${logTail(logFile)}`,
      );
    }
    let ok = false;
    try {
      ok = await opts.ready();
    } catch {
      ok = false;
    }
    if (ok) return managed;
    if (Date.now() > deadline) {
      await managed.stop(1000);
      throw new Error(
        `${opts.name} was not ready within ${Math.round(timeoutMs / 1000)} s.${opts.hint ? ' ' + opts.hint : ''}\n` +
          `--- last lines of ${logFile} ---\n${logTail(logFile)}`,
      );
    }
    await sleep(100);
  }
}

/** GETs a URL and reports whether it answered 2xx (for readiness checks). */
export async function httpOk(url: string, init?: RequestInit): Promise<boolean> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}
