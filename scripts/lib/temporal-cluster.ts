// Temporal as users run it: the server built from Go modules (scripts/install/temporal-server.sh) on a private
// PostgreSQL (persistence and SQL visibility, plugin postgres12), with frontend, history, matching and worker as
// SEPARATE processes on dynamic loopback ports. The same interface as the dev server helper (scripts/lib/temporal.ts:
// address, namespace, restart, stop) plus what a multi-service cluster adds: stop, kill or restart one service.
//
// Steps: find PostgreSQL's programs (scripts/install/postgres.sh), initdb into <dataDir>/postgres (password auth,
// loopback TCP only, no Unix socket), start it, create and set up the `temporal` and `temporal_visibility` databases
// with temporal-sql-tool from the schema files in the server module, write a server config and dynamic config,
// start the four services, then register the namespaces and brokerflow's search attributes. A data folder that
// already holds a cluster is started again as it is (schemas updated to the server's version, nothing recreated).
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { msToTs } from '@temporalio/common/lib/time';
import { searchAttributeDefinitions } from '../../workflows/searchAttributes';
import { assertPortFree, freePort, logTail, repoRoot, startProcess, type ManagedProcess } from './process';

export type TemporalService = 'frontend' | 'history' | 'matching' | 'worker';
/** Start order: history and matching before the frontend that routes to them, the worker service (a client of the
 * frontend) last. */
export const temporalServices: readonly TemporalService[] = ['history', 'matching', 'frontend', 'worker'];

/** A running multi-service Temporal started by {@link startTemporalCluster}. */
export interface TemporalCluster {
  /** The frontend's gRPC address (what workers and clients connect to). */
  address: string;
  /** The first namespace (what the dev server helper calls its namespace). */
  namespace: string;
  namespaces: string[];
  /** No Web UI in this shape (the UI server is a separate product). */
  uiUrl: undefined;
  /** The server version that runs (e.g. v1.30.8). */
  version: string;
  /** How long the one-time build from Go modules took (s) and with which Go. */
  build: { seconds: number; go: string };
  postgres: { port: number; process: ManagedProcess; dataDir: string };
  /** The process of each service (replaced when a service is restarted). */
  services: Record<TemporalService, ManagedProcess>;
  /** The server config file the services run with. */
  configFile: string;
  /** How long start-up took, in ms: PostgreSQL ready, schemas set up, services ready, namespaces usable, total. */
  startup: { postgresMs: number; schemaMs: number; servicesMs: number; namespacesMs: number; totalMs: number };
  /** Stops one service (SIGTERM, or SIGKILL with `kill`). */
  stopService(name: TemporalService, opts?: { kill?: boolean }): Promise<void>;
  /** Starts a stopped service again on the same ports; resolves once it serves. */
  startService(name: TemporalService): Promise<void>;
  /** Stops (or kills) one service and starts it again; resolves once it serves. Returns how long it was down (ms). */
  restartService(name: TemporalService, opts?: { kill?: boolean; downMs?: number }): Promise<number>;
  /** Restarts every service (PostgreSQL keeps running), as the dev server helper's restart() does. */
  restart(): Promise<void>;
  /** Stops the services, then PostgreSQL. */
  stop(): Promise<void>;
}

export interface TemporalClusterOptions {
  dataDir: string;
  logDir: string;
  /** The frontend's gRPC port (dynamic unless given). */
  port?: number;
  /** Namespaces to register, with brokerflow's search attributes on each (default: ['default']). */
  namespaces?: string[];
  /** Shards of the history service (fixed for the life of the database). */
  numHistoryShards?: number;
  /** The server's log level (info lets readiness see the worker service start). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Delete PostgreSQL's data at stop (test runs; its folder may live outside dataDir, see pgUser). */
  ephemeral?: boolean;
}

/** Runs one of scripts/install/*.sh and returns its stdout lines (progress on stderr is passed on). */
function installerLines(name: 'temporal-server' | 'postgres'): string[] {
  const script = join(repoRoot, 'scripts', 'install', `${name}.sh`);
  const res = spawnSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  if (res.stderr) process.stderr.write(res.stderr);
  if (res.status !== 0) {
    const said = (res.stderr ?? '').trim().split('\n').slice(-5).join('\n') || res.error?.message || `exit code ${res.status}`;
    throw new Error(`installing ${name} failed (scripts/install/${name}.sh): ${said}`);
  }
  const lines = (res.stdout ?? '').trim().split('\n').filter(Boolean);
  if (lines.length === 0) throw new Error(`scripts/install/${name}.sh printed nothing`);
  return lines;
}

/** The server binaries and schema folder, building the server on first use (minutes, once per version). */
export function temporalServerInstall(): { bin: string; sqlTool: string; schemaDir: string; version: string; build: { seconds: number; go: string } } {
  const lines = installerLines('temporal-server');
  const kv = Object.fromEntries(lines.filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  const dir = lines[lines.length - 1]!;
  const complete = readFileSync(join(dir, '.complete'), 'utf8');
  const version = /^version=(.*)$/m.exec(complete)?.[1] ?? 'unknown';
  if (!kv.bin || !kv.sql_tool || !kv.schema) throw new Error(`scripts/install/temporal-server.sh printed no bin/sql_tool/schema: ${lines.join(' ')}`);
  const build = { seconds: Number(/^build_seconds=(.*)$/m.exec(complete)?.[1] ?? NaN), go: /^go=(.*)$/m.exec(complete)?.[1] ?? 'unknown' };
  return { bin: kv.bin, sqlTool: kv.sql_tool, schemaDir: kv.schema, version, build };
}

/**
 * PostgreSQL refuses to run as root. As root, its programs run as the `postgres` system user (setpriv, no shell),
 * and its data folder must be reachable by that user: a folder under a private (0700) parent is not, so then the
 * data lives in a fresh folder of its own under the system temp dir instead.
 */
interface PgUser {
  wrap(command: string, args: string[]): { command: string; args: string[] };
  own(path: string): void;
  canReach(path: string): boolean;
}

function pgUser(): PgUser {
  if (process.getuid?.() !== 0) {
    return { wrap: (command, args) => ({ command, args }), own: () => undefined, canReach: () => true };
  }
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  const u = id('-u');
  const g = id('-g');
  if (u.status !== 0 || g.status !== 0) {
    throw new Error('running as root, and there is no `postgres` user to run PostgreSQL as (install Debian\'s postgresql, which creates it)');
  }
  const uid = Number(u.stdout.trim());
  const gid = Number(g.stdout.trim());
  const asUser = ['--reuid', String(uid), '--regid', String(gid), '--clear-groups', '--'];
  return {
    wrap: (command, args) => ({ command: 'setpriv', args: [...asUser, command, ...args] }),
    own: (path) => chownSync(path, uid, gid),
    canReach: (path) => spawnSync('setpriv', [...asUser, 'test', '-w', path]).status === 0,
  };
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

/** gRPC health check of one service name on a port (grpc.health.v1, hand-encoded: one string field, one enum). */
async function grpcServing(address: string, service: string): Promise<boolean> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  try {
    return await new Promise<boolean>((resolve) => {
      client.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        (name: string) => {
          const b = Buffer.from(name, 'utf8');
          return Buffer.concat([Buffer.from([0x0a, b.length]), b]);
        },
        (b: Buffer) => (b.length >= 2 && b[0] === 0x08 ? b[1]! : 0),
        service,
        new grpc.Metadata(),
        { deadline: Date.now() + 2000 },
        (err: grpc.ServiceError | null, status?: number) => resolve(!err && status === 1),
      );
    });
  } finally {
    client.close();
  }
}

const healthName: Record<Exclude<TemporalService, 'worker'>, string> = {
  frontend: 'temporal.api.workflowservice.v1.WorkflowService',
  history: 'temporal.api.workflowservice.v1.HistoryService',
  matching: 'temporal.api.workflowservice.v1.MatchingService',
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A free loopback port below 32768. The services record their ports in the `cluster_membership` table, whose
 * PostgreSQL schema stores them as SMALLINT: a port from the kernel's ephemeral range (32768 and up on Linux) makes
 * the membership heartbeat fail and the service exit. Tries random ports in 10000-32767 until one binds.
 */
async function freeServicePort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * (32_768 - 10_000));
    if (taken.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) {
      taken.add(port);
      return port;
    }
  }
  throw new Error('no free loopback port found in 10000-32767 for the Temporal services');
}

/** Calls `fn` until it returns true, for at most `ms`; the error names `what` and the last failure. */
async function until(what: string, ms: number, fn: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  let last = '';
  for (;;) {
    try {
      if (await fn()) return;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}`);
    await sleep(250);
  }
}

function yamlString(s: string): string {
  return JSON.stringify(s);
}

export async function startTemporalCluster(opts: TemporalClusterOptions): Promise<TemporalCluster> {
  const t0 = Date.now();
  const server = temporalServerInstall();
  const pgBin = installerLines('postgres').pop()!;
  const namespaces = opts.namespaces?.length ? opts.namespaces : ['default'];
  const logLevel = opts.logLevel ?? 'info';
  mkdirSync(opts.dataDir, { recursive: true });
  mkdirSync(opts.logDir, { recursive: true });

  // ---- PostgreSQL ----
  const user = pgUser();
  const secret = join(opts.dataDir, 'postgres-password');
  if (!existsSync(secret)) writeFileSync(secret, randomBytes(18).toString('base64url'), { mode: 0o600 });
  const password = readFileSync(secret, 'utf8').trim();
  // Where PostgreSQL's files live: <dataDir>/postgres, or (as root, when the postgres user cannot reach it) a
  // folder of its own under the temp dir, recorded so that the next start finds it again.
  const pointer = join(opts.dataDir, 'postgres-location');
  let pgRoot = existsSync(pointer) ? readFileSync(pointer, 'utf8').trim() : join(opts.dataDir, 'postgres');
  if (!existsSync(pgRoot)) {
    mkdirSync(pgRoot, { recursive: true, mode: 0o700 });
    user.own(pgRoot);
    if (!user.canReach(pgRoot)) {
      pgRoot = mkdtempSync(join(tmpdir(), 'brokerflow-postgres-'));
      chmodSync(pgRoot, 0o700);
      user.own(pgRoot);
      writeFileSync(pointer, pgRoot);
    }
  }
  const pgData = join(pgRoot, 'data');
  const fresh = !existsSync(join(pgData, 'PG_VERSION'));
  if (fresh) {
    const pwfile = join(pgRoot, 'initdb-password');
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    user.own(pwfile);
    const init = user.wrap(join(pgBin, 'initdb'), [
      '-D', pgData, '-U', 'temporal', `--pwfile=${pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-instructions', '--no-sync',
    ]);
    const res = await run(init.command, init.args);
    spawnSync('rm', ['-f', pwfile]);
    if (res.code !== 0) throw new Error(`initdb failed:\n${res.out.slice(-2000)}`);
  }
  const pgPort = await freePort();
  const pgCmd = user.wrap(join(pgBin, 'postgres'), [
    '-D', pgData,
    '-h', '127.0.0.1',
    '-p', String(pgPort),
    '-k', '', // no Unix socket: loopback TCP with a password only
    '-c', 'max_connections=400',
    '-c', 'log_min_messages=warning',
  ]);
  const pgReady = async () => (await run(join(pgBin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(pgPort), '-U', 'temporal', '-d', 'postgres'])).code === 0;
  const pgProcess = await startProcess({
    name: 'temporal-postgres',
    command: pgCmd.command,
    args: pgCmd.args,
    logDir: opts.logDir,
    ready: pgReady,
    readyTimeoutMs: 60_000,
    hint: `PostgreSQL's programs are in ${pgBin}; its data in ${pgData}.`,
  });
  const postgresMs = Date.now() - t0;

  // ---- schemas, with the SQL tool and the schema files of the server module ----
  const tSchema = Date.now();
  const sql = async (db: string, ...args: string[]) => {
    const res = await run(
      server.sqlTool,
      ['--plugin', 'postgres12', '--ep', '127.0.0.1', '-p', String(pgPort), '-u', 'temporal', '--db', db, ...args],
      { ...process.env, SQL_PASSWORD: password },
    );
    if (res.code !== 0) throw new Error(`temporal-sql-tool --db ${db} ${args.join(' ')} failed:\n${res.out.slice(-2000)}`);
  };
  const schemas = [
    { db: 'temporal', dir: join(server.schemaDir, 'postgresql', 'v12', 'temporal', 'versioned') },
    { db: 'temporal_visibility', dir: join(server.schemaDir, 'postgresql', 'v12', 'visibility', 'versioned') },
  ];
  try {
    await Promise.all(
      schemas.map(async ({ db, dir }) => {
        const marker = join(opts.dataDir, `schema-${db}.done`);
        if (fresh || !existsSync(marker)) {
          await sql(db, 'create-database');
          await sql(db, 'setup-schema', '-v', '0.0');
          writeFileSync(marker, new Date().toISOString());
        }
        // Idempotent: applies the versions newer than the database's (a server upgrade), else nothing.
        await sql(db, 'update-schema', '-d', dir);
      }),
    );
  } catch (err) {
    await pgProcess.stop();
    throw err;
  }
  const schemaMs = Date.now() - tSchema;

  // ---- server config ----
  const taken = new Set<number>();
  const frontendPort = opts.port ?? (await freeServicePort(taken));
  if (opts.port) await assertPortFree(frontendPort, 'the Temporal frontend');
  const next = () => freeServicePort(taken);
  const ports: Record<TemporalService, { grpc: number; membership: number; http?: number }> = {
    frontend: { grpc: frontendPort, membership: await next(), http: await next() },
    history: { grpc: await next(), membership: await next() },
    matching: { grpc: await next(), membership: await next() },
    worker: { grpc: await next(), membership: await next() },
  };
  const address = `127.0.0.1:${frontendPort}`;
  const confDir = join(opts.dataDir, 'config');
  mkdirSync(confDir, { recursive: true });
  const dynamicConfigFile = join(confDir, 'dynamicconfig.yaml');
  // The same dynamic config the dev server gets (scripts/lib/temporal.ts), for Updates and Update-with-Start.
  writeFileSync(
    dynamicConfigFile,
    [
      'frontend.enableUpdateWorkflowExecution:',
      '  - value: true',
      'frontend.enableExecuteMultiOperation:',
      '  - value: true',
      'frontend.enableUpdateWorkflowExecutionAsyncAccepted:',
      '  - value: true',
      'system.forceSearchAttributesCacheRefreshOnRead:',
      '  - value: true',
      '',
    ].join('\n'),
  );
  const store = (db: string, maxConns: number) => [
    '      sql:',
    '        pluginName: "postgres12"',
    `        databaseName: ${yamlString(db)}`,
    `        connectAddr: "127.0.0.1:${pgPort}"`,
    '        connectProtocol: "tcp"',
    '        user: "temporal"',
    `        password: ${yamlString(password)}`,
    `        maxConns: ${maxConns}`,
    `        maxIdleConns: ${maxConns}`,
    '        maxConnLifetime: "1h"',
  ];
  const serviceBlock = (name: TemporalService) => [
    `  ${name}:`,
    '    rpc:',
    `      grpcPort: ${ports[name].grpc}`,
    `      membershipPort: ${ports[name].membership}`,
    '      bindOnIP: "127.0.0.1"',
    ...(ports[name].http ? [`      httpPort: ${ports[name].http}`] : []),
  ];
  const configFile = join(confDir, 'temporal.yaml');
  writeFileSync(
    configFile,
    [
      'log:',
      '  stdout: true',
      `  level: ${logLevel}`,
      'persistence:',
      '  defaultStore: postgres-default',
      '  visibilityStore: postgres-visibility',
      `  numHistoryShards: ${opts.numHistoryShards ?? 4}`,
      '  datastores:',
      '    postgres-default:',
      ...store('temporal', 20),
      '    postgres-visibility:',
      ...store('temporal_visibility', 4),
      'global:',
      '  membership:',
      '    maxJoinDuration: 30s',
      '    broadcastAddress: "127.0.0.1"',
      'services:',
      ...temporalServices.flatMap(serviceBlock),
      'clusterMetadata:',
      '  enableGlobalNamespace: false',
      '  failoverVersionIncrement: 10',
      '  masterClusterName: "active"',
      '  currentClusterName: "active"',
      '  clusterInformation:',
      '    active:',
      '      enabled: true',
      '      initialFailoverVersion: 1',
      '      rpcName: "frontend"',
      `      rpcAddress: "${address}"`,
      `      httpAddress: "127.0.0.1:${ports.frontend.http}"`,
      'dcRedirectionPolicy:',
      '  policy: "noop"',
      'publicClient:',
      `  hostPort: "${address}"`,
      'dynamicConfigClient:',
      `  filepath: ${yamlString(dynamicConfigFile)}`,
      '  pollInterval: "10s"',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );

  // ---- services ----
  const logFile = (name: TemporalService) => join(opts.logDir, `temporal-${name}.log`);
  const logSize = (name: TemporalService) => {
    try {
      return statSync(logFile(name)).size;
    } catch {
      return 0;
    }
  };
  const startService = async (name: TemporalService): Promise<ManagedProcess> => {
    const from = logSize(name);
    const ready =
      name === 'worker'
        ? // The worker service has no gRPC health service; it logs when it has started (log level info or lower).
          async () => {
            const text = readFileSync(logFile(name)).subarray(from).toString('utf8');
            return text.includes('"worker service started"') || text.includes('worker service started');
          }
        : () => grpcServing(`127.0.0.1:${ports[name].grpc}`, healthName[name]);
    return startProcess({
      name: `temporal-${name}`,
      command: server.bin,
      args: ['--config-file', configFile, '--allow-no-auth', 'start', `--service=${name}`],
      logDir: opts.logDir,
      ready,
      readyTimeoutMs: 120_000,
      hint: `The server is ${server.bin} (${server.version}), its config ${configFile}.`,
    });
  };

  const tServices = Date.now();
  const services = {} as Record<TemporalService, ManagedProcess>;
  try {
    // One at a time: each service writes the cluster metadata record at start, and two services starting together
    // on a fresh database both try to insert it (one exits on the duplicate key). History first: matching and
    // frontend route to it through membership.
    for (const name of temporalServices) services[name] = await startService(name);
  } catch (err) {
    await Promise.allSettled(Object.values(services).map((p) => p.stop()));
    await pgProcess.stop();
    throw err;
  }
  const servicesMs = Date.now() - tServices;

  // ---- namespaces and search attributes ----
  const tNs = Date.now();
  try {
    await registerNamespaces(address, namespaces);
  } catch (err) {
    await Promise.allSettled(Object.values(services).map((p) => p.stop()));
    await pgProcess.stop();
    throw new Error(`${(err as Error).message}\n--- last lines of the frontend log ---\n${logTail(logFile('frontend'))}`);
  }
  const namespacesMs = Date.now() - tNs;

  const stopService = async (name: TemporalService, o: { kill?: boolean } = {}) => {
    if (o.kill) await services[name].kill();
    else await services[name].stop(30_000);
  };
  const cluster: TemporalCluster = {
    address,
    namespace: namespaces[0]!,
    namespaces,
    uiUrl: undefined,
    version: server.version,
    build: server.build,
    postgres: { port: pgPort, process: pgProcess, dataDir: pgData },
    services,
    configFile,
    startup: { postgresMs, schemaMs, servicesMs, namespacesMs, totalMs: Date.now() - t0 },
    stopService,
    async startService(name) {
      services[name] = await startService(name);
    },
    async restartService(name, o = {}) {
      const down = Date.now();
      await stopService(name, o);
      if (o.downMs) await sleep(o.downMs);
      services[name] = await startService(name);
      return Date.now() - down;
    },
    async restart() {
      await Promise.allSettled(temporalServices.map((n) => services[n].stop(30_000)));
      for (const n of temporalServices) services[n] = await startService(n);
    },
    async stop() {
      await Promise.allSettled(temporalServices.map((n) => services[n]?.stop(30_000)));
      await pgProcess.stop(30_000);
      if (opts.ephemeral) rmSync(pgRoot, { recursive: true, force: true });
    },
  };
  return cluster;
}

/**
 * Registers each namespace (1-day retention; an existing one is kept) and brokerflow's search attributes on it,
 * then waits until a workflow can be started in it: a new namespace reaches the history service's namespace cache
 * only after its refresh interval.
 */
async function registerNamespaces(address: string, namespaces: string[]): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: 10_000 });
  try {
    for (const namespace of namespaces) {
      await until(`namespace ${namespace} to be registered`, 60_000, async () => {
        try {
          await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
        } catch (err) {
          if ((err as { code?: number }).code !== grpc.status.ALREADY_EXISTS) throw err;
        }
        return true;
      });
      await until(`search attributes on namespace ${namespace}`, 60_000, async () => {
        const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
        const missing = searchAttributeDefinitions.filter((d) => !(d.name in (customAttributes ?? {})));
        if (missing.length === 0) return true;
        await connection.operatorService.addSearchAttributes({
          namespace,
          searchAttributes: Object.fromEntries(missing.map((d) => [d.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
        });
        return false;
      });
      const client = new Client({ connection, namespace });
      await until(`namespace ${namespace} to accept workflow starts`, 90_000, async () => {
        const handle = await client.workflow.start('brokerflow-cluster-probe', {
          taskQueue: 'brokerflow-cluster-probe',
          workflowId: `brokerflow-cluster-probe-${randomBytes(4).toString('hex')}`,
          workflowExecutionTimeout: '1 minute',
        });
        await handle.terminate('start-up probe');
        return true;
      });
    }
  } finally {
    await connection.close();
  }
}
