// Turns adapter errors into Temporal failures: typed, non-retryable where retrying cannot help, and never
// carrying a secret (adapter messages are written without secrets; causes are not forwarded).
import { ApplicationFailure } from '@temporalio/common';
import { BrokerflowError } from '../adapters/errors';

/** Error types (ApplicationFailure `type`) that retry policies never retry. */
export const nonRetryableErrorTypes = ['Invalid', 'Permission', 'Conflict', 'NotFound', 'AlreadyExists', 'UnknownDriver', 'AmbiguousResourceSet'];

/** Wraps a thrown value as an ApplicationFailure; unknown errors are retryable and bounded by the policy. */
export function toFailure(err: unknown, context: string): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof BrokerflowError) {
    return ApplicationFailure.create({
      type: err.code,
      message: `${context}: ${err.message}`,
      nonRetryable: !err.retryable,
    });
  }
  const e = err as Error;
  return ApplicationFailure.create({
    type: e?.name ?? 'Error',
    message: `${context}: ${e?.message ?? String(err)}`,
    nonRetryable: false,
  });
}

/** Runs an activity body, converting whatever it throws with {@link toFailure}. */
export async function asActivity<T>(context: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    throw toFailure(err, context);
  }
}
