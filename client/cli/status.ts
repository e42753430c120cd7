// `brokerflow status [--watch]`: the registry's word on an operation, plus — while it runs — the live progress
// from the workflow (current resource and step) and from Temporal (attempt number, last failure).
import type { OperationStatus } from '../operations';
import { instanceWorkflowId, progressQuery, type OperationProgress } from '../../workflows/messages';
import type { CliContext } from './context';

/** One snapshot of an operation, as printed (or emitted as a JSON line). */
export interface StatusSnapshot extends OperationStatus {
  instanceId: string;
  bindingId?: string;
  elapsedMs?: number;
  resource?: string;
  step?: string;
  resourcesDone?: number;
  resourcesTotal?: number;
  attempt?: number;
  lastFailure?: string;
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (t = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

async function snapshot(ctx: CliContext, ref: { instanceId: string; bindingId?: string; operationId?: string }): Promise<StatusSnapshot | undefined> {
  const s = await ctx.operations.status(ref);
  if (!s) return undefined;
  const snap: StatusSnapshot = { ...s, instanceId: ref.instanceId, ...(ref.bindingId ? { bindingId: ref.bindingId } : {}) };
  if (s.state !== 'in progress') return snap;
  const handle = ctx.client.workflow.getHandle(instanceWorkflowId(ref.instanceId));
  // The query needs a worker; without one the registry's state is still the answer.
  const progress: OperationProgress | undefined = await withTimeout(handle.query(progressQuery).catch(() => undefined), 2000);
  if (progress && progress.operationId === s.operationId) {
    snap.elapsedMs = Date.now() - progress.startedAt;
    if (progress.reconcile.resource) snap.resource = progress.reconcile.resource;
    if (progress.reconcile.step) snap.step = progress.reconcile.step;
    snap.resourcesDone = progress.reconcile.done;
    snap.resourcesTotal = progress.reconcile.total;
  }
  const d = await handle.describe().catch(() => undefined);
  const pending = d?.raw.pendingActivities?.[0];
  if (pending) {
    snap.attempt = pending.attempt ?? 1;
    const failure = pending.lastFailure?.message;
    if (failure) snap.lastFailure = failure;
  }
  return snap;
}

function line(s: StatusSnapshot): string {
  const parts = [`${s.state}`, `${s.operation} ${s.operationId}`];
  if (s.elapsedMs !== undefined) parts.unshift(`[${(s.elapsedMs / 1000).toFixed(1)}s]`);
  if (s.resource) parts.push(`resource ${s.resource}${s.resourcesTotal ? ` (${(s.resourcesDone ?? 0) + 1}/${s.resourcesTotal})` : ''}: ${s.step ?? ''}`);
  if (s.attempt && s.attempt > 1) parts.push(`attempt ${s.attempt}${s.lastFailure ? ` after: ${s.lastFailure}` : ''}`);
  if (s.description) parts.push(s.description);
  if (s.gone) parts.push('(deleted)');
  return parts.join(' · ');
}

/** Prints the current state once. */
export async function currentStatus(ctx: CliContext, ref: { instanceId: string; bindingId?: string; operationId?: string }, opts: { json: boolean }): Promise<StatusSnapshot | undefined> {
  const s = await snapshot(ctx, ref);
  if (s) process.stdout.write(opts.json ? `${JSON.stringify(s)}\n` : `${line(s)}\n`);
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
