// The data a service registry holds (namespaces > services > endpoints) and the interface every backend
// implements (docs/design/contracts/service-registries.md#backends, after the original ServiceRegistry).
// Backends store and fetch; ownership rules live in the Broker, never here.

/** Free key/value pairs attached to a namespace, service or endpoint. */
export type Metadata = Record<string, string>;

/** One key/value pair, e.g. the owner mark `owner=brokerflow`. */
export interface MetadataPair {
  key: string;
  value: string;
}

/** A namespace of the registry: the top level, holding services. */
export interface Namespace {
  name: string;
  metadata: Metadata;
}

/** A service inside a namespace, holding endpoints. */
export interface Service {
  name: string;
  /** Name of the namespace holding it. */
  namespace: string;
  metadata: Metadata;
}

/** One address and port at which a service answers. */
export interface Endpoint {
  name: string;
  /** Name of the namespace holding the service. */
  namespace: string;
  /** Name of the service holding it. */
  service: string;
  /** An IPv4 or IPv6 address. */
  address: string;
  /** 1..65535. */
  port: number;
  metadata: Metadata;
}

/**
 * A service registry backend. Every method throws the typed errors of `./errors`: a missing object (or a
 * missing parent) is `ServRegNotFoundError`, an existing one on create is `ServRegAlreadyExistsError`, bad
 * input is a `ValidationError` thrown before any I/O.
 *
 * Semantics every backend keeps (the shared conformance suite checks them):
 * - `create*` requires the parent to exist; `update*` replaces the metadata wholesale (a key left out is
 *   removed) and requires the object to exist.
 * - `deleteNs` / `deleteServ` remove the object together with everything below it. The Broker only calls
 *   them once it has checked that nothing below is foreign.
 * - The `namespace` / `service` fields of what is returned are always filled in from where it was found.
 */
export interface ServiceRegistry {
  /** Quotas of the backend that a caller checks before it writes (none: unlimited). */
  readonly limits?: { readonly maxEndpointsPerService?: number };

  getNs(name: string): Promise<Namespace>;
  listNs(): Promise<Namespace[]>;
  createNs(ns: Namespace): Promise<Namespace>;
  updateNs(ns: Namespace): Promise<Namespace>;
  deleteNs(name: string): Promise<void>;

  getServ(nsName: string, servName: string): Promise<Service>;
  /** The services of a namespace; not-found when the namespace does not exist. */
  listServ(nsName: string): Promise<Service[]>;
  createServ(serv: Service): Promise<Service>;
  updateServ(serv: Service): Promise<Service>;
  deleteServ(nsName: string, servName: string): Promise<void>;

  getEndp(nsName: string, servName: string, endpName: string): Promise<Endpoint>;
  /** The endpoints of a service; not-found when the service does not exist. */
  listEndp(nsName: string, servName: string): Promise<Endpoint[]>;
  createEndp(endp: Endpoint): Promise<Endpoint>;
  updateEndp(endp: Endpoint): Promise<Endpoint>;
  deleteEndp(nsName: string, servName: string, endpName: string): Promise<void>;

  /**
   * Optional: a service's endpoint changes written together (etcd: in transactions of up to 128 writes, guarded
   * by the service's existence). Resolves with the changes it did not write (a guard failed, or the backend cannot
   * batch), which the caller writes one by one so that each reports its own error.
   */
  applyEndpoints?(nsName: string, servName: string, changes: EndpointChanges): Promise<EndpointChanges>;

  /**
   * Optional, with {@link writeServices}: the whole registry read at one moment, with the revision of every
   * object (etcd: one consistent range read). What a full comparison reads instead of a call per service.
   */
  snapshot?(): Promise<RegistrySnapshot>;

  /**
   * Optional: writes of many services in few round trips (etcd: transactions of up to 127 writes), each write
   * conditional on its object being exactly as `snapshot` saw it (absent, or unchanged since) and on the
   * namespace existing. A service's writes go in one transaction; when a guard fails nothing of that
   * transaction is written. Resolves with the writes not made, for the caller to redo carefully.
   */
  writeServices?(snapshot: RegistrySnapshot, writes: ServiceWrite[]): Promise<ServiceWrite[]>;

  /** Releases connections. */
  close(): Promise<void>;
}

/** Endpoint writes of one service: creates (must be absent), updates (must exist) and deletes (by name). */
export interface EndpointChanges {
  create: Endpoint[];
  update: Endpoint[];
  delete: string[];
}

/** An object as a {@link RegistrySnapshot} saw it, with the revision a guarded write compares against. */
export interface Revisioned<T> {
  value: T;
  revision: string;
}

/** The whole registry at one moment. Keys of the maps: `ns`, `ns/svc`. */
export interface RegistrySnapshot {
  namespaces: Map<string, Revisioned<Namespace>>;
  /** Every service key, also those below a namespace that is gone (left by an interrupted delete). */
  services: Map<string, Revisioned<Service>>;
  /** Every endpoint key by its service, also those below a service that is gone. */
  endpoints: Map<string, Array<Revisioned<Endpoint>>>;
}

/** What makes one service match: the service to put (when it differs), endpoints to put and to delete. */
export interface ServiceWrite {
  namespace: string;
  service: string;
  /** Put when given (created when the snapshot had none). */
  put?: Service;
  endpoints: Endpoint[];
  /** Names of endpoints to delete. */
  deletes: string[];
}
