// Turns adapter errors into Temporal failures: typed (the error's code), non-retryable where retrying cannot help
// (the code's flag in domain/errors.ts, which the workflows' retry policies list too), and never carrying a
// secret (adapter messages are written without secrets; causes are not forwarded).
import { ApplicationFailure } from '@temporalio/common';
import { BrokerflowError } from '../adapters/errors';

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
