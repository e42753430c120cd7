// The bare-Temporal floor of the OSB benchmark: a workflow that runs N no-op activities one after another, as
// a provision runs its steps one after another (local ones first, as a provision's short steps run local first). Bundled on its own (not with the product's workflows), so the
// floor worker carries nothing of brokerflow.
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';

/** The floor worker's only activity. */
export interface FloorActivities {
  noop(): Promise<void>;
}

const { noop } = proxyActivities<FloorActivities>({ startToCloseTimeout: '30 seconds' });
const local = proxyLocalActivities<FloorActivities>({ startToCloseTimeout: '30 seconds' });

/** Runs `localActivities` local no-op activities, then `activities` regular ones, in sequence. */
export async function floorWorkflow(activities: number, localActivities = 0): Promise<number> {
  for (let i = 0; i < localActivities; i++) await local.noop();
  for (let i = 0; i < activities; i++) await noop();
  return activities + localActivities;
}
