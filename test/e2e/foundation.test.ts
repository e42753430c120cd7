// The vertical slice on real servers: the worker and broker processes start from a configuration file,
// the broker serves the catalog behind authentication and the version header, and a workflow started from
// the client runs on the worker to completion.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { connectClient } from '../../platform/temporal';
import { probeWorkflow } from '../../workflows/probe';
import { freePort } from '../../scripts/lib/process';
import { basicAuth, writeRawTestConfig, writeTestConfig } from '../support/config';

const root = resolve(__dirname, '..', '..');
const children: ChildProcess[] = [];
after(() => children.forEach((c) => c.kill('SIGKILL')));

function startNode(entry: string, args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string } {
  let out = '';
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], { cwd: root, env: { ...process.env, ...env } });
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  children.push(child);
  return { child, output: () => out };
}

async function waitFor(fn: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('worker and broker processes start from one config; catalog is served and a workflow completes', { timeout: 120_000 }, async () => {
  const { file, config } = writeTestConfig();
  const port = await freePort();
  const worker = startNode('worker/main.ts', ['--config', file], {});
  const broker = startNode('client/broker/main.ts', ['--config', file], { BROKERFLOW_BROKER_PORT: String(port) });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${base}/healthz`)).ok, `broker /healthz (output: ${broker.output()})`);

  const headers = { Authorization: basicAuth(), 'X-Broker-API-Version': '2.17' };
  const res = await fetch(`${base}/v2/catalog`, { headers });
  assert.equal(res.status, 200);
  const catalog = (await res.json()) as { services: Array<{ name: string; plans: Array<Record<string, unknown>> }> };
  assert.deepEqual(catalog.services.map((s) => s.name), config.catalogData.services.map((s) => s.name));
  assert.ok(catalog.services[0]!.plans.every((p) => !('brokerflow' in p)));

  assert.equal((await fetch(`${base}/v2/catalog`, { headers: { Authorization: basicAuth() } })).status, 412);
  const wrong = await fetch(`${base}/v2/catalog`, {
    headers: { 'X-Broker-API-Version': '2.17', Authorization: basicAuth({ username: 'platform', password: 'nope' }) },
  });
  assert.equal(wrong.status, 401);
  assert.equal(((await wrong.json()) as { description: string }).description.includes('nope'), false);

  const ready = await fetch(`${base}/readyz`, { headers: { Authorization: basicAuth() } });
  assert.equal(ready.status, 200, await ready.text());

  const client = await connectClient(config);
  try {
    const result = await client.workflow.execute(probeWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: `probe/${config.temporal.taskQueue}`,
      args: [{ note: 'hello' }],
      workflowExecutionTimeout: '60 seconds',
    });
    assert.equal(result.note, 'hello');
    assert.equal(result.workerIdentity.split('@')[0], String(worker.child.pid));
  } finally {
    await client.connection.close();
  }
});

test('a broker with a bad configuration field exits at once naming the field', { timeout: 30_000 }, async () => {
  const { file } = writeRawTestConfig({ broker: { port: 70000 } });
  const broker = startNode('client/broker/main.ts', ['--config', file], {});
  const code = await new Promise<number | null>((r) => broker.child.on('exit', r));
  assert.equal(code, 1);
  assert.match(broker.output(), /broker\.port: must be <= 65535/);
});
