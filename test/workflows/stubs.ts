// Stub activities for the workflow tests. They keep what the operation workflows write, as the platform would
// see it: a registry of entries and operation records (what last_operation reads), and a world of resources that
// reconcile steps create, update and delete. Tests script faults per resource step and can hold an activity at a
// chosen moment (a gate) to send a signal or a cancellation exactly there; nothing waits on a clock.
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { OperationActivities } from '../../activities/operations';
import type { CancellationActivities } from '../../activities/cancellation';
import type { ReconcileActivities, StepInput, StepResult } from '../../activities/reconcile';
import type { ResourceDef } from '../../config/resource-sets';
import type { Patch, ResourceState } from '../../domain/reconcile';
import type { OperationInput } from '../../workflows/messages';
import type { OperationState } from '../../domain/operations';

// ---------------------------------------------------------------------------------------------------------
// Gates: hold an activity when it is reached, until the test releases it.

/** An activity call held by {@link Gates.hold}. */
export interface Gate {
  /** Resolves when a matching call has arrived and is being held. */
  reached: Promise<void>;
  /** Lets the held call go on. */
  release(): void;
}

type GateEntry<T> = { matches: (input: T) => boolean; reached: () => void; released: Promise<void>; used: boolean };

/** Points where the stubs stop until the test lets them go on (each gate holds one call). */
export class Gates {
  private readonly gates = new Map<string, GateEntry<never>[]>();

  /** Holds the next call of `activity` whose input matches. */
  hold<T = unknown>(activity: string, matches: (input: T) => boolean = () => true): Gate {
    let reached!: () => void;
    let release!: () => void;
    const gate: GateEntry<T> = {
      matches,
      reached: () => reached(),
      released: new Promise<void>((r) => (release = r)),
      used: false,
    };
    const reachedPromise = new Promise<void>((r) => (reached = r));
    const list = this.gates.get(activity) ?? [];
    list.push(gate as GateEntry<never>);
    this.gates.set(activity, list);
    return { reached: reachedPromise, release };
  }

  /** Called by a stub: waits while a gate holds this call (a held call still sees its cancellation). */
  async pass<T>(activity: string, input: T, onHold?: (released: Promise<void>) => Promise<void>): Promise<void> {
    const gate = (this.gates.get(activity) as GateEntry<T>[] | undefined)?.find((g) => !g.used && g.matches(input));
    if (!gate) return;
    gate.used = true;
    gate.reached();
    await (onHold ? onHold(gate.released) : gate.released);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The registry, as the operation activities keep it.

/** An operation record, as last_operation reads it. */
export interface RecordedOperation {
  operation: OperationInput['operation'];
  operationId: string;
  state: OperationState;
  description?: string;
}

/** A registry entry (instance or binding). `gone`: deleted, a tombstone keeps its last operation. */
export interface FakeEntry {
  instanceId: string;
  bindingId?: string;
  planId: string;
  fingerprint: string;
  parameters: Record<string, unknown>;
  context: Record<string, unknown>;
  operation?: RecordedOperation;
  pendingUpdate?: { planId: string; parameters: Record<string, unknown>; fingerprint: string };
  credentials?: Record<string, unknown>;
  gone?: boolean;
  /** A bind's credential lifetime and the workflow that keeps it (plans with a credential policy). */
  expiry?: { expiresAt: string; renewBefore: string; workflowId: string };
  /** When the expiry revoked the credentials. */
  expiredAt?: string;
}

/** Which resources a plan's resource set names; a plan missing here is not in the catalog. */
export type FakeCatalog = Record<string, { instance: ResourceDef[]; binding?: ResourceDef[] } | { skipped: string }>;

/**
 * The registry the operation activities write: one entry per instance and binding, each with its operation
 * record; `journal` lists every record written, in order. Its rules are the ones the workflows rely on
 * (activities/operations.ts): a provision or bind identical to one that succeeded is `alreadySucceeded`; an
 * update or unbind of an entry that is gone is refused; a successful deprovision or unbind leaves a tombstone;
 * an update's target is applied only when it succeeds.
 */
export class FakeRegistry {
  readonly entries = new Map<string, FakeEntry>();
  readonly journal: string[] = [];

  constructor(private readonly catalog: FakeCatalog) {}

  static key(ref: { instanceId: string; bindingId?: string | undefined }): string {
    return ref.bindingId ? `binding/${ref.bindingId}` : `instance/${ref.instanceId}`;
  }

  /** The entry of an instance or binding (tombstones included). */
  entry(ref: { instanceId: string; bindingId?: string }): FakeEntry | undefined {
    return this.entries.get(FakeRegistry.key(ref));
  }

  /** The operation record last_operation reads for an instance or binding. */
  lastOperation(ref: { instanceId: string; bindingId?: string }): RecordedOperation | undefined {
    return this.entry(ref)?.operation;
  }

  /** Puts an entry in place as if its operation had run (the state a test starts from). */
  seed(input: OperationInput, state: RecordedOperation['state'] = 'succeeded', description?: string): void {
    this.entries.set(FakeRegistry.key(input), {
      instanceId: input.instanceId,
      ...(input.bindingId ? { bindingId: input.bindingId } : {}),
      planId: input.planId,
      fingerprint: input.fingerprint,
      parameters: input.parameters,
      context: input.context,
      operation: { operation: input.operation, operationId: input.operationId, state, ...(description ? { description } : {}) },
    });
  }

  /** The identity the cancellation requester activity reports (the real one reads it from the run's history). */
  cancelIdentity = 'tester (workflow test)';

  activities(gates: Gates): OperationActivities & CancellationActivities {
    const notFound = (message: string) => ApplicationFailure.nonRetryable(message, 'NotFound');
    const live = (ref: { instanceId: string; bindingId?: string | undefined }) => {
      const e = this.entries.get(FakeRegistry.key(ref));
      return e && !e.gone ? e : undefined;
    };
    return {
      recordBegin: async (input) => {
        await gates.pass('recordBegin', input);
        const cur = live(input);
        const what = input.bindingId ? `binding ${input.bindingId}` : `instance ${input.instanceId}`;
        const refused = (reason: string) => ({ alreadySucceeded: false, refused: reason });
        if ((input.operation === 'provision' || input.operation === 'bind') && cur?.operation?.operation === input.operation && cur.operation.state === 'succeeded' && cur.operation.operationId !== input.operationId) {
          if (cur.fingerprint === input.fingerprint) return { alreadySucceeded: true };
          return refused(`${what} already exists with different attributes`);
        }
        if ((input.operation === 'update' || input.operation === 'unbind') && !cur) return refused(`${what} does not exist`);
        if (input.operation === 'bind' && !live({ instanceId: input.instanceId })) return refused(`instance ${input.instanceId} does not exist`);
        const entry: FakeEntry =
          cur && input.operation !== 'provision' && input.operation !== 'bind'
            ? cur
            : {
                instanceId: input.instanceId,
                ...(input.bindingId ? { bindingId: input.bindingId } : {}),
                planId: input.planId,
                fingerprint: input.fingerprint,
                parameters: input.parameters,
                context: input.context,
              };
        if (input.operation === 'update') entry.pendingUpdate = { planId: input.planId, parameters: input.parameters, fingerprint: input.fingerprint };
        entry.operation = { operation: input.operation, operationId: input.operationId, state: 'in progress' };
        this.entries.set(FakeRegistry.key(input), entry);
        this.journal.push(`begin ${input.operation} ${input.operationId}`);
        return { alreadySucceeded: false };
      },

      recordComplete: async (input) => {
        await gates.pass('recordComplete', input);
        const entry = this.entries.get(FakeRegistry.key(input));
        if (!entry) throw notFound(`no entry for ${input.operation} ${input.operationId}`);
        const failed = input.error !== undefined;
        if (failed && input.operation === 'bind') delete entry.credentials;
        if (!failed && input.operation === 'bind' && input.expiry) entry.expiry = input.expiry;
        entry.operation = { operation: input.operation, operationId: input.operationId, state: failed ? 'failed' : 'succeeded', ...(failed ? { description: input.error } : {}) };
        if (input.operation === 'update' && entry.pendingUpdate) {
          if (!failed) Object.assign(entry, { planId: entry.pendingUpdate.planId, parameters: entry.pendingUpdate.parameters, fingerprint: entry.pendingUpdate.fingerprint });
          delete entry.pendingUpdate;
        }
        if (!failed && (input.operation === 'deprovision' || input.operation === 'unbind')) {
          entry.gone = true;
          delete entry.credentials;
        }
        this.journal.push(`complete ${input.operation} ${input.operationId} ${failed ? `failed: ${input.error}` : 'succeeded'}`);
      },

      readOperationState: async (input) => {
        const op = this.entries.get(FakeRegistry.key(input))?.operation;
        return op?.operationId === input.operationId ? op.state : 'other';
      },

      resolveResources: async (input) => {
        const plan = this.catalog[input.planId];
        if (!plan) throw ApplicationFailure.nonRetryable(`plan ${input.planId} of service ${input.serviceId} is not in this worker's catalog`, 'Invalid');
        if ('skipped' in plan) return { skipped: plan.skipped };
        return { resources: (input.part === 'binding' ? plan.binding : plan.instance) ?? [] };
      },

      listBindings: async (input) =>
        [...this.entries.values()]
          .filter((e) => e.bindingId && !e.gone && e.instanceId === input.instanceId)
          .map((e) => ({ bindingId: e.bindingId!, parameters: e.parameters, context: e.context })),

      removeBindingEntry: async (input) => {
        const entry = this.entries.get(FakeRegistry.key(input));
        if (!entry || entry.gone) return;
        entry.gone = true;
        delete entry.credentials;
        entry.operation = { operation: 'unbind', operationId: `${input.operationId ?? 'deprovision'}/${input.bindingId}`, state: 'succeeded' };
        this.journal.push(`remove binding ${input.bindingId}`);
      },

      readAppliedInstance: async (input) => {
        const e = live({ instanceId: input.instanceId });
        if (!e) throw notFound(`instance ${input.instanceId} does not exist`);
        return { planId: e.planId, parameters: e.parameters, context: e.context };
      },

      cancellationRequester: async () => ({ identity: this.cancelIdentity }),

      expiryDue: async (input) => {
        const e = live({ instanceId: input.instanceId, bindingId: input.bindingId });
        if (!e) return { due: false as const, reason: 'the binding no longer exists' };
        if (e.operation?.operationId !== input.bindOperationId || e.operation.state !== 'succeeded') return { due: false as const, reason: 'bound again or being deleted' };
        if (e.expiredAt) return { due: false as const, reason: 'already revoked' };
        return { due: true as const, parameters: e.parameters, context: e.context };
      },

      recordExpired: async (input) => {
        await gates.pass('recordExpired', input);
        const e = live({ instanceId: input.instanceId, bindingId: input.bindingId });
        if (!e || e.operation?.operationId !== input.bindOperationId || e.expiredAt) return;
        delete e.credentials;
        e.expiredAt = input.expiredAt;
        this.journal.push(`expire binding ${input.bindingId} at ${input.expiredAt}`);
      },

      readInstanceInputs: async (input) => {
        const e = live({ instanceId: input.instanceId });
        if (!e) throw notFound(`instance ${input.instanceId} does not exist`);
        return { parameters: e.parameters, context: e.context };
      },

      storeCredentials: async (input) => {
        const e = live({ instanceId: input.object.instanceId, bindingId: input.object.bindingId });
        if (!e) throw notFound(`binding ${input.object.bindingId} does not exist`);
        // As the real activity: only while the bind is in progress (a call that outlives its bind writes nothing).
        if (e.operation?.operationId !== input.object.operationId || e.operation.state !== 'in progress') {
          throw ApplicationFailure.nonRetryable(`bind ${input.object.operationId} is no longer in progress`, 'Conflict');
        }
        e.credentials = Object.fromEntries(input.resources.map((r) => [r.name, `secret-of-${r.name}@${input.object.bindingId}`]));
        // Held after the write: the credentials are stored but the call has not answered yet.
        await gates.pass('storeCredentials', input);
      },
    };
  }
}

// ---------------------------------------------------------------------------------------------------------
// The world the reconcile steps change.

type Step = keyof ReconcileActivities;

/** A scripted failure of one resource step: `times` attempts fail (all of them when absent). */
export interface Fault {
  resource: string;
  step: Step;
  type: string;
  message: string;
  times?: number;
}

/**
 * The resources that reconcile steps create, update and delete, keyed `<resource>@<instance or binding>`. A
 * resource's state is its spec plus the parameters it was rendered with, so an update with new parameters
 * patches it. `attempts` counts attempts per `<resource>:<step>`.
 */
export class FakeWorld {
  readonly resources = new Map<string, ResourceState>();
  readonly attempts = new Map<string, number>();
  private readonly faults: Fault[] = [];

  static key(input: StepInput): string {
    return `${input.resource.name}@${input.object.bindingId ?? input.object.instanceId}`;
  }

  /** Makes a step fail (retryable or not is up to the workflow's policy for `type`). */
  fail(fault: Fault): void {
    this.faults.push(fault);
  }

  /** The names of the resources that exist, sorted. */
  names(): string[] {
    return [...this.resources.keys()].sort();
  }

  activities(gates: Gates): ReconcileActivities {
    const step = <T>(name: Step, body: (input: StepInput & Record<string, unknown>) => T) =>
      async (input: StepInput & Record<string, unknown>): Promise<StepResult<T>> => {
        const at = `${input.resource.name}:${name}`;
        const attempt = (this.attempts.get(at) ?? 0) + 1;
        this.attempts.set(at, attempt);
        // A held apply behaves like a long call: it beats, and when the workflow cancels it, the change it had
        // sent lands anyway (a call in flight cannot be taken back) before it reports the cancellation.
        try {
          await gates.pass(name, input, name.startsWith('apply') ? (released) => heartbeatUntil(released) : undefined);
        } catch (err) {
          body(input);
          throw err;
        }
        const fault = this.faults.find((f) => f.resource === input.resource.name && f.step === name && (f.times === undefined || attempt <= f.times));
        if (fault) throw ApplicationFailure.retryable(fault.message, fault.type);
        return { value: body(input) };
      };
    const desired = (input: StepInput): ResourceState => ({
      spec: input.resource.spec,
      parameters: input.template.binding?.parameters ?? input.template.instance.parameters,
    });
    return {
      getCurrentState: step('getCurrentState', (input) => this.resources.get(FakeWorld.key(input)) ?? null),
      getDesiredState: step('getDesiredState', (input) => desired(input)),
      newUpdatePatch: step('newUpdatePatch', (input): Patch => {
        const { current, desired: want } = input as unknown as { current: ResourceState | null; desired: ResourceState };
        if (current === null) return { create: want };
        return JSON.stringify(current) === JSON.stringify(want) ? {} : { update: want };
      }),
      newDeletePatch: step('newDeletePatch', (input): Patch => {
        const { current } = input as unknown as { current: ResourceState | null };
        return current === null ? {} : { delete: current };
      }),
      applyCreateChange: step('applyCreateChange', (input) => void this.resources.set(FakeWorld.key(input), input.state as ResourceState)),
      applyUpdateChange: step('applyUpdateChange', (input) => void this.resources.set(FakeWorld.key(input), input.state as ResourceState)),
      applyDeleteChange: step('applyDeleteChange', (input) => void this.resources.delete(FakeWorld.key(input))),
    } as unknown as ReconcileActivities;
  }
}

/** Beats until `released`, or rethrows the cancellation the workflow sent (delivered with a heartbeat answer). */
async function heartbeatUntil(released: Promise<void>): Promise<void> {
  const ctx = Context.current();
  ctx.heartbeat();
  const beat = setInterval(() => ctx.heartbeat(), 20);
  try {
    await Promise.race([released, ctx.cancelled]);
  } finally {
    clearInterval(beat);
  }
}
