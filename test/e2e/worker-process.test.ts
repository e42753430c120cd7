// The worker process on its own: it runs operations from its config file and exposes brokerflow's reconcile
// metrics and the Temporal SDK's metrics on the configured ports. Its workflow bundle cache is a folder others may
// write, holding a planted bundle: the worker ignores it, says why, and runs the real workflows. A metrics port
// another process holds stops it at start-up with a message that names the port.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../scripts/lib/process';
import { bundleFileName } from '../../worker/bundle';
import { writeTestConfig } from '../support/config';
import { requireTestEnv } from '../support/env';
import { startWorkerProcess, type ChildProcessHandle } from '../support/reliability/processes';
import { startTestStack, type TestStack } from '../support/stack';
import { newId, provisionAndWait } from '../support/osb';

let worker: ChildProcessHandle | undefined;
let stack: TestStack | undefined;
after(async () => {
  await worker?.kill();
  await stack?.close();
});

test('the worker process reconciles operations and serves its own and the SDK\'s Prometheus metrics', { timeout: 120_000 }, async () => {
  // brokerflow's own metrics port is 0 (the worker binds a free one and says which): nothing can take it between
  // choosing and binding. The SDK's exporter needs a fixed port.
  const sdkMetricsPort = await freePort();
  stack = await startTestStack({ worker: false, overrides: { worker: { metricsPort: 0, sdkMetricsPort } } });
  // What another local user could plant when the cache sat in a world-writable folder: "workflows" that run nothing.
  const plantedDir = mkdtempSync(join(requireTestEnv('workDir'), 'planted-bundles-'));
  chmodSync(plantedDir, 0o777);
  const planted = 'module.exports = {};\n';
  writeFileSync(join(plantedDir, bundleFileName()), planted);
  writeFileSync(join(plantedDir, `${bundleFileName()}.sha256`), createHash('sha256').update(planted).digest('hex'));
  // Ready once it says "worker started"; it fails here, with its output, when it exits first.
  worker = await startWorkerProcess(stack.configFile, { BROKERFLOW_BUNDLE_DIR: plantedDir });
  const out = (): string => worker!.output();
  const started = /\{[^\n]*"msg":"worker started"[^\n]*\}/.exec(out());
  assert.ok(started, out());
  const metricsPort = (JSON.parse(started[0]) as { metricsPort?: number }).metricsPort;
  assert.ok(typeof metricsPort === 'number' && metricsPort > 0, `"worker started" names the metrics port it bound: ${started[0]}`);
  try {
    await provisionAndWait(stack, newId('wp'));
  } catch (err) {
    throw new Error(`${(err as Error).message}\nthe worker ${worker.exited() ? 'has exited' : 'is running'}; its output:\n${out().slice(-3000)}`);
  }
  const mine = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  assert.match(mine, /brokerflow_reconcile_step_total\{resource="keyspace",step="applyCreateChange"\} 1/);
  assert.match(mine, /brokerflow_reconcile_event_duration_seconds_count\{event="update"\} 1/);
  const sdk = await (await fetch(`http://127.0.0.1:${sdkMetricsPort}/metrics`)).text();
  // The provision's short steps run local first (workflows/local-first.ts): the SDK times them as local activities.
  assert.match(sdk, /temporal_local_activity_execution_latency_count\{activity_type="applyCreateChange",[^}]*workflow_type="provision"\} 1/);
  assert.match(out(), /"reason":"directory [^"]*planted-bundles-[^"]* is writable by its group or by others \(mode 0777\)".*"msg":"workflow bundle cache ignored: it is not private to this user; building the bundle without it"/);
  assert.doesNotMatch(out(), /password/i);
});

test('a worker whose metrics port is taken refuses to start and names the port', { timeout: 120_000 }, async () => {
  const taken = createServer();
  await new Promise<void>((ok) => taken.listen(0, '127.0.0.1', () => ok()));
  const port = (taken.address() as { port: number }).port;
  try {
    const { file } = writeTestConfig({ worker: { metricsPort: port } });
    await assert.rejects(startWorkerProcess(file), (err: Error) => {
      assert.match(err.message, /worker process exited \(code 1\) before it was ready/);
      assert.match(err.message, new RegExp(`the metrics port 127\\.0\\.0\\.1:${port} \\(worker\\.metricsPort\\) cannot be bound: EADDRINUSE`));
      return true;
    });
  } finally {
    taken.close();
  }
});
