// The codec-server process.
import { configPathFromArgs, loadRuntimeConfig } from '../config';
import { ConfigError } from '../config/catalog';
import { createLogger } from '../platform/logging';
import { codecFromConfig } from '../platform/codec';
import { buildCodecServer, codecAccess } from './codec-server';

async function main(): Promise<void> {
  const log = createLogger('codec-server');
  const config = loadRuntimeConfig(configPathFromArgs());
  const codec = codecFromConfig(config);
  if (!codec) throw new ConfigError('encryption: the codec server needs encryption keys', 'encryption');
  const access = codecAccess(config);
  const app = await buildCodecServer({
    codec,
    ...access,
    corsOrigins: config.codecServer?.corsOrigins ?? [],
    logger: log,
  });
  const address = await app.listen({
    host: config.codecServer?.host ?? '127.0.0.1',
    port: Number(process.env.BROKERFLOW_CODEC_PORT ?? config.codecServer?.port ?? 8081),
  });
  log.info({ address, namespaces: access.namespaces }, 'codec server listening');
  const stop = async () => {
    await app.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: Error) => {
  process.stderr.write(`brokerflow codec-server: ${err.message}\n`);
  process.exit(1);
});
