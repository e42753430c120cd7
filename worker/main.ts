// The worker process: configuration -> adapters -> activities -> Worker, until SIGINT/SIGTERM.
import { configPathFromArgs, loadRuntimeConfig } from '../config';
import { createLogger } from '../client/logging';
import { createWorker } from './worker';

async function main(): Promise<void> {
  const log = createLogger('worker');
  const config = loadRuntimeConfig(configPathFromArgs());
  const worker = await createWorker({ config, deps: {} });
  log.info({ taskQueue: config.temporal.taskQueue, namespace: config.temporal.namespace }, 'worker started');
  await worker.run();
  log.info('worker stopped');
}

main().catch((err: Error) => {
  process.stderr.write(`brokerflow worker: ${err.message}\n`);
  process.exit(1);
});
