// A dependency that cannot start fails fast with a message that says what to do — not a hang, not a bare timeout.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { startEtcd } from '../../scripts/lib/etcd';
import { startTemporal } from '../../scripts/lib/temporal';
import { freePort } from '../../scripts/lib/process';
import { requireTestEnv } from '../support/env';

const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));

async function occupy(): Promise<number> {
  const port = await freePort();
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', () => r()));
  servers.push(srv);
  return port;
}

test('etcd on a taken port fails at once, naming the port and how to find its holder', async () => {
  const port = await occupy();
  const dir = mkdtempSync(join(requireTestEnv('workDir'), 'fail-'));
  const started = Date.now();
  await assert.rejects(startEtcd({ dataDir: dir, logDir: dir, clientPort: port }), (err: Error) => {
    assert.match(err.message, new RegExp(`port ${port} for etcd is already in use`));
    assert.match(err.message, /ss -ltnp/);
    return true;
  });
  assert.ok(Date.now() - started < 5000, 'no wait for a timeout');
});

test('the Temporal dev server on a taken UI port fails at once with the port named', async () => {
  const port = await occupy();
  const dir = mkdtempSync(join(requireTestEnv('workDir'), 'fail-'));
  await assert.rejects(startTemporal({ dataDir: dir, logDir: dir, uiPort: port }), new RegExp(`port ${port} for the Temporal Web UI is already in use`));
});

test('a TEMPORAL_CLI_PATH that is not an executable is reported as such', async () => {
  const dir = mkdtempSync(join(requireTestEnv('workDir'), 'fail-'));
  const saved = process.env.TEMPORAL_CLI_PATH;
  process.env.TEMPORAL_CLI_PATH = join(dir, 'no-such-temporal');
  try {
    await assert.rejects(startTemporal({ dataDir: dir, logDir: dir }), /TEMPORAL_CLI_PATH=.*no-such-temporal is not an executable file/);
  } finally {
    if (saved === undefined) delete process.env.TEMPORAL_CLI_PATH;
    else process.env.TEMPORAL_CLI_PATH = saved;
  }
});

test('a server that exits before it is ready fails the start with the tail of its log', async () => {
  const dir = mkdtempSync(join(requireTestEnv('workDir'), 'fail-'));
  // A file where etcd wants its data directory: etcd exits at once.
  writeFileSync(join(dir, 'etcd'), 'not a directory');
  const started = Date.now();
  await assert.rejects(startEtcd({ dataDir: dir, logDir: dir }), (err: Error) => {
    assert.match(err.message, /etcd exited with code \d+ before it was ready/);
    assert.match(err.message, /--- last lines of /);
    return true;
  });
  assert.ok(Date.now() - started < 10_000, 'no wait for a timeout');
});
