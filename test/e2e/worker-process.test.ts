// The worker process on its own: it runs operations from its config file and exposes brokerflow's reconcile
// metrics and the Temporal SDK's metrics on the configured ports. Its workflow bundle cache is a folder others may
// write, holding a planted bundle: the worker ignores it, says why, and runs the real workflows.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort } from '../../scripts/lib/process';
import { bundleFileName } from '../../worker/bundle';
import { requireTestEnv } from '../support/env';
import { startTestStack, type TestStack } from '../support/stack';
import { newId, provisionAndWait } from '../support/osb';

let worker: ChildProcess | undefined;
let stack: TestStack | undefined;
after(async () => {
  worker?.kill('SIGKILL');
  await stack?.close();
});

test('the worker process reconciles operations and serves its own and the SDK\'s Prometheus metrics', { timeout: 120_000 }, async () => {
  const [metricsPort, sdkMetricsPort] = [await freePort(), await freePort()];
  stack = await startTestStack({ worker: false, overrides: { worker: { metricsPort, sdkMetricsPort } } });
  // What another local user could plant when the cache sat in a world-writable folder: "workflows" that run nothing.
  const plantedDir = mkdtempSync(join(requireTestEnv('workDir'), 'planted-bundles-'));
  chmodSync(plantedDir, 0o777);
  const planted = 'module.exports = {};\n';
  writeFileSync(join(plantedDir, bundleFileName()), planted);
  writeFileSync(join(plantedDir, `${bundleFileName()}.sha256`), createHash('sha256').update(planted).digest('hex'));
  let out = '';
  worker = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts', '--config', stack.configFile], {
    cwd: resolve(__dirname, '..', '..'),
    env: { ...process.env, BROKERFLOW_BUNDLE_DIR: plantedDir },
  });
  worker.stdout?.on('data', (d) => (out += d));
  worker.stderr?.on('data', (d) => (out += d));
  await provisionAndWait(stack, newId('wp'));
  const mine = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  assert.match(mine, /brokerflow_reconcile_step_total\{resource="keyspace",step="applyCreateChange"\} 1/);
  assert.match(mine, /brokerflow_reconcile_event_duration_seconds_count\{event="update"\} 1/);
  const sdk = await (await fetch(`http://127.0.0.1:${sdkMetricsPort}/metrics`)).text();
  assert.match(sdk, /temporal_activity_execution_latency/);
  assert.match(out, /"msg":"worker started"/);
  assert.match(out, /"reason":"directory [^"]*planted-bundles-[^"]* is writable by its group or by others \(mode 0777\)".*"msg":"workflow bundle cache ignored: it is not private to this user; building the bundle without it"/);
  assert.doesNotMatch(out, /password/i);
});
