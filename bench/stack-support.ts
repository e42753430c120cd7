// The stack `npm run bench` starts once, exactly as the test runner does (test/support/servers.ts): Temporal dev server,
// etcd, a tenant etcd with authentication on, moto and the Kubernetes control plane, plus one bundle of the
// product's workflows. Also what the report says about the machine and the versions measured.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { arch, availableParallelism, cpus, loadavg, release, totalmem, type } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot, runInstaller } from '../scripts/lib/process';
import { testServersEnv } from '../test/support/env';
import { startTestServers } from '../test/support/servers';

/** The running servers, their addresses as benchmarks see them, and how to stop them. */
export interface BenchStack {
  temporalAddress: string;
  etcdEndpoint: string;
  motoEndpoint: string;
  kubeconfig: string;
  /** The test-support environment (test/support/env.ts names), so benchmarks can reuse the test helpers. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** Starts every server (test/support/servers.ts, as the test runner does); on a failure, stops what had started. */
export async function startBenchStack(workDir: string): Promise<BenchStack> {
  const { servers, stop } = await startTestServers({ workDir });
  return {
    temporalAddress: servers.temporalAddress,
    etcdEndpoint: servers.etcdEndpoint,
    motoEndpoint: servers.motoEndpoint,
    kubeconfig: servers.kubeconfig,
    env: testServersEnv(servers),
    stop,
  };
}

/** The machine a report was measured on. */
export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryMB: number;
  os: string;
  node: string;
  /** 1-minute load average when the run started and ended: other work on the machine skews every figure. */
  loadAverageAtStart: number;
  loadAverageAtEnd?: number;
}

export function machineInfo(): MachineInfo {
  return {
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memoryMB: Math.round(totalmem() / 2 ** 20),
    os: `${type()} ${release()} ${arch()}`,
    node: process.version,
    loadAverageAtStart: Math.round(loadavg()[0]! * 100) / 100,
  };
}

/** Versions of what was measured. */
export interface Versions {
  brokerflow: string;
  temporalCli: string;
  etcd: string;
  kubernetes: string;
  moto: string;
  node: string;
  packages: Record<string, string>;
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 }).trim().split('\n')[0]!.trim();
  } catch (err) {
    return `unknown (${(err as Error).message.split('\n')[0]})`;
  }
}

const PACKAGES = ['@temporalio/client', '@temporalio/worker', 'etcd3', 'fastify', '@kubernetes/client-node', '@aws-sdk/client-s3', 'tsx'];

export function collectVersions(): Versions {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  const commit = firstLine('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD']);
  const dirty = firstLine('git', ['-C', repoRoot, 'status', '--porcelain', '--untracked-files=no']) !== '';
  const moto = runInstaller('moto');
  return {
    brokerflow: `${pkg.version} (${commit}${dirty ? ', with uncommitted changes' : ''})`,
    temporalCli: firstLine(runInstaller('temporal'), ['--version']),
    etcd: firstLine(runInstaller('etcd'), ['--version']),
    kubernetes: firstLine(join(runInstaller('kube'), 'kube-apiserver'), ['--version']),
    moto: `moto ${firstLine(join(dirname(moto), 'python'), ['-c', 'import moto; print(moto.__version__)'])}`,
    node: process.version,
    packages: Object.fromEntries(
      PACKAGES.map((name) => {
        try {
          return [name, (JSON.parse(readFileSync(join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version];
        } catch {
          return [name, 'not installed'];
        }
      }),
    ),
  };
}
