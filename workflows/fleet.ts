// The fleet upgrade (`brokerflow upgrade --plan <id>`): one durable workflow per plan that brings every instance
// of the plan to the catalog's maintenance version, N updates at a time. Each instance's update is asked for the
// way a platform's PATCH is (the broker's decision rules admit it, and it runs as the instance's own `update`
// workflow, so last_operation reports it as usual); this workflow only orders the steps: the window, pause,
// resume, abort, busy instances asked again later, and stopping after K failures
// (docs/design/osb-semantics.md#fleet-upgrades).
import {
  condition,
  continueAsNew,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { FleetActivities } from '../activities/fleet';
import { msUntilWindowOpens } from '../domain/fleet';
import { causeMessage, fleetAwaitOptions, fleetListOptions, fleetStartOptions } from './activity-policies';
import { OperationStateKey } from './searchAttributes';
import {
  fleetAbortSignal,
  fleetPauseSignal,
  fleetProgressQuery,
  fleetResumeSignal,
  type FleetPhase,
  type FleetProgress,
  type FleetResult,
  type FleetState,
  type FleetUpgradeInput,
} from './fleet-messages';

const { fleetInstances } = proxyActivities<FleetActivities>(fleetListOptions);
const { startFleetUpdate } = proxyActivities<FleetActivities>(fleetStartOptions);
const { awaitFleetUpdate } = proxyActivities<FleetActivities>(fleetAwaitOptions);

const DEFAULT_BUSY_RETRY_SECONDS = 30;
const DEFAULT_CONTINUE_AS_NEW_EVENTS = 1_000;

export async function fleetUpgrade(input: FleetUpgradeInput): Promise<FleetResult> {
  const st: FleetState = input.state ?? { queue: [], busy: [], upgraded: 0, current: 0, failed: [], skipped: [], total: 0, paused: false, startedAt: Date.now(), runs: 1 };
  const maxInFlight = Math.max(1, Math.floor(input.maxInFlight));
  const busyRetryMs = (input.busyRetrySeconds ?? DEFAULT_BUSY_RETRY_SECONDS) * 1000;
  const inFlight = new Set<string>();
  // The same across continue-as-new: names this upgrade's updates in the audit trail (and OriginatingUser).
  const stepKey = `${input.planId}@${workflowInfo().firstExecutionRunId}`;
  let phase: FleetPhase = input.state ? 'running' : 'listing';
  let windowOpensAt: number | undefined;
  let stoppedBecause: string | undefined;
  // Bumped by every signal and every finished step: the loop below waits for it to move.
  let wake = 0;

  const progress = (): FleetProgress => ({
    planId: input.planId,
    targetVersion: input.targetVersion,
    phase,
    total: st.total,
    done: st.upgraded + st.current,
    upgraded: st.upgraded,
    current: st.current,
    failed: st.failed.length,
    waiting: st.busy.length,
    inFlight: [...inFlight],
    remaining: st.queue.length,
    skipped: st.skipped,
    failures: st.failed,
    paused: st.paused,
    ...(st.abortedBy ? { abortedBy: st.abortedBy } : {}),
    ...(windowOpensAt !== undefined ? { windowOpensAt } : {}),
    ...(stoppedBecause ? { stoppedBecause } : {}),
    startedAt: st.startedAt,
    runs: st.runs,
  });
  // What the Web UI shows beside the run (not a command: free to change).
  const report = () => {
    const p = progress();
    setCurrentDetails(
      `**${p.phase}**: ${p.done}/${p.total} done (${p.upgraded} upgraded, ${p.current} already current), ${p.failed} failed, ` +
        `${p.waiting} waiting (busy), ${p.inFlight.length} in flight, ${p.remaining} remaining, ${p.skipped.length} skipped` +
        (p.windowOpensAt !== undefined ? `; window opens ${new Date(p.windowOpensAt).toISOString()}` : '') +
        (p.stoppedBecause ? `; ${p.stoppedBecause}` : ''),
    );
  };

  setHandler(fleetProgressQuery, progress);
  setHandler(fleetPauseSignal, () => {
    st.paused = true;
    wake++;
  });
  setHandler(fleetResumeSignal, () => {
    st.paused = false;
    wake++;
  });
  setHandler(fleetAbortSignal, ({ by }) => {
    st.abortedBy ??= by || 'an unnamed requester';
    wake++;
  });
  const waitForWake = async (timeoutMs?: number): Promise<void> => {
    const seen = wake;
    report();
    if (timeoutMs === undefined) await condition(() => wake !== seen);
    else await condition(() => wake !== seen, Math.max(1, timeoutMs));
  };

  if (!input.state) {
    report();
    const listing = await fleetInstances({ serviceId: input.serviceId, planId: input.planId, targetVersion: input.targetVersion });
    st.queue = listing.changes.map((c) => c.instanceId);
    st.current = listing.current.length;
    st.skipped = [...listing.skipped];
    st.total = listing.changes.length + listing.current.length + listing.skipped.length;
  }

  const step = async (instanceId: string, attempts: number): Promise<void> => {
    try {
      const started = await startFleetUpdate({
        instanceId,
        serviceId: input.serviceId,
        planId: input.planId,
        targetVersion: input.targetVersion,
        stepKey,
        ...(input.stepRetry ? { stepRetry: input.stepRetry } : {}),
      });
      switch (started.kind) {
        case 'started':
        case 'joined': {
          const end = await awaitFleetUpdate({ instanceId, operationId: started.operationId });
          if (end.state === 'succeeded') st.upgraded++;
          else st.failed.push({ instanceId, description: end.description ?? `update ${started.operationId} failed` });
          break;
        }
        case 'current':
          st.current++;
          break;
        case 'busy':
          st.busy.push({ instanceId, retryAt: Date.now() + busyRetryMs, attempts: attempts + 1, reason: started.reason });
          break;
        case 'gone':
          st.skipped.push({ instanceId, reason: started.reason });
          break;
        case 'refused':
          st.failed.push({ instanceId, description: started.reason });
          break;
      }
    } catch (err) {
      st.failed.push({ instanceId, description: causeMessage(err) });
    } finally {
      inFlight.delete(instanceId);
      wake++;
    }
  };

  /** The next instance to start: a busy one whose retry time has come, else the next in the queue. */
  const takeReady = (now: number): { instanceId: string; attempts: number } | undefined => {
    const i = st.busy.findIndex((b) => b.retryAt <= now);
    if (i >= 0) {
      const [b] = st.busy.splice(i, 1);
      return { instanceId: b!.instanceId, attempts: b!.attempts };
    }
    const next = st.queue.shift();
    return next === undefined ? undefined : { instanceId: next, attempts: 0 };
  };
  const failuresReached = () => input.stopAfterFailures !== undefined && st.failed.length >= input.stopAfterFailures;
  const historyIsLong = () => {
    const info = workflowInfo();
    return info.continueAsNewSuggested || info.historyLength >= (input.continueAsNewAfterEvents ?? DEFAULT_CONTINUE_AS_NEW_EVENTS);
  };

  for (;;) {
    if (st.abortedBy || failuresReached()) {
      stoppedBecause = st.abortedBy ? `aborted by ${st.abortedBy}` : `stopped after ${st.failed.length} failed updates (--stop-after-failures ${input.stopAfterFailures})`;
      phase = 'finishing';
      while (inFlight.size > 0) await waitForWake();
      break;
    }
    if (st.queue.length === 0 && st.busy.length === 0 && inFlight.size === 0) break;
    if (historyIsLong()) {
      // The updates running now cannot move to the next run: let them end, then carry the rest over.
      phase = 'finishing';
      while (inFlight.size > 0) await waitForWake();
      // Stopped meanwhile, or nothing left to carry over: end here (the top of the loop says how).
      if (st.abortedBy || failuresReached() || (st.queue.length === 0 && st.busy.length === 0)) continue;
      return continueAsNew<typeof fleetUpgrade>({ ...input, state: { ...st, runs: st.runs + 1 } });
    }
    if (st.paused) {
      phase = 'paused';
      await waitForWake();
      continue;
    }
    const now = Date.now();
    const closedFor = input.window ? msUntilWindowOpens(input.window, now) : 0;
    if (closedFor > 0) {
      // A durable timer: a worker restart or a continue-as-new keeps the wait.
      phase = 'waiting-for-window';
      windowOpensAt = now + closedFor;
      await waitForWake(closedFor);
      windowOpensAt = undefined;
      continue;
    }
    phase = 'running';
    if (inFlight.size < maxInFlight) {
      const next = takeReady(now);
      if (next) {
        inFlight.add(next.instanceId);
        void step(next.instanceId, next.attempts);
        continue;
      }
    }
    // Nothing can start now: wait for a step to end, a signal, or the next busy instance's turn.
    const nextRetry = st.busy.length > 0 ? Math.min(...st.busy.map((b) => b.retryAt)) : undefined;
    await waitForWake(nextRetry === undefined ? undefined : nextRetry - now);
  }

  phase = st.abortedBy ? 'aborted' : failuresReached() ? 'stopped' : st.failed.length > 0 ? 'finished-with-failures' : 'succeeded';
  report();
  upsertSearchAttributes([{ key: OperationStateKey, value: phase }]);
  return progress();
}

