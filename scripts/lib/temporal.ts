// Starts `temporal server start-dev` on loopback with a SQLite file, the Web UI, brokerflow's search
// attributes and the dynamic config that Updates and Update-with-Start need.
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { Connection } from '@temporalio/client';
import { searchAttributeDefinitions } from '../../workflows/searchAttributes';
import { assertPortFree, freePort, httpOk, runInstaller, startProcess, type ManagedProcess } from './process';

/** A running Temporal dev server started by {@link startTemporal}. */
export interface TemporalDevServer {
  address: string;
  namespace: string;
  uiUrl: string;
  process: ManagedProcess;
  /** Starts it again with the same ports and SQLite file (after stop or kill). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface TemporalStartOptions {
  dataDir: string;
  logDir: string;
  port?: number;
  uiPort?: number;
  /** Codec server the Web UI calls to decode payloads. */
  codecEndpoint?: string;
  namespace?: string;
}

async function healthy(address: string): Promise<boolean> {
  let conn: Connection | undefined;
  try {
    conn = await Connection.connect({ address, connectTimeout: 2000 });
    const res = await conn.healthService.check({});
    return res.status === 1; // SERVING
  } catch {
    return false;
  } finally {
    await conn?.close().catch(() => undefined);
  }
}

export async function startTemporal(opts: TemporalStartOptions): Promise<TemporalDevServer> {
  const bin = runInstaller('temporal');
  const port = opts.port ?? (await freePort());
  const uiPort = opts.uiPort ?? (await freePort());
  if (opts.port) await assertPortFree(port, 'the Temporal frontend');
  if (opts.uiPort) await assertPortFree(uiPort, 'the Temporal Web UI');
  const httpPort = await freePort();
  const metricsPort = await freePort();
  const namespace = opts.namespace ?? 'default';
  mkdirSync(opts.dataDir, { recursive: true });
  const args = [
    'server',
    'start-dev',
    '--ip=127.0.0.1',
    `--port=${port}`,
    `--ui-port=${uiPort}`,
    `--http-port=${httpPort}`,
    `--metrics-port=${metricsPort}`,
    `--db-filename=${join(opts.dataDir, 'temporal.sqlite')}`,
    '--log-level=warn',
    '--ui-disable-news-fetch',
    ...(namespace !== 'default' ? [`--namespace=${namespace}`] : []),
    ...(opts.codecEndpoint ? [`--ui-codec-endpoint=${opts.codecEndpoint}`] : []),
    ...searchAttributeDefinitions.map((sa) => `--search-attribute=${sa.name}=${sa.cliType}`),
    '--dynamic-config-value=frontend.enableUpdateWorkflowExecution=true',
    '--dynamic-config-value=frontend.enableExecuteMultiOperation=true',
    '--dynamic-config-value=frontend.enableUpdateWorkflowExecutionAsyncAccepted=true',
    '--dynamic-config-value=system.forceSearchAttributesCacheRefreshOnRead=true',
  ];
  const address = `127.0.0.1:${port}`;
  const uiUrl = `http://127.0.0.1:${uiPort}`;
  const start = () =>
    startProcess({
      name: 'temporal',
      command: bin,
      args,
      logDir: opts.logDir,
      ready: async () => (await healthy(address)) && (await httpOk(uiUrl)),
      readyTimeoutMs: 90_000,
      hint: `The Temporal CLI is ${bin}; check that ports ${port}/${uiPort} are free.`,
    });
  const server: TemporalDevServer = {
    address,
    namespace,
    uiUrl,
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
