// A resource driver for reconciliation tests: it keeps its objects in memory and records every step it runs,
// and its spec can make a step fail (transiently or for good) or raise a cancellation flag. It stands in for
// no server; it exists to observe the order and flags of the real reconcile workflow on the real Temporal.
import type { Patch, ResourceState } from '../../domain/reconcile';
import { ResourceCanceled, ReconciliationCanceled, type DriverContext, type ResourceDriver } from '../../adapters/resources/types';
import { UnavailableError, ValidationError } from '../../adapters/errors';

/** How a trace resource misbehaves, per step. */
export interface TraceBehaviour {
  /** Fail this many times (retryable) at the step, then succeed. */
  failTransiently?: Record<string, number>;
  /** Fail at the step, always: 'retryable' keeps failing through retries, 'fatal' is non-retryable. */
  failAlways?: Record<string, 'retryable' | 'fatal'>;
  cancelResourceAt?: string;
  cancelReconciliationAt?: string;
}

/** One recorded step: which resource, which step, when. */
export interface TraceEntry {
  resource: string;
  step: string;
  at: number;
}

export class TraceDriver implements ResourceDriver {
  readonly kind = 'trace';
  readonly objects = new Map<string, Record<string, unknown>>();
  readonly trace: TraceEntry[] = [];
  private readonly failures = new Map<string, number>();

  constructor(private readonly behaviours: Record<string, TraceBehaviour> = {}) {}

  private record(ctx: DriverContext, step: string, spec?: Record<string, unknown>): void {
    const key = `${(spec?.id as string | undefined) ?? ctx.resourceName}`;
    this.trace.push({ resource: ctx.resourceName, step, at: Date.now() });
    const b = this.behaviours[ctx.resourceName] ?? {};
    const failKey = `${ctx.object.operationId}/${ctx.resourceName}/${step}`;
    const transient = b.failTransiently?.[step] ?? 0;
    const seen = this.failures.get(failKey) ?? 0;
    if (seen < transient) {
      this.failures.set(failKey, seen + 1);
      throw new UnavailableError(`${key}: transient failure ${seen + 1} of ${transient} at ${step}`);
    }
    const always = b.failAlways?.[step];
    if (always === 'fatal') throw new ValidationError(`${key}: ${step} cannot succeed`);
    if (always === 'retryable') throw new UnavailableError(`${key}: ${step} is down`);
    if (b.cancelResourceAt === step) throw new ResourceCanceled(`${key}: resource canceled at ${step}`);
    if (b.cancelReconciliationAt === step) throw new ReconciliationCanceled(`${key}: reconciliation canceled at ${step}`);
  }

  async getCurrentState(spec: Record<string, unknown>, ctx: DriverContext): Promise<ResourceState> {
    this.record(ctx, 'getCurrentState', spec);
    return this.objects.get(spec.id as string) ?? null;
  }
  async getDesiredState(spec: Record<string, unknown>, ctx: DriverContext): Promise<ResourceState> {
    this.record(ctx, 'getDesiredState', spec);
    return spec.desired === null ? null : { id: spec.id, ...(spec.desired as object) };
  }
  newUpdatePatch(current: ResourceState, desired: ResourceState): Patch {
    const patch: Patch = {};
    if (!current && desired) patch.create = desired;
    if (current && !desired) patch.delete = current;
    if (current && desired && JSON.stringify(current) !== JSON.stringify(desired)) {
      // A changed `replace` field means delete-and-create, exercising all three parts in order.
      if (current.replace !== desired.replace) {
        patch.delete = current;
        patch.create = desired;
      }
      patch.update = desired;
    }
    return patch;
  }
  newDeletePatch(current: ResourceState): Patch {
    return current ? { delete: current } : {};
  }
  async applyCreateChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    this.record(ctx, 'applyCreateChange', state ?? undefined);
    if (state) this.objects.set(state.id as string, state);
  }
  async applyDeleteChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    this.record(ctx, 'applyDeleteChange', state ?? undefined);
    if (state) this.objects.delete(state.id as string);
  }
  async applyUpdateChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    this.record(ctx, 'applyUpdateChange', state ?? undefined);
    if (state) this.objects.set(state.id as string, state);
  }
}
