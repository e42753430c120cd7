// Crash safety of the file backend: a child process writing entries in a loop is killed with SIGKILL at random
// moments, many times. After every kill each entry must read back whole (never torn), as its last acknowledged
// value or the one write that was in flight, never older than an acknowledged one; and the next writer must get
// past whatever the killed one left (its lock file, its temp file).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { FilePersistenceProvider, MachineId } from '../../adapters/persistence';
import { LANES, payloadOf } from './persistence-crash-child';
import { deferred } from '../support/deferred';

const KILLS = 50;
// Writers started ahead of time, so node's start-up is not paid between kills.
const AHEAD = 3;
const KEYS = 9;
const machineId = new MachineId('fedcba9876543210fedcba9876543210');

/** A started child that has initialized and waits for `go`, with the lines it printed. */
interface Writer {
  child: ChildProcess;
  lines: string[];
  ready: Promise<void>;
  acked: Promise<void>;
  exited: Promise<void>;
}

function startWriter(dir: string, seqBase: number): Writer {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(__dirname, 'persistence-crash-child.ts'), dir, machineId.value, String(seqBase), String(KEYS)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const lines: string[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const { promise: ready, resolve: onReady } = deferred();
  const { promise: acked, resolve: onAck } = deferred();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    if (line === 'ready') onReady();
    if (line.startsWith('ack ')) onAck();
  });
  const exited = new Promise<void>((resolve, reject) =>
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`writer exited by itself (code ${code}): ${stderr.slice(-500)}`));
    }),
  );
  // Surface an early exit while we wait for ready/ack instead of hanging.
  const failFast = exited.then(() => new Promise<void>(() => undefined));
  const w = { child, lines, ready: Promise.race([ready, failFast]), acked: Promise.race([acked, failFast]), exited };
  // Marked handled here; whoever awaits them still sees the rejection.
  for (const p of [w.ready, w.acked, w.exited]) p.catch(() => undefined);
  return w;
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms))),
  ]);
}

void test('entries written by a process killed with SIGKILL read back whole, never lost once acknowledged', { timeout: 60_000 }, async () => {
  assert.equal(KEYS % LANES, 0, 'each key belongs to one writer lane, so at most one write per key is in flight');
  const dir = mkdtempSync(join(tmpdir(), 'bf-crash-'));
  const t0 = Date.now();
  const reader = new FilePersistenceProvider({ directories: [dir] });
  await reader.initialize(machineId);
  const inst = reader.replicas()[0]!;
  // Per key: the value the store must hold at least (the last acknowledged, or what was read after a kill).
  const floor = new Map<string, number>();
  let acks = 0;
  let inFlightSeen = 0;
  const all: Writer[] = [];
  try {
    let started = 0;
    const queue: Writer[] = [];
    const startNext = () => {
      const w = startWriter(dir, 1 + 1_000_000 * started++);
      all.push(w);
      queue.push(w);
    };
    while (queue.length < AHEAD) startNext();
    for (let kill = 0; kill < KILLS; kill++) {
      const current = queue.shift()!;
      if (started < KILLS) startNext();
      await withDeadline(current.ready, 20_000, `writer ${kill} to initialize`);
      current.child.stdin!.write('go\n');
      // At least one acknowledged write per writer proves the previous kill left nothing that blocks writes.
      await withDeadline(current.acked, 20_000, `writer ${kill} to acknowledge a write after the previous kill`);
      await new Promise((r) => setTimeout(r, Math.random() * 25));
      current.child.kill('SIGKILL');
      await current.exited;

      const acked = new Map<string, number>();
      const begun = new Map<string, number>();
      for (const line of current.lines) {
        const [verb, key, seqText] = line.split(' ');
        if (verb === 'ack') {
          acked.set(key!, Number(seqText));
          acks++;
        }
        if (verb === 'begin') begun.set(key!, Number(seqText));
      }
      for (let k = 0; k < KEYS; k++) {
        const key = `e${k}`;
        const got = await reader.getObject(inst, `CrashEntry/${key}`);
        const mustHave = acked.get(key) ?? floor.get(key);
        const inFlight = begun.get(key);
        if (mustHave === undefined && got === undefined) continue;
        assert.ok(got, `kill ${kill}: ${key} was acknowledged at ${mustHave} but is gone`);
        const seq = got.seq as number;
        assert.equal(got.payload, payloadOf(seq), `kill ${kill}: ${key} is torn`);
        const allowed = new Set([mustHave, inFlight].filter((v) => v !== undefined));
        assert.ok(allowed.has(seq), `kill ${kill}: ${key} holds ${seq}, expected one of ${[...allowed].join(', ')}`);
        if (seq !== mustHave) inFlightSeen++;
        floor.set(key, seq);
      }
    }
    assert.ok(acks >= KILLS, `every writer acknowledged writes (${acks})`);
    assert.ok(Date.now() - t0 < 60_000);
    // For the record in the test output: how often the kill landed after the rename but before the ack.
    console.log(`# ${KILLS} kills, ${acks} acknowledged writes, ${inFlightSeen} in-flight writes found durable, ${Date.now() - t0} ms`);
  } finally {
    // A failed assertion must not leave a writer running.
    for (const w of all) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await Promise.allSettled(all.map((w) => w.exited));
    rmSync(dir, { recursive: true, force: true });
  }
});
