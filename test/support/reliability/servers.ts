// Servers a reliability scenario owns: it stops, kills or restarts them, so they are never the shared ones of
// the test run. Each gets its own data folder under the run's work directory.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startTemporal, type TemporalDevServer } from '../../../scripts/lib/temporal';
import { enableEtcdAuth, startEtcd, type EtcdServer } from '../../../scripts/lib/etcd';
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
