// `npm run dev`: the whole system on one machine. Installs what is missing, starts the Temporal dev server
// (SQLite file and Web UI), etcd, the tenant etcd (auth on) that etcd resource drivers manage, a local
// Kubernetes control plane (unless $KUBECONFIG names a cluster, or --no-kube), the worker, the broker and the
// codec server the Web UI decodes through, with config/brokerflow.example.yaml, prints where to look, restarts
// the worker, broker or codec server when one dies (scripts/lib/supervise.ts), and stops everything on Ctrl-C or
// SIGTERM. State lives in .data/ and survives restarts.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { loadRuntimeConfig } from '../config/runtime';
import { httpOk, repoRoot, startProcess } from './lib/process';
import { outputSince, supervise, type Supervisor } from './lib/supervise';
import { startTemporal } from './lib/temporal';
import { startTemporalCluster } from './lib/temporal-cluster';
import { enableEtcdAuth, startEtcd } from './lib/etcd';
import { startKubeControlPlane } from './lib/kube';

const dataDir = process.env.BROKERFLOW_DATA_DIR ?? join(repoRoot, '.data');
const logDir = join(dataDir, 'logs');
const configFile = process.env.BROKERFLOW_CONFIG ?? join(repoRoot, 'config', 'brokerflow.example.yaml');

/**
 * `--temporal cluster` (or `--temporal=cluster`): Temporal as users run it — the server built from Go modules, its
 * frontend, history, matching and worker services as separate processes on a private PostgreSQL
 * (scripts/lib/temporal-cluster.ts), state in .data/temporal-cluster. The default is the dev server.
 */
function temporalShape(): 'dev' | 'cluster' {
  const i = process.argv.findIndex((a) => a === '--temporal' || a.startsWith('--temporal='));
  if (i < 0) return 'dev';
  const value = process.argv[i]!.includes('=') ? process.argv[i]!.split('=')[1] : process.argv[i + 1];
  if (value !== 'dev' && value !== 'cluster') throw new Error(`--temporal must be dev or cluster, got '${value ?? ''}'`);
  return value;
}

/**
 * Development secrets, generated once into .data/secrets/ (mode 600) where config/brokerflow.example.yaml reads
 * them, so worker, broker and the CLI all find them; kept across restarts so old payloads stay readable.
 */
function devSecrets(): { brokerPassword: string; tenantEtcdPassword: string } {
  const dir = join(dataDir, 'secrets');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ensure = (name: string, make: () => string) => {
    const file = join(dir, name);
    if (!existsSync(file)) writeFileSync(file, make(), { mode: 0o600 });
    return readFileSync(file, 'utf8').trim();
  };
  ensure('encryption-key', () => randomBytes(32).toString('base64'));
  // The codec server's own password (config codecServer.auth): the broker's does not decode payloads.
  ensure('codec-password', () => randomBytes(12).toString('base64url'));
  return {
    brokerPassword: ensure('broker-password', () => randomBytes(12).toString('base64url')),
    tenantEtcdPassword: ensure('tenant-etcd-password', () => randomBytes(12).toString('base64url')),
  };
}

/** The tenant etcd of `drivers.etcd`, started on its configured port with authentication on. */
async function startTenantEtcd(endpoint: string | undefined, rootPassword: string) {
  if (!endpoint) return undefined;
  const port = Number(new URL(endpoint).port);
  const server = await startEtcd({ dataDir: join(dataDir, 'etcd-tenants'), logDir, clientPort: port, name: 'etcd-tenants' });
  await enableEtcdAuth(server.endpoint, rootPassword);
  return server;
}

async function main(): Promise<void> {
  mkdirSync(logDir, { recursive: true });
  const secrets = devSecrets();
  const env: NodeJS.ProcessEnv = { ...process.env };
  const config = loadRuntimeConfig(configFile);
  const [host, port] = config.temporal.address.split(':');
  if (host !== '127.0.0.1' && host !== 'localhost') {
    throw new Error(`temporal.address ${config.temporal.address} is not local: npm run dev starts its own server on 127.0.0.1`);
  }
  const etcdPort = Number(new URL(config.etcd?.endpoints[0] ?? 'http://127.0.0.1:2379').port || 2379);
  const codecPort = config.codecServer?.port ?? 8081;
  const shape = temporalShape();
  console.log(
    shape === 'cluster'
      ? 'brokerflow dev: starting the Temporal cluster (frontend, history, matching, worker on PostgreSQL) and etcd (the first run builds the server from Go modules: many minutes; logs in .data/logs)'
      : 'brokerflow dev: starting Temporal and etcd (first run installs them; logs in .data/logs)',
  );
  const [temporal, etcd, tenantEtcd] = await Promise.all([
    shape === 'cluster'
      ? startTemporalCluster({ dataDir: join(dataDir, 'temporal-cluster'), logDir, port: Number(port) })
      : startTemporal({
          dataDir: join(dataDir, 'temporal'),
          logDir,
          port: Number(port),
          uiPort: Number(port) + 1000,
          codecEndpoint: `http://127.0.0.1:${codecPort}`,
        }),
    startEtcd({ dataDir: join(dataDir, 'etcd'), logDir, clientPort: etcdPort }),
    startTenantEtcd(config.drivers?.etcd?.endpoints[0], secrets.tenantEtcdPassword),
  ]);
  const wantKube = !process.argv.includes('--no-kube') && !process.env.KUBECONFIG;
  const kube = wantKube
    ? await startKubeControlPlane({ etcdEndpoint: etcd.endpoint, workDir: join(dataDir, 'kube'), logDir, etcdPrefix: '/kubernetes-dev' })
    : undefined;
  if (kube) env.KUBECONFIG = kube.kubeconfigPath;
  // Worker, broker and codec server are supervised: one that dies is started again with backoff (1 s doubling to
  // 30 s, back to 1 s after a minute up) and the log says so; operations in flight resume on the new worker.
  const supervisors: Supervisor[] = [];
  const node = (name: string, entry: string, ready: (logOffset: number) => Promise<boolean>) =>
    supervise({
      name,
      logFile: join(logDir, `${name}.log`),
      log: (line) => console.error(line),
      start: ({ logOffset, onSpawn }) =>
        startProcess({
          name,
          command: process.execPath,
          args: ['--import', 'tsx', join(repoRoot, entry), '--config', configFile],
          env,
          cwd: repoRoot,
          logDir,
          ready: () => ready(logOffset),
          readyTimeoutMs: 60_000,
          onSpawn,
        }),
    });
  const brokerUrl = `http://${config.broker?.host ?? '127.0.0.1'}:${config.broker?.port ?? 8080}`;
  // The worker says 'worker started' in its log once connected; a restarted one must say it again, after its start.
  supervisors.push(await node('worker', 'worker/main.ts', async (from) => outputSince(join(logDir, 'worker.log'), from, 1_000).some((l) => l.includes('worker started'))));
  supervisors.push(await node('broker', 'client/broker/main.ts', () => httpOk(`${brokerUrl}/healthz`)));
  // The Web UI was started pointing at this address (--ui-codec-endpoint); it decodes payloads through it.
  const codecUrl = `http://${config.codecServer?.host ?? '127.0.0.1'}:${codecPort}`;
  supervisors.push(await node('codec-server', 'client/codec-main.ts', () => httpOk(`${codecUrl}/healthz`)));

  // Ctrl-C (SIGINT) or SIGTERM: stop the supervised children first (no restarts from here on), then the servers.
  // A second Ctrl-C while stopping kills what is left at once.
  let stopping: Promise<void> | undefined;
  const stopAll = (exitCode: number) =>
    (stopping ??= (async () => {
      console.log('\nbrokerflow dev: stopping');
      await Promise.allSettled(supervisors.map((s) => s.stop()));
      await kube?.stop();
      await Promise.allSettled([temporal.stop(), etcd.stop(), tenantEtcd?.stop()]);
      process.exit(exitCode);
    })());
  process.removeAllListeners('SIGINT');
  process.removeAllListeners('SIGTERM');
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (!stopping) return void stopAll(0);
      console.error(`brokerflow dev: ${sig} again: killing what is left`);
      process.exit(130); // the exit hook of scripts/lib/process.ts SIGKILLs every child's process group
    });
  }

  console.log(`
brokerflow is running.
  OSB broker        ${brokerUrl}   (user admin, password in .data/secrets/broker-password)
                    curl -u "admin:$(cat .data/secrets/broker-password)" \\
                         -H 'X-Broker-API-Version: 2.17' ${brokerUrl}/v2/catalog
  Temporal Web UI   ${temporal.uiUrl ?? 'none: the cluster shape runs no Web UI (use the Temporal CLI or npx brokerflow status)'}
  codec server      ${codecUrl}   (decodes payloads for the Web UI: in the UI's codec settings tick
                    "Include cross-origin credentials", then sign in as operator, password in
                    .data/secrets/codec-password, when the browser asks)
  Temporal gRPC     ${temporal.address}${'services' in temporal ? `   (cluster ${temporal.version}: frontend, history, matching, worker on PostgreSQL 127.0.0.1:${temporal.postgres.port})` : ''}
  etcd              ${etcd.endpoint}   (tenant etcd for etcd-keyspace plans: ${tenantEtcd?.endpoint ?? 'not configured'})
  Kubernetes        ${kube ? `${kube.server}   (export KUBECONFIG=${kube.kubeconfigPath})` : process.env.KUBECONFIG ? `$KUBECONFIG (${process.env.KUBECONFIG})` : 'not started (--no-kube)'}
  logs              ${logDir}
  processes         ${supervisors.map((s) => `${s.name} pid ${s.current()?.pid ?? '?'}`).join(', ')}   (each restarted when it dies)
  CLI               node bin/brokerflow.js catalog   (or: npx brokerflow doctor)
Press Ctrl-C to stop everything.`);
  // A server the stack depends on (Temporal, PostgreSQL, etcd) is not restarted: one that dies stops the stack, with
  // the reason, rather than leave a half-working system.
  const watch = setInterval(() => {
    const temporalProcesses = 'services' in temporal ? [temporal.postgres.process, ...Object.values(temporal.services)] : [temporal.process];
    for (const p of [...temporalProcesses, etcd.process, ...(tenantEtcd ? [tenantEtcd.process] : [])]) {
      if (p.exitCode() !== undefined && !stopping) {
        const how = p.exitSignal() ? `killed by ${p.exitSignal()}` : `exited with code ${p.exitCode()}`;
        console.error(`brokerflow dev: ${p.name} (pid ${p.pid}) ${how}; stopping the stack. See ${p.logFile}`);
        clearInterval(watch);
        void stopAll(1);
      }
    }
  }, 1000);
}

main().catch((err: Error) => {
  console.error(`brokerflow dev: ${err.message}`);
  process.exit(1);
});
