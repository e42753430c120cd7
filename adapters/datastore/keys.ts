// Validation of everything that becomes part of a stored key, done before any I/O so a bad key can never escape
// its prefix or reach the server.
import { ErrorValidation } from './errors';

/** The longest key accepted, in UTF-8 bytes (before the datastore prefix is added). */
export const MAX_KEY_BYTES = 1024;

// C0 controls, DEL and the C1 controls: none belongs in a key, and NUL would end a C string in tooling.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const REVISION = /^[1-9][0-9]{0,15}$/;

function check(value: unknown, field: string, allowRoot: boolean): string {
  if (typeof value !== 'string') throw new ErrorValidation(`${field} must be a string`, field);
  if (allowRoot && value === '/') return value;
  if (!value.startsWith('/')) throw new ErrorValidation(`${field} must start with "/"`, field);
  if (Buffer.byteLength(value, 'utf8') > MAX_KEY_BYTES) {
    throw new ErrorValidation(`${field} is longer than ${MAX_KEY_BYTES} bytes`, field);
  }
  if (CONTROL.test(value)) throw new ErrorValidation(`${field} contains a control character`, field);
  const segments = value.slice(1).split('/');
  for (const s of segments) {
    if (s === '') throw new ErrorValidation(`${field} has an empty path segment`, field);
    if (s === '.' || s === '..') throw new ErrorValidation(`${field} has a "${s}" path segment`, field);
  }
  return value;
}

/** A key: `/`-separated non-empty segments, no `.`/`..`, no control characters, at most {@link MAX_KEY_BYTES}. */
export function validateKey(key: unknown, field = 'key'): string {
  return check(key, field, false);
}

/** A list/watch prefix: a key, or `/` for everything. */
export function validatePrefix(prefix: unknown, field = 'prefix'): string {
  return check(prefix, field, true);
}

/** A revision: a positive decimal integer that fits in a double exactly (etcd mod revision / resourceVersion). */
export function validateRevision(revision: unknown, field = 'revision'): string {
  if (typeof revision !== 'string' || !REVISION.test(revision) || !Number.isSafeInteger(Number(revision))) {
    throw new ErrorValidation(`${field} must be a positive decimal integer`, field);
  }
  return revision;
}

/** Optional revision: undefined passes through, anything else must be valid (so `''` is rejected, not ignored). */
export function validateOptionalRevision(revision: unknown, field = 'revision'): string | undefined {
  return revision === undefined ? undefined : validateRevision(revision, field);
}

/** Whether `key` is `prefix` itself or lies strictly under `prefix/` (so `/a` never matches `/ab`). */
export function keyInPrefix(key: string, prefix: string): boolean {
  if (prefix === '/') return true;
  return key === prefix || (key.length > prefix.length && key.startsWith(prefix) && key.charCodeAt(prefix.length) === 47);
}
