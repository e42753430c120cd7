// Resource drivers for a tenant etcd (etcd3 library, connected as root): a key prefix per instance, marked by an
// owner key, and per binding a user plus a role of the same name limited to that prefix.
import { createHash, randomBytes } from 'node:crypto';
import {
  ClientClosedError,
  CompareResult,
  CompareTarget,
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdError,
  EtcdPermissionDeniedError,
  EtcdRoleExistsError,
  EtcdRoleNotFoundError,
  EtcdRoleNotGrantedError,
  EtcdUserExistsError,
  EtcdUserNotFoundError,
  GRPCInvalidArgumentError,
  GRPCUnauthenticatedError,
  type IPermission,
} from 'etcd3';
import { BrokerflowError, ConflictError, NotFoundError, PermissionError, UnavailableError, ValidationError } from '../errors';
import { validateKey } from '../datastore/keys';
import { etcdClientOptions, isEtcdEndpointList, type EtcdTls } from '../etcd';
import type { DriverContext, Patch, ResourceDriver, ResourceState, SecretStore } from './types';

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
const MANAGED_NAME = /^bf-[0-9a-f]{24}$/;

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

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
function prefixRange(prefix: string): { key: Buffer; rangeEnd: Buffer } {
  // `/` + 1 is `0`: [`<prefix>/`, `<prefix>0`) is exactly the keys under `<prefix>/`.
  return { key: utf8(`${prefix}/`), rangeEnd: utf8(`${prefix}0`) };
}

/** The key holding the ID of the instance that owns a prefix (outside the prefix's range). */
export function etcdOwnerKey(prefix: string): string {
  return `${ETCD_OWNERS_PREFIX}${prefix}`;
}

function ownerKey(prefix: string): Buffer {
  return utf8(etcdOwnerKey(prefix));
}

function validateId(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new ValidationError(`${field} must be a non-empty string`, field);
  if (value.length > MAX_ID_LENGTH) throw new ValidationError(`${field} is longer than ${MAX_ID_LENGTH} characters`, field);
  if (CONTROL.test(value)) throw new ValidationError(`${field} contains a control character`, field);
  if (value.includes('/') || value.includes('..')) throw new ValidationError(`${field} must not contain "/" or ".."`, field);
  return value;
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationError(`${what} must be an object`, what);
  return value as Record<string, unknown>;
}

function errorText(err: Error): string {
  return (err.message.split('\n')[0] ?? '').slice(0, 300);
}

/** Maps an etcd3 failure to the typed errors the activity policies branch on. */
function etcdError(op: string, err: unknown): BrokerflowError {
  if (err instanceof BrokerflowError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  if (e instanceof EtcdAuthenticationFailedError || e instanceof GRPCUnauthenticatedError) {
    return new PermissionError(`etcd ${op}: authentication as the driver's user failed`);
  }
  if (e instanceof EtcdPermissionDeniedError) return new PermissionError(`etcd ${op}: permission denied to the driver's user`);
  // A request authorised against an older auth revision (a user or role changed meanwhile) comes back as
  // InvalidArgument, yet the same call succeeds when repeated.
  if (/revision of auth store is old/.test(e.message)) return new UnavailableError(`etcd ${op}: the auth store changed meanwhile`, e);
  if (e instanceof GRPCInvalidArgumentError) return new ValidationError(`etcd ${op}: ${errorText(e)}`);
  if (e instanceof EtcdError && /authentication is not enabled/.test(e.message)) {
    return new ValidationError(`etcd ${op}: the tenant etcd has authentication disabled; users and roles would not be enforced`);
  }
  // The rest is connection trouble, a closed client, a leader change or "revision of auth store is old" (a
  // concurrent auth change): the same call may succeed later.
  const reason = e instanceof ClientClosedError ? 'client closed' : errorText(e);
  return new UnavailableError(`etcd ${op}: ${reason}`, e);
}

async function call<T>(op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw etcdError(op, err);
  }
}

/** Runs `fn`, treating the given etcd3 error classes as success (the idempotent "already so" answers). */
async function tolerating(op: string, fn: () => Promise<unknown>, ...ok: Array<new (...a: never[]) => Error>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (err) {
    if (ok.some((c) => err instanceof c)) return false;
    throw etcdError(op, err);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// etcd-prefix

/** Rendered spec of an `etcd-prefix` resource. */
export interface EtcdPrefixSpec {
  /** e.g. `/tenants/<instance id>`; the instance owns every key under `<prefix>/`. Prefixes must not nest. */
  prefix: string;
}

/** What the `etcd-prefix` driver reports and applies. */
interface PrefixState {
  prefix: string;
  owner: string;
}

/** Dependencies of {@link EtcdPrefixDriver}. */
export interface EtcdPrefixDriverOptions {
  /** A root client of the tenant etcd (see {@link connectTenantEtcd}). */
  client: Etcd3;
}

function parsePrefixSpec(spec: Record<string, unknown>): EtcdPrefixSpec {
  return { prefix: validateEtcdPrefix(record(spec, 'spec').prefix) };
}

function parsePrefixState(state: ResourceState): PrefixState {
  const s = record(state, 'state');
  return { prefix: validateEtcdPrefix(s.prefix), owner: validateId(s.owner, 'owner') };
}

/**
 * A key prefix per instance (kind `etcd-prefix`). Ownership is the owner key `/brokerflow-owners/etcd-prefix<prefix>`
 * holding the instance ID; a prefix with another owner, or with keys but no owner key, is foreign and never touched.
 */
export class EtcdPrefixDriver implements ResourceDriver {
  readonly kind = 'etcd-prefix';
  private readonly client: Etcd3;

  constructor(opts: EtcdPrefixDriverOptions) {
    if (!opts?.client) throw new ValidationError('client is required', 'client');
    this.client = opts.client;
  }

  async getCurrentState(spec: Record<string, unknown>, ctx: DriverContext): Promise<ResourceState> {
    const { prefix } = parsePrefixSpec(spec);
    const instanceId = validateId(ctx.object.instanceId, 'instanceId');
    const owner = await this.owner(prefix);
    return owner === instanceId ? { prefix, owner } : null;
  }

  async getDesiredState(spec: Record<string, unknown>, ctx: DriverContext): Promise<ResourceState> {
    const { prefix } = parsePrefixSpec(spec);
    return { prefix, owner: validateId(ctx.object.instanceId, 'instanceId') };
  }

  newUpdatePatch(current: ResourceState, desired: ResourceState): Patch {
    if (!desired) return current ? { delete: current } : {};
    // Both are read at the spec's prefix: an owned prefix has nothing more to change.
    return current ? {} : { create: desired };
  }

  newDeletePatch(current: ResourceState): Patch {
    return current ? { delete: current } : {};
  }

  async applyCreateChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    const { prefix, owner } = parsePrefixState(state);
    checkOwnerIsCaller(owner, ctx);
    const { key, rangeEnd } = prefixRange(prefix);
    const okey = ownerKey(prefix);
    // One transaction: claim only an empty, unmarked range, so data nobody marked is never adopted.
    const res = await call(`claim ${prefix}`, () =>
      this.client.kv.txn({
        compare: [
          { key, range_end: rangeEnd, target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 },
          { key: okey, target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 },
        ],
        success: [{ request_put: { key: okey, value: utf8(owner) } }],
        failure: [{ request_range: { key: okey } }],
      }),
    );
    if (res.succeeded) return;
    const existing = res.responses[0]?.response_range.kvs[0]?.value.toString('utf8');
    if (existing === owner) return;
    if (existing === undefined) {
      throw new ConflictError(`etcd prefix ${prefix} already holds keys and no brokerflow owner mark: it is not ours to claim`);
    }
    throw new ConflictError(`etcd prefix ${prefix} is owned by another instance`);
  }

  async applyDeleteChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    const { prefix, owner } = parsePrefixState(state);
    checkOwnerIsCaller(owner, ctx);
    const { key, rangeEnd } = prefixRange(prefix);
    // Deleting only while the owner key still names us: a prefix someone else claimed meanwhile stays untouched.
    await call(`delete ${prefix}`, () =>
      this.client.kv.txn({
        compare: [{ key: ownerKey(prefix), target: CompareTarget.Value, result: CompareResult.Equal, value: utf8(owner) }],
        success: [{ request_delete_range: { key, range_end: rangeEnd } }, { request_delete_range: { key: ownerKey(prefix) } }],
        failure: [],
      }),
    );
  }

  async applyUpdateChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    // The only thing a prefix has is its owner mark: updating means making sure it is claimed.
    await this.applyCreateChange(state, ctx);
  }

  private async owner(prefix: string): Promise<string | undefined> {
    const res = await call(`read owner of ${prefix}`, () => this.client.kv.range({ key: ownerKey(prefix) }));
    return res.kvs[0]?.value.toString('utf8');
  }
}

function checkOwnerIsCaller(owner: string, ctx: DriverContext): void {
  if (owner !== validateId(ctx.object.instanceId, 'instanceId')) {
    throw new ValidationError('state names another instance than the one being reconciled', 'owner');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// etcd-user

/** Rendered spec of an `etcd-user` resource. */
export interface EtcdUserSpec {
  /** The instance's prefix (as given to its `etcd-prefix` resource); the user may use keys under `<prefix>/`. */
  prefix: string;
  /** Read-only access; default false (read and write). */
  readOnly?: boolean;
}

/** The binding credentials an `etcd-user` resource contributes (its `outputs()`). */
export interface EtcdUserCredentials {
  endpoints: string[];
  username: string;
  password: string;
  /** As given in the spec. */
  prefix: string;
  /** What every key the user may touch starts with: `<prefix>/`. */
  keyPrefix: string;
}

/** Dependencies of {@link EtcdUserDriver}. */
export interface EtcdUserDriverOptions {
  /** A root client of the tenant etcd (see {@link connectTenantEtcd}). */
  client: Etcd3;
  /** Where passwords are kept, so a retried create finds the same one. */
  secrets: SecretStore;
  /** Client URLs handed to the application in the binding credentials. */
  endpoints: string[];
}

type PermKind = 'Read' | 'Readwrite';

interface UserDesired {
  user: string;
  role: string;
  prefix: string;
  permission: PermKind;
}

/** The etcd user and role name of a binding: `bf-` and 24 hex digits of SHA-256 of the binding ID. */
export function etcdUserName(bindingId: string): string {
  const id = validateId(bindingId, 'bindingId');
  return `${ETCD_MANAGED_NAME_PREFIX}${createHash('sha256').update(id, 'utf8').digest('hex').slice(0, 24)}`;
}

/** The SecretStore name of a binding's etcd password. */
export function etcdUserSecretName(bindingId: string): string {
  return `etcd-user/${validateId(bindingId, 'bindingId')}`;
}

function generatePassword(): string {
  // 24 random bytes are 32 base64url characters.
  return randomBytes(24).toString('base64url');
}

function bindingOf(ctx: DriverContext): string {
  if (ctx.object.bindingId === undefined) throw new ValidationError('an etcd-user resource belongs to a binding: bindingId is missing', 'bindingId');
  return validateId(ctx.object.bindingId, 'bindingId');
}

function parseUserSpec(spec: Record<string, unknown>): EtcdUserSpec {
  const s = record(spec, 'spec');
  if (s.readOnly !== undefined && typeof s.readOnly !== 'boolean') throw new ValidationError('readOnly must be a boolean', 'readOnly');
  return { prefix: validateEtcdPrefix(s.prefix), readOnly: s.readOnly === true };
}

function parseUserState(state: ResourceState, ctx: DriverContext): UserDesired {
  const s = record(state, 'state');
  const expected = etcdUserName(bindingOf(ctx));
  // Names are recomputed from the binding, never trusted from the state: only our own `bf-` user is touched.
  if (s.user !== expected || s.role !== expected) {
    throw new PermissionError(`state names an etcd user or role other than ${expected}, the one of this binding`);
  }
  if (s.permission !== 'Read' && s.permission !== 'Readwrite') throw new ValidationError('permission must be Read or Readwrite', 'permission');
  return { user: expected, role: expected, prefix: validateEtcdPrefix(s.prefix), permission: s.permission };
}

function samePermission(p: IPermission, want: { permType: PermKind; key: Buffer; rangeEnd: Buffer }): boolean {
  return String(p.permType) === want.permType && Buffer.compare(p.key, want.key) === 0 && Buffer.compare(p.range_end ?? Buffer.alloc(0), want.rangeEnd) === 0;
}

/**
 * A user per binding (kind `etcd-user`), named `bf-<hash of binding id>`, with a role of the same name holding
 * exactly one permission: read or read-write on `<prefix>/`. The password is generated once and kept in the
 * SecretStore; it never appears in a state, a patch or an error.
 */
export class EtcdUserDriver implements ResourceDriver {
  readonly kind = 'etcd-user';
  private readonly client: Etcd3;
  private readonly secrets: SecretStore;
  private readonly endpoints: string[];

  constructor(opts: EtcdUserDriverOptions) {
    if (!opts?.client) throw new ValidationError('client is required', 'client');
    if (!opts.secrets) throw new ValidationError('secrets is required', 'secrets');
    if (!Array.isArray(opts.endpoints) || opts.endpoints.length === 0 || opts.endpoints.some((e) => typeof e !== 'string' || !e)) {
      throw new ValidationError('endpoints must be a non-empty list of URLs', 'endpoints');
    }
    this.client = opts.client;
    this.secrets = opts.secrets;
    this.endpoints = [...opts.endpoints];
  }

  /**
   * Null when nothing of this binding exists. Otherwise which parts exist and whether they match: a partly
   * created or partly deleted user shows up here, so the next reconciliation finishes the job.
   */
  async getCurrentState(spec: Record<string, unknown>, ctx: DriverContext): Promise<ResourceState> {
    const { prefix } = parseUserSpec(spec);
    const bindingId = bindingOf(ctx);
    const name = etcdUserName(bindingId);
    const [roles, perms, password] = await Promise.all([
      this.userRoles(name),
      this.rolePermissions(name),
      this.secrets.get(etcdUserSecretName(bindingId)),
    ]);
    if (roles === undefined && perms === undefined && password === undefined) return null;
    const passwordValid = roles !== undefined && password !== undefined ? await this.authenticates(name, password) : false;
    return {
      user: name,
      role: name,
      prefix,
      userExists: roles !== undefined,
      roleExists: perms !== undefined,
      secretExists: password !== undefined,
      passwordValid,
      roles: roles ?? [],
      permissions: (perms ?? []).map((p) => ({
        permission: String(p.permType),
        key: p.key.toString('utf8'),
        rangeEnd: (p.range_end ?? Buffer.alloc(0)).toString('utf8'),
      })),
    };
  }

  async getDesiredState(spec: Record<string, unknown>, ctx: DriverContext): Promise<ResourceState> {
    const { prefix, readOnly } = parseUserSpec(spec);
    const name = etcdUserName(bindingOf(ctx));
    const desired: UserDesired = { user: name, role: name, prefix, permission: readOnly ? 'Read' : 'Readwrite' };
    return { ...desired };
  }

  newUpdatePatch(current: ResourceState, desired: ResourceState): Patch {
    if (!desired) return current ? { delete: current } : {};
    if (!current) return { create: desired };
    return userMatches(current, desired) ? {} : { update: desired };
  }

  newDeletePatch(current: ResourceState): Patch {
    return current ? { delete: current } : {};
  }

  async applyCreateChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    const want = parseUserState(state, ctx);
    const bindingId = bindingOf(ctx);
    const password = await this.secrets.ensure(etcdUserSecretName(bindingId), generatePassword);
    const { key, rangeEnd } = prefixRange(want.prefix);
    const perm = { permType: want.permission, key, rangeEnd };

    // The role and its single permission first, so the user never exists with more than it should have.
    await tolerating(`add role ${want.role}`, () => this.client.auth.roleAdd({ name: want.role }), EtcdRoleExistsError);
    const perms = (await this.rolePermissions(want.role)) ?? [];
    for (const p of perms) {
      if (samePermission(p, perm)) continue;
      await tolerating(
        `revoke a permission of role ${want.role}`,
        () => this.client.auth.roleRevokePermission({ role: want.role, key: p.key, range_end: p.range_end }),
        EtcdRoleNotGrantedError,
      );
    }
    if (!perms.some((p) => samePermission(p, perm))) {
      await call(`grant role ${want.role} its permission`, () =>
        this.client.auth.roleGrantPermission({ name: want.role, perm: { permType: perm.permType, key, range_end: rangeEnd } }),
      );
    }

    const added = await tolerating(`add user ${want.user}`, () => this.client.auth.userAdd({ name: want.user, password }), EtcdUserExistsError);
    if (!added) {
      await call(`set the password of user ${want.user}`, () => this.client.auth.userChangePassword({ name: want.user, password }));
    }
    const roles = (await this.userRoles(want.user)) ?? [];
    for (const r of roles) {
      if (r === want.role) continue;
      await tolerating(
        `revoke role ${r} from user ${want.user}`,
        () => this.client.auth.userRevokeRole({ name: want.user, role: r }),
        EtcdRoleNotGrantedError,
        EtcdRoleNotFoundError,
      );
    }
    if (!roles.includes(want.role)) {
      await call(`grant role ${want.role} to user ${want.user}`, () => this.client.auth.userGrantRole({ user: want.user, role: want.role }));
    }
  }

  async applyDeleteChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    const s = record(state, 'state');
    const name = etcdUserName(bindingOf(ctx));
    if (s.user !== name || s.role !== name || !MANAGED_NAME.test(name)) {
      throw new PermissionError(`state names an etcd user or role other than ${name}, the one of this binding`);
    }
    // User first: deleting it revokes its tokens at once, before its permission goes.
    await tolerating(`delete user ${name}`, () => this.client.auth.userDelete({ name }), EtcdUserNotFoundError);
    await tolerating(`delete role ${name}`, () => this.client.auth.roleDelete({ role: name }), EtcdRoleNotFoundError);
    await this.secrets.delete(etcdUserSecretName(bindingOf(ctx)));
  }

  async applyUpdateChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    // Every step of create is "make it so": it also repairs a drifted role, grant or password.
    await this.applyCreateChange(state, ctx);
  }

  /** `{ endpoints, username, password, prefix, keyPrefix }` for the binding credentials. */
  async outputs(spec: Record<string, unknown>, ctx: DriverContext): Promise<Record<string, unknown>> {
    const { prefix } = parseUserSpec(spec);
    const bindingId = bindingOf(ctx);
    const password = await this.secrets.get(etcdUserSecretName(bindingId));
    if (password === undefined) {
      throw new NotFoundError(`no password stored for the etcd user of binding ${bindingId}: reconcile the binding first`);
    }
    const credentials: EtcdUserCredentials = {
      endpoints: [...this.endpoints],
      username: etcdUserName(bindingId),
      password,
      prefix,
      keyPrefix: `${prefix}/`,
    };
    return { ...credentials };
  }

  /** The user's roles, or undefined when the user does not exist. */
  private async userRoles(name: string): Promise<string[] | undefined> {
    try {
      return (await this.client.auth.userGet({ name })).roles ?? [];
    } catch (err) {
      if (err instanceof EtcdUserNotFoundError) return undefined;
      throw etcdError(`read user ${name}`, err);
    }
  }

  /** The role's permissions, or undefined when the role does not exist. */
  private async rolePermissions(name: string): Promise<IPermission[] | undefined> {
    try {
      return (await this.client.auth.roleGet({ role: name })).perm ?? [];
    } catch (err) {
      if (err instanceof EtcdRoleNotFoundError) return undefined;
      throw etcdError(`read role ${name}`, err);
    }
  }

  private async authenticates(name: string, password: string): Promise<boolean> {
    try {
      await this.client.auth.authenticate({ name, password });
      return true;
    } catch (err) {
      if (err instanceof EtcdAuthenticationFailedError) return false;
      throw etcdError(`check the password of user ${name}`, err);
    }
  }
}

function userMatches(current: Record<string, unknown>, desired: Record<string, unknown>): boolean {
  if (!current.userExists || !current.roleExists || !current.secretExists || !current.passwordValid) return false;
  const roles = current.roles as string[];
  if (roles.length !== 1 || roles[0] !== desired.role) return false;
  const perms = current.permissions as Array<{ permission: string; key: string; rangeEnd: string }>;
  const { key, rangeEnd } = prefixRange(desired.prefix as string);
  return (
    perms.length === 1 &&
    perms[0]!.permission === desired.permission &&
    perms[0]!.key === key.toString('utf8') &&
    perms[0]!.rangeEnd === rangeEnd.toString('utf8')
  );
}
