// Starts a single-member etcd on loopback with its own data folder.
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { assertPortFree, freePort, httpOk, runInstaller, startProcess, type ManagedProcess } from './process';

/** A running etcd member started by {@link startEtcd}. */
export interface EtcdServer {
  endpoint: string;
  clientPort: number;
  process: ManagedProcess;
  /** Starts it again on the same ports and data (after stop or kill), for outage tests. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startEtcd(opts: { dataDir: string; logDir: string; clientPort?: number; name?: string }): Promise<EtcdServer> {
  const bin = runInstaller('etcd');
  const clientPort = opts.clientPort ?? (await freePort());
  if (opts.clientPort) await assertPortFree(clientPort, 'etcd');
  const peerPort = await freePort();
  const name = opts.name ?? 'etcd';
  mkdirSync(opts.dataDir, { recursive: true });
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const args = [
    `--name=${name}`,
    `--data-dir=${join(opts.dataDir, name)}`,
    `--listen-client-urls=${endpoint}`,
    `--advertise-client-urls=${endpoint}`,
    `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-cluster=${name}=http://127.0.0.1:${peerPort}`,
    '--logger=zap',
    '--log-level=warn',
    // Large watch/list tests and the 100k-key syncer benchmark want room.
    '--quota-backend-bytes=4294967296',
    '--max-request-bytes=10485760',
  ];
  const start = () =>
    startProcess({
      name,
      command: bin,
      args,
      logDir: opts.logDir,
      env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.env.ETCD_UNSUPPORTED_ARCH ?? '' },
      ready: () => httpOk(`${endpoint}/health`),
      readyTimeoutMs: 30_000,
      hint: `Is port ${clientPort} or ${peerPort} taken?`,
    });
  const server: EtcdServer = {
    endpoint,
    clientPort,
    process: await start(),
    async restart() {
      server.process = await start();
    },
    async stop() {
      await server.process.stop();
    },
  };
  return server;
}

/**
 * Turns on authentication with a `root` user (the tenant etcd that etcd resource drivers manage). Idempotent:
 * when auth is already on, it only checks that root logs in with this password.
 */
export async function enableEtcdAuth(endpoint: string, rootPassword: string): Promise<void> {
  const { Etcd3 } = await import('etcd3');
  const setup = new Etcd3({ hosts: endpoint });
  try {
    await setup.user('root').create(rootPassword);
    await setup.role('root').create();
    await setup.user('root').addRole('root');
    await setup.auth.authEnable();
    return;
  } catch {
    // Auth already on (anonymous calls are refused) or root exists: check root's login below.
  } finally {
    setup.close();
  }
  const root = new Etcd3({ hosts: endpoint, auth: { username: 'root', password: rootPassword } });
  try {
    await root.get('/brokerflow-auth-check').string();
  } catch (err) {
    throw new Error(`etcd at ${endpoint} has authentication set up with another root password: ${(err as Error).message}`);
  } finally {
    root.close();
  }
}
