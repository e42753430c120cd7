// Validation of object identity (apiVersion, kind, namespace, name) and the key format built from it. Every
// part becomes a file name, an S3 key, an etcd key or a Kubernetes name, so each is checked before any I/O.
import { ValidationError } from '../errors';
import type { ObjectKey, PersistedObject, TypeMeta } from './types';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const GROUP = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const VERSION = /^v[0-9]{1,4}((alpha|beta)[0-9]{1,4})?$/;
const KIND = /^[A-Z][A-Za-z0-9]{0,62}$/;
// Names are what registry IDs become: letters, digits, '.', '_' and '-', starting and ending alphanumeric.
const NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;
/** Longest accepted object name (a Kubernetes object name is at most 253 characters). */
export const MAX_NAME_LENGTH = 253;

/** Largest accepted serialized object; a Kubernetes ConfigMap/Secret holds at most 1 MiB. */
export const MAX_OBJECT_BYTES = 900 * 1024;

/** The parts of an object's identity. `group` is '' for the core group. */
export interface ObjectIdentity {
  group: string;
  kind: string;
  namespace?: string;
  name: string;
}

function describe(value: unknown): string {
  const s = typeof value === 'string' ? value : String(value);
  // Bounded and free of control characters so a hostile value cannot flood or forge log lines.
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}

/** Checks an object name; ValidationError if it could escape a path or is not a portable name. */
export function validateName(name: unknown, field = 'metadata.name'): string {
  if (typeof name !== 'string' || name.length === 0) throw new ValidationError(`${field} is required`, field);
  if (name.length > MAX_NAME_LENGTH) {
    throw new ValidationError(`${field} is longer than ${MAX_NAME_LENGTH} characters`, field);
  }
  if (!NAME.test(name) || name.includes('..')) {
    throw new ValidationError(
      `${field} ${describe(name)} may hold only letters, digits, '.', '_' and '-', must start and end with a letter or digit and may not contain '..'`,
      field,
    );
  }
  return name;
}

/** Checks a namespace (a DNS label, as in Kubernetes). */
export function validateNamespace(namespace: unknown, field = 'metadata.namespace'): string {
  if (typeof namespace !== 'string' || !DNS_LABEL.test(namespace)) {
    throw new ValidationError(`${field} ${describe(namespace)} is not a DNS label (lowercase letters, digits, '-', at most 63)`, field);
  }
  return namespace;
}

/** Splits and checks `apiVersion` into group ('' for core) and version. */
export function parseApiVersion(apiVersion: unknown): { group: string; version: string } {
  if (typeof apiVersion !== 'string' || apiVersion.length === 0 || apiVersion.length > 253) {
    throw new ValidationError(`apiVersion ${describe(apiVersion)} is missing or too long`, 'apiVersion');
  }
  const slash = apiVersion.indexOf('/');
  const group = slash < 0 ? '' : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  if ((slash >= 0 && !GROUP.test(group)) || !VERSION.test(version)) {
    throw new ValidationError(`apiVersion ${describe(apiVersion)} is not [group/]version (e.g. registry.brokerflow.io/v1)`, 'apiVersion');
  }
  return { group, version };
}

/** Checks a kind (UpperCamelCase, like Kubernetes kinds). */
export function validateKind(kind: unknown): string {
  if (typeof kind !== 'string' || !KIND.test(kind)) {
    throw new ValidationError(`kind ${describe(kind)} is not an UpperCamelCase identifier of at most 63 characters`, 'kind');
  }
  return kind;
}

/** `<Kind>[.<group>]`: the resource part of a key, and the folder/prefix an object kind is stored under. */
export function resourceOf(type: { group: string; kind: string }): string {
  return type.group ? `${type.kind}.${type.group}` : type.kind;
}

/** The group and kind of a type, checked. */
export function groupKindOf(type: TypeMeta): { group: string; kind: string } {
  return { group: parseApiVersion(type.apiVersion).group, kind: validateKind(type.kind) };
}

/** Checks an object's identity fields and returns them. */
export function identityOf(object: PersistedObject): ObjectIdentity {
  if (typeof object !== 'object' || object === null) throw new ValidationError('object is required', 'object');
  const { group } = parseApiVersion(object.apiVersion);
  const kind = validateKind(object.kind);
  const meta = object.metadata;
  if (typeof meta !== 'object' || meta === null) throw new ValidationError('metadata is required', 'metadata');
  const name = validateName(meta.name);
  if (meta.namespace === undefined) return { group, kind, name };
  return { group, kind, name, namespace: validateNamespace(meta.namespace) };
}

/** The key of an identity: `<Kind>[.<group>]/[<namespace>/]<name>`. */
export function formatKey(id: ObjectIdentity): ObjectKey {
  return `${resourceOf(id)}/${id.namespace !== undefined ? `${id.namespace}/` : ''}${id.name}`;
}

/** The key of an object (validated). */
export function objectKey(object: PersistedObject): ObjectKey {
  return formatKey(identityOf(object));
}

/** Parses and checks a key made by {@link formatKey}. */
export function parseKey(key: unknown): ObjectIdentity {
  if (typeof key !== 'string' || key.length === 0 || key.length > 1024) {
    throw new ValidationError(`object key ${describe(key)} is missing or too long`, 'key');
  }
  const parts = key.split('/');
  if (parts.length !== 2 && parts.length !== 3) {
    throw new ValidationError(`object key ${describe(key)} is not <Kind>[.<group>]/[<namespace>/]<name>`, 'key');
  }
  const resource = parts[0]!;
  const dot = resource.indexOf('.');
  const kind = validateKind(dot < 0 ? resource : resource.slice(0, dot));
  const group = dot < 0 ? '' : resource.slice(dot + 1);
  if (dot >= 0 && (!GROUP.test(group) || group.length > 253)) {
    throw new ValidationError(`object key ${describe(key)} has an invalid group`, 'key');
  }
  const name = validateName(parts[parts.length - 1], 'key name');
  if (parts.length === 2) return { group, kind, name };
  return { group, kind, name, namespace: validateNamespace(parts[1], 'key namespace') };
}

/** A deep copy of an object without the backend-assigned fields (resourceVersion, uid): what gets stored. */
export function storableCopy(object: PersistedObject): PersistedObject {
  let text: string;
  try {
    text = JSON.stringify(object);
  } catch {
    throw new ValidationError('object is not JSON-serializable', 'object');
  }
  if (text.length > MAX_OBJECT_BYTES) {
    throw new ValidationError(`object is larger than ${MAX_OBJECT_BYTES} bytes`, 'object');
  }
  const copy = JSON.parse(text) as PersistedObject;
  delete copy.metadata.resourceVersion;
  delete copy.metadata.uid;
  return copy;
}

/** Parses a stored object and checks it has the identity its key says; ValidationError if it does not. */
export function parseStored(text: string, key: ObjectKey): PersistedObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ValidationError(`stored object ${key} is not valid JSON`, 'key');
  }
  const object = parsed as PersistedObject;
  if (objectKey(object) !== key) throw new ValidationError(`stored object ${key} names another object`, 'key');
  return object;
}
