// The audit trail of OSB operations: who asked, when the broker accepted it, what it changes and how it ended.
// Plain data and pure rules shared by the broker (which records the acceptance), the operation activities (which
// record the end) and the CLI (`brokerflow history`). Parameters may hold secrets, so a record names the parameters
// that change and never holds a value (docs/design/contracts/registry.md#audit-trail).
import type { OperationState, OperationType } from './operations';

/** Who asked for an operation: the platform and its user, from X-Broker-API-Originating-Identity (or the CLI). */
export interface RequestOrigin {
  platform: string;
  user: string;
}

/** What a record says about a request that named nobody. */
export const UNKNOWN_REQUESTER = 'unknown';

/** `<platform>/<user>`: how a requester is shown, recorded and searched (`OriginatingUser`); "unknown" for nobody. */
export function requesterLabel(origin: RequestOrigin | undefined): string {
  return origin ? `${origin.platform}/${origin.user}` : UNKNOWN_REQUESTER;
}

/** The parameters an operation adds, removes or changes, by name (dotted path into nested objects), never by value. */
export interface ParametersDiff {
  added: string[];
  removed: string[];
  changed: string[];
}

/** What an operation changes: plan and maintenance version from -> to, and the parameters by name. */
export interface AuditChanges {
  plan?: { from?: string; to?: string };
  maintenanceVersion?: { from?: string; to?: string };
  parameters?: ParametersDiff;
}

/** One operation in an instance's audit trail. */
export interface AuditRecord {
  operation: OperationType;
  operationId: string;
  /** The binding of a bind or unbind. */
  bindingId?: string;
  /** `<platform>/<user>`, or "unknown". */
  requestedBy: string;
  origin?: RequestOrigin;
  /** When the broker accepted the request (ISO 8601). */
  acceptedAt: string;
  changes: AuditChanges;
  /** How it ended; absent while it runs. */
  outcome?: AuditOutcome;
}

/** How an operation ended, and how long it took from its acceptance to its recorded end. */
export interface AuditOutcome {
  state: Exclude<OperationState, 'in progress'>;
  /** Why it failed (the text last_operation reports), or a note on a success. */
  description?: string;
  completedAt: string;
  durationMs: number;
}

/** How many records an instance's trail keeps (its own operations and its bindings' together); older ones drop off. */
export const MAX_AUDIT_RECORDS = 100;
/** Bounds on a parameters diff: names per list, characters per name, depth of nested objects followed. */
const MAX_NAMES = 50;
const MAX_NAME_LENGTH = 120;
const MAX_DEPTH = 4;
const MAX_DESCRIPTION = 1000;

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isObject(v)) {
    return `{${Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

/**
 * The names of the parameters that differ between `before` and `after`: keys only in `after` are added, keys only in
 * `before` removed, keys in both with another value changed. Nested objects are followed (`db.user`) a few levels
 * deep; anything else (arrays, values) counts as one value. Values never leave this function.
 */
export function parametersDiff(before: Json, after: Json): ParametersDiff {
  const diff: ParametersDiff = { added: [], removed: [], changed: [] };
  const walk = (a: Json, b: Json, prefix: string, depth: number) => {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      const path = prefix ? `${prefix}.${k}` : k;
      const inA = a[k] !== undefined;
      const inB = b[k] !== undefined;
      if (!inA) diff.added.push(path);
      else if (!inB) diff.removed.push(path);
      else if (isObject(a[k]) && isObject(b[k]) && depth < MAX_DEPTH) walk(a[k], b[k], path, depth + 1);
      else if (canonical(a[k]) !== canonical(b[k])) diff.changed.push(path);
    }
  };
  walk(before, after, '', 1);
  const bound = (names: string[]) => {
    const cut = names.map((n) => (n.length > MAX_NAME_LENGTH ? `${n.slice(0, MAX_NAME_LENGTH - 1)}…` : n));
    return cut.length > MAX_NAMES ? [...cut.slice(0, MAX_NAMES), `…and ${cut.length - MAX_NAMES} more`] : cut;
  };
  return { added: bound(diff.added), removed: bound(diff.removed), changed: bound(diff.changed) };
}

/** What an instance has applied, as far as the audit trail compares it. */
export interface AppliedState {
  planId?: string;
  maintenanceVersion?: string;
  parameters?: Json;
}

/** The request an audit record is made from (an operation input, without anything the trail must not hold). */
export interface AuditedRequest {
  operation: OperationType;
  operationId: string;
  bindingId?: string;
  planId: string;
  maintenanceVersion?: string;
  parameters: Json;
  requestedBy?: RequestOrigin;
  acceptedAt?: string;
}

/**
 * What an operation changes. A provision sets plan, version and parameters; an update changes what differs from
 * what is `applied` (its parameters are already merged over the applied ones); a bind sets the binding's parameters.
 * A deprovision or unbind changes no setting: the operation says what happens.
 */
export function auditChanges(req: AuditedRequest, applied: AppliedState = {}): AuditChanges {
  const changes: AuditChanges = {};
  const diff = (before: Json) => {
    const d = parametersDiff(before, req.parameters);
    if (d.added.length + d.removed.length + d.changed.length > 0) changes.parameters = d;
  };
  switch (req.operation) {
    case 'provision':
      changes.plan = { to: req.planId };
      if (req.maintenanceVersion) changes.maintenanceVersion = { to: req.maintenanceVersion };
      diff({});
      break;
    case 'update':
      if (applied.planId !== req.planId) changes.plan = { ...(applied.planId ? { from: applied.planId } : {}), to: req.planId };
      if (applied.maintenanceVersion !== req.maintenanceVersion) {
        changes.maintenanceVersion = {
          ...(applied.maintenanceVersion ? { from: applied.maintenanceVersion } : {}),
          ...(req.maintenanceVersion ? { to: req.maintenanceVersion } : {}),
        };
      }
      diff(applied.parameters ?? {});
      break;
    case 'bind':
      diff({});
      break;
    case 'deprovision':
    case 'unbind':
      break;
  }
  return changes;
}

/** The record of an accepted request: who, when, what it changes; its outcome comes later. */
export function acceptanceRecord(req: AuditedRequest, applied: AppliedState | undefined, now: Date): AuditRecord {
  return {
    operation: req.operation,
    operationId: req.operationId,
    ...(req.bindingId ? { bindingId: req.bindingId } : {}),
    requestedBy: requesterLabel(req.requestedBy),
    ...(req.requestedBy ? { origin: { platform: req.requestedBy.platform, user: req.requestedBy.user } } : {}),
    acceptedAt: req.acceptedAt ?? now.toISOString(),
    changes: auditChanges(req, applied),
  };
}

/** The trail with `record` appended, unless its operation is recorded already; the oldest records beyond the bound drop. */
export function withRecord(trail: readonly AuditRecord[], record: AuditRecord, max = MAX_AUDIT_RECORDS): AuditRecord[] | undefined {
  if (trail.some((r) => r.operationId === record.operationId)) return undefined;
  return [...trail, record].slice(-max);
}

/**
 * The trail with the end of operation `operationId` recorded (undefined: nothing to change, because the operation
 * is not in the trail or its end is recorded already). The duration runs from the acceptance to `completedAt`.
 */
export function withOutcome(trail: readonly AuditRecord[], operationId: string, end: { error?: string; note?: string; completedAt: Date }): AuditRecord[] | undefined {
  const i = trail.findIndex((r) => r.operationId === operationId);
  if (i < 0 || trail[i]!.outcome) return undefined;
  const rec = trail[i]!;
  const description = end.error ?? end.note;
  const outcome: AuditOutcome = {
    state: end.error === undefined ? 'succeeded' : 'failed',
    ...(description ? { description: description.length > MAX_DESCRIPTION ? `${description.slice(0, MAX_DESCRIPTION - 1)}…` : description } : {}),
    completedAt: end.completedAt.toISOString(),
    durationMs: Math.max(0, end.completedAt.getTime() - Date.parse(rec.acceptedAt)),
  };
  const next = [...trail];
  next[i] = { ...rec, outcome };
  return next;
}
