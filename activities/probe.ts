// The probe activity: answers with the identity of the worker process that ran it.
import { hostname } from 'node:os';

export function createProbeActivities(deps: { workerIdentity?: string } = {}) {
  const identity = deps.workerIdentity ?? `${process.pid}@${hostname()}`;
  return {
    async probe(): Promise<{ workerIdentity: string }> {
      return { workerIdentity: identity };
    },
  };
}

/** The probe activity functions, as workflows see them. */
export type ProbeActivities = ReturnType<typeof createProbeActivities>;
