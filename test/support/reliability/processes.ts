// brokerflow's own processes as children of a reliability test, started exactly as an operator starts them
// (`worker/main.ts --config <file>`, `client/broker/main.ts --config <file>`), so a SIGKILL hits the real process.
// Their pino output is kept (tests grep it for secrets) and tells when they are ready.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../../scripts/lib/process';

/** A brokerflow process started by a test. */
export interface ChildProcessHandle {
  readonly pid: number;
  /** When it was spawned and when it said it was ready (epoch ms). */
  readonly spawnedAt: number;
  readonly readyAt: number;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** SIGKILL; resolves once it has exited. */
  kill(): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
  exited(): boolean;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

async function startChild(opts: {
  name: string;
  script: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  readyLine: RegExp;
  readyTimeoutMs: number;
}): Promise<ChildProcessHandle> {
  const spawnedAt = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, opts.script), ...opts.args], {
    cwd: repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  let onReady: (() => void) | undefined;
  const exited = new Promise<void>((res) =>
    child.once('exit', () => {
      live.delete(child);
      res();
    }),
  );
  const take = (d: Buffer) => {
    out += d.toString('utf8');
    if (onReady && opts.readyLine.test(out)) onReady();
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((res, rej) => {
      onReady = res;
      if (opts.readyLine.test(out)) res();
      void exited.then(() => rej(new Error(`${opts.name} exited (code ${child.exitCode}) before it was ready:\n${out.slice(-1500)}`)));
      timer = setTimeout(() => rej(new Error(`${opts.name} was not ready within ${opts.readyTimeoutMs} ms:\n${out.slice(-1500)}`)), opts.readyTimeoutMs);
    });
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  } finally {
    clearTimeout(timer);
    onReady = undefined;
  }
  const readyAt = Date.now();
  return {
    pid: child.pid ?? -1,
    spawnedAt,
    readyAt,
    output: () => out,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Starts `worker/main.ts --config <file>`; ready once it logs "worker started" (it polls right after). */
export function startWorkerProcess(configFile: string, env: NodeJS.ProcessEnv = {}): Promise<ChildProcessHandle> {
  return startChild({
    name: 'worker process',
    script: 'worker/main.ts',
    args: ['--config', configFile],
    env: { BROKERFLOW_LOG_LEVEL: 'info', ...env },
    readyLine: /"msg":"worker started"/,
    readyTimeoutMs: 120_000,
  });
}

/** Starts `client/broker/main.ts --config <file>` on `port`; ready once it logs "broker listening". */
export function startBrokerProcess(configFile: string, port: number, env: NodeJS.ProcessEnv = {}): Promise<ChildProcessHandle> {
  return startChild({
    name: 'broker process',
    script: 'client/broker/main.ts',
    args: ['--config', configFile],
    env: { BROKERFLOW_LOG_LEVEL: 'info', BROKERFLOW_BROKER_PORT: String(port), ...env },
    readyLine: /"msg":"broker listening"/,
    readyTimeoutMs: 60_000,
  });
}
