// The broker process: the OSB HTTP API, `/healthz`, `/readyz` and `/metrics`.
import { configPathFromArgs, loadRuntimeConfig } from '../../config';
import { createLogger } from '../../platform/logging';
import { createBroker } from './server';

async function main(): Promise<void> {
  const log = createLogger('broker');
  const config = loadRuntimeConfig(configPathFromArgs());
  const broker = await createBroker(config, log);
  const host = config.broker?.host ?? '127.0.0.1';
  const port = Number(process.env.BROKERFLOW_BROKER_PORT ?? config.broker?.port ?? 8080);
  const address = await broker.app.listen({ host, port });
  log.info({ address }, 'broker listening');
  const stop = async () => {
    await broker.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: Error) => {
  process.stderr.write(`brokerflow broker: ${err.message}\n`);
  process.exit(1);
});
