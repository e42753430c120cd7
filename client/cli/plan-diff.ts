// What a dry run shows per resource: the action its patch would take and the fields that change, computed from the
// current state, the desired state and the patch (pure, no I/O), with secrets masked, and printed for humans.
import type { Patch, ResourceState } from '../../domain/reconcile';
import { secretKeyName } from '../../platform/logging';

/** What reconciliation would do to one resource. */
export type ResourceAction = 'create' | 'update' | 'delete' | 'unchanged' | 'canceled';

/** One field a patch sets, changes or removes; `from` absent = added, `to` absent = removed. */
export interface FieldChange {
  path: string;
  from?: unknown;
  to?: unknown;
  /** The values are secrets and shown as {@link MASK}. */
  masked?: true;
}

/** One resource of the preview, as `--json` prints it. */
export interface ResourcePreview {
  name: string;
  driver: string;
  /** `unchanged` when the patch is empty; `canceled` when a driver skipped the resource (see `reason`). */
  action: ResourceAction;
  /** The patch parts that would be applied, in order (create, delete, update); more than one is rare. */
  parts: Array<'create' | 'delete' | 'update'>;
  changes: FieldChange[];
  /** What the resource is, in a few words (the Kubernetes object, the etcd prefix). */
  target?: string;
  reason?: string;
}

/** What a masked value is printed as. */
export const MASK = '***';

/** Key names whose (non-boolean) values are secrets wherever they appear (the same names logs and error texts redact). */
const SECRET_NAME = secretKeyName;

type Segment = string | number;

/** `a.b["x.y"][0]`: dotted where a key is an identifier, bracketed otherwise. */
export function formatPath(path: Segment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every leaf of a JSON value with its path; empty objects and arrays are leaves. */
export function leaves(value: unknown, prefix: Segment[] = []): Array<{ path: Segment[]; value: unknown }> {
  if (Array.isArray(value) && value.length > 0) return value.flatMap((v, i) => leaves(v, [...prefix, i]));
  if (isObject(value) && Object.keys(value).length > 0) {
    return Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .flatMap(([k, v]) => leaves(v, [...prefix, k]));
  }
  return [{ path: prefix, value }];
}

function valueAt(value: unknown, path: Segment[]): unknown {
  let v: unknown = value;
  for (const seg of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Whether the value at `path` of a state is a secret: anything under a key named like one (password, token,
 * secret, ...; booleans such as `secretExists` are not), and in a Kubernetes Secret its data and the hash of its
 * manifest (a hash of a short password can be searched for).
 */
export function isSecretPath(path: Segment[], value: unknown, state: ResourceState): boolean {
  if (typeof value !== 'boolean' && path.some((seg) => typeof seg === 'string' && SECRET_NAME.test(seg))) return true;
  const kind = isObject(state) ? (state.kind ?? (isObject(state.manifest) ? state.manifest.kind : undefined)) : undefined;
  if (kind !== 'Secret') return false;
  const [first, second] = path;
  if (first === 'hash') return true;
  if (first === 'manifest' && (second === 'data' || second === 'stringData')) return true;
  return path.some((seg) => typeof seg === 'string' && /applied-hash$/.test(seg));
}

/**
 * The fields a patch part sets or removes, against the current state: a create lists every field it sets, a
 * delete every field it removes, an update the fields whose value differs from the current state's.
 */
export function fieldChanges(part: 'create' | 'delete' | 'update', current: ResourceState, state: ResourceState): FieldChange[] {
  const out: FieldChange[] = [];
  for (const leaf of leaves(state)) {
    if (leaf.path.length === 0) continue;
    const path = formatPath(leaf.path);
    if (part === 'delete') {
      out.push(masked({ path, from: leaf.value }, leaf.path, state));
      continue;
    }
    const before = part === 'create' ? undefined : valueAt(current, leaf.path);
    if (part === 'update' && sameJson(before, leaf.value)) continue;
    out.push(masked({ path, ...(before !== undefined ? { from: before } : {}), to: leaf.value }, leaf.path, state, current));
  }
  return out;
}

function masked(change: FieldChange, path: Segment[], ...states: ResourceState[]): FieldChange {
  const secret = states.some((s) => isSecretPath(path, change.to ?? change.from, s));
  if (!secret) return change;
  return {
    path: change.path,
    ...('from' in change ? { from: MASK } : {}),
    ...('to' in change ? { to: MASK } : {}),
    masked: true,
  };
}

/**
 * The preview of one resource from what its steps answered: the patch (null when a driver canceled the resource
 * before it) and the parts reconciliation would apply, in order.
 */
export function previewResource(
  resource: { name: string; driver: string },
  steps: { current: ResourceState; desired: ResourceState; patch: Patch | null; applied: Array<{ part: 'create' | 'delete' | 'update'; state: ResourceState }>; canceled?: string },
): ResourcePreview {
  const parts = steps.applied.map((a) => a.part);
  const changes = steps.applied.flatMap((a) => fieldChanges(a.part, steps.current, a.state));
  const target = describeTarget(steps.desired ?? steps.current);
  return {
    name: resource.name,
    driver: resource.driver,
    action: steps.canceled !== undefined ? 'canceled' : parts.length === 0 ? 'unchanged' : parts.length === 1 ? parts[0]! : 'update',
    parts,
    changes,
    ...(target ? { target } : {}),
    ...(steps.canceled !== undefined ? { reason: steps.canceled } : {}),
  };
}

/** A few words naming what a state is about: a Kubernetes object, an etcd prefix or user. */
function describeTarget(state: ResourceState): string | undefined {
  if (!isObject(state)) return undefined;
  if (typeof state.kind === 'string' && typeof state.name === 'string') {
    return `${state.kind} ${typeof state.namespace === 'string' ? `${state.namespace}/` : ''}${state.name}`;
  }
  if (typeof state.user === 'string') return `user ${state.user}`;
  if (typeof state.prefix === 'string') return `prefix ${state.prefix}`;
  return undefined;
}

const SIGN: Record<ResourceAction, string> = { create: '+', update: '~', delete: '-', unchanged: '=', canceled: '!' };

function show(v: unknown): string {
  return v === MASK ? MASK : JSON.stringify(v);
}

/** The preview's resources as readable lines: one per resource, then one per changed field. */
export function formatResources(resources: ResourcePreview[]): string[] {
  const lines: string[] = [];
  for (const r of resources) {
    const what = `${r.name} (${r.driver}${r.target ? `: ${r.target}` : ''})`;
    const action = r.action === 'canceled' ? `canceled by its driver: ${r.reason ?? ''}` : r.parts.length > 1 ? r.parts.join(', then ') : r.action;
    lines.push(`${SIGN[r.action]} ${what}: ${action}`);
    for (const c of r.changes) {
      const value = !('from' in c) ? show(c.to) : !('to' in c) ? `${show(c.from)} (removed)` : `${show(c.from)} -> ${show(c.to)}`;
      lines.push(`    ${c.path}: ${value}`);
    }
  }
  return lines;
}
