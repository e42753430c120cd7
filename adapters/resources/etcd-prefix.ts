// The etcd-prefix resource driver: a key prefix of the tenant etcd per instance, marked as the instance's by an
// owner key outside every tenant range (docs/design/contracts/resource-drivers.md).
import { CompareResult, CompareTarget, type Etcd3 } from 'etcd3';
import { ConflictError, ValidationError } from '../errors';
import { call, connectTenantEtcd, ownerKey, prefixRange, record, utf8, validateEtcdPrefix, validateId } from './etcd';
import type { Patch, ResourceState } from '../../domain/reconcile';
import type { DriverContext, ResourceDriver } from './types';

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
