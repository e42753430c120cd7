// What both tenant etcd resource drivers (etcd-prefix.ts, etcd-user.ts) stand on: the root connection, the rules
// for prefixes and IDs, where owner marks live, and how etcd3 failures become typed errors.
import {
  ClientClosedError,
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdError,
  EtcdPermissionDeniedError,
  GRPCInvalidArgumentError,
  GRPCUnauthenticatedError,
} from 'etcd3';
import { BrokerflowError, PermissionError, UnavailableError, ValidationError } from '../errors';
import { validateKey } from '../datastore/keys';
import { etcdClientOptions, isAuthRevisionRace, isEtcdEndpointList, repeatingAuthRaces, type EtcdTls } from '../etcd';

/** Longest accepted prefix in UTF-8 bytes: room for the tenant's own keys under it. */
export const MAX_ETCD_PREFIX_BYTES = 512;
/** The key, under a prefix, that holds the ID of the instance owning the prefix. */
/**
 * Owner marks live under this prefix, outside every tenant range: a bound user, who may write anything under its
 * instance's `<prefix>/`, can never rewrite or delete the mark that decides what deprovision may delete.
 */
export const ETCD_OWNERS_PREFIX = '/brokerflow-owners/etcd-prefix';
/** Every user and role these drivers manage starts with this; nothing else is ever touched. */
export const ETCD_MANAGED_NAME_PREFIX = 'bf-';

const MAX_ID_LENGTH = 255;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

/** How the drivers reach a tenant etcd: root credentials, because they manage users and roles. */
export interface TenantEtcdOptions {
  /** Client URLs, e.g. `http://127.0.0.1:2379`. */
  endpoints: string[];
  auth: { username: string; password: string };
  /** PEM material for `https://` endpoints. */
  tls?: EtcdTls;
  /** Deadline of each call in ms, connecting included; default 15 000. */
  timeoutMs?: number;
}

/** An etcd3 client for the drivers: per-call deadlines, no client-side retries or circuit breaker. */
export function connectTenantEtcd(opts: TenantEtcdOptions): Etcd3 {
  if (!isEtcdEndpointList(opts.endpoints)) {
    throw new ValidationError('endpoints must be a non-empty list of http(s)://host:port URLs', 'endpoints');
  }
  if (!opts.auth || typeof opts.auth.username !== 'string' || typeof opts.auth.password !== 'string' || !opts.auth.username) {
    throw new ValidationError('auth must name a user and a password', 'auth');
  }
  const timeoutMs = opts.timeoutMs ?? 15_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new ValidationError('timeoutMs must be positive', 'timeoutMs');
  return new Etcd3(
    etcdClientOptions({
      endpoints: opts.endpoints,
      auth: { username: opts.auth.username, password: opts.auth.password },
      ...(opts.tls ? { tls: opts.tls } : {}),
      timeoutMs,
    }),
  );
}

/** A prefix as a spec gives it: `/`-separated segments, no `..`, no control characters, no trailing `/`. */
export function validateEtcdPrefix(prefix: unknown): string {
  validateKey(prefix, 'prefix');
  const p = prefix as string;
  if (Buffer.byteLength(p, 'utf8') > MAX_ETCD_PREFIX_BYTES) {
    throw new ValidationError(`prefix is longer than ${MAX_ETCD_PREFIX_BYTES} bytes`, 'prefix');
  }
  if (p.includes('..')) throw new ValidationError('prefix must not contain ".."', 'prefix');
  if (p === '/brokerflow-owners' || p.startsWith('/brokerflow-owners/')) {
    throw new ValidationError('prefix must not be under /brokerflow-owners (owner marks live there)', 'prefix');
  }
  return p;
}

/** The range a prefix owns: every key starting with `<prefix>/` (so `/a` never takes `/ab`). */
export function prefixRange(prefix: string): { key: Buffer; rangeEnd: Buffer } {
  // `/` + 1 is `0`: [`<prefix>/`, `<prefix>0`) is exactly the keys under `<prefix>/`.
  return { key: utf8(`${prefix}/`), rangeEnd: utf8(`${prefix}0`) };
}

/** The key holding the ID of the instance that owns a prefix (outside the prefix's range). */
export function etcdOwnerKey(prefix: string): string {
  return `${ETCD_OWNERS_PREFIX}${prefix}`;
}

export function ownerKey(prefix: string): Buffer {
  return utf8(etcdOwnerKey(prefix));
}

export function validateId(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new ValidationError(`${field} must be a non-empty string`, field);
  if (value.length > MAX_ID_LENGTH) throw new ValidationError(`${field} is longer than ${MAX_ID_LENGTH} characters`, field);
  if (CONTROL.test(value)) throw new ValidationError(`${field} contains a control character`, field);
  if (value.includes('/') || value.includes('..')) throw new ValidationError(`${field} must not contain "/" or ".."`, field);
  return value;
}

export function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationError(`${what} must be an object`, what);
  return value as Record<string, unknown>;
}

function errorText(err: Error): string {
  return (err.message.split('\n')[0] ?? '').slice(0, 300);
}

/** Maps an etcd3 failure to the typed errors the activity policies branch on. */
export function etcdError(op: string, err: unknown): BrokerflowError {
  if (err instanceof BrokerflowError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  if (e instanceof EtcdAuthenticationFailedError || e instanceof GRPCUnauthenticatedError) {
    return new PermissionError(`etcd ${op}: authentication as the driver's user failed`);
  }
  if (e instanceof EtcdPermissionDeniedError) return new PermissionError(`etcd ${op}: permission denied to the driver's user`);
  // A request authorised against an older auth revision (a user or role changed meanwhile) comes back as
  // InvalidArgument, yet the same call succeeds when repeated.
  if (isAuthRevisionRace(e)) return new UnavailableError(`etcd ${op}: the auth store changed meanwhile`, e);
  if (e instanceof GRPCInvalidArgumentError) return new ValidationError(`etcd ${op}: ${errorText(e)}`);
  if (e instanceof EtcdError && /authentication is not enabled/.test(e.message)) {
    return new ValidationError(`etcd ${op}: the tenant etcd has authentication disabled; users and roles would not be enforced`);
  }
  // The rest is connection trouble, a closed client, a leader change or "revision of auth store is old" (a
  // concurrent auth change): the same call may succeed later.
  const reason = e instanceof ClientClosedError ? 'client closed' : errorText(e);
  return new UnavailableError(`etcd ${op}: ${reason}`, e);
}

/** Runs an etcd call (repeating it at once while the auth store changes under it) with its failure typed. */
export async function call<T>(op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await repeatingAuthRaces(fn);
  } catch (err) {
    throw etcdError(op, err);
  }
}

/** Runs `fn`, treating the given etcd3 error classes as success (the idempotent "already so" answers). */
export async function tolerating(op: string, fn: () => Promise<unknown>, ...ok: Array<new (...a: never[]) => Error>): Promise<boolean> {
  try {
    await repeatingAuthRaces(fn);
    return true;
  } catch (err) {
    if (ok.some((c) => err instanceof c)) return false;
    throw etcdError(op, err);
  }
}
