// Replay: every history under test/replay/histories (real runs, captured by `npm run replay:capture`) is replayed
// against the workflow bundle of this checkout. A change to workflow code that issues different commands for
// the same history (activities reordered, added or removed, timers, signals, continue-as-new) fails here
// instead of failing the executions that are in flight when the new worker is deployed. Such a change must be
// guarded with `patched()` (see workflows/operations.ts) so old histories keep their old path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { Worker } from '@temporalio/worker';
import { dataConverter } from '../../platform/temporal';
import { installRuntime } from '../../worker/worker';
import * as workflows from '../../workflows';
import { requireTestEnv } from '../support/env';
import { writeTestConfig } from '../support/config';
import { historyFromJson, historyWorkflowType, loadHistories, replayTestEncryption, unencryptedPayloads } from './support';

const histories = loadHistories();

test('every exported workflow type has at least one captured history', () => {
  const captured = new Set(histories.map((h) => historyWorkflowType(h.history)));
  const types = Object.entries(workflows)
    .filter(([, v]) => typeof v === 'function')
    .map(([name]) => name);
  assert.ok(types.length > 0);
  const missing = types.filter((t) => !captured.has(t));
  assert.deepEqual(missing, [], `no history for ${missing.join(', ')}: add a scenario to scripts/capture-histories.ts and run \`npm run replay:capture\``);
});

test('the committed histories hold no payload in clear', () => {
  for (const { name, history } of histories) assert.deepEqual(unencryptedPayloads(history), [], `${name}.json`);
});

test('the committed histories name no path or process of the machine that captured them', () => {
  const root = resolve(__dirname, '..', '..');
  for (const { name, history } of histories) {
    const text = JSON.stringify(history);
    assert.ok(!text.includes(root), `${name}.json names the checkout's path`);
    assert.doesNotMatch(text, /"stackTrace":"[^"]/, `${name}.json holds a stack trace`);
    assert.doesNotMatch(text, /"identity":"\d+@/, `${name}.json holds a worker identity (pid@host)`);
  }
});

test('every captured history replays on the current workflow code', { timeout: 50_000 }, async () => {
  installRuntime();
  // The worker's own data converter (platform/temporal.ts), configured with the test-only key the histories
  // were captured with (test/replay/support.ts).
  const { config } = writeTestConfig({ encryption: replayTestEncryption });
  const failures: string[] = [];
  const results = Worker.runReplayHistories(
    {
      workflowBundle: { codePath: requireTestEnv('workflowBundle') },
      dataConverter: dataConverter(config),
      // The worker's sink (worker/worker.ts); it is never called during replay.
      sinks: { reconcileMetrics: { event: { fn: () => undefined, callDuringReplay: false } } },
    },
    // Histories carry no workflow ID; the file name stands in (no workflow reads its ID).
    histories.map(({ name, history }) => ({ workflowId: name, history: historyFromJson(history) })),
  );
  let replayed = 0;
  for await (const r of results) {
    replayed += 1;
    if (r.error) failures.push(`${r.workflowId}.json: ${r.error.name}: ${r.error.message}`);
  }
  assert.equal(replayed, histories.length);
  assert.deepEqual(failures, [], 'histories that no longer replay (a workflow change needs patched(), see README "Replay tests")');
});
