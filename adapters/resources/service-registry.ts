// The service-registry resource driver: registers an instance's endpoints in the configured service registry
// (etcd, AWS Cloud Map, Google Service Directory) through the ownership-checking Broker, with the instance as
// owner (docs/design/contracts/resource-drivers.md#service-registry-driver).
// Only the Broker's own files are imported, not the folder's index: that one also loads the Cloud Map and
// Service Directory clients, which a worker without this driver should not pay for.
import type { Patch, ResourceState } from '../../domain/reconcile';
import { AlreadyExistsError, ConflictError, NotFoundError, UnavailableError, ValidationError } from '../errors';
import { ServiceRegistryBroker } from '../service-registries/broker';
import { ContainsNotOwnedError, EndpointNotOwnedError, NotOwnedError } from '../service-registries/errors';
import type { Metadata, ServiceRegistry } from '../service-registries/types';
import { validateAddress, validateMetadata, validateName, validatePort } from '../service-registries/validation';
import { record, validateId } from './etcd';
import type { DriverContext, ResourceDriver } from './types';

/** The metadata key that marks what this driver owns when none is configured (the Broker's default key). */
export const DEFAULT_SERVICE_REGISTRY_OWNER_KEY = 'owner';
/** The owner value of the namespaces the driver creates: shared by every instance, never deleted by the driver. */
export const SERVICE_REGISTRY_NAMESPACE_OWNER = 'brokerflow';

/** The owner value that marks a service and its endpoints as one instance's: `brokerflow/instance/<id>`. */
export function serviceRegistryOwnerValue(instanceId: string): string {
  return `brokerflow/instance/${validateId(instanceId, 'instanceId')}`;
}

/** One endpoint of a rendered `service-registry` spec. */
export interface ServiceRegistryEndpointSpec {
  name: string;
  address: string;
  port: number;
  metadata: Metadata;
}

/** Rendered spec of a `service-registry` resource. */
export interface ServiceRegistrySpec {
  /** The registry namespace; created (shared, marked `<ownerKey>=brokerflow`) when missing, never deleted. */
  namespace: string;
  /** The service the instance owns, e.g. `etcd-${instance.id}`. */
  service: string;
  metadata: Metadata;
  endpoints: ServiceRegistryEndpointSpec[];
}

/** What the driver reports and applies: the spec plus the instance that owns it. */
interface RegistrationState extends ServiceRegistrySpec {
  owner: string;
}

/** Dependencies of {@link ServiceRegistryDriver}. */
export interface ServiceRegistryDriverOptions {
  /** The configured registry backend; the driver does not close it. */
  registry: ServiceRegistry;
  /** The metadata key of the owner mark (default `owner`); the value names the instance. */
  ownerKey?: string;
}

/** Parses a rendered spec (or a state, with `owner`); every error names the field. */
function parseRegistration(value: unknown, what: string): ServiceRegistrySpec {
  // A spec names at least one endpoint; a current state may have none left (a partly done create or delete).
  const s = record(value, what);
  const namespace = validateName('namespace', s.namespace);
  const service = validateName('service', s.service);
  const metadata = validateMetadata('service', s.metadata ?? {});
  if (!Array.isArray(s.endpoints) || (what === 'spec' && s.endpoints.length === 0)) {
    throw new ValidationError(`${what}.endpoints must be a non-empty list`, `${what}.endpoints`);
  }
  const names = new Set<string>();
  const endpoints = s.endpoints.map((raw, i) => {
    const e = record(raw, `${what}.endpoints[${i}]`);
    const name = validateName('endpoint', e.name);
    if (names.has(name)) throw new ValidationError(`${what}.endpoints: endpoint ${JSON.stringify(name)} is listed twice`, `${what}.endpoints[${i}].name`);
    names.add(name);
    // A json-e `${...}` renders a string: a port of digits is taken as the number it spells.
    const port = typeof e.port === 'string' && /^\d{1,5}$/.test(e.port) ? Number(e.port) : e.port;
    return { name, address: validateAddress(e.address), port: validatePort(port), metadata: validateMetadata('endpoint', e.metadata ?? {}) };
  });
  return { namespace, service, metadata, endpoints };
}

function sameMetadata(a: Metadata, b: Metadata): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => b[k] === a[k]);
}

function sameRegistration(a: ServiceRegistrySpec, b: ServiceRegistrySpec): boolean {
  if (a.namespace !== b.namespace || a.service !== b.service || !sameMetadata(a.metadata, b.metadata)) return false;
  if (a.endpoints.length !== b.endpoints.length) return false;
  const byName = new Map(b.endpoints.map((e) => [e.name, e]));
  return a.endpoints.every((e) => {
    const o = byName.get(e.name);
    return o !== undefined && o.address === e.address && o.port === e.port && sameMetadata(e.metadata, o.metadata);
  });
}

/**
 * Registers a service with the given endpoints per instance (kind `service-registry`). The service and its
 * endpoints carry the owner pair `<ownerKey>=brokerflow/instance/<instance id>`; everything else in the registry
 * (other instances' services, the endpoint mirror's `owner=brokerflow` objects, objects nobody marked) is
 * foreign: never changed, and a create over a foreign object of the same name is a `ConflictError`.
 */
export class ServiceRegistryDriver implements ResourceDriver {
  readonly kind = 'service-registry';
  private readonly registry: ServiceRegistry;
  private readonly ownerKey: string;

  constructor(opts: ServiceRegistryDriverOptions) {
    if (!opts?.registry) throw new ValidationError('registry is required', 'registry');
    this.registry = opts.registry;
    this.ownerKey = opts.ownerKey ?? DEFAULT_SERVICE_REGISTRY_OWNER_KEY;
    // The Broker checks the key: it must be a valid metadata key.
    this.brokerFor('validation');
  }

  async getCurrentState(spec: Record<string, unknown>, ctx: DriverContext): Promise<ResourceState> {
    const want = parseRegistration(spec, 'spec');
    const owner = validateId(ctx.object.instanceId, 'instanceId');
    const broker = this.brokerFor(owner);
    const serv = await orUndefined(this.registry.getServ(want.namespace, want.service));
    if (!serv || !broker.isOwned(serv.metadata)) return null;
    const endpoints = (await orUndefined(this.registry.listEndp(want.namespace, want.service))) ?? [];
    const state: RegistrationState = {
      namespace: want.namespace,
      service: want.service,
      metadata: this.withoutOwner(serv.metadata),
      endpoints: endpoints
        .filter((e) => broker.isOwned(e.metadata))
        .map((e) => ({ name: e.name, address: e.address, port: e.port, metadata: this.withoutOwner(e.metadata) }))
        .sort((a, b) => a.name.localeCompare(b.name)),
      owner,
    };
    return state as unknown as ResourceState;
  }

  async getDesiredState(spec: Record<string, unknown>, ctx: DriverContext): Promise<ResourceState> {
    const want = parseRegistration(spec, 'spec');
    const { ownerKey } = this;
    for (const m of [want.metadata, ...want.endpoints.map((e) => e.metadata)]) {
      if (ownerKey in m) throw new ValidationError(`spec metadata may not set the owner key ${JSON.stringify(ownerKey)}`, 'spec.metadata');
    }
    const state: RegistrationState = { ...want, owner: validateId(ctx.object.instanceId, 'instanceId') };
    return state as unknown as ResourceState;
  }

  newUpdatePatch(current: ResourceState, desired: ResourceState): Patch {
    if (!desired) return current ? { delete: current } : {};
    if (!current) return { create: desired };
    return sameRegistration(parseRegistration(current, 'current'), parseRegistration(desired, 'desired')) ? {} : { update: desired };
  }

  newDeletePatch(current: ResourceState): Patch {
    return current ? { delete: current } : {};
  }

  async applyCreateChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    const s = this.parseState(state, ctx);
    const broker = this.brokerFor(s.owner);
    const path = `${s.namespace}/${s.service}`;
    await this.ensureNamespace(s.namespace);
    const existing = await orUndefined(this.registry.getServ(s.namespace, s.service));
    if (existing && !broker.isOwned(existing.metadata)) throw this.foreignService(path, ctx);
    let serv;
    try {
      serv = await broker.manageServ({ name: s.service, namespace: s.namespace, metadata: s.metadata });
    } catch (err) {
      // The namespace went between our check and the create (another deprovision removing it): try again later.
      if (err instanceof NotFoundError) throw new UnavailableError(`namespace ${s.namespace} disappeared while service ${path} was being registered`, err);
      throw err;
    }
    // A create that lost a race adopts what is there, and that may be foreign.
    if (!broker.isOwned(serv.metadata)) throw this.foreignService(path, ctx);
    const errors = await broker.manageServEndps(
      s.namespace,
      s.service,
      s.endpoints.map((e) => ({ ...e, namespace: s.namespace, service: s.service })),
    );
    const wanted = new Set(s.endpoints.map((e) => e.name));
    for (const [name, err] of errors) {
      if (err instanceof EndpointNotOwnedError) {
        // Someone else's endpoint inside our service stays; it is an error only when it takes a name we need.
        if (wanted.has(name)) {
          throw new ConflictError(`endpoint ${path}/${name} exists and is not owned by instance ${s.owner}: it was left untouched`);
        }
        continue;
      }
      throw err;
    }
  }

  async applyDeleteChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    const s = this.parseState(state, ctx);
    try {
      await this.brokerFor(s.owner).removeServ(s.namespace, s.service, true);
    } catch (err) {
      // Ours are gone either way: a foreign endpoint keeps the service alive, a foreign service was never ours.
      if (err instanceof ContainsNotOwnedError || err instanceof NotOwnedError) return;
      throw err;
    }
  }

  async applyUpdateChange(state: ResourceState, ctx: DriverContext): Promise<void> {
    // Every step is level-set: creating what is missing and updating what differs is the update.
    await this.applyCreateChange(state, ctx);
  }

  /**
   * The namespace is shared by every instance: created when missing, under the plain brokerflow mark, and used as
   * it is otherwise. It is never updated, since it may be the endpoint mirror's (same mark) or someone else's.
   */
  private async ensureNamespace(name: string): Promise<void> {
    if (await orUndefined(this.registry.getNs(name))) return;
    try {
      await this.registry.createNs({ name, metadata: { [this.ownerKey]: SERVICE_REGISTRY_NAMESPACE_OWNER } });
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) throw err; // a concurrent create won: the namespace is there
    }
  }

  private parseState(state: ResourceState, ctx: DriverContext): RegistrationState {
    const reg = parseRegistration(state, 'state');
    const owner = validateId(record(state, 'state').owner, 'owner');
    if (owner !== validateId(ctx.object.instanceId, 'instanceId')) {
      throw new ValidationError('state names another instance than the one being reconciled', 'owner');
    }
    return { ...reg, owner };
  }

  private brokerFor(owner: string): ServiceRegistryBroker {
    return new ServiceRegistryBroker(this.registry, { ownerPair: { key: this.ownerKey, value: serviceRegistryOwnerValue(owner) } });
  }

  private withoutOwner(m: Metadata): Metadata {
    return Object.fromEntries(Object.entries(m).filter(([k]) => k !== this.ownerKey));
  }

  private foreignService(path: string, ctx: DriverContext): ConflictError {
    return new ConflictError(`service ${path} exists and is not owned by instance ${ctx.object.instanceId}: it was left untouched`);
  }
}

async function orUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}
