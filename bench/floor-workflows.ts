// The bare-Temporal floor of the OSB benchmark: a workflow that runs N no-op activities one after another, as
// a provision runs its steps one after another. Bundled on its own (not with the product's workflows), so the
// floor worker carries nothing of brokerflow.
import { proxyActivities } from '@temporalio/workflow';

/** The floor worker's only activity. */
export interface FloorActivities {
  noop(): Promise<void>;
}

const { noop } = proxyActivities<FloorActivities>({ startToCloseTimeout: '30 seconds' });

/** Runs `activities` no-op activities in sequence. */
export async function floorWorkflow(activities: number): Promise<number> {
  for (let i = 0; i < activities; i++) await noop();
  return activities;
}
