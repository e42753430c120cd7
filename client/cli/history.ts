// `brokerflow history <instance> [--binding <id>]`: the instance's audit trail from the registry (no Temporal
// needed): who asked for each operation, when it was accepted, what it changed, how it ended and how long it took
// (docs/design/contracts/registry.md#audit-trail).
import type { Catalog } from '../../config/catalog';
import type { Registry } from '../../adapters/registry';
import type { AuditChanges, AuditRecord, RequestOrigin } from '../../domain/audit';
import type { OperationType } from '../../domain/operations';

/** One operation of the trail, as `history --json` prints it. */
export interface HistoryItem {
  operation: OperationType;
  operationId: string;
  bindingId?: string;
  /** `<platform>/<user>`, or "unknown". */
  requestedBy: string;
  origin?: RequestOrigin;
  acceptedAt: string;
  changes: AuditChanges;
  /** `unknown`: the operation's run ended without recording its end (a later operation on the entry followed). */
  state: 'in progress' | 'succeeded' | 'failed' | 'unknown';
  description?: string;
  completedAt?: string;
  durationMs?: number;
}

/** The trail of an instance (or of one of its bindings), oldest first; undefined when nothing is known of it. */
export async function readHistory(registry: Registry, ref: { instanceId: string; bindingId?: string }): Promise<HistoryItem[] | undefined> {
  const trail = await registry.audit.read(ref.instanceId);
  if (!trail) {
    // An instance recorded before the audit trail existed has an empty history; one never recorded has none.
    return (await registry.readOperation('service-instance', ref.instanceId)) ? [] : undefined;
  }
  const records = ref.bindingId ? trail.filter((r) => r.bindingId === ref.bindingId) : trail;
  if (ref.bindingId && records.length === 0) {
    const binding = await registry.readOperation('service-binding', ref.bindingId, { instanceId: ref.instanceId });
    return binding && (binding.instanceId === undefined || binding.instanceId === ref.instanceId) ? [] : undefined;
  }
  const items: HistoryItem[] = [];
  for (const r of records) items.push(await itemOf(registry, ref.instanceId, r, trail.slice(trail.indexOf(r) + 1)));
  return items;
}

async function itemOf(registry: Registry, instanceId: string, r: AuditRecord, later: AuditRecord[]): Promise<HistoryItem> {
  const base = {
    operation: r.operation,
    operationId: r.operationId,
    ...(r.bindingId ? { bindingId: r.bindingId } : {}),
    requestedBy: r.requestedBy,
    ...(r.origin ? { origin: r.origin } : {}),
    acceptedAt: r.acceptedAt,
    changes: r.changes,
  };
  if (r.outcome) {
    return { ...base, state: r.outcome.state, ...(r.outcome.description ? { description: r.outcome.description } : {}), completedAt: r.outcome.completedAt, durationMs: r.outcome.durationMs };
  }
  // No end in the trail: the entry's operation record may know it (a trail write that was lost), or a later
  // operation on the same entry shows that this one's run ended without recording an end.
  const recorded = r.bindingId
    ? await registry.readOperation('service-binding', r.bindingId, { instanceId })
    : await registry.readOperation('service-instance', instanceId);
  if (recorded?.operationId === r.operationId) {
    return { ...base, state: recorded.state, ...(recorded.description ? { description: recorded.description } : {}) };
  }
  if (later.some((l) => (l.bindingId ?? '') === (r.bindingId ?? ''))) return { ...base, state: 'unknown', description: 'no end was recorded for this operation' };
  return { ...base, state: 'in progress' };
}

/** "plan standard -> large; version 1.0.0 -> 2.0.0; parameters +a ~b -c", with plan names from the catalog. */
export function describeChanges(c: AuditChanges, catalog?: Catalog): string {
  const planName = (id: string | undefined) => {
    if (id === undefined) return '-';
    for (const s of catalog?.services ?? []) {
      const p = s.plans.find((x) => x.id === id);
      if (p) return p.name;
    }
    return id;
  };
  const fromTo = (v: { from?: string; to?: string }, name: (x: string | undefined) => string) => (v.from === undefined ? name(v.to) : `${name(v.from)} -> ${name(v.to)}`);
  const parts: string[] = [];
  if (c.plan) parts.push(`plan ${fromTo(c.plan, planName)}`);
  if (c.maintenanceVersion) parts.push(`version ${fromTo(c.maintenanceVersion, (x) => x ?? '-')}`);
  if (c.parameters) {
    const p = c.parameters;
    parts.push(`parameters ${[...p.added.map((k) => `+${k}`), ...p.changed.map((k) => `~${k}`), ...p.removed.map((k) => `-${k}`)].join(' ')}`);
  }
  return parts.length ? parts.join('; ') : '-';
}

function duration(ms: number | undefined): string {
  if (ms === undefined) return '-';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** The trail as a table: when, operation, who, what changed, outcome, duration; a failure's reason below its row. */
export function formatHistory(items: HistoryItem[], catalog?: Catalog): string {
  if (items.length === 0) return 'no operations recorded';
  const header = ['WHEN', 'OPERATION', 'WHO', 'WHAT CHANGED', 'OUTCOME', 'DURATION'];
  const rows = items.map((i) => [
    i.acceptedAt,
    i.bindingId ? `${i.operation} ${i.bindingId}` : i.operation,
    i.requestedBy,
    describeChanges(i.changes, catalog),
    i.state,
    duration(i.durationMs),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) => cells.map((v, c) => (c === cells.length - 1 ? v : v.padEnd(widths[c]!))).join('  ');
  const out = [line(header)];
  rows.forEach((r, n) => {
    out.push(line(r));
    const d = items[n]!.description;
    if (d && items[n]!.state !== 'succeeded') out.push(`    ${d}`);
  });
  return out.join('\n');
}
