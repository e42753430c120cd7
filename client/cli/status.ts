// `brokerflow status [--watch]`: the registry's word on an operation, plus — while it runs — the live progress
// from the workflow (current resource and step) and from Temporal (attempt number, last failure).
import type { OperationStatus } from '../operations';
import type { CliContext } from './context';

/** One snapshot of an operation, as printed (or emitted as a JSON line). */
export interface StatusSnapshot extends Omit<OperationStatus, 'live'> {
  instanceId: string;
  bindingId?: string;
  elapsedMs?: number;
  resource?: string;
  step?: string;
  resourcesDone?: number;
  resourcesTotal?: number;
  attempt?: number;
  maximumAttempts?: number;
  lastFailure?: string;
}

/**
 * How long the CLI waits for a worker to report the step. A person can wait longer than a platform's poll
 * (client/operations.ts STEP_LOOKUP_DEADLINE_MS), so the resource is missing only when no worker answers.
 */
const CLI_STEP_DEADLINE_MS = 2000;

async function snapshot(ctx: CliContext, ref: { instanceId: string; bindingId?: string; operationId?: string }): Promise<StatusSnapshot | undefined> {
  // The same lookup as last_operation's, so `description` is the line a platform sees.
  const s = await ctx.operations.status(ref, { live: { deadlineMs: CLI_STEP_DEADLINE_MS } });
  if (!s) return undefined;
  const { live, ...status } = s;
  const snap: StatusSnapshot = { ...status, instanceId: ref.instanceId, ...(ref.bindingId ? { bindingId: ref.bindingId } : {}) };
  if (!live) return snap;
  if (live.startedAt !== undefined) snap.elapsedMs = Date.now() - live.startedAt;
  if (live.resource) snap.resource = live.resource;
  if (live.step) snap.step = live.step;
  if (live.resourcesTotal !== undefined) {
    snap.resourcesDone = live.resourcesDone ?? 0;
    snap.resourcesTotal = live.resourcesTotal;
  }
  if (live.attempt !== undefined) snap.attempt = live.attempt;
  if (live.maximumAttempts !== undefined) snap.maximumAttempts = live.maximumAttempts;
  if (live.lastFailure) snap.lastFailure = live.lastFailure;
  return snap;
}

function line(s: StatusSnapshot): string {
  const parts = [`${s.state}`, `${s.operation} ${s.operationId}`];
  if (s.elapsedMs !== undefined) parts.unshift(`[${(s.elapsedMs / 1000).toFixed(1)}s]`);
  if (s.resourcesTotal) parts.push(`resource ${Math.min((s.resourcesDone ?? 0) + 1, s.resourcesTotal)}/${s.resourcesTotal}`);
  // While it runs: the resource, step, attempt and last error, as last_operation says them; else why it failed.
  if (s.description) parts.push(s.description);
  if (s.gone) parts.push('(deleted)');
  return parts.join(' · ');
}

/** Prints the current state once. */
export async function currentStatus(
  ctx: CliContext,
  ref: { instanceId: string; bindingId?: string; operationId?: string },
  opts: { json: boolean; extra?: (s: StatusSnapshot) => Promise<{ json: Record<string, unknown>; text: string } | undefined> },
): Promise<StatusSnapshot | undefined> {
  const s = await snapshot(ctx, ref);
  if (!s) return s;
  // `extra`: more about the entry (a binding's credentials), in the same JSON line, or as lines after it.
  const more = opts.extra ? await opts.extra(s) : undefined;
  process.stdout.write(opts.json ? `${JSON.stringify({ ...s, ...(more?.json ?? {}) })}\n` : `${line(s)}${more ? `\n${more.text}` : ''}\n`);
  return s;
}

/** Follows an operation until it ends, printing each change (one JSON object per line with --json). */
export async function watchStatus(
  ctx: CliContext,
  ref: { instanceId: string; bindingId?: string; operationId?: string },
  opts: { json: boolean; intervalMs?: number },
): Promise<StatusSnapshot | undefined> {
  let last = '';
  for (;;) {
    const s = await snapshot(ctx, ref);
    if (!s) return undefined;
    const text = opts.json ? JSON.stringify({ ...s, elapsedMs: undefined }) : line({ ...s, elapsedMs: undefined });
    if (text !== last) {
      process.stdout.write(opts.json ? `${JSON.stringify(s)}\n` : `${line(s)}\n`);
      last = text;
    }
    if (s.state !== 'in progress') return s;
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 500));
  }
}
