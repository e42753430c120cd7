// Waiting for an AWS Cloud Map asynchronous operation (CreateHttpNamespace, RegisterInstance, ...) to end:
// poll GetOperation until SUCCESS or FAIL, with a deadline. Kept apart from the client so the state machine
// can be tested on its own (moto finishes every operation at once, so it never shows PENDING).
import { PermissionError, UnavailableError } from '../errors';
import { ServRegOperationFailedError, ServRegTimeoutError } from './errors';

/** What one GetOperation call said. */
export interface OperationState {
  status?: string;
  errorCode?: string;
  errorMessage?: string;
}

/** How long and how often to poll. */
export interface OperationWaitOptions {
  /** Names the operation in errors, e.g. `RegisterInstance ns/svc/ep`. */
  what: string;
  timeoutMs: number;
  intervalMs: number;
  /** Clock and sleep, replaceable in tests. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

const pendingStates = new Set(['SUBMITTED', 'PENDING']);
// Operation.ErrorCode values that say retrying may help, and those that say the caller lacks rights.
const retryableCodes = new Set(['INTERNAL_FAILURE', 'THROTTLED_REQUEST']);
const permissionCodes = new Set(['ACCESS_DENIED', 'EXPIRED_TOKEN']);

/** Resolves when the operation succeeded; throws a typed error when it failed or the deadline passed. */
export async function waitForOperation(read: () => Promise<OperationState>, opts: OperationWaitOptions): Promise<void> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const deadline = now() + opts.timeoutMs;
  for (;;) {
    const state = await read();
    if (state.status === 'SUCCESS') return;
    if (state.status === 'FAIL') {
      const detail = `${opts.what} failed${state.errorCode ? ` (${state.errorCode})` : ''}: ${(state.errorMessage ?? '').slice(0, 300)}`;
      if (state.errorCode && retryableCodes.has(state.errorCode)) throw new UnavailableError(detail);
      if (state.errorCode && permissionCodes.has(state.errorCode)) throw new PermissionError(`${opts.what} was denied (${state.errorCode})`);
      throw new ServRegOperationFailedError(detail);
    }
    if (state.status !== undefined && !pendingStates.has(state.status)) {
      throw new ServRegOperationFailedError(`${opts.what} is in an unknown state ${JSON.stringify(state.status)}`);
    }
    if (now() + opts.intervalMs > deadline) {
      throw new ServRegTimeoutError(`${opts.what} still ${state.status ?? 'pending'} after ${opts.timeoutMs} ms`);
    }
    await sleep(opts.intervalMs);
  }
}
