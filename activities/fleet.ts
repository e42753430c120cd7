// The fleet upgrade's side effects (docs/design/osb-semantics.md#fleet-upgrades): list a plan's instances from the
// registry, ask for one instance's maintenance update exactly as a platform's PATCH asks for it, and wait for that
// update to end. The update is decided and started by the broker's own OsbService (the decision module, the
// instance's workflow ID, its operation ID scheme and audit record), with the worker's Temporal client, so a fleet
// step takes the same per-instance admission as any other operation and never duplicates its rules.
import { Context } from '@temporalio/activity';
import { planInstances, type Registry } from '../adapters/registry';
import { UnavailableError } from '../adapters/errors';
import type { Catalog } from '../config/catalog';
import { planFleetUpgrade } from '../domain/fleet';
import { OsbService } from '../client/broker/service';
import { OsbError } from '../client/broker/errors';
import { OperationsClient } from '../client/operations';
import { FLEET_PLATFORM, type FleetListing, type FleetStepEnd, type FleetStepInput, type FleetStepStart } from '../workflows/fleet-messages';
import { asActivity } from './failures';

/** What the fleet activities are built from. */
export interface FleetDeps {
  registry: Registry;
  catalog: Catalog;
}

/** How often a waiting step reads its update's state (and heartbeats). */
const POLL_MS = 250;

/** The listing the fleet upgrade works from (the CLI's dry run plans from the same registry read). */
async function fleetListing(registry: Registry, ref: { serviceId: string; planId: string; targetVersion: string }): Promise<FleetListing> {
  const plan = planFleetUpgrade(await planInstances(registry, ref), ref.targetVersion);
  return { changes: plan.changes, current: plan.current, skipped: plan.skipped };
}

export function createFleetActivities(deps: FleetDeps) {
  const { registry } = deps;
  // Built per call from the activity's own client and task queue: the updates run where the worker runs.
  const services = (stepRetry?: FleetStepInput['stepRetry']) => {
    const ctx = Context.current();
    const operations = new OperationsClient(ctx.client, ctx.info.taskQueue, registry);
    const osb = new OsbService({
      catalog: deps.catalog,
      registry,
      operations,
      syncTimeoutMs: 0,
      // A failed audit write is logged (the update's first activity writes the record in its place).
      auditWarnings: { warn: (fields, message) => ctx.log.warn(message, fields) },
      ...(stepRetry ? { stepRetry } : {}),
    });
    return { operations, osb };
  };

  return {
    /** Which instances of the plan the upgrade changes, which are current, which it leaves (and why). */
    async fleetInstances(ref: { serviceId: string; planId: string; targetVersion: string }): Promise<FleetListing> {
      return asActivity(`listing the instances of plan ${ref.planId}`, () => fleetListing(registry, ref));
    },

    /**
     * Asks for the instance's update to the target maintenance version, as a PATCH with `maintenance_info` does.
     * A retried step first looks in the instance's audit trail for the update this upgrade already started
     * (recorded under its step key), so one fleet step never starts two updates; an update still running with the
     * same target is joined by the decision module itself.
     */
    async startFleetUpdate(input: FleetStepInput): Promise<FleetStepStart> {
      return asActivity(`asking for the update of instance ${input.instanceId}`, async () => {
        const trail = (await registry.audit.read(input.instanceId)) ?? [];
        const ours = trail.filter((r) => r.operation === 'update' && r.origin?.platform === FLEET_PLATFORM && r.origin.user === input.stepKey).pop();
        if (ours) return { kind: 'joined', operationId: ours.operationId };
        const { osb } = services(input.stepRetry);
        try {
          const answer = await osb.update(
            input.instanceId,
            { service_id: input.serviceId, maintenance_info: { version: input.targetVersion } },
            true,
            { platform: FLEET_PLATFORM, user: input.stepKey },
          );
          const operationId = answer.body.operation;
          return typeof operationId === 'string' ? { kind: 'started', operationId } : { kind: 'current' };
        } catch (err) {
          if (!(err instanceof OsbError)) throw err;
          if (err.statusCode === 422 && err.osbCode === 'ConcurrencyError') return { kind: 'busy', reason: err.message };
          if (err.statusCode === 404 || err.statusCode === 410) return { kind: 'gone', reason: err.message };
          if (err.statusCode === 503) throw new UnavailableError(err.message, err);
          return { kind: 'refused', reason: `${err.statusCode}${err.osbCode ? ` ${err.osbCode}` : ''}: ${err.message}` };
        }
      });
    },

    /** Waits for the instance's update to end, reading its state as last_operation does. */
    async awaitFleetUpdate(ref: { instanceId: string; operationId: string }): Promise<FleetStepEnd> {
      return asActivity(`waiting for update ${ref.operationId} of instance ${ref.instanceId}`, async () => {
        const ctx = Context.current();
        const { operations } = services();
        for (;;) {
          const s = await operations.status(ref);
          if (s && s.operationId === ref.operationId && s.state !== 'in progress') {
            return { state: s.state, ...(s.description ? { description: s.description } : {}) };
          }
          ctx.heartbeat();
          await ctx.sleep(POLL_MS);
        }
      });
    },
  };
}

/** The fleet activities, as the fleet workflow sees them. */
export type FleetActivities = ReturnType<typeof createFleetActivities>;
