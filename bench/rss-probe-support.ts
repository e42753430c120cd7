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
  /** After reading the prebuilt workflow bundle as worker/main.ts does at start (from the bundle cache). */
  bundleRead: number;
  /** After creating a Worker with that bundle (its workflow sandbox loads the code), and a garbage collection. */
  workerCreated: number;
}

function rssMb(): number {
  const kb = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
  return kb / 1024;
}

/** Runs the probe in a fresh process; its Worker connects to the Temporal server at `temporalAddress` (it runs no task). */
export function probeWorkerMemory(temporalAddress: string): Promise<WorkerMemoryParts> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', '--import', 'tsx', __filename, temporalAddress], { cwd: repoRoot, timeout: 120_000 }, (err, stdout, stderr) => {
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
  require('../worker/worker');
  const brokerflowModules = rssMb();
  // As worker/main.ts: the bundle built once in another process and cached on disk, read and checked here.
  const { prebuiltWorkflowBundle } = require('../worker/bundle') as typeof import('../worker/bundle');
  const bundle = prebuiltWorkflowBundle({ log: { warn: (_obj, msg) => process.stderr.write(`${msg}\n`) } });
  const bundleRead = rssMb();
  const { NativeConnection, Worker } = require('@temporalio/worker') as typeof import('@temporalio/worker');
  const connection = await NativeConnection.connect({ address: process.argv[2]! });
  const worker = await Worker.create({ connection, taskQueue: `rss-probe-${process.pid}`, workflowBundle: { code: bundle.code } });
  (globalThis as { gc?: () => void }).gc?.();
  const workerCreated = rssMb();
  // Measured with the Worker created and not yet run, as a worker process is before its first task.
  if (worker.getState() !== 'INITIALIZED') throw new Error(`the probe's worker is ${worker.getState()}, not INITIALIZED`);
  const parts: WorkerMemoryParts = { nodeAndTsx, temporalSdk, brokerflowModules, bundleRead, workerCreated };
  process.stdout.write(`${JSON.stringify(parts)}\n`);
}

if (require.main === module) {
  main().then(
    // The Worker never ran: nothing to drain, and the process is only a measurement.
    () => process.exit(0),
    (err: Error) => {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    },
  );
}
