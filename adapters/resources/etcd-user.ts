// The etcd-user resource driver: per binding a tenant etcd user plus a role of the same name, limited to the
// instance's prefix; the password is generated once and kept in the secret store
// (docs/design/contracts/resource-drivers.md).
import { createHash, randomBytes } from 'node:crypto';
import {
  EtcdAuthenticationFailedError,
  EtcdRoleExistsError,
  EtcdRoleNotFoundError,
  EtcdRoleNotGrantedError,
  EtcdUserExistsError,
  EtcdUserNotFoundError,
  type Etcd3,
  type IPermission,
} from 'etcd3';
import { NotFoundError, PermissionError, ValidationError } from '../errors';
import { call, connectTenantEtcd, ETCD_MANAGED_NAME_PREFIX, etcdError, prefixRange, record, tolerating, validateEtcdPrefix, validateId } from './etcd';
import type { Patch, ResourceState } from '../../domain/reconcile';
import type { DriverContext, ResourceDriver, SecretStore } from './types';

const MANAGED_NAME = /^bf-[0-9a-f]{24}$/;

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
