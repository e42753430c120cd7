// Servers a reliability scenario owns: it stops, kills or restarts them, so they are never the shared ones of
// the test run. Each gets its own data folder under the run's work directory.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startTemporal, type TemporalDevServer } from '../../../scripts/lib/temporal';
import { enableEtcdAuth, startEtcd, startEtcdCluster, type EtcdCluster, type EtcdClusterMember, type EtcdServer } from '../../../scripts/lib/etcd';
import { startKubeControlPlane, type KubeControlPlane } from '../../../scripts/lib/kube';
import { requireTestEnv } from '../env';

/** A Temporal dev server (SQLite file) of this scenario. */
export async function startOwnTemporal(name: string): Promise<TemporalDevServer> {
  const workDir = requireTestEnv('workDir');
  return startTemporal({ dataDir: join(workDir, `${name}-${randomBytes(3).toString('hex')}`), logDir: join(workDir, 'logs', name) });
}

/**
 * A Kubernetes control plane of this scenario (kube-apiserver and kube-controller-manager), on the run's etcd under
 * its own key prefix: the scenario may stop and restart its kube-apiserver without disturbing the run's cluster.
 */
export async function startOwnKubeControlPlane(name: string): Promise<KubeControlPlane> {
  const workDir = requireTestEnv('workDir');
  return startKubeControlPlane({
    etcdEndpoint: requireTestEnv('etcdEndpoint'),
    workDir: join(workDir, `${name}-${randomBytes(3).toString('hex')}`),
    logDir: join(workDir, 'logs', name),
  });
}

/** A tenant etcd of this scenario, with authentication on as the etcd drivers need, and its root password. */
export interface OwnTenantEtcd {
  server: EtcdServer;
  rootPassword: string;
  /** A root client for inspecting what the drivers wrote. */
  root(): Etcd3;
}

export async function startOwnTenantEtcd(name: string): Promise<OwnTenantEtcd> {
  const workDir = requireTestEnv('workDir');
  const suffix = randomBytes(3).toString('hex');
  const server = await startEtcd({ dataDir: join(workDir, `${name}-${suffix}`), logDir: join(workDir, 'logs', name), name: `${name}-${suffix}` });
  const rootPassword = randomBytes(16).toString('hex');
  await enableEtcdAuth(server.endpoint, rootPassword);
  return { server, rootPassword, root: () => new Etcd3({ hosts: server.endpoint, auth: { username: 'root', password: rootPassword } }) };
}

/** A root client of the test run's shared tenant etcd (read-mostly: scenarios inspect and clean their own prefixes). */
export function sharedTenantEtcd(): Etcd3 {
  return new Etcd3({
    hosts: requireTestEnv('tenantEtcdEndpoint'),
    auth: { username: 'root', password: requireTestEnv('tenantEtcdRootPassword') },
  });
}

/** A 3-member etcd cluster of this scenario, with authentication on as for the tenant etcd, and its root password. */
export interface OwnEtcdCluster {
  cluster: EtcdCluster;
  rootPassword: string;
  /** A root client of the whole cluster (every member's URL), for inspecting what brokerflow wrote. */
  root(): Etcd3;
  /** The raft member ID of each member (hex), as the maintenance status API reports it. */
  memberIds: Map<EtcdClusterMember, string>;
  /**
   * What the running members among `asked` (default: all) report through the maintenance status API: the leader
   * when every one that answers names the same one, else undefined (an election is under way).
   */
  leader(asked?: EtcdClusterMember[]): Promise<EtcdClusterMember | undefined>;
  /** Each running member's status: its raft index and the leader it follows (hex ID, "0" for none). */
  status(member: EtcdClusterMember): Promise<{ leader: string; raftIndex: number }>;
  /** The etcd version the first running member reports. */
  version(): Promise<string>;
}

const running = (m: EtcdClusterMember) => m.process.exitCode() === undefined;

export async function startOwnEtcdCluster(name: string): Promise<OwnEtcdCluster> {
  const workDir = requireTestEnv('workDir');
  const suffix = randomBytes(3).toString('hex');
  const cluster = await startEtcdCluster({ dataDir: join(workDir, `${name}-${suffix}`), logDir: join(workDir, 'logs', name), name: `${name}-${suffix}` });
  const rootPassword = randomBytes(16).toString('hex');
  try {
    await enableEtcdAuth(cluster.endpoints, rootPassword);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  // The status call needs no credentials; one short-lived client per member, so that the answer is that member's.
  const status = async (member: EtcdClusterMember) => {
    const c = new Etcd3({ hosts: member.endpoint, defaultCallOptions: { deadline: Date.now() + 2000 } });
    try {
      const s = await c.maintenance.status();
      return { id: BigInt(s.header.member_id).toString(16), leader: BigInt(s.leader).toString(16), raftIndex: Number(s.raftIndex), version: s.version };
    } finally {
      c.close();
    }
  };
  const memberIds = new Map<EtcdClusterMember, string>();
  for (const m of cluster.members) memberIds.set(m, (await status(m)).id);
  return {
    cluster,
    rootPassword,
    root: () => new Etcd3({ hosts: cluster.endpoints, auth: { username: 'root', password: rootPassword } }),
    memberIds,
    async leader(asked = cluster.members) {
      const answers = await Promise.all(asked.filter(running).map((m) => status(m).catch(() => undefined)));
      const leaders = new Set(answers.map((a) => a?.leader ?? '0'));
      if (leaders.size !== 1 || leaders.has('0')) return undefined;
      const [id] = leaders;
      return [...memberIds].find(([m, mid]) => mid === id && running(m))?.[0];
    },
    async status(member) {
      const s = await status(member);
      return { leader: s.leader, raftIndex: s.raftIndex };
    },
    async version() {
      return (await status(cluster.members.find(running)!)).version;
    },
  };
}
