// A client-side rate budget for a cloud registry's API: every call takes a token first, so a burst of
// reconciles (an initial sync of thousands of endpoints) is spread out instead of being throttled by the cloud.
// AWS Cloud Map and Google Service Directory both throttle per account/project; a throttled call fails and is
// retried with backoff, which costs more time than waiting for the budget would have.
import { RateLimiter } from 'limiter';
import { ValidationError } from '../errors';

/** What a backend reports about its calls; the worker turns it into Prometheus metrics. */
export interface CallObserver {
  /** One API call sent. */
  called?(registry: string): void;
  /** How long a call waited for the budget before it was sent (only when it waited). */
  waited?(registry: string, ms: number): void;
  /** One call the cloud refused for throttling (AWS ThrottlingException, gRPC RESOURCE_EXHAUSTED, HTTP 429). */
  throttled?(registry: string): void;
}

/** At most `callsPerSecond` calls in any second, in arrival order; a burst of up to that many goes at once. */
export class CallBudget {
  readonly callsPerSecond: number;
  private readonly limiter: RateLimiter;

  constructor(callsPerSecond: number, field = 'callsPerSecond') {
    if (!Number.isInteger(callsPerSecond) || callsPerSecond < 1 || callsPerSecond > 10_000) {
      throw new ValidationError(`${field} must be an integer from 1 to 10000, not ${JSON.stringify(callsPerSecond)}`, field);
    }
    this.callsPerSecond = callsPerSecond;
    this.limiter = new RateLimiter({ tokensPerInterval: callsPerSecond, interval: 'second' });
  }

  /** Waits until the budget allows one more call; resolves to the milliseconds waited. */
  async take(): Promise<number> {
    const start = performance.now();
    await this.limiter.removeTokens(1);
    return performance.now() - start;
  }
}
