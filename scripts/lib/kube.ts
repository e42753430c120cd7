// A real Kubernetes control plane for tests and the dev stack: kube-apiserver plus kube-controller-manager
// (garbage collector and namespace controllers) on loopback, storing into an etcd the caller provides under
// its own key prefix. Binaries come from scripts/install/kube.sh (built once from Go modules, cached).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, httpOk, runInstaller, startProcess, type ManagedProcess } from './process';

/** A running control plane started by {@link startKubeControlPlane}. */
export interface KubeControlPlane {
  /** kubeconfig (CA-verified TLS, bearer token of a `system:masters` user) for clients and tests. */
  kubeconfigPath: string;
  /** `https://127.0.0.1:<port>` */
  server: string;
  /** Bearer token of the admin user (`brokerflow-admin`, group `system:masters`). */
  token: string;
  /** PEM file with the CA that signed the serving certificate. */
  caFile: string;
  /** etcd key prefix holding this cluster's objects. */
  etcdPrefix: string;
  /** The kube-apiserver process running now (a new one after {@link KubeControlPlane.startApiserver}). */
  readonly apiserver: ManagedProcess;
  controllerManager: ManagedProcess;
  /**
   * Stops kube-apiserver alone, as when its node or static pod restarts: SIGTERM (graceful; SIGKILL after
   * `graceMs`, default 30 s like a pod's termination grace period) or SIGKILL. The controller manager keeps running
   * and retries until the server is back.
   */
  stopApiserver(signal: 'SIGTERM' | 'SIGKILL', graceMs?: number): Promise<void>;
  /**
   * Starts kube-apiserver again with the same flags: same port, etcd prefix, serving certificate (reused from the
   * cert dir), tokens and signing key. Resolves once `/readyz` answers 200.
   */
  startApiserver(): Promise<void>;
  stop(): Promise<void>;
}

export interface KubeControlPlaneOptions {
  /** etcd client URL(s), comma-separated, e.g. `http://127.0.0.1:2379`. */
  etcdEndpoint: string;
  /** Folder for certificates, keys, kubeconfigs and (unless logDir is given) the process logs. */
  workDir: string;
  /** Folder with kube-apiserver and kube-controller-manager; default: the output of scripts/install/kube.sh. */
  binDir?: string;
  /** Folder for kube-apiserver.log and kube-controller-manager.log; default `<workDir>/logs`. */
  logDir?: string;
  /** etcd key prefix; default `/kube-<random>` so several clusters can share one etcd. */
  etcdPrefix?: string;
  /** Readiness deadline for each process; default 90 s. */
  readyTimeoutMs?: number;
}

/** Builds (first time, long) or finds (cached, fast) the Kubernetes binaries; returns their folder. */
export async function ensureKubeBinaries(): Promise<string> {
  return runInstaller('kube');
}

const SERVICE_CIDR = '10.0.0.0/24';
const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';

function checkBinary(binDir: string, name: string): string {
  const path = join(binDir, name);
  if (!existsSync(path)) {
    throw new Error(`${name} not found in ${binDir}: run scripts/install/kube.sh (or npm test, which runs it) to build it`);
  }
  return path;
}

/** The PEM certificates in a file, in order. */
function pemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}

/** HTTPS GET returning the status code (0 when the request failed). */
function httpsStatus(url: string, opts: { token?: string; ca?: string }): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        method: 'GET',
        headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
        // The controller manager's self-signed health endpoint is probed without verification; the API server
        // is verified against its CA.
        ...(opts.ca ? { ca: opts.ca } : { rejectUnauthorized: false }),
        timeout: 2000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}

function writeKubeconfig(path: string, server: string, caPem: string, user: string, token: string): void {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'brokerflow', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: 'brokerflow', context: { cluster: 'brokerflow', user, namespace: 'default' } }],
    'current-context': 'brokerflow',
  };
  writeFileSync(path, stringify(config), { mode: 0o600 });
}

/**
 * Starts kube-apiserver (RBAC, static token file, self-signed serving certificate, service-account signing key)
 * and kube-controller-manager (garbagecollector, namespace) on free loopback ports against `etcdEndpoint`, and
 * waits until both are ready. On failure everything started is stopped and the error carries the log tail.
 */
export async function startKubeControlPlane(opts: KubeControlPlaneOptions): Promise<KubeControlPlane> {
  const binDir = opts.binDir ?? (await ensureKubeBinaries());
  const apiserverBin = checkBinary(binDir, 'kube-apiserver');
  const kcmBin = checkBinary(binDir, 'kube-controller-manager');
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  const logDir = opts.logDir ?? join(opts.workDir, 'logs');
  const etcdPrefix = opts.etcdPrefix ?? `/kube-${randomBytes(6).toString('hex')}`;

  // Without etcd kube-apiserver only retries until the deadline; say so at once instead.
  const firstEtcd = opts.etcdEndpoint.split(',')[0]!.trim();
  if (firstEtcd.startsWith('http://') && !(await httpOk(`${firstEtcd}/health`))) {
    throw new Error(`etcd at ${firstEtcd} does not answer ${firstEtcd}/health: start etcd first (scripts/lib/etcd.ts)`);
  }

  const dir = opts.workDir;
  const apiCertDir = join(dir, 'apiserver-certs');
  const kcmCertDir = join(dir, 'controller-manager-certs');
  for (const d of [dir, apiCertDir, kcmCertDir, logDir]) mkdirSync(d, { recursive: true });

  // Static tokens: the admin for clients and tests, a separate identity for the controller manager.
  const token = randomBytes(24).toString('hex');
  const kcmToken = randomBytes(24).toString('hex');
  const tokenFile = join(dir, 'tokens.csv');
  writeFileSync(
    tokenFile,
    `${token},brokerflow-admin,brokerflow-admin,"system:masters"\n` +
      `${kcmToken},system:kube-controller-manager,system:kube-controller-manager,"system:masters"\n`,
    { mode: 0o600 },
  );

  // Service-account token signing key pair.
  const saKey = join(dir, 'service-account.key');
  const saPub = join(dir, 'service-account.pub');
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  writeFileSync(saKey, privateKey, { mode: 0o600 });
  writeFileSync(saPub, publicKey);

  const port = await freePort();
  const server = `https://127.0.0.1:${port}`;
  const servingCert = join(apiCertDir, 'apiserver.crt');
  const caFile = join(dir, 'ca.crt');
  const verbosity = process.env.BROKERFLOW_KUBE_VERBOSITY ?? '0';

  const apiserverArgs = [
    `--etcd-servers=${opts.etcdEndpoint}`,
    `--etcd-prefix=${etcdPrefix}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${apiCertDir}`,
    `--token-auth-file=${tokenFile}`,
    '--authorization-mode=RBAC',
    `--service-account-issuer=${SA_ISSUER}`,
    `--service-account-key-file=${saPub}`,
    `--service-account-signing-key-file=${saKey}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    // Loopback is not a valid endpoint address for the "kubernetes" service; nothing here needs it.
    '--endpoint-reconciler-type=none',
    '--profiling=false',
    `--v=${verbosity}`,
  ];

  const started: ManagedProcess[] = [];
  const stopAll = async () => {
    for (const p of [...started].reverse()) await p.stop();
  };

  let caPem: string | undefined;
  const launchApiserver = () =>
    startProcess({
      name: 'kube-apiserver',
      command: apiserverBin,
      args: apiserverArgs,
      logDir,
      readyTimeoutMs,
      hint:
        `Is etcd at ${opts.etcdEndpoint} up, and port ${port} free? ` +
        'Set BROKERFLOW_KUBE_VERBOSITY=2 for a more detailed log.',
      ready: async () => {
        if (!caPem) {
          if (!existsSync(servingCert)) return false;
          // kube-apiserver writes its self-signed leaf certificate followed by the CA that signed it.
          const certs = pemCertificates(readFileSync(servingCert, 'utf8'));
          if (certs.length === 0) return false;
          caPem = certs[certs.length - 1];
        }
        return (await httpsStatus(`${server}/readyz`, { token, ca: caPem })) === 200;
      },
    });

  try {
    let apiserver = await launchApiserver();
    started.push(apiserver);
    writeFileSync(caFile, caPem!);

    const kubeconfigPath = join(dir, 'admin.kubeconfig');
    writeKubeconfig(kubeconfigPath, server, caPem!, 'brokerflow-admin', token);
    const kcmKubeconfig = join(dir, 'controller-manager.kubeconfig');
    writeKubeconfig(kcmKubeconfig, server, caPem!, 'system:kube-controller-manager', kcmToken);

    const kcmPort = await freePort();
    const controllerManager = await startProcess({
      name: 'kube-controller-manager',
      command: kcmBin,
      args: [
        `--kubeconfig=${kcmKubeconfig}`,
        '--controllers=garbagecollector,namespace',
        '--use-service-account-credentials=false',
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${kcmPort}`,
        `--cert-dir=${kcmCertDir}`,
        '--profiling=false',
        `--v=${verbosity}`,
      ],
      logDir,
      readyTimeoutMs,
      hint: `Is port ${kcmPort} free? Set BROKERFLOW_KUBE_VERBOSITY=2 for a more detailed log.`,
      ready: async () => (await httpsStatus(`https://127.0.0.1:${kcmPort}/healthz`, {})) === 200,
    });
    started.push(controllerManager);

    return {
      kubeconfigPath,
      server,
      token,
      caFile,
      etcdPrefix,
      get apiserver() {
        return apiserver;
      },
      controllerManager,
      async stopApiserver(signal, graceMs = 30_000) {
        if (signal === 'SIGKILL') await apiserver.kill();
        else await apiserver.stop(graceMs);
      },
      async startApiserver() {
        if (apiserver.exitCode() === undefined) throw new Error('kube-apiserver is still running: stop it first');
        const next = await launchApiserver();
        started[started.indexOf(apiserver)] = next;
        apiserver = next;
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
