// Activities: thin functions, one per side effect, each wrapping an adapter call and mapping its errors to
// retryable or non-retryable failures. `createActivities(deps)` builds them from real adapters.
import { createProbeActivities } from './probe';

/** The adapters activities are built from. */
export interface ActivityDeps {
  workerIdentity?: string;
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...createProbeActivities(deps),
  };
}

/** Every activity, as workflows see them through `proxyActivities`. */
export type Activities = ReturnType<typeof createActivities>;
