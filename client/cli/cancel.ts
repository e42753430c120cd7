// `brokerflow cancel <instance> [--binding <id>] [--wait]`: asks the provision, update or bind running on an
// instance or binding to stop and undo its work (docs/design/contracts/operations.md#cancellation-and-compensation).
// The request is a Temporal cancellation of that run, sent with an identity naming the person at the terminal, so
// the operation ends as failed, "cancelled by <user> (brokerflow CLI)". A deprovision or unbind runs to completion
// and is not cancelled; with nothing running, nothing is sent.
import { userInfo } from 'node:os';
import { isCancelledAndUndone } from '../../workflows/messages';
import type { CliContext } from './context';
import { watchStatus } from './status';

/** Exit codes `cancel` uses (client/cli/main.ts EXIT). */
export interface CancelExitCodes {
  ok: number;
  failed: number;
  notFound: number;
  conflict: number;
}

/** An error `cancel` reports with its exit code (client/cli/main.ts turns it into output). */
export class CancelRefused extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

/** The identity a CLI cancellation is recorded with: the OS user, and that the CLI sent it. */
export function cliCancelIdentity(): string {
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    user = process.env.USER ?? process.env.USERNAME;
  }
  return `${user || 'unknown user'} (brokerflow CLI)`;
}

/**
 * Sends the cancellation and prints what was cancelled; with `wait`, follows the operation to its end like
 * `status --watch` and exits 0 only when it ended cancelled with its work undone.
 */
export async function cancelOperation(
  ctx: CliContext,
  ref: { instanceId: string; bindingId?: string },
  opts: { json: boolean; wait: boolean },
  exit: CancelExitCodes,
): Promise<number> {
  const what = ref.bindingId ? `binding ${ref.bindingId} of instance ${ref.instanceId}` : `instance ${ref.instanceId}`;
  const identity = cliCancelIdentity();
  const outcome = await ctx.operations.requestCancel(ref, identity);
  if (outcome.kind === 'nothing-runs') throw new CancelRefused(`no operation runs on ${what}: nothing to cancel`, exit.notFound);
  const { running } = outcome;
  if (outcome.kind === 'not-cancellable') {
    throw new CancelRefused(
      `${running.operation} ${running.operationId} of ${what} cannot be cancelled: a ${running.operation} runs to completion, so that nothing is left half deleted`,
      exit.conflict,
    );
  }
  const requested = {
    cancelRequested: true,
    operation: running.operation,
    operationId: running.operationId,
    instanceId: ref.instanceId,
    ...(ref.bindingId ? { bindingId: ref.bindingId } : {}),
    requestedBy: identity,
  };
  const follow = `brokerflow status ${ref.instanceId}${ref.bindingId ? ` --binding ${ref.bindingId}` : ''} --operation ${running.operationId} --watch`;
  process.stdout.write(
    opts.json
      ? `${JSON.stringify(requested)}\n`
      : `cancellation requested: ${running.operation} ${running.operationId} of ${what} (by ${identity})\n${opts.wait ? '' : `  follow it with: ${follow}\n`}`,
  );
  if (!opts.wait) return exit.ok;
  const final = await watchStatus(ctx, { ...ref, operationId: running.operationId }, { json: opts.json });
  if (!final) return exit.notFound;
  return final.state === 'failed' && isCancelledAndUndone(final.description) ? exit.ok : exit.failed;
}
