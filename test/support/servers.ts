// The servers a test run (test/run.ts) and a benchmark run (bench/) start once and share: Temporal (the dev server,
// or the multi-service cluster on PostgreSQL), etcd, moto, the tenant etcd with authentication on, the Kubernetes
// control plane on that etcd, and one bundle of the workflows. A start that fails stops whatever had started.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTemporal } from '../../scripts/lib/temporal';
import { startTemporalCluster } from '../../scripts/lib/temporal-cluster';
import { enableEtcdAuth, startEtcd } from '../../scripts/lib/etcd';
import { startMoto } from '../../scripts/lib/moto';
import { startKubeControlPlane } from '../../scripts/lib/kube';
import { bundleWorkflows } from '../../worker/worker';
import type { TestServers } from './env';

/** The started servers: where they are (test/support/env.ts names them for test files), and how to stop them. */
export interface StartedServers {
  servers: TestServers;
  /** The kube-apiserver's address, for the start-up line. */
  kubeServer: string;
  stop(): Promise<void>;
}

export interface StartServersOptions {
  workDir: string;
  /** `dev` (default): the Temporal dev server; `cluster`: its services as separate processes on PostgreSQL. */
  temporal?: 'dev' | 'cluster';
  /** Told once the cluster is up, with its start-up figures. */
  onCluster?(c: Awaited<ReturnType<typeof startTemporalCluster>>): void;
}

/** Starts every server; on a failure, stops what had started and rethrows. */
export async function startTestServers(opts: StartServersOptions): Promise<StartedServers> {
  const { workDir } = opts;
  const logDir = join(workDir, 'logs');
  const stoppers: Array<() => Promise<void>> = [];
  const stop = async () => {
    await Promise.allSettled(stoppers.map((s) => s()));
  };
  try {
    const bundlePath = join(workDir, 'workflow-bundle.js');
    const tenantRootPassword = randomBytes(16).toString('hex');
    const started = await Promise.allSettled([
      opts.temporal === 'cluster'
        ? startTemporalCluster({ dataDir: join(workDir, 'temporal-cluster'), logDir, ephemeral: true }).then((c) => {
            opts.onCluster?.(c);
            return c;
          })
        : startTemporal({ dataDir: join(workDir, 'temporal'), logDir }),
      startEtcd({ dataDir: join(workDir, 'etcd'), logDir }),
      startMoto({ logDir }),
      // The tenant etcd: what etcd resource drivers manage, with authentication on as in production.
      startEtcd({ dataDir: join(workDir, 'etcd-tenants'), logDir, name: 'etcd-tenants' }).then(async (e) => {
        try {
          await enableEtcdAuth(e.endpoint, tenantRootPassword);
        } catch (err) {
          await e.stop();
          throw err;
        }
        return e;
      }),
    ]);
    for (const s of started) if (s.status === 'fulfilled') stoppers.push(() => s.value.stop());
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const [temporal, etcd, moto, tenantEtcd] = started.map((s) => (s as PromiseFulfilledResult<unknown>).value) as [
      { address: string; uiUrl?: string | undefined },
      Awaited<ReturnType<typeof startEtcd>>,
      Awaited<ReturnType<typeof startMoto>>,
      Awaited<ReturnType<typeof startEtcd>>,
    ];
    // The Kubernetes control plane keeps its objects in the main etcd (its own prefix); bundling runs meanwhile.
    const [kubeStarted, bundled] = await Promise.allSettled([
      startKubeControlPlane({ etcdEndpoint: etcd.endpoint, workDir: join(workDir, 'kube'), logDir }),
      bundleWorkflows().then((b) => writeFileSync(bundlePath, b.code)),
    ]);
    if (kubeStarted.status === 'fulfilled') stoppers.unshift(() => kubeStarted.value.stop());
    if (kubeStarted.status === 'rejected') throw kubeStarted.reason;
    if (bundled.status === 'rejected') throw bundled.reason;
    const kube = kubeStarted.value;
    return {
      servers: {
        temporalAddress: temporal.address,
        temporalUi: temporal.uiUrl,
        etcdEndpoint: etcd.endpoint,
        motoEndpoint: moto.endpoint,
        tenantEtcdEndpoint: tenantEtcd.endpoint,
        tenantEtcdRootPassword: tenantRootPassword,
        kubeconfig: kube.kubeconfigPath,
        workDir,
        workflowBundle: bundlePath,
      },
      kubeServer: kube.server,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
