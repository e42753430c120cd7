// Builds a Temporal Worker from configuration and adapters: one task queue for workflows and activities.
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode, type ActivityInterceptorsFactory, type WorkflowBundleOption, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { RuntimeConfig } from '../config/runtime';
import { createActivities, type ActivityDeps } from '../activities';
import { dataConverter, temporalSettings } from '../platform/temporal';
import { workflowsEntry } from './workflows-entry';

/**
 * Bundles the workflow code once (a few seconds); reuse the bundle for every Worker in the process. `workflowsPath`:
 * the entry to bundle, by default workflows/index.ts (or an upgrade test's build, worker/workflows-entry.ts).
 */
export async function bundleWorkflows(workflowsPath = workflowsEntry().path): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath, logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } as never });
}

/** Options for {@link createWorker}. */
export interface CreateWorkerOptions {
  config: RuntimeConfig;
  deps: ActivityDeps;
  /** A prebuilt bundle (tests share one); without it the worker bundles at start. */
  workflowBundle?: WorkflowBundleOption;
  connection?: NativeConnection;
  identity?: string;
  /** Activity interceptors (tracing, or tests that hold an activity at a chosen moment). */
  activityInterceptors?: ActivityInterceptorsFactory[];
}

/** A connection for workers; installs the SDK runtime first (with defaults, unless the process installed it already). */
export async function connectWorker(cfg: RuntimeConfig): Promise<NativeConnection> {
  installRuntime();
  const s = temporalSettings(cfg);
  return NativeConnection.connect({
    address: s.address,
    ...(s.tls !== undefined ? { tls: s.tls } : {}),
    ...(s.apiKey ? { apiKey: s.apiKey } : {}),
  });
}

let runtimeInstalled = false;

/**
 * Installs the SDK runtime once per process: SDK logs at WARN and above (brokerflow logs its own events with
 * pino), and, when asked, the SDK's Prometheus metrics on a port of their own.
 */
export function installRuntime(opts: { sdkMetricsAddress?: string } = {}): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({
    logger: new DefaultLogger((process.env.BROKERFLOW_SDK_LOG_LEVEL as 'WARN' | undefined) ?? 'WARN'),
    ...(opts.sdkMetricsAddress ? { telemetryOptions: { metrics: { prometheus: { bindAddress: opts.sdkMetricsAddress } } } } : {}),
  });
}

/**
 * How long a workflow task waits on the sticky queue of the worker that ran the workflow last before it goes to
 * the task queue (Temporal's default, made explicit). A run whose last step was due when its worker stopped
 * closes up to this long after another worker is there.
 */
export const STICKY_QUEUE_TIMEOUT_MS = 10_000;

/** A Worker ready to `run()`; the caller owns the connection when it passed one. */
export async function createWorker(opts: CreateWorkerOptions): Promise<Worker> {
  installRuntime();
  const s = temporalSettings(opts.config);
  const connection = opts.connection ?? (await connectWorker(opts.config));
  return Worker.create({
    connection,
    namespace: s.namespace,
    taskQueue: s.taskQueue,
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: workflowsEntry().path }),
    activities: createActivities(opts.deps),
    sinks: {
      reconcileMetrics: {
        event: { fn: (_info, event: 'update' | 'delete', seconds: number) => opts.deps.reconcileMetrics?.observeEvent(event, seconds), callDuringReplay: false },
      },
    },
    dataConverter: dataConverter(opts.config),
    ...(opts.identity ? { identity: opts.identity } : {}),
    ...(opts.activityInterceptors ? { interceptors: { activity: opts.activityInterceptors } } : {}),
    maxConcurrentActivityTaskExecutions: opts.config.worker?.maxConcurrentActivities ?? 100,
    maxConcurrentWorkflowTaskExecutions: opts.config.worker?.maxConcurrentWorkflowTasks ?? 40,
    stickyQueueScheduleToStartTimeout: STICKY_QUEUE_TIMEOUT_MS,
    // A cancellation reaches an activity only in the answer to one of its heartbeats. Applies beat every 3 s; sent
    // at most every 8 s (80 % of their heartbeat timeout, the default), a DELETE that stops a provision would wait
    // up to 8 s for the cancelled apply. 3 s keeps that wait short at one heartbeat per apply every 3 s.
    maxHeartbeatThrottleInterval: '3 seconds',
  });
}
