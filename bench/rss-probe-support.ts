// Where a worker process's memory comes from before it runs anything: a probe process loads what worker/main.ts
// loads, step by step, and reports its RSS after each step, so a worker RSS figure can be explained by its parts.
//
// Run as a script it prints one JSON object: node --import tsx bench/rss-probe-support.ts
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { repoRoot } from '../scripts/lib/process';

/** RSS in MB after each step of loading a worker; each step includes the ones before it. */
export interface WorkerMemoryParts {
  nodeAndTsx: number;
  temporalSdk: number;
  brokerflowModules: number;
  /** After bundling the workflows as worker/main.ts does at start, and a garbage collection. */
  afterBundling: number;
}

function rssMb(): number {
  const kb = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
  return kb / 1024;
}

/** Runs the probe in a fresh process. */
export function probeWorkerMemory(): Promise<WorkerMemoryParts> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', '--import', 'tsx', __filename], { cwd: repoRoot, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`worker memory probe failed: ${stderr.trim() || err.message}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()!) as WorkerMemoryParts);
      } catch {
        reject(new Error(`worker memory probe printed no JSON: ${stdout.slice(0, 200)}`));
      }
    });
  });
}

async function main(): Promise<void> {
  const nodeAndTsx = rssMb();
  // Loaded with require, one step at a time, so each step's memory can be read.
  require('@temporalio/worker');
  const temporalSdk = rssMb();
  // What worker/main.ts imports: configuration, adapters (through the dependency factory), activities, the worker.
  require('../config');
  require('../worker/dependencies');
  const { bundleWorkflows } = require('../worker/worker') as typeof import('../worker/worker');
  const brokerflowModules = rssMb();
  await bundleWorkflows();
  (globalThis as { gc?: () => void }).gc?.();
  const afterBundling = rssMb();
  const parts: WorkerMemoryParts = { nodeAndTsx, temporalSdk, brokerflowModules, afterBundling };
  process.stdout.write(`${JSON.stringify(parts)}\n`);
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  });
}
