// Long on purpose: one driver, whose spec checks, ownership marks and API calls all serve the same four verbs.
// The `kubernetes` resource driver: any namespaced object from a rendered manifest, written by server-side apply
// under the field manager `brokerflow`, marked as ours by labels and annotations, optionally waited for until a
// readiness condition holds.
import { createHash } from 'node:crypto';
import { setTimeout as sleepFor } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import type { KubeConfig, KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { BrokerflowError, ConflictError, NotFoundError, PermissionError, UnavailableError, ValidationError } from '../errors';
import type { Patch, ResourceState } from '../../domain/reconcile';
import { isRefusal, refusalIsFinal } from '../kubernetes/refusal';
import type { DriverContext, ResourceDriver } from './types';

// @kubernetes/client-node is ESM-only and this package is CommonJS: its values are loaded once with import().
type K8s = typeof import('@kubernetes/client-node', { with: { 'resolution-mode': 'import' } });
let k8sModule: Promise<K8s> | undefined;

/** Loads @kubernetes/client-node (ESM) from CommonJS; the module is loaded once and shared. */
export function loadKubernetesClient(): Promise<K8s> {
  return (k8sModule ??= import('@kubernetes/client-node'));
}

/** Label every object brokerflow writes carries (the Kubernetes recommended label). */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
/** Value of {@link MANAGED_BY_LABEL}. */
export const MANAGED_BY_VALUE = 'brokerflow';
/** Label (a label-safe form of the ID, see {@link labelValueForId}) and annotation (the full ID). */
export const INSTANCE_ID_KEY = 'brokerflow.io/instance-id';
/** Label (a label-safe form of the ID) and annotation (the full ID); only on objects of a binding. */
export const BINDING_ID_KEY = 'brokerflow.io/binding-id';
/** Annotation: SHA-256 of the manifest brokerflow last applied; a different desired hash means an update. */
export const APPLIED_HASH_ANNOTATION = 'brokerflow.io/applied-hash';

const DEFAULT_FIELD_MANAGER = 'brokerflow';
const DEFAULT_READINESS_TIMEOUT_S = 60;
const MAX_READINESS_TIMEOUT_S = 3600;
const MAX_ID_LENGTH = 255;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const API_VERSION = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?v[0-9]+((alpha|beta)[0-9]+)?$/;
const KIND = /^[A-Za-z][A-Za-z0-9]{0,62}$/;
// Set by the server; a manifest that carries them was copied from a live object and would fight the server.
const SERVER_FIELDS = ['uid', 'resourceVersion', 'managedFields', 'creationTimestamp', 'deletionTimestamp', 'generation', 'selfLink', 'generateName'];

/** When an object counts as ready after create or update. With both fields, both must hold. */
export interface KubernetesReadiness {
  /** A `status.conditions[]` type that must have status `True`, e.g. `Available`. */
  condition?: string;
  /** A path into the object, e.g. `status.readyReplicas` or `data.ready` (also `{.a.b[0]}` and `['x.y']`). */
  jsonPath?: string;
  /** The value the path must hold; without it any value except absent, null, false and `""` counts. */
  equals?: unknown;
  /** How long one apply step waits before failing with a retryable UnavailableError; default 60. */
  timeoutSeconds?: number;
}

/** The owner a created object is garbage-collected with (same namespace, or cluster-scoped). */
export interface KubernetesOwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

/** Rendered spec of a `kubernetes` resource. */
export interface KubernetesObjectSpec {
  /** The object; `metadata.namespace` defaults to the reconciled object's namespace. */
  manifest: KubernetesObject & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } };
  readiness?: KubernetesReadiness;
  ownerReference?: KubernetesOwnerReference;
}

/** Dependencies of {@link KubernetesObjectDriver}. */
export interface KubernetesObjectDriverOptions {
  /** A client from `KubernetesObjectApi.makeApiClient(kubeConfig)` (see {@link loadKubernetesClient}). */
  objects: KubernetesObjectApi;
  /**
   * The kubeconfig `objects` was made from: asked whether the API server is ready when it refuses a call, since a
   * starting server refuses what it allows a moment later (adapters/kubernetes/refusal.ts). Without it every
   * refusal is final.
   */
  kubeConfig?: KubeConfig;
  /** Field manager of every apply; default `brokerflow`. */
  fieldManager?: string;
  /** Time between readiness checks; default 1000 ms. */
  readinessPollMs?: number;
}

/** Identifies one object. */
interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
}

/** Desired state: the manifest exactly as it will be applied. */
interface Desired extends ObjectRef {
  manifest: Record<string, unknown>;
  hash: string;
  readiness?: Required<Pick<KubernetesReadiness, 'timeoutSeconds'>> & Omit<KubernetesReadiness, 'timeoutSeconds'>;
}

type Path = Array<string | number>;

/** An ID as a label value: itself when it is one (≤ 63, alphanumeric ends), else `sha256-` and 56 hex digits. */
export function labelValueForId(id: string): string {
  if (id.length <= 63 && LABEL_VALUE.test(id)) return id;
  return `sha256-${createHash('sha256').update(id, 'utf8').digest('hex').slice(0, 56)}`;
}

function validateId(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new ValidationError(`${field} must be a non-empty string`, field);
  if (value.length > MAX_ID_LENGTH) throw new ValidationError(`${field} is longer than ${MAX_ID_LENGTH} characters`, field);
  if (CONTROL.test(value)) throw new ValidationError(`${field} contains a control character`, field);
  return value;
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationError(`${what} must be an object`, what);
  return value as Record<string, unknown>;
}

function str(value: unknown, field: string, pattern: RegExp, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max || !pattern.test(value)) {
    throw new ValidationError(`${field} is not valid (${JSON.stringify(String(value).slice(0, 80))})`, field);
  }
  return value;
}

/** An object name: a path segment (the server checks the kind's own rule). */
function objectName(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 253) {
    throw new ValidationError(`${field} must be 1 to 253 characters`, field);
  }
  if (CONTROL.test(value) || value.includes('/') || value.includes('%') || value === '.' || value === '..') {
    throw new ValidationError(`${field} must not contain "/", "%" or control characters, nor be "." or ".."`, field);
  }
  return value;
}

function parseJsonPath(path: unknown): Path {
  if (typeof path !== 'string' || path.length === 0 || path.length > 256 || CONTROL.test(path)) {
    throw new ValidationError('readiness.jsonPath must be a non-empty path', 'readiness.jsonPath');
  }
  let p = path.trim();
  if (p.startsWith('{') && p.endsWith('}')) p = p.slice(1, -1);
  if (p.startsWith('$')) p = p.slice(1);
  const token = /\.?([A-Za-z0-9_-]+)|\[(\d+)\]|\[['"]([^'"]+)['"]\]/y;
  const out: Path = [];
  while (token.lastIndex < p.length) {
    const m = token.exec(p);
    if (!m) throw new ValidationError(`readiness.jsonPath ${JSON.stringify(path)} is not a simple path`, 'readiness.jsonPath');
    out.push(m[2] !== undefined ? Number(m[2]) : (m[1] ?? m[3])!);
  }
  if (out.length === 0) throw new ValidationError('readiness.jsonPath names no field', 'readiness.jsonPath');
  return out;
}

function valueAt(obj: unknown, path: Path): unknown {
  let v: unknown = obj;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

/** JSON with sorted keys, so equal manifests hash equally whatever the template's key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The live value at every path `shape` sets; arrays and scalars whole. Absent paths stay absent. */
function valuesAtPaths(live: unknown, shape: unknown): unknown {
  if (!isPlainObject(shape) || !isPlainObject(live)) return live;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(shape)) {
    if (live[key] !== undefined) out[key] = valuesAtPaths(live[key], shape[key]);
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * What the live object holds at the fields the desired manifest sets, so a current state compares field by field
 * with the desired one (dry runs show what an apply would change). A Secret's data never goes into a state.
 */
function liveFields(live: KubernetesObject, desired: Desired): Record<string, unknown> {
  const fields = valuesAtPaths(live, desired.manifest) as Record<string, unknown>;
  if (desired.kind === 'Secret') {
    delete fields.data;
    delete fields.stringData;
  }
  return fields;
}

function describe(ref: ObjectRef): string {
  return `${ref.kind} ${ref.namespace}/${ref.name}`;
}

function stringMap(value: unknown, field: string): Record<string, string> {
  if (value === undefined) return {};
  const m = record(value, field);
  for (const [k, v] of Object.entries(m)) {
    if (typeof v !== 'string') throw new ValidationError(`${field}.${k} must be a string`, field);
  }
  return { ...(m as Record<string, string>) };
}

function parseReadiness(value: unknown): Desired['readiness'] {
  if (value === undefined || value === null) return undefined;
  const r = record(value, 'readiness');
  if (r.condition === undefined && r.jsonPath === undefined) {
    throw new ValidationError('readiness needs a condition or a jsonPath', 'readiness');
  }
  const out: NonNullable<Desired['readiness']> = { timeoutSeconds: DEFAULT_READINESS_TIMEOUT_S };
  if (r.condition !== undefined) out.condition = str(r.condition, 'readiness.condition', /^[A-Za-z0-9][-A-Za-z0-9_.]*$/, 128);
  if (r.jsonPath !== undefined) {
    parseJsonPath(r.jsonPath);
    out.jsonPath = r.jsonPath as string;
    if (r.equals !== undefined) out.equals = r.equals;
  } else if (r.equals !== undefined) {
    throw new ValidationError('readiness.equals needs a jsonPath', 'readiness.equals');
  }
  if (r.timeoutSeconds !== undefined) {
    const t = r.timeoutSeconds;
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0 || t > MAX_READINESS_TIMEOUT_S) {
      throw new ValidationError(`readiness.timeoutSeconds must be in (0, ${MAX_READINESS_TIMEOUT_S}]`, 'readiness.timeoutSeconds');
    }
    out.timeoutSeconds = t;
  }
  return out;
}

/** Whether the live object satisfies the readiness rule (and its status describes the current generation). */
export function isReady(obj: KubernetesObject, readiness: KubernetesReadiness): boolean {
  const o = obj as Record<string, unknown>;
  const status = o.status as Record<string, unknown> | undefined;
  const generation = obj.metadata?.generation;
  if (typeof status?.observedGeneration === 'number' && typeof generation === 'number' && status.observedGeneration < generation) {
    return false;
  }
  if (readiness.condition !== undefined) {
    const conditions = Array.isArray(status?.conditions) ? (status.conditions as Array<Record<string, unknown>>) : [];
    if (!conditions.some((c) => c.type === readiness.condition && c.status === 'True')) return false;
  }
  if (readiness.jsonPath !== undefined) {
    const v = valueAt(o, parseJsonPath(readiness.jsonPath));
    if (readiness.equals !== undefined) return isDeepStrictEqual(v, readiness.equals);
    return v !== undefined && v !== null && v !== false && v !== '';
  }
  return true;
}

function parseDesired(state: ResourceState): Desired {
  const s = record(state, 'state');
  const manifest = record(s.manifest, 'state.manifest');
  return {
    apiVersion: str(s.apiVersion, 'apiVersion', API_VERSION, 128),
    kind: str(s.kind, 'kind', KIND, 63),
    namespace: str(s.namespace, 'namespace', DNS_LABEL, 63),
    name: objectName(s.name, 'name'),
    manifest,
    hash: str(s.hash, 'hash', /^[0-9a-f]{64}$/, 64),
    readiness: parseReadiness(s.readiness),
  };
}

function parseRef(state: ResourceState): ObjectRef {
  const s = record(state, 'state');
  return {
    apiVersion: str(s.apiVersion, 'apiVersion', API_VERSION, 128),
    kind: str(s.kind, 'kind', KIND, 63),
    namespace: str(s.namespace, 'namespace', DNS_LABEL, 63),
    name: objectName(s.name, 'name'),
  };
}

function header(ref: ObjectRef): KubernetesObject & { apiVersion: string; kind: string; metadata: { name: string; namespace: string } } {
  return { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } };
}

/**
 * Kubernetes objects (kind `kubernetes`). Create is a POST (so a foreign object is never taken over) followed by a
 * server-side apply; update is a server-side apply with the live resourceVersion as precondition; delete carries
 * the live UID as precondition. Objects lacking our marks, or marked for another instance or binding, are foreign:
 * reported as absent, never changed, and a create over one fails with a ConflictError.
 */
export class KubernetesObjectDriver implements ResourceDriver {
  readonly kind = 'kubernetes';
  private readonly objects: KubernetesObjectApi;
  private readonly fieldManager: string;
  private readonly pollMs: number;
  private readonly kubeConfig: KubeConfig | undefined;

  constructor(opts: KubernetesObjectDriverOptions) {
    if (!opts?.objects) throw new ValidationError('objects (a KubernetesObjectApi) is required', 'objects');
    this.objects = opts.objects;
    this.kubeConfig = opts.kubeConfig;
    this.fieldManager = opts.fieldManager ?? DEFAULT_FIELD_MANAGER;
    if (!/^[\x21-\x7e]{1,128}$/.test(this.fieldManager)) throw new ValidationError('fieldManager must be 1-128 printable characters', 'fieldManager');
    this.pollMs = opts.readinessPollMs ?? 1000;
    if (!Number.isFinite(this.pollMs) || this.pollMs <= 0) throw new ValidationError('readinessPollMs must be positive', 'readinessPollMs');
  }

  /** A driver from a kubeconfig file (or the default: $KUBECONFIG, ~/.kube/config, in-cluster). */
  static async fromKubeconfig(path?: string, opts: Omit<KubernetesObjectDriverOptions, 'objects'> = {}): Promise<KubernetesObjectDriver> {
    const k8s = await loadKubernetesClient();
    const kc = new k8s.KubeConfig();
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
    return new KubernetesObjectDriver({ ...opts, objects: k8s.KubernetesObjectApi.makeApiClient(kc), kubeConfig: kc });
  }

  async getCurrentState(spec: Record<string, unknown>, ctx: DriverContext): Promise<ResourceState> {
    const desired = this.render(spec, ctx);
    const live = await this.read(desired);
    if (!live || !this.owns(live, ctx)) return null;
    const annotations = live.metadata?.annotations ?? {};
    return {
      apiVersion: desired.apiVersion,
      kind: desired.kind,
      namespace: desired.namespace,
      name: desired.name,
      uid: live.metadata?.uid ?? null,
      hash: annotations[APPLIED_HASH_ANNOTATION] ?? null,
      terminating: live.metadata?.deletionTimestamp !== undefined && live.metadata?.deletionTimestamp !== null,
      ...(desired.readiness ? { ready: isReady(live, desired.readiness) } : {}),
      manifest: liveFields(live, desired),
    };
  }

  async getDesiredState(spec: Record<string, unknown>, ctx: DriverContext): Promise<ResourceState> {
    return { ...this.render(spec, ctx) };
  }

  newUpdatePatch(current: ResourceState, desired: ResourceState): Patch {
    if (!desired) return current ? { delete: current } : {};
    if (!current) return { create: desired };
    // Not ready yet is a reason to run the update step: it waits, so an earlier timeout heals on the next pass.
    if (current.hash !== desired.hash || current.terminating === true || (desired.readiness && current.ready === false)) {
      return { update: desired };
    }
    return {};
  }

  newDeletePatch(current: ResourceState): Patch {
    return current ? { delete: current } : {};
  }

  async applyCreateChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    const desired = parseDesired(state);
    this.checkMarks(desired, ctx);
    let resourceVersion: string | undefined;
    try {
      const created = await this.objects.create(structuredClone(desired.manifest) as KubernetesObject, undefined, undefined, this.fieldManager);
      resourceVersion = created.metadata?.resourceVersion;
    } catch (err) {
      if (!(await isStatus(err, 409))) throw await kubeError(this.kubeConfig, 'create', desired, err);
      // Already there: ours from an earlier attempt (go on and apply), or someone else's (never touch it).
      const live = await this.read(desired);
      if (!live) throw new UnavailableError(`${describe(desired)} was deleted while being created; retry`);
      if (!this.owns(live, ctx)) {
        throw new ConflictError(`${describe(desired)} already exists and is not managed by brokerflow for this ${ctx.object.bindingId ? 'binding' : 'instance'}`);
      }
      if (live.metadata?.deletionTimestamp) throw new UnavailableError(`${describe(desired)} is being deleted; retry once it is gone`);
      resourceVersion = live.metadata?.resourceVersion;
    }
    // The apply moves ownership of every field to the Apply entry of our manager, so later applies prune what a
    // new manifest no longer has.
    await this.apply(desired, resourceVersion);
    await this.waitReady(desired, ctx);
  }

  async applyUpdateChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    const desired = parseDesired(state);
    this.checkMarks(desired, ctx);
    const live = await this.read(desired);
    if (!live) {
      // Deleted since the current state was read: level-triggered, so create it.
      await this.applyCreateChange(state, ctx);
      return;
    }
    if (!this.owns(live, ctx)) throw new ConflictError(`${describe(desired)} is not managed by brokerflow for this reconciliation; not updating it`);
    if (live.metadata?.deletionTimestamp) throw new UnavailableError(`${describe(desired)} is being deleted; retry once it is gone`);
    await this.apply(desired, live.metadata?.resourceVersion);
    await this.waitReady(desired, ctx);
  }

  async applyDeleteChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    const ref = parseRef(state);
    const live = await this.read(ref);
    // Absent, or not ours (anymore): nothing of ours to delete.
    if (!live || !this.owns(live, ctx) || live.metadata?.deletionTimestamp) return;
    try {
      await this.objects.delete(header(ref), undefined, undefined, undefined, undefined, 'Background', {
        preconditions: { uid: live.metadata?.uid },
      });
    } catch (err) {
      if (await isStatus(err, 404)) return;
      if (await isStatus(err, 409)) throw new UnavailableError(`${describe(ref)} was replaced while being deleted; retry`);
      throw await kubeError(this.kubeConfig, 'delete', ref, err);
    }
  }

  /** The manifest as it will be applied: namespace filled in, our labels, annotations and owner reference added. */
  private render(spec: Record<string, unknown>, ctx: DriverContext): Desired {
    const s = record(spec, 'spec');
    const manifest = structuredClone(record(s.manifest, 'manifest'));
    const metadata = record(manifest.metadata, 'manifest.metadata');
    const apiVersion = str(manifest.apiVersion, 'manifest.apiVersion', API_VERSION, 128);
    const kind = str(manifest.kind, 'manifest.kind', KIND, 63);
    const name = objectName(metadata.name, 'manifest.metadata.name');
    const namespace = str(metadata.namespace ?? ctx.object.namespace, 'manifest.metadata.namespace', DNS_LABEL, 63);
    for (const f of SERVER_FIELDS) {
      if (metadata[f] !== undefined) throw new ValidationError(`manifest.metadata.${f} is set by the server; remove it`, `manifest.metadata.${f}`);
    }
    if (manifest.status !== undefined) throw new ValidationError('manifest.status is written by controllers, not by brokerflow', 'manifest.status');
    if (metadata.ownerReferences !== undefined) {
      throw new ValidationError('give the owner as spec.ownerReference, not manifest.metadata.ownerReferences', 'manifest.metadata.ownerReferences');
    }
    const instanceId = validateId(ctx.object.instanceId, 'instanceId');
    const bindingId = ctx.object.bindingId === undefined ? undefined : validateId(ctx.object.bindingId, 'bindingId');

    const labels = stringMap(metadata.labels, 'manifest.metadata.labels');
    const annotations = stringMap(metadata.annotations, 'manifest.metadata.annotations');
    for (const k of [INSTANCE_ID_KEY, BINDING_ID_KEY, APPLIED_HASH_ANNOTATION]) {
      delete labels[k];
      delete annotations[k];
    }
    labels[MANAGED_BY_LABEL] = MANAGED_BY_VALUE;
    labels[INSTANCE_ID_KEY] = labelValueForId(instanceId);
    annotations[INSTANCE_ID_KEY] = instanceId;
    if (bindingId !== undefined) {
      labels[BINDING_ID_KEY] = labelValueForId(bindingId);
      annotations[BINDING_ID_KEY] = bindingId;
    }
    metadata.name = name;
    metadata.namespace = namespace;
    metadata.labels = labels;
    metadata.annotations = annotations;
    if (s.ownerReference !== undefined) {
      const o = record(s.ownerReference, 'ownerReference');
      metadata.ownerReferences = [
        {
          apiVersion: str(o.apiVersion, 'ownerReference.apiVersion', API_VERSION, 128),
          kind: str(o.kind, 'ownerReference.kind', KIND, 63),
          name: objectName(o.name, 'ownerReference.name'),
          uid: str(o.uid, 'ownerReference.uid', /^[A-Za-z0-9-]{1,64}$/, 64),
        },
      ];
    }
    manifest.metadata = metadata;
    const hash = createHash('sha256').update(canonical(manifest), 'utf8').digest('hex');
    annotations[APPLIED_HASH_ANNOTATION] = hash;
    const readiness = parseReadiness(s.readiness);
    return { apiVersion, kind, namespace, name, manifest, hash, ...(readiness ? { readiness } : {}) };
  }

  /** Ours: managed by brokerflow, for this instance and (only) this binding. */
  private owns(obj: KubernetesObject, ctx: DriverContext): boolean {
    const labels = obj.metadata?.labels ?? {};
    const annotations = obj.metadata?.annotations ?? {};
    return (
      labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE &&
      annotations[INSTANCE_ID_KEY] === ctx.object.instanceId &&
      annotations[BINDING_ID_KEY] === ctx.object.bindingId
    );
  }

  /** A state from history must carry the marks of the reconciliation running it. */
  private checkMarks(desired: Desired, ctx: DriverContext): void {
    const meta = record(desired.manifest.metadata, 'state.manifest.metadata');
    if (!this.owns({ metadata: meta } as KubernetesObject, ctx)) {
      throw new ValidationError('state was rendered for another instance or binding', 'state');
    }
  }

  private async read(ref: ObjectRef): Promise<KubernetesObject | undefined> {
    try {
      return await this.objects.read(header(ref));
    } catch (err) {
      if (await isStatus(err, 404)) return undefined;
      throw await kubeError(this.kubeConfig, 'read', ref, err);
    }
  }

  private async apply(desired: Desired, resourceVersion: string | undefined): Promise<void> {
    const body = structuredClone(desired.manifest) as KubernetesObject;
    // resourceVersion makes the apply conditional: if the object changed hands since we checked ownership, 409.
    if (resourceVersion) body.metadata = { ...body.metadata, resourceVersion };
    let applied: KubernetesObject;
    try {
      // force: the manifest lists only fields we manage, and drift on them is corrected.
      applied = await this.objects.patch(body, undefined, undefined, this.fieldManager, true, 'application/apply-patch+yaml');
    } catch (err) {
      if (await isStatus(err, 409)) throw new UnavailableError(`${describe(desired)} changed while being applied; retry`);
      throw await kubeError(this.kubeConfig, 'apply', desired, err);
    }
    await this.dropCreateOwnership(desired, applied);
  }

  /**
   * The POST that created the object left an Update entry of our manager co-owning every field it set; while it
   * exists, a field dropped from the manifest would never be pruned. Removing the entry leaves ownership exactly
   * as if the object had been created by apply. Runs after every apply, so an interrupted create heals later.
   */
  private async dropCreateOwnership(ref: ObjectRef, applied: KubernetesObject): Promise<void> {
    const entries = applied.metadata?.managedFields ?? [];
    const keep = entries.filter((e) => !(e.manager === this.fieldManager && e.operation === 'Update' && !e.subresource));
    if (keep.length === entries.length || keep.length === 0) return;
    const patch = {
      ...header(ref),
      metadata: { ...header(ref).metadata, resourceVersion: applied.metadata?.resourceVersion, managedFields: keep },
    };
    try {
      await this.objects.patch(patch, undefined, undefined, this.fieldManager, undefined, 'application/merge-patch+json');
    } catch (err) {
      if (await isStatus(err, 409)) throw new UnavailableError(`${describe(ref)} changed while its field ownership was settled; retry`);
      throw await kubeError(this.kubeConfig, 'settle field ownership of', ref, err);
    }
  }

  private async waitReady(desired: Desired, ctx: DriverContext): Promise<void> {
    const readiness = desired.readiness;
    if (!readiness) return;
    const deadline = Date.now() + readiness.timeoutSeconds * 1000;
    for (;;) {
      throwIfAborted(ctx.signal);
      ctx.heartbeat({ waitingFor: 'readiness', object: describe(desired) });
      const live = await this.read(desired);
      if (!live) throw new UnavailableError(`${describe(desired)} disappeared while waiting for it to be ready; retry`);
      if (isReady(live, readiness)) return;
      const left = deadline - Date.now();
      if (left <= 0) throw new UnavailableError(`${describe(desired)} not ready yet after ${readiness.timeoutSeconds} s`);
      try {
        await sleepFor(Math.min(this.pollMs, left), undefined, { signal: ctx.signal });
      } catch {
        throwIfAborted(ctx.signal);
      }
    }
  }
}

function throwIfAborted(signal: AbortSignal): void {
  // The signal's reason is what the activity runtime put there (its cancellation); rethrowing it keeps that.
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new UnavailableError('cancelled while waiting for readiness');
}

async function isStatus(err: unknown, code: number): Promise<boolean> {
  const k8s = await loadKubernetesClient();
  return err instanceof k8s.ApiException && err.code === code;
}

/**
 * Maps a client-node failure to the typed errors; messages name the object, never a request body. A refusal is a
 * PermissionError only when the API server of `kc` is ready (or `kc` is unknown), else it is retried.
 */
async function kubeError(kc: KubeConfig | undefined, op: string, ref: ObjectRef, err: unknown): Promise<BrokerflowError> {
  if (err instanceof BrokerflowError) return err;
  const k8s = await loadKubernetesClient();
  const what = `${op} ${describe(ref)}`;
  if (err instanceof k8s.ApiException) {
    const code = err.code;
    const detail = statusDetail(err.body, ref.kind);
    if (code === 404) return new NotFoundError(`${what}: not found${detail}`);
    if (code === 409) return new ConflictError(`${what}: conflict${detail}`);
    if (code === 400 || code === 422) return new ValidationError(`${what}: rejected by the API server${detail}`);
    if (isRefusal(code)) {
      if (!kc || (await refusalIsFinal(kc))) return new PermissionError(`${what}: not allowed (HTTP ${code})${detail}`);
      return new UnavailableError(`${what}: refused (HTTP ${code}) while the API server is not ready${detail}`);
    }
    if (code === 429 || code >= 500) return new UnavailableError(`${what}: HTTP ${code}${detail}`);
    return new ValidationError(`${what}: HTTP ${code}${detail}`);
  }
  const e = err instanceof Error ? err : new Error(String(err));
  // client-node's own checks before any request (kind unknown to discovery, missing name).
  if (/^Unrecognized API version and kind|^Required (spec )?(property|parameter)/.test(e.message)) {
    return new ValidationError(`${what}: ${e.message.split('\n')[0]!.slice(0, 200)}`);
  }
  return new UnavailableError(`${what}: ${(e.message.split('\n')[0] ?? '').slice(0, 200)}`, e);
}

/** The API server's Status message and field causes; omitted for Secrets, whose errors may echo their data. */
function statusDetail(body: unknown, kind: string): string {
  if (typeof body !== 'object' || body === null) return '';
  const status = body as { message?: unknown; details?: { causes?: Array<{ field?: string; reason?: string }> } };
  if (kind === 'Secret') {
    const fields = (status.details?.causes ?? []).map((c) => c.field).filter(Boolean);
    return fields.length ? ` (fields: ${fields.join(', ')})` : '';
  }
  return typeof status.message === 'string' ? `: ${status.message.slice(0, 400)}` : '';
}
