// Which workflows module the worker bundles: always workflows/index.ts, except in an upgrade test. There, a worker
// must run a "next build" of the workflows (changed code, guarded with patched()) against histories the current
// build wrote, and the environment variable below names that build's entry. It is not part of the configuration
// file, and it accepts only a file under test/ of a source checkout: the image has no test/ folder (deploy/Dockerfile),
// so a worker there refuses to start rather than run anything but the product's workflows.
// See docs/design/conventions.md#changing-workflow-code.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { packageRoot } from '../config/location';

/** FOR TESTING UPGRADES ONLY: a workflows entry under test/ that the worker bundles instead of workflows/index.ts. */
export const upgradeTestWorkflowsEnv = 'BROKERFLOW_UPGRADE_TEST_WORKFLOWS';


/** The workflows module a worker bundles, and whether it is an upgrade test's build rather than the product's. */
export interface WorkflowsEntry {
  path: string;
  upgradeTest: boolean;
}

/**
 * The product's workflows entry, or the upgrade test's when {@link upgradeTestWorkflowsEnv} is set. Throws, naming
 * the variable, when it names anything but an existing `.ts` file under test/ of this checkout.
 */
export function workflowsEntry(env: NodeJS.ProcessEnv = process.env): WorkflowsEntry {
  const named = env[upgradeTestWorkflowsEnv];
  if (!named) return { path: require.resolve('../workflows'), upgradeTest: false };
  const refuse = (why: string) =>
    new Error(`${upgradeTestWorkflowsEnv} is for testing upgrades only and names a workflows entry under test/ of a source checkout: ${why}`);
  const root = packageRoot();
  const testDir = join(root, 'test');
  if (!existsSync(testDir)) throw refuse('this installation has no test/ folder; unset the variable');
  const wanted = isAbsolute(named) ? named : resolve(root, named);
  if (!existsSync(wanted) || !statSync(wanted).isFile() || !wanted.endsWith('.ts')) throw refuse(`${named} is not a .ts file`);
  const path = realpathSync(wanted);
  const inside = relative(realpathSync(testDir), path);
  if (inside.startsWith('..') || isAbsolute(inside)) throw refuse(`${named} is outside test/`);
  return { path, upgradeTest: true };
}
