// `npm run dev` as a supervisor: the dev stack (scripts/dev.ts, here with --no-kube and its own ports, data folder
// and config, so it never meets a stack someone else runs) restarts a worker that was SIGKILLed mid-provision, says
// so in one line, the provision completes on the new worker, and SIGINT stops every child the stack started.
//
// "Mid-provision" without a race: the worker is frozen (SIGSTOP) before the provision is requested, so the
// workflow is started but no step of it can complete before the SIGKILL; only the restarted worker can finish it,
// which the workflow's history confirms (the SDK's worker identity is `<pid>@<host>`).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { Connection, Client } from '@temporalio/client';
import { assertPortFree, repoRoot, startProcess } from '../../scripts/lib/process';
import { backoffDelayMs, supervise } from '../../scripts/lib/supervise';
import { testEnvNames } from '../support/env';
import { instancePath, instanceWorkflowIdOf, newId, provisionBody } from '../support/osb';

interface ProcInfo {
  pid: number;
  ppid: number;
  /** Start time in clock ticks since boot: with the pid, names one process even when pids are reused. */
  start: string;
  cmdline: string;
}

function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state ppid ... starttime is field 22.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z') return undefined; // a zombie has ended; only its parent's wait is missing
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    return { pid, ppid: Number(rest[1]), start: rest[19]!, cmdline };
  } catch {
    return undefined;
  }
}

/** Every live process below `root` (children, grandchildren, ...). */
function descendants(root: number): ProcInfo[] {
  const all = readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map((n) => procInfo(Number(n)))
    .filter((p): p is ProcInfo => p !== undefined);
  const below = new Set([root]);
  const found: ProcInfo[] = [];
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (below.has(p.ppid) && !below.has(p.pid)) {
        below.add(p.pid);
        found.push(p);
        grew = true;
      }
    }
  }
  return found;
}

const alive = (p: ProcInfo) => procInfo(p.pid)?.start === p.start;

/** Polls `probe` every 200 ms until it returns a value, or fails after `timeoutMs` with `what` and the dev log. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}\n--- npm run dev said ---\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let output = '';
let dev: ChildProcess | undefined;
let devExited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
const seen = new Map<string, ProcInfo>();
const remember = () => {
  if (dev?.pid) for (const p of descendants(dev.pid)) seen.set(`${p.pid}/${p.start}`, p);
};

after(async () => {
  // Whatever happened above, leave nothing running: ask the stack to stop, then kill what it left.
  if (dev && dev.exitCode === null && dev.signalCode === null) {
    remember();
    dev.kill('SIGINT');
    await Promise.race([devExited, new Promise((r) => setTimeout(r, 30_000).unref())]);
  }
  for (const p of seen.values()) {
    if (alive(p)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
});

/**
 * Fixed ports for the stack's config, below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by
 * default): the stack asks the kernel for its other ports (freePort), and a port picked that way here and released
 * could be handed out again to one of them before the server it was meant for binds it.
 */
async function fixedPorts(count: number): Promise<number[]> {
  const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const top = Math.min(low ?? 32768, 32768) - 1001; // room for the Web UI port, 1000 above Temporal's
  const picked: number[] = [];
  while (picked.length < count) {
    const port = 20_000 + Math.floor(Math.random() * (top - 20_000));
    if (picked.includes(port) || picked.includes(port + 1000) || picked.includes(port - 1000)) continue;
    try {
      await assertPortFree(port, 'a dev stack port');
      if (picked.length === 0) await assertPortFree(port + 1000, 'the Web UI'); // scripts/dev.ts: Temporal port + 1000
      picked.push(port);
    } catch {
      /* taken: try another */
    }
  }
  return picked;
}

/** config/brokerflow.example.yaml on ports of its own, with its secrets in `dataDir` and no endpoint sync. */
async function writeDevConfig(dir: string, dataDir: string): Promise<{ file: string; brokerUrl: string; temporalAddress: string }> {
  const cfg = parse(readFileSync(join(repoRoot, 'config', 'brokerflow.example.yaml'), 'utf8')) as Record<string, any>;
  const [tPort, etcdPort, tenantPort, brokerPort, codecPort] = (await fixedPorts(5)) as [number, number, number, number, number];
  const secret = (name: string) => ({ file: join(dataDir, 'secrets', name) });
  cfg.temporal.address = `127.0.0.1:${tPort}`;
  cfg.catalog = join(repoRoot, 'config', 'catalog.example.yaml');
  cfg.resourceSets = join(repoRoot, 'config', 'resource-sets.example.yaml');
  cfg.drivers.etcd.endpoints = [`http://127.0.0.1:${tenantPort}`];
  cfg.drivers.etcd.auth.password = secret('tenant-etcd-password');
  cfg.broker.port = brokerPort;
  cfg.broker.auth.basic[0].password = secret('broker-password');
  cfg.etcd.endpoints = [`http://127.0.0.1:${etcdPort}`];
  cfg.drivers.serviceRegistry.etcd.endpoints = [`http://127.0.0.1:${etcdPort}`];
  cfg.registry.file.dirs = [join(dataDir, 'registry')];
  cfg.encryption.keys[0].key = secret('encryption-key');
  cfg.codecServer.port = codecPort;
  cfg.codecServer.corsOrigins = [`http://127.0.0.1:${tPort + 1000}`];
  cfg.codecServer.auth.basic[0].password = secret('codec-password');
  delete cfg.endpoints; // endpoint sync watches Kubernetes, which this stack does not start
  const file = join(dir, 'brokerflow.yaml');
  writeFileSync(file, stringify(cfg));
  return { file, brokerUrl: `http://127.0.0.1:${brokerPort}`, temporalAddress: cfg.temporal.address as string };
}

test('npm run dev restarts a SIGKILLed worker, the provision it was running completes, and SIGINT stops every child', { timeout: 600_000 }, async () => {
  const base = process.env[testEnvNames.workDir] ?? tmpdir();
  const dir = mkdtempSync(join(base, 'dev-supervisor-'));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const { file, brokerUrl, temporalAddress } = await writeDevConfig(dir, dataDir);
  // The stack's own settings only: no Temporal address, profile or kubeconfig from the test run's environment.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TEMPORAL_') && k !== 'KUBECONFIG'));
  dev = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'scripts', 'dev.ts'), '--no-kube'], {
    cwd: repoRoot,
    env: { ...env, BROKERFLOW_DATA_DIR: dataDir, BROKERFLOW_CONFIG: file },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  devExited = new Promise((res) => dev!.once('exit', (code, signal) => res({ code, signal })));
  dev.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  dev.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const running = () => {
    assert.equal(dev!.exitCode, null, `npm run dev exited early (code ${dev!.exitCode})\n${output}`);
    assert.equal(dev!.signalCode, null, `npm run dev was killed (${dev!.signalCode})\n${output}`);
  };

  // Temporal, two etcd servers, worker, broker and codec server: generous for a loaded 2-core machine.
  await until('brokerflow is running', 300_000, () => (running(), output.includes('brokerflow is running.') ? true : undefined));
  remember();
  const worker = [...seen.values()].find((p) => p.ppid === dev!.pid && p.cmdline.includes('worker/main.ts'));
  assert.ok(worker, `no worker process below npm run dev:\n${[...seen.values()].map((p) => p.cmdline).join('\n')}`);

  const password = readFileSync(join(dataDir, 'secrets', 'broker-password'), 'utf8').trim();
  const osb = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${brokerUrl}${path}`, {
      method,
      headers: {
        Authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`,
        'X-Broker-API-Version': '2.17',
        ...(body ? { 'Content-Type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(30_000),
    });
    return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
  };

  // Freeze the worker, start a provision (the workflow starts, nothing of it can run), then kill the worker.
  const id = newId('dev-kill');
  process.kill(worker.pid, 'SIGSTOP');
  const put = await osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 50 } }));
  assert.equal(put.status, 202, JSON.stringify(put.body));
  const operation = put.body.operation as string;
  const lastOperation = () => osb('GET', `${instancePath(id)}/last_operation?operation=${encodeURIComponent(operation)}`);
  assert.equal((await lastOperation()).body.state, 'in progress');
  process.kill(worker.pid, 'SIGKILL');

  // One clear line: which process, its pid, the signal, when the next attempt comes; then the new worker is ready.
  const killedLine = await until('the supervisor to report the dead worker', 60_000, () => {
    running();
    return output.split('\n').find((l) => l.startsWith(`brokerflow dev: worker (pid ${worker.pid}) was killed by SIGKILL after `));
  });
  assert.match(killedLine, /; restarting it in 1 s \(restart 1\)$/);
  const newPid = Number(
    (
      await until('the restarted worker', 120_000, () => {
        running();
        return /brokerflow dev: worker is running again \(pid (\d+), ready [\d.]+ s after its start\)/.exec(output) ?? undefined;
      })
    )[1],
  );
  assert.notEqual(newPid, worker.pid);

  const done = await until('the provision to complete', 180_000, async () => {
    running();
    const res = await lastOperation();
    return res.body.state === 'in progress' ? undefined : res;
  });
  assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));

  // The history says who did the work: every step and every completed workflow task ran on the new worker.
  const connection = await Connection.connect({ address: temporalAddress });
  try {
    const history = await new Client({ connection }).workflow.getHandle(instanceWorkflowIdOf(id)).fetchHistory();
    const ranBy = (history.events ?? []).flatMap((e) => [
      ...(e.workflowTaskCompletedEventAttributes ? [e.workflowTaskCompletedEventAttributes.identity ?? ''] : []),
      ...(e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.identity ?? ''] : []),
    ]);
    assert.ok(ranBy.length > 0, 'the history holds no completed workflow task or started activity');
    for (const who of ranBy) assert.ok(who.startsWith(`${newPid}@`), `work done by ${who}, not the restarted worker (pid ${newPid})`);
  } finally {
    await connection.close();
  }

  // Ctrl-C: everything the stack started stops, and nothing is restarted on the way out.
  remember();
  const children = [...seen.values()].filter(alive);
  for (const name of ['worker/main.ts', 'client/broker/main.ts', 'client/codec-main.ts', 'temporal', 'etcd']) {
    assert.ok(children.some((p) => p.cmdline.includes(name)), `no live child running ${name}`);
  }
  const stopAt = output.length;
  dev.kill('SIGINT');
  const exit = await until('npm run dev to exit after SIGINT', 90_000, () =>
    dev!.exitCode !== null || dev!.signalCode !== null ? { code: dev!.exitCode, signal: dev!.signalCode } : undefined,
  );
  assert.deepEqual(exit, { code: 0, signal: null }, output);
  const left = await until('every child to be gone', 30_000, () => {
    const still = children.filter(alive);
    return still.length === 0 ? [] : undefined;
  }).catch(() => children.filter(alive));
  assert.deepEqual(
    left.map((p) => `${p.pid} ${p.cmdline}`),
    [],
    'children still running after npm run dev stopped',
  );
  assert.doesNotMatch(output.slice(stopAt), /restarting it in/);
  assert.ok(existsSync(join(dataDir, 'logs', 'worker.log')));
});

test('backoff doubles from 1 s to a 30 s cap', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoffDelayMs(n)), [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
});

test('a child that crashes at once is restarted with capped backoff, not in a spin, and its last output is logged', { timeout: 120_000 }, async () => {
  const logDir = mkdtempSync(join(process.env[testEnvNames.workDir] ?? tmpdir(), 'supervise-'));
  const lines: string[] = [];
  const startedAt: number[] = [];
  // Ready at once, then dead at once: each run prints a line on stderr and exits with code 3.
  const script = "console.error('boom: no config at /nowhere (run ' + process.pid + ')'); setTimeout(() => process.exit(3), 50)";
  const sup = await supervise({
    name: 'crasher',
    logFile: join(logDir, 'crasher.log'),
    log: (l) => lines.push(l),
    backoff: { initialMs: 100, maxMs: 400, stableMs: 60_000 },
    tailLines: 3,
    start: ({ onSpawn }) => {
      startedAt.push(Date.now());
      return startProcess({ name: 'crasher', command: process.execPath, args: ['-e', script], logDir, ready: async () => true, onSpawn });
    },
  });
  const reports = () => lines.filter((l) => l.startsWith('brokerflow dev: crasher (pid '));
  await until('six crash reports', 60_000, () => (reports().length >= 6 ? true : undefined));
  await sup.stop();
  const after = lines.length;

  const delays = reports().map((l) => /restarting it in ([\d.]+) s/.exec(l)?.[1]);
  assert.deepEqual(delays.slice(0, 6), ['0.1', '0.2', '0.4', '0.4', '0.4', '0.4'], reports().join('\n'));
  assert.match(reports()[0]!, /^brokerflow dev: crasher \(pid \d+\) exited with code 3 after [\d.]+ s; restarting it in 0.1 s \(restart 1\)$/);
  assert.match(reports()[2]!, /\(restart 3; 3 failures in a row\)$/);
  // Each report carries that run's own last words, not an older run's.
  const firstPid = /pid (\d+)/.exec(reports()[0]!)![1];
  const tail = lines[lines.indexOf(reports()[0]!) + 1]!;
  assert.match(tail, new RegExp(`last output of crasher .*\\n  \\| boom: no config at /nowhere \\(run ${firstPid}\\)$`));
  // Never faster than the backoff: the gaps between starts grow to the cap.
  for (let i = 3; i < startedAt.length; i++) assert.ok(startedAt[i]! - startedAt[i - 1]! >= 400, `start ${i} came ${startedAt[i]! - startedAt[i - 1]!} ms after the one before`);
  // Stopped means stopped: no restart, no report after stop() returned, and no child left.
  const count = startedAt.length;
  await new Promise((r) => setImmediate(r));
  assert.equal(startedAt.length, count);
  assert.equal(lines.length, after);
  assert.ok(sup.current() === undefined || sup.current()!.exitCode() !== undefined, 'the child still runs after stop()');
});
