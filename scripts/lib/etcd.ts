// Starts etcd on loopback with its own data folders: a single member, or a cluster of members with
// --initial-cluster (as users run it), for the scenarios that kill one member.
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { assertPortFree, freePort, httpOk, runInstaller, startProcess, type ManagedProcess } from './process';

/** A running etcd member started by {@link startEtcd} or {@link startEtcdCluster}. */
export interface EtcdServer {
  endpoint: string;
  clientPort: number;
  process: ManagedProcess;
  /** Starts it again on the same ports and data (after stop or kill), for outage tests. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

interface MemberSpec {
  bin: string;
  name: string;
  dataDir: string;
  logDir: string;
  clientPort: number;
  peerPort: number;
  /** `name=peerURL,...` of every member (just this one for a single member). */
  initialCluster: string;
  clusterToken?: string;
}

/** Starts one member and waits until it answers /health (which needs a leader, so a cluster's quorum). */
async function startMember(m: MemberSpec): Promise<EtcdServer & { name: string }> {
  mkdirSync(m.dataDir, { recursive: true });
  const endpoint = `http://127.0.0.1:${m.clientPort}`;
  const peerUrl = `http://127.0.0.1:${m.peerPort}`;
  const args = [
    `--name=${m.name}`,
    `--data-dir=${join(m.dataDir, m.name)}`,
    `--listen-client-urls=${endpoint}`,
    `--advertise-client-urls=${endpoint}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=${m.initialCluster}`,
    ...(m.clusterToken ? [`--initial-cluster-token=${m.clusterToken}`] : []),
    '--logger=zap',
    '--log-level=warn',
    // Large watch/list tests and the 100k-key syncer benchmark want room.
    '--quota-backend-bytes=4294967296',
    '--max-request-bytes=10485760',
  ];
  const start = () =>
    startProcess({
      name: m.name,
      command: m.bin,
      args,
      logDir: m.logDir,
      env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.env.ETCD_UNSUPPORTED_ARCH ?? '' },
      ready: () => httpOk(`${endpoint}/health`),
      readyTimeoutMs: 30_000,
      hint: `Is port ${m.clientPort} or ${m.peerPort} taken?`,
    });
  const server: EtcdServer & { name: string } = {
    name: m.name,
    endpoint,
    clientPort: m.clientPort,
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

export async function startEtcd(opts: { dataDir: string; logDir: string; clientPort?: number; name?: string }): Promise<EtcdServer> {
  const bin = runInstaller('etcd');
  const clientPort = opts.clientPort ?? (await freePort());
  if (opts.clientPort) await assertPortFree(clientPort, 'etcd');
  const peerPort = await freePort();
  const name = opts.name ?? 'etcd';
  return startMember({ bin, name, dataDir: opts.dataDir, logDir: opts.logDir, clientPort, peerPort, initialCluster: `${name}=http://127.0.0.1:${peerPort}` });
}

/** One member of a cluster started by {@link startEtcdCluster}. */
export interface EtcdClusterMember extends EtcdServer {
  name: string;
}

/** An etcd cluster started by {@link startEtcdCluster}. */
export interface EtcdCluster {
  members: EtcdClusterMember[];
  /** Every member's client URL, as brokerflow is configured with them. */
  endpoints: string[];
  stop(): Promise<void>;
}

/**
 * Starts a cluster of `size` members (default 3) on free loopback ports, each with its data under `dataDir`,
 * and waits until every member answers /health (a leader is elected). A member stopped or killed is started
 * again with its `restart()`: it rejoins from its own data.
 */
export async function startEtcdCluster(opts: { dataDir: string; logDir: string; name?: string; size?: number }): Promise<EtcdCluster> {
  const bin = runInstaller('etcd');
  const size = opts.size ?? 3;
  if (!Number.isInteger(size) || size < 1) throw new Error(`an etcd cluster needs at least one member, not ${size}`);
  const base = opts.name ?? 'etcd';
  const specs: MemberSpec[] = [];
  // Ask for every port before starting anything, so that no member takes one another is about to use.
  const ports = new Set<number>();
  while (ports.size < size * 2) ports.add(await freePort());
  const [clientPorts, peerPorts] = [[...ports].slice(0, size), [...ports].slice(size)];
  const names = Array.from({ length: size }, (_, i) => `${base}-${i + 1}`);
  const initialCluster = names.map((n, i) => `${n}=http://127.0.0.1:${peerPorts[i]}`).join(',');
  for (let i = 0; i < size; i++) {
    specs.push({ bin, name: names[i]!, dataDir: opts.dataDir, logDir: opts.logDir, clientPort: clientPorts[i]!, peerPort: peerPorts[i]!, initialCluster, clusterToken: base });
  }
  // Members wait for each other (no /health before a quorum), so they start together.
  const started = await Promise.allSettled(specs.map((s) => startMember(s)));
  const members = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.allSettled(members.map((m) => m.stop()));
    throw (failed as PromiseRejectedResult).reason;
  }
  return {
    members,
    endpoints: members.map((m) => m.endpoint),
    async stop() {
      await Promise.allSettled(members.map((m) => m.stop()));
    },
  };
}

/**
 * Turns on authentication with a `root` user (the tenant etcd that etcd resource drivers manage). Idempotent:
 * when auth is already on, it only checks that root logs in with this password. For a cluster, give every member's
 * URL (or any one: users, roles and the auth switch are replicated like keys).
 */
export async function enableEtcdAuth(endpoint: string | string[], rootPassword: string): Promise<void> {
  const { Etcd3 } = await import('etcd3');
  const hosts = typeof endpoint === 'string' ? endpoint : [...endpoint];
  const setup = new Etcd3({ hosts });
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
  const root = new Etcd3({ hosts, auth: { username: 'root', password: rootPassword } });
  try {
    await root.get('/brokerflow-auth-check').string();
  } catch (err) {
    throw new Error(`etcd at ${String(hosts)} has authentication set up with another root password: ${(err as Error).message}`);
  } finally {
    root.close();
  }
}
