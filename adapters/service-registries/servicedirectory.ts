// The Google Cloud Service Directory backend (v1 RegistrationService): resources are
// `projects/<p>/locations/<l>/namespaces/<ns>/services/<svc>/endpoints/<ep>`; namespace metadata is stored
// as labels, service and endpoint metadata as annotations; updates send field masks naming exactly the
// fields written; gRPC status codes are mapped to the registry's error set. Deletes cascade server-side
// (DeleteNamespace / DeleteService also delete what is below), which is the ServiceRegistry contract.
//
// Calls go out with `retry: null`: the client library's own retries would hide failures from the caller's
// retry policy (Temporal activity options), which is where retries belong.
import { status as GrpcStatus } from '@grpc/grpc-js';
import { RegistrationServiceClient } from '@google-cloud/service-directory';
import { ConflictError, PermissionError, UnavailableError, ValidationError } from '../errors';
import { CallBudget, type CallObserver } from './call-budget';
import { ServRegAlreadyExistsError, ServRegNotFoundError, ServRegTimeoutError, type RegistryLevel } from './errors';
import type { Endpoint, Metadata, Namespace, Service, ServiceRegistry } from './types';
import { pathOf, validateEndpoint, validateName, validateNamespace, validateService } from './validation';

/** Where the registry lives and how to reach it. */
export interface ServiceDirectoryServiceRegistryOptions {
  /** Google Cloud project ID (or number). */
  projectId: string;
  /** Region, e.g. `us-east1`. */
  location: string;
  /** A ready client (closed by its owner); otherwise one is built from `clientOptions`. */
  client?: RegistrationServiceClient;
  /** Credentials, `apiEndpoint`, `port`, `sslCreds`... as the client library takes them. */
  clientOptions?: ClientOptions;
  /** Deadline of each call (default 30 s). */
  callTimeoutMs?: number;
  /** A client-side rate budget of API calls per second (default: none; the project's API quota applies). */
  callsPerSecond?: number;
  /** Endpoints one service may hold, refused before any call beyond it (default: no limit). */
  maxEndpointsPerService?: number;
  /** Told of every call, budget wait and throttling answer (metrics). */
  observer?: CallObserver;
}

// Service Directory resource IDs are RFC 1035 labels.
const resourceIdPattern = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const projectOrLocationPattern = /^[a-z0-9][a-z0-9-]{0,62}$/;

// The client library's own option types, without importing its transitive dependency google-gax.
type ClientOptions = NonNullable<ConstructorParameters<typeof RegistrationServiceClient>[0]>;
type CallOptions = { timeout: number; retry: null };

type Ns = { name?: string | null; labels?: Record<string, string> | null };
type Svc = { name?: string | null; annotations?: Record<string, string> | null };
type Ep = { name?: string | null; address?: string | null; port?: number | null; annotations?: Record<string, string> | null };

/** A ServiceRegistry on Google Cloud Service Directory. */
export class ServiceDirectoryServiceRegistry implements ServiceRegistry {
  private readonly client: RegistrationServiceClient;
  private readonly ownsClient: boolean;
  private readonly parent: string;
  private readonly callTimeoutMs: number;
  private readonly budget: CallBudget | undefined;
  private readonly observer: CallObserver;
  readonly limits: { maxEndpointsPerService?: number };

  constructor(opts: ServiceDirectoryServiceRegistryOptions) {
    for (const [field, value] of [['projectId', opts.projectId], ['location', opts.location]] as const) {
      if (typeof value !== 'string' || !projectOrLocationPattern.test(value)) {
        throw new ValidationError(`${field} ${JSON.stringify(value)} is not a valid Google Cloud ${field}`, field);
      }
    }
    const timeout = opts.callTimeoutMs ?? 30_000;
    if (!Number.isFinite(timeout) || timeout <= 0) throw new ValidationError('callTimeoutMs must be positive', 'callTimeoutMs');
    this.callTimeoutMs = timeout;
    this.budget = opts.callsPerSecond === undefined ? undefined : new CallBudget(opts.callsPerSecond);
    this.observer = opts.observer ?? {};
    const max = opts.maxEndpointsPerService;
    if (max !== undefined && (!Number.isInteger(max) || max < 1)) {
      throw new ValidationError('maxEndpointsPerService must be a positive integer', 'maxEndpointsPerService');
    }
    this.limits = max === undefined ? {} : { maxEndpointsPerService: max };
    this.parent = `projects/${opts.projectId}/locations/${opts.location}`;
    this.ownsClient = !opts.client;
    this.client = opts.client ?? new RegistrationServiceClient({ projectId: opts.projectId, ...opts.clientOptions });
  }

  // ---- namespaces

  async getNs(name: string): Promise<Namespace> {
    const ref = this.nsRef(name);
    const [ns] = await this.call('namespace', name, (o) => this.client.getNamespace({ name: ref }, o));
    return fromNs(ns);
  }

  async listNs(): Promise<Namespace[]> {
    const [list] = await this.call('namespace', '', (o) => this.client.listNamespaces({ parent: this.parent }, o));
    return list.map(fromNs);
  }

  async createNs(ns: Namespace): Promise<Namespace> {
    const v = validateNamespace(ns);
    this.nsRef(v.name);
    const [created] = await this.call('namespace', v.name, (o) =>
      this.client.createNamespace({ parent: this.parent, namespaceId: v.name, namespace: { labels: v.metadata } }, o),
    );
    return fromNs(created);
  }

  async updateNs(ns: Namespace): Promise<Namespace> {
    const v = validateNamespace(ns);
    const ref = this.nsRef(v.name);
    const [updated] = await this.call('namespace', v.name, (o) =>
      this.client.updateNamespace({ namespace: { name: ref, labels: v.metadata }, updateMask: { paths: ['labels'] } }, o),
    );
    return fromNs(updated);
  }

  async deleteNs(name: string): Promise<void> {
    const ref = this.nsRef(name);
    await this.call('namespace', name, (o) => this.client.deleteNamespace({ name: ref }, o));
  }

  // ---- services

  async getServ(nsName: string, servName: string): Promise<Service> {
    const ref = this.servRef(nsName, servName);
    const [s] = await this.call('service', pathOf(nsName, servName), (o) => this.client.getService({ name: ref }, o));
    return fromSvc(nsName, s);
  }

  async listServ(nsName: string): Promise<Service[]> {
    const parent = this.nsRef(nsName);
    const [list] = await this.call('namespace', nsName, (o) => this.client.listServices({ parent }, o));
    // Whether listing under a missing parent is NOT_FOUND or empty is not documented: an empty answer is
    // confirmed with a get, so a missing namespace is always not-found.
    if (list.length === 0) await this.getNs(nsName);
    return list.map((s) => fromSvc(nsName, s));
  }

  async createServ(serv: Service): Promise<Service> {
    const v = validateService(serv);
    const parent = this.nsRef(v.namespace);
    this.servRef(v.namespace, v.name);
    const [created] = await this.call('service', pathOf(v.namespace, v.name), (o) =>
      this.client.createService({ parent, serviceId: v.name, service: { annotations: v.metadata } }, o),
    );
    return fromSvc(v.namespace, created);
  }

  async updateServ(serv: Service): Promise<Service> {
    const v = validateService(serv);
    const ref = this.servRef(v.namespace, v.name);
    const [updated] = await this.call('service', pathOf(v.namespace, v.name), (o) =>
      this.client.updateService({ service: { name: ref, annotations: v.metadata }, updateMask: { paths: ['annotations'] } }, o),
    );
    return fromSvc(v.namespace, updated);
  }

  async deleteServ(nsName: string, servName: string): Promise<void> {
    const ref = this.servRef(nsName, servName);
    await this.call('service', pathOf(nsName, servName), (o) => this.client.deleteService({ name: ref }, o));
  }

  // ---- endpoints

  async getEndp(nsName: string, servName: string, endpName: string): Promise<Endpoint> {
    const ref = this.endpRef(nsName, servName, endpName);
    const [e] = await this.call('endpoint', pathOf(nsName, servName, endpName), (o) => this.client.getEndpoint({ name: ref }, o));
    return fromEp(nsName, servName, e);
  }

  async listEndp(nsName: string, servName: string): Promise<Endpoint[]> {
    const parent = this.servRef(nsName, servName);
    const [list] = await this.call('service', pathOf(nsName, servName), (o) => this.client.listEndpoints({ parent }, o));
    if (list.length === 0) await this.getServ(nsName, servName);
    return list.map((e) => fromEp(nsName, servName, e));
  }

  async createEndp(endp: Endpoint): Promise<Endpoint> {
    const v = validateEndpoint(endp);
    const parent = this.servRef(v.namespace, v.service);
    this.endpRef(v.namespace, v.service, v.name);
    const [created] = await this.call('endpoint', pathOf(v.namespace, v.service, v.name), (o) =>
      this.client.createEndpoint(
        { parent, endpointId: v.name, endpoint: { address: v.address, port: v.port, annotations: v.metadata } },
        o,
      ),
    );
    return fromEp(v.namespace, v.service, created);
  }

  async updateEndp(endp: Endpoint): Promise<Endpoint> {
    const v = validateEndpoint(endp);
    const ref = this.endpRef(v.namespace, v.service, v.name);
    const [updated] = await this.call('endpoint', pathOf(v.namespace, v.service, v.name), (o) =>
      this.client.updateEndpoint(
        {
          endpoint: { name: ref, address: v.address, port: v.port, annotations: v.metadata },
          updateMask: { paths: ['address', 'port', 'annotations'] },
        },
        o,
      ),
    );
    return fromEp(v.namespace, v.service, updated);
  }

  async deleteEndp(nsName: string, servName: string, endpName: string): Promise<void> {
    const ref = this.endpRef(nsName, servName, endpName);
    await this.call('endpoint', pathOf(nsName, servName, endpName), (o) => this.client.deleteEndpoint({ name: ref }, o));
  }

  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }

  // ---- internals

  private nsRef(ns: string): string {
    return `${this.parent}/namespaces/${resourceId('namespace', ns)}`;
  }

  private servRef(ns: string, serv: string): string {
    return `${this.nsRef(ns)}/services/${resourceId('service', serv)}`;
  }

  private endpRef(ns: string, serv: string, endp: string): string {
    return `${this.servRef(ns, serv)}/endpoints/${resourceId('endpoint', endp)}`;
  }

  private async call<T>(level: RegistryLevel, path: string, fn: (opts: CallOptions) => Promise<T>): Promise<T> {
    const waited = (await this.budget?.take()) ?? 0;
    if (waited > 0) this.observer.waited?.('servicedirectory', waited);
    this.observer.called?.('servicedirectory');
    try {
      return await fn({ timeout: this.callTimeoutMs, retry: null });
    } catch (err) {
      if ((err as { code?: unknown })?.code === GrpcStatus.RESOURCE_EXHAUSTED) this.observer.throttled?.('servicedirectory');
      throw mapServiceDirectoryError(err, level, path);
    }
  }
}

/** Maps a gRPC error of the Service Directory API to the registry's error set. */
export function mapServiceDirectoryError(err: unknown, level: RegistryLevel, path: string): Error {
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  const code = typeof e?.code === 'number' ? e.code : undefined;
  const details = (typeof e?.details === 'string' ? e.details : '').slice(0, 300);
  switch (code) {
    case GrpcStatus.NOT_FOUND:
      return new ServRegNotFoundError(level, path);
    case GrpcStatus.ALREADY_EXISTS:
      return new ServRegAlreadyExistsError(level, path);
    case GrpcStatus.INVALID_ARGUMENT:
    case GrpcStatus.OUT_OF_RANGE:
      return new ValidationError(`Service Directory rejected ${level} ${path}: ${details}`);
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new ServRegTimeoutError(`Service Directory call on ${level} ${path}`, err);
    case GrpcStatus.PERMISSION_DENIED:
    case GrpcStatus.UNAUTHENTICATED:
      return new PermissionError(`Service Directory denied the call on ${level} ${path} (${GrpcStatus[code]})`);
    case GrpcStatus.FAILED_PRECONDITION:
    case GrpcStatus.ABORTED:
      return new ConflictError(`Service Directory refused the call on ${level} ${path} (${GrpcStatus[code]}): ${details}`);
    default:
      // UNAVAILABLE, RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN, a connection that never came up: may pass later.
      return new UnavailableError(
        `Service Directory call on ${level} ${path} failed (${code === undefined ? 'no gRPC status' : GrpcStatus[code]})`,
        err,
      );
  }
}

function resourceId(level: RegistryLevel, name: string): string {
  validateName(level, name);
  if (!resourceIdPattern.test(name)) {
    throw new ValidationError(
      `${level} name ${JSON.stringify(name)} is not a Service Directory resource ID (RFC 1035: lowercase letters, digits and '-', at most 63)`,
      `${level}.name`,
    );
  }
  return name;
}

function lastSegment(resourceName: string | null | undefined): string {
  const parts = (resourceName ?? '').split('/');
  return parts[parts.length - 1] ?? '';
}

function plain(m: Record<string, string> | null | undefined): Metadata {
  return { ...(m ?? {}) };
}

function fromNs(ns: Ns): Namespace {
  return { name: lastSegment(ns.name), metadata: plain(ns.labels) };
}

function fromSvc(nsName: string, s: Svc): Service {
  return { name: lastSegment(s.name), namespace: nsName, metadata: plain(s.annotations) };
}

function fromEp(nsName: string, servName: string, e: Ep): Endpoint {
  return {
    name: lastSegment(e.name),
    namespace: nsName,
    service: servName,
    address: e.address ?? '',
    port: e.port ?? 0,
    metadata: plain(e.annotations),
  };
}
