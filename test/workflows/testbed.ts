// The workflow test bed: Temporal's time-skipping test server and one worker per test file, running this
// checkout's operation workflows for real with the stub activities of ./stubs.ts. Each test is a scenario with
// its own registry, world and gates.
import { randomUUID } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleOption } from '@temporalio/worker';
import type { WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { runInstaller } from '../../scripts/lib/process';
import { bundleWorkflows, installRuntime } from '../../worker/worker';
import { operationStartRecord } from '../../client/operations';
import { operationWorkflowId, type OperationInput } from '../../workflows/messages';
import { searchAttributeDefinitions } from '../../workflows/searchAttributes';
import { testEnvNames } from '../support/env';
import { FakeRegistry, FakeWorld, Gates, type FakeCatalog } from './stubs';

/**
 * Starts the time-skipping test server (Temporal's Java test server, installed from Maven Central by
 * scripts/install/temporal-test-server.sh; the SDK's own download is not used) with brokerflow's search
 * attributes registered, as the worker registers them on a real namespace.
 */
export async function startTestEnv(): Promise<TestWorkflowEnvironment> {
  // The SDK's own logs only when something is wrong (its INFO lines would drown the test report).
  process.env.BROKERFLOW_SDK_LOG_LEVEL ??= 'ERROR';
  installRuntime();
  const path = runInstaller('temporal-test-server');
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path } } });
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(searchAttributeDefinitions.map((d) => [d.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
  });
  return env;
}

let bundle: Promise<WorkflowBundleOption> | undefined;

/** The workflow bundle: the test run's shared one (test/run.ts), else built once for this process. */
export function workflowBundle(): Promise<WorkflowBundleOption> {
  const codePath = process.env[testEnvNames.workflowBundle];
  bundle ??= codePath ? Promise.resolve({ codePath }) : bundleWorkflows();
  return bundle;
}

/** What one test works with: its own registry, world and gates, and IDs no other test uses. */
export interface Scenario {
  registry: FakeRegistry;
  world: FakeWorld;
  gates: Gates;
  /** An instance ID of this scenario (`name` tells several apart). */
  instanceId(name?: string): string;
  /** A binding ID of this scenario. */
  bindingId(name?: string): string;
  /** An operation's input as the broker builds it, on this scenario's instance unless `over` names another. */
  input(operation: OperationInput['operation'], over?: Partial<OperationInput>): OperationInput;
  /** Starts an operation workflow as the broker does: its workflow ID, memo and search attributes. */
  start(input: OperationInput): Promise<WorkflowHandleWithFirstExecutionRunId>;
}

/**
 * The test server and one worker for a test file. Activities find their scenario from the workflow ID
 * (`instance/<scenario>.<name>` or `binding/<scenario>.<name>`), so scenarios never see each other's records.
 */
export class WorkflowTestBed {
  /** The stub activities of each scenario, by scenario ID. */
  private readonly scenarios = new Map<string, Record<string, (input: unknown) => Promise<unknown>>>();
  private running?: Promise<void>;
  private worker?: Worker;
  private next = 0;
  readonly taskQueue = `workflow-tests-${randomUUID()}`;

  private constructor(readonly env: TestWorkflowEnvironment) {}

  static async start(): Promise<WorkflowTestBed> {
    const [env, bundled] = await Promise.all([startTestEnv(), workflowBundle()]);
    const bed = new WorkflowTestBed(env);
    // Every activity name, each routed to the scenario of the workflow that calls it.
    const names = Object.keys({ ...new FakeRegistry({}).activities(new Gates()), ...new FakeWorld().activities(new Gates()) });
    const activities = Object.fromEntries(names.map((n) => [n, (input: unknown) => bed.activitiesOfCaller()[n]!(input)]));
    bed.worker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue: bed.taskQueue,
      workflowBundle: bundled,
      activities,
      // The worker's sink (worker/worker.ts); metrics are not what these tests look at.
      sinks: { reconcileMetrics: { event: { fn: () => undefined, callDuringReplay: false } } },
      // A cancellation reaches an activity only with a heartbeat's answer: send held applies' beats at once.
      maxHeartbeatThrottleInterval: 0,
      defaultHeartbeatThrottleInterval: 0,
    });
    bed.running = bed.worker.run();
    return bed;
  }

  private activitiesOfCaller(): Record<string, (input: unknown) => Promise<unknown>> {
    const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
    const acts = this.scenarios.get(workflowId.slice(workflowId.indexOf('/') + 1).split('.')[0]!);
    if (!acts) throw ApplicationFailure.nonRetryable(`no scenario for workflow ${workflowId}`, 'Invalid');
    return acts;
  }

  /** A new scenario; `catalog` names each plan's resources (plans of service `svc`). */
  scenario(catalog: FakeCatalog): Scenario {
    const id = `s${++this.next}`;
    const registry = new FakeRegistry(catalog);
    const world = new FakeWorld();
    const gates = new Gates();
    const env = this.env;
    const taskQueue = this.taskQueue;
    const s: Scenario = {
      registry,
      world,
      gates,
      instanceId: (name = 'db') => `${id}.${name}`,
      bindingId: (name = 'app') => `${id}.${name}`,
      input(operation, over = {}) {
        const instanceId = over.instanceId ?? s.instanceId();
        return {
          operation,
          operationId: `${operation}-${randomUUID()}`,
          instanceId,
          serviceId: 'svc',
          planId: 'standard',
          parameters: {},
          context: {},
          fingerprint: `fingerprint-of-${operation}-${over.bindingId ?? instanceId}`,
          ...over,
        };
      },
      async start(input) {
        const { memo, typedSearchAttributes } = operationStartRecord(input);
        return env.client.workflow.start(input.operation, {
          taskQueue,
          workflowId: operationWorkflowId(input),
          args: [input],
          memo: memo as unknown as Record<string, unknown>,
          staticSummary: memo.summary,
          typedSearchAttributes,
        });
      },
    };
    this.scenarios.set(id, { ...registry.activities(gates), ...world.activities(gates) } as unknown as Record<string, (input: unknown) => Promise<unknown>>);
    return s;
  }

  /** Stops the worker and the test server. */
  async stop(): Promise<void> {
    if (this.worker && this.worker.getState() === 'RUNNING') this.worker.shutdown();
    await this.running?.catch(() => undefined);
    await this.env.teardown();
  }
}
