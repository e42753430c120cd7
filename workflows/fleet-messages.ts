// The typed messages and inputs of the fleet upgrade workflow (`brokerflow upgrade --plan <id>`), defined once for
// the workflow, its activities and the CLI (docs/design/osb-semantics.md#fleet-upgrades).
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { MaintenanceWindow } from '../domain/fleet';

/** The workflow type of a fleet upgrade. */
export const FLEET_UPGRADE_WORKFLOW = 'fleetUpgrade';

/** The one fleet upgrade of a plan: its workflow ID, so a second start while one runs is refused by Temporal. */
export function fleetUpgradeWorkflowId(planId: string): string {
  return `fleet-upgrade/${planId}`;
}

/** The audit trail's platform for the updates a fleet upgrade starts (`OriginatingUser` "brokerflow-fleet/…"). */
export const FLEET_PLATFORM = 'brokerflow-fleet';

/** What carries over a continue-as-new: everything the upgrade has done and still has to do. */
export interface FleetState {
  /** Instances not started yet, in order. */
  queue: string[];
  /** Instances found busy with another operation, retried at `retryAt` (epoch ms, workflow time). */
  busy: Array<{ instanceId: string; retryAt: number; attempts: number; reason: string }>;
  /** Instances whose update succeeded. */
  upgraded: number;
  /** Instances already at the target when their turn came (another update or the platform got there first). */
  current: number;
  failed: Array<{ instanceId: string; description: string }>;
  /** Instances not updated and not failed: gone (deprovisioned meanwhile) or not provisioned, with why. */
  skipped: Array<{ instanceId: string; reason: string }>;
  total: number;
  paused: boolean;
  /** Who aborted, when someone did. */
  abortedBy?: string;
  startedAt: number;
  runs: number;
}

/** What `brokerflow upgrade` starts the workflow with. */
export interface FleetUpgradeInput {
  serviceId: string;
  planId: string;
  /** The catalog's maintenance version of the plan when the upgrade was asked for. */
  targetVersion: string;
  /** How many instance updates run at a time (at least 1). */
  maxInFlight: number;
  /** Stop starting updates once this many failed (absent: never stop for failures). */
  stopAfterFailures?: number;
  /** Updates start only inside this window (absent: any time). */
  window?: MaintenanceWindow;
  /** Who asked (the CLI's OS user), for the summary. */
  requestedBy?: string;
  /** How long to wait before asking again for an instance busy with another operation (default 30 s). */
  busyRetrySeconds?: number;
  /** History length after which the run drains its updates and continues as new (default 1,000 events, about 100 instances). */
  continueAsNewAfterEvents?: number;
  /** Retry overrides handed to each instance update (tests and slow environments). */
  stepRetry?: { initialInterval?: string; maximumAttempts?: number; backoffCoefficient?: number };
  /** Set by the workflow itself when it continues as new. */
  state?: FleetState;
}

/**
 * What a fleet upgrade is doing now, or how it ended: `succeeded` (every instance at the target), `finished-with-failures`
 * (all were tried, some failed), `stopped` (the failures reached `stopAfterFailures`), `aborted`. `finishing`: no
 * more updates start, the running ones end first (aborted, stopped, or before a continue-as-new).
 */
export type FleetPhase =
  | 'listing'
  | 'running'
  | 'paused'
  | 'waiting-for-window'
  | 'finishing'
  | 'succeeded'
  | 'finished-with-failures'
  | 'stopped'
  | 'aborted';

/** The phases a fleet upgrade ends in. */
export const FLEET_END_PHASES: readonly FleetPhase[] = ['succeeded', 'finished-with-failures', 'stopped', 'aborted'];

/** Where a fleet upgrade stands: the query the CLI's `upgrade status` and `--watch` show, and the Web UI. */
export interface FleetProgress {
  planId: string;
  targetVersion: string;
  phase: FleetPhase;
  total: number;
  /** Upgraded or already at the target. */
  done: number;
  upgraded: number;
  current: number;
  failed: number;
  /** Busy with another operation: retried later. */
  waiting: number;
  inFlight: string[];
  /** Not started yet (busy ones not included). */
  remaining: number;
  skipped: FleetState['skipped'];
  failures: FleetState['failed'];
  paused: boolean;
  abortedBy?: string;
  /** While outside the window: when it opens next (epoch ms). */
  windowOpensAt?: number;
  /** Why it stopped early (failures reached, aborted). */
  stoppedBecause?: string;
  startedAt: number;
  /** Continue-as-new generations so far (1 for the first run). */
  runs: number;
}

/** The result of a fleet upgrade workflow. */
export type FleetResult = FleetProgress;

export const fleetProgressQuery = defineQuery<FleetProgress>('fleetProgress');
/** Stop starting updates (those running finish); `by` names who asked. */
export const fleetPauseSignal = defineSignal<[{ by?: string }]>('fleetPause');
export const fleetResumeSignal = defineSignal<[{ by?: string }]>('fleetResume');
/** Stop for good: no more updates start; those running finish, then the upgrade ends as aborted. */
export const fleetAbortSignal = defineSignal<[{ by?: string }]>('fleetAbort');

/** One instance's step, as the activity starting its update receives it. */
export interface FleetStepInput {
  instanceId: string;
  serviceId: string;
  planId: string;
  targetVersion: string;
  /** Names this fleet upgrade in the audit trail: a retried step finds the update it already started by it. */
  stepKey: string;
  stepRetry?: FleetUpgradeInput['stepRetry'];
}

/** What asking for one instance's update came to (decided by the broker's own rules, as a PATCH is). */
export type FleetStepStart =
  | { kind: 'started'; operationId: string }
  /** This upgrade's update of the instance had already started (a retried step). */
  | { kind: 'joined'; operationId: string }
  /** The instance is at the target already: nothing runs. */
  | { kind: 'current' }
  /** Another operation runs on the instance: ask again later. */
  | { kind: 'busy'; reason: string }
  /** The instance is gone (deprovisioned since it was listed). */
  | { kind: 'gone'; reason: string }
  /** Refused for good (e.g. the catalog's version moved on): counts as a failure. */
  | { kind: 'refused'; reason: string };

/** How an instance's update ended. */
export interface FleetStepEnd {
  state: 'succeeded' | 'failed';
  description?: string;
}

/** The listing activity's answer: what the upgrade would change (also the dry run's answer). */
export interface FleetListing {
  changes: Array<{ instanceId: string; from?: string; to: string }>;
  current: string[];
  skipped: Array<{ instanceId: string; reason: string }>;
}
