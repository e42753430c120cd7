// The end-to-end probe: proves that a worker is polling the task queue and can run an activity.
// `brokerflow doctor` and the readiness checks start it; it holds no state.
import { proxyActivities } from '@temporalio/workflow';
import type { ProbeActivities } from '../activities/probe';
import { probeOptions } from './activity-policies';

const { probe } = proxyActivities<ProbeActivities>(probeOptions);

/** Input of {@link probeWorkflow}. */
export interface ProbeInput {
  note: string;
}

/** What the probe saw: which worker ran the activity. */
export interface ProbeResult {
  note: string;
  workerIdentity: string;
}

export async function probeWorkflow(input: ProbeInput): Promise<ProbeResult> {
  const { workerIdentity } = await probe();
  return { note: input.note, workerIdentity };
}
