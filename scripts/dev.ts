// `npm run dev`: the whole system on one machine. Installs what is missing, starts the Temporal dev server
// (SQLite file and Web UI), etcd, the codec server, the worker and the broker with config/brokerflow.example.yaml,
// prints where to look, and stops everything on Ctrl-C. State lives in .data/ and survives restarts.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { loadRuntimeConfig } from '../config/runtime';
import { httpOk, repoRoot, startProcess, type ManagedProcess } from './lib/process';
import { startTemporal } from './lib/temporal';
import { startEtcd } from './lib/etcd';

const dataDir = process.env.BROKERFLOW_DATA_DIR ?? join(repoRoot, '.data');
const logDir = join(dataDir, 'logs');
const configFile = process.env.BROKERFLOW_CONFIG ?? join(repoRoot, 'config', 'brokerflow.example.yaml');

/** Development secrets, generated once and kept in .data/dev-secrets.json so restarts can decode old payloads. */
function devSecrets(): { brokerPassword: string; encryptionKey: string } {
  const file = join(dataDir, 'dev-secrets.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8'));
  const secrets = { brokerPassword: randomBytes(12).toString('base64url'), encryptionKey: randomBytes(32).toString('base64') };
  writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

async function main(): Promise<void> {
  mkdirSync(logDir, { recursive: true });
  const secrets = devSecrets();
  const env = {
    ...process.env,
    BROKERFLOW_BROKER_PASSWORD: process.env.BROKERFLOW_BROKER_PASSWORD ?? secrets.brokerPassword,
    BROKERFLOW_ENCRYPTION_KEY: process.env.BROKERFLOW_ENCRYPTION_KEY ?? secrets.encryptionKey,
  };
  Object.assign(process.env, env);
  const config = loadRuntimeConfig(configFile);
  const [host, port] = config.temporal.address.split(':');
  if (host !== '127.0.0.1' && host !== 'localhost') {
    throw new Error(`temporal.address ${config.temporal.address} is not local: npm run dev starts its own server on 127.0.0.1`);
  }
  const etcdPort = Number(new URL(config.etcd?.endpoints[0] ?? 'http://127.0.0.1:2379').port || 2379);
  const codecPort = config.codecServer?.port ?? 8081;
  console.log('brokerflow dev: starting Temporal and etcd (first run installs them; logs in .data/logs)');
  const [temporal, etcd] = await Promise.all([
    startTemporal({
      dataDir: join(dataDir, 'temporal'),
      logDir,
      port: Number(port),
      uiPort: Number(port) + 1000,
      codecEndpoint: `http://127.0.0.1:${codecPort}`,
    }),
    startEtcd({ dataDir: join(dataDir, 'etcd'), logDir, clientPort: etcdPort }),
  ]);
  const procs: ManagedProcess[] = [];
  const node = (name: string, entry: string, ready: () => Promise<boolean>) =>
    startProcess({
      name,
      command: process.execPath,
      args: ['--import', 'tsx', join(repoRoot, entry), '--config', configFile],
      env,
      cwd: repoRoot,
      logDir,
      ready,
      readyTimeoutMs: 60_000,
    });
  const brokerUrl = `http://${config.broker?.host ?? '127.0.0.1'}:${config.broker?.port ?? 8080}`;
  procs.push(await node('worker', 'worker/main.ts', async () => readFileSync(join(logDir, 'worker.log'), 'utf8').includes('worker started')));
  procs.push(await node('broker', 'client/broker/main.ts', () => httpOk(`${brokerUrl}/healthz`)));

  const stopAll = async () => {
    console.log('\nbrokerflow dev: stopping');
    await Promise.allSettled(procs.map((p) => p.stop()));
    await Promise.allSettled([temporal.stop(), etcd.stop()]);
    process.exit(0);
  };
  process.removeAllListeners('SIGINT');
  process.removeAllListeners('SIGTERM');
  process.once('SIGINT', () => void stopAll());
  process.once('SIGTERM', () => void stopAll());

  console.log(`
brokerflow is running.
  OSB broker        ${brokerUrl}   (user admin, password in .data/dev-secrets.json)
                    curl -u "admin:$(node -p 'require("./.data/dev-secrets.json").brokerPassword')" \\
                         -H 'X-Broker-API-Version: 2.17' ${brokerUrl}/v2/catalog
  Temporal Web UI   ${temporal.uiUrl}
  Temporal gRPC     ${temporal.address}
  etcd              ${etcd.endpoint}
  logs              ${logDir}
Press Ctrl-C to stop everything.`);
  // A child that dies is reported, not hidden.
  const watch = setInterval(() => {
    for (const p of [...procs, temporal.process, etcd.process]) {
      if (p.exitCode() !== undefined) {
        console.error(`brokerflow dev: ${p.name} exited (code ${p.exitCode()}); see ${p.logFile}`);
        clearInterval(watch);
        void stopAll();
      }
    }
  }, 1000);
}

main().catch((err: Error) => {
  console.error(`brokerflow dev: ${err.message}`);
  process.exit(1);
});
