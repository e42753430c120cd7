// A whole brokerflow on the test run's servers: a worker (in this process) with the configured adapters and a
// broker app answered through fastify's inject. Tests talk HTTP to it as a platform would.
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import type { ActivityInterceptorsFactory, NativeConnection, Worker } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import type { RuntimeConfig, RuntimeConfigFile } from '../../config/runtime';
import type { ResourceDriver } from '../../adapters/resources/types';
import { createBroker, type RunningBroker } from '../../client/broker/server';
import { createLogger } from '../../platform/logging';
import { join } from 'node:path';
import pino from 'pino';
import { buildWorkerDependencies, type WorkerDependencies } from '../../worker/dependencies';
import { connectWorker, createWorker } from '../../worker/worker';
import { basicAuth, writeTestConfig } from './config';
import { requireTestEnv, testEnvNames } from './env';

/** A running broker + worker pair for tests. */
export interface TestStack {
  config: RuntimeConfig;
  configFile: string;
  broker: RunningBroker;
  app: FastifyInstance;
  client: Client;
  worker: WorkerDependencies;
  /** Sends an authenticated OSB request (version header and JSON set unless overridden). */
  osb(method: InjectOptions['method'], url: string, body?: unknown, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
  /** Stops the in-process worker (for crash and no-worker tests) and starts a new one. */
  stopWorker(): Promise<void>;
  startWorker(): Promise<void>;
  close(): Promise<void>;
}

export interface TestStackOptions {
  overrides?: Partial<RuntimeConfigFile>;
  extraDrivers?: Map<string, ResourceDriver>;
  /** false: start without a worker (startWorker() starts one later). */
  worker?: boolean;
  /** Given to every worker this stack starts: tests that hold an activity at a chosen moment. */
  activityInterceptors?: ActivityInterceptorsFactory[];
}

/**
 * The in-process broker's log: warnings and errors (BROKERFLOW_TEST_LOG_LEVEL overrides the level) to a file of
 * this test process under the run's work directory, which the runner keeps when a test failed: an unexpected 500
 * ("internal error; see the broker log") can then be read there. Without a test run's servers: nothing is logged.
 */
function brokerLogOptions(): { level: string; destination?: ReturnType<typeof pino.destination> } {
  const workDir = process.env[testEnvNames.workDir];
  const level = process.env.BROKERFLOW_TEST_LOG_LEVEL ?? (workDir ? 'warn' : 'silent');
  if (!workDir || level === 'silent') return { level: 'silent' };
  return { level, destination: pino.destination({ dest: join(workDir, 'logs', `broker-${process.pid}.log`), mkdir: true, sync: true }) };
}

export async function startTestStack(opts: TestStackOptions = {}): Promise<TestStack> {
  const { config, file } = writeTestConfig(opts.overrides);
  const deps = await buildWorkerDependencies(config, opts.extraDrivers);
  const broker = await createBroker(config, createLogger('broker', brokerLogOptions()));
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  let connection: NativeConnection | undefined;
  // At most one worker at a time: starting a running one is a no-op (a second worker on the task queue would
  // keep running operations while a test believes the worker stopped). Each worker gets its own connection,
  // closed with it.
  const startWorker = async () => {
    if (worker) return;
    connection = await connectWorker(config);
    worker = await createWorker({ config, deps: deps.deps, connection, workflowBundle: { codePath: requireTestEnv('workflowBundle') }, activityInterceptors: opts.activityInterceptors });
    running = worker.run();
  };
  const stopWorker = async () => {
    if (!worker) return;
    worker.shutdown();
    try {
      await running;
    } finally {
      worker = undefined;
      await connection?.close();
      connection = undefined;
    }
  };
  if (opts.worker !== false) await startWorker();
  return {
    config,
    configFile: file,
    broker,
    app: broker.app,
    client: broker.client,
    worker: deps,
    osb: (method, url, body, headers = {}) =>
      broker.app.inject({
        method,
        url,
        headers: { authorization: basicAuth(), 'x-broker-api-version': '2.17', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      }),
    stopWorker,
    startWorker,
    async close() {
      await stopWorker();
      await broker.close();
      await deps.close();
    },
  };
}

/** Polls last_operation until the state is final; returns the final body and status. */
export async function pollLastOperation(stack: TestStack, path: string, operation?: string, timeoutMs = 60_000): Promise<{ status: number; body: Record<string, unknown> }> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const res = await stack.osb('GET', `${path}/last_operation${operation ? `?operation=${encodeURIComponent(operation)}` : ''}`);
    const body = res.json() as Record<string, unknown>;
    if (res.statusCode !== 200 || body.state !== 'in progress') return { status: res.statusCode, body };
    if (Date.now() > end) throw new Error(`operation still in progress after ${timeoutMs} ms: ${path}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}
