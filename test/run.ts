// The test runner: starts ONE Temporal dev server, ONE etcd, one moto server and the Kubernetes control
// plane (kube-apiserver + kube-controller-manager on that etcd) and a tenant etcd with auth on, for the
// whole run; hands their addresses to every test file through the environment, runs the files with node's
// test runner, and stops everything at the end, even when a test fails or the run is interrupted. The work directory
// (servers' data and logs) is removed after a run that passed, kept after one that did not (BROKERFLOW_KEEP_TEST_DIR=1:
// always kept).
//
//   node --import tsx test/run.ts                     all test files
//   node --import tsx test/run.ts test/unit           files under a folder (or given files)
//   node --import tsx test/run.ts --temporal=cluster test/cluster
//                                                     Temporal as users run it instead of the dev server: the server
//                                                     built from Go modules, its four services as separate processes
//                                                     on PostgreSQL (scripts/lib/temporal-cluster.ts); also
//                                                     BROKERFLOW_TEST_TEMPORAL=cluster
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { repoRoot } from '../scripts/lib/process';
import { testServersEnv } from './support/env';
import { startTestServers, type StartedServers } from './support/servers';

/**
 * Folders a plain run leaves out; they run when named (`npm run test:only -- test/cluster`): `cluster` is
 * `npm run test:cluster` (Temporal as a multi-service cluster, built from source). Benchmarks are no test files:
 * they live in bench/ and run with `npm run bench`.
 */
const NOT_BY_DEFAULT = new Set(['cluster']);

/** Which Temporal the run starts: the dev server (default) or the multi-service cluster on PostgreSQL. */
function temporalShape(args: string[]): 'dev' | 'cluster' {
  const flag = args.find((a) => a.startsWith('--temporal='))?.slice('--temporal='.length);
  const shape = flag ?? process.env.BROKERFLOW_TEST_TEMPORAL ?? 'dev';
  if (shape !== 'dev' && shape !== 'cluster') throw new Error(`--temporal must be dev or cluster, got '${shape}'`);
  return shape;
}

function findTestFiles(path: string, named = true): string[] {
  const st = statSync(path);
  if (st.isFile()) return path.endsWith('.test.ts') ? [path] : [];
  return readdirSync(path)
    .filter((n) => n !== 'node_modules' && (named || !NOT_BY_DEFAULT.has(n)))
    .flatMap((n) => findTestFiles(join(path, n), false))
    .sort();
}

async function main(): Promise<number> {
  const shape = temporalShape(process.argv.slice(2));
  // `--test-name-pattern=<regex>` is handed to node's runner: the named files run only the tests it matches.
  const namePatterns = process.argv.slice(2).filter((a) => a.startsWith('--test-name-pattern='));
  const targets = process.argv.slice(2).filter((a) => !a.startsWith('--temporal=') && !a.startsWith('--test-name-pattern='));
  const files = (targets.length ? targets : ['test']).flatMap((t) => findTestFiles(resolve(repoRoot, t), targets.length > 0));
  if (files.length === 0) {
    console.error(`no *.test.ts files under ${targets.join(' ') || 'test'}`);
    return 1;
  }
  const workDir = mkdtempSync(join(tmpdir(), 'brokerflow-test-'));
  const logDir = join(workDir, 'logs');
  console.log(`# test run work dir: ${workDir} (server logs in ${logDir})`);
  const t0 = Date.now();
  let started: StartedServers | undefined;
  let passed = false;
  try {
    started = await startTestServers({
      workDir,
      temporal: shape,
      onCluster: (c) => {
        const st = c.startup;
        console.log(
          `# Temporal ${c.version} cluster (frontend, history, matching, worker on PostgreSQL) ready in ${st.totalMs} ms: ` +
            `PostgreSQL ${st.postgresMs} ms, schemas ${st.schemaMs} ms, services ${st.servicesMs} ms, namespaces ${st.namespacesMs} ms`,
        );
      },
    });
    const { servers } = started;
    console.log(
      `# servers ready in ${Date.now() - t0} ms: temporal ${servers.temporalAddress} (${servers.temporalUi ? `UI ${servers.temporalUi}` : 'cluster, no UI'}), etcd ${servers.etcdEndpoint}, moto ${servers.motoEndpoint}, kube-apiserver ${started.kubeServer}`,
    );
    const env: NodeJS.ProcessEnv = { ...process.env, BROKERFLOW_TEST_TEMPORAL: shape, ...testServersEnv(servers) };
    const args = [
      '--import',
      'tsx',
      '--test',
      '--test-reporter=spec',
      `--test-concurrency=${process.env.BROKERFLOW_TEST_CONCURRENCY ?? '2'}`,
      // A cap on one test file (each runs in a process of its own, and the cap applies to the file), far above the
      // slowest (the model tier, about 6 minutes alone on 2 cores, 12 on a machine loaded to 15): a file that hangs (a
      // time-skipping server that stopped skipping once waited out an hour) fails by name instead of using up CI.
      '--test-timeout=1200000',
      ...namePatterns,
      ...files.map((f) => relative(repoRoot, f)),
    ];
    const child = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: 'inherit' });
    const code: number = await new Promise((res) => child.on('exit', (c, s) => res(c ?? (s ? 1 : 0))));
    passed = code === 0;
    return code;
  } finally {
    await started?.stop();
    // The servers' data and logs (hundreds of MB after a full run) are kept only when they can explain a failure.
    if (passed && !process.env.BROKERFLOW_KEEP_TEST_DIR) rmSync(workDir, { recursive: true, force: true });
    else console.log(`# test run work dir kept: ${workDir} (server logs in ${logDir})`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`\ntest run aborted: ${err.message}`);
    process.exit(1);
  },
);
