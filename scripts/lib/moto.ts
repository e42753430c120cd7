// Starts moto_server, a local AWS API (S3, Cloud Map) on loopback, for tests and benchmarks.
import { freePort, httpOk, runInstaller, startProcess, type ManagedProcess } from './process';

/** A running moto server started by {@link startMoto}. */
export interface MotoServer {
  endpoint: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startMoto(opts: { logDir: string }): Promise<MotoServer> {
  const bin = runInstaller('moto');
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const proc = await startProcess({
    name: 'moto',
    command: bin,
    args: ['-H', '127.0.0.1', '-p', String(port)],
    logDir: opts.logDir,
    ready: () => httpOk(`${endpoint}/moto-api/`),
    readyTimeoutMs: 60_000,
  });
  return { endpoint, process: proc, stop: () => proc.stop() };
}
