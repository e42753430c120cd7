// Workers for tests: the workflow bundle is built once per test run (by test/run.ts) and shared.
import type { Worker } from '@temporalio/worker';
import type { RuntimeConfig } from '../../config/runtime';
import type { ActivityDeps } from '../../activities';
import { createWorker } from '../../worker/worker';
import { requireTestEnv } from './env';

/** Creates a worker on the test run's Temporal with the shared workflow bundle. */
export async function createTestWorker(config: RuntimeConfig, deps: ActivityDeps = {}): Promise<Worker> {
  return createWorker({ config, deps, workflowBundle: { codePath: requireTestEnv('workflowBundle') } });
}
