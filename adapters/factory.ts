// Builds the adapters a process needs from its runtime configuration: the registry (persistence replicas +
// redundancy + the secret provider for credentials), the resource drivers and the drivers' secret store, and
// for endpoint reconciliation the service registry Broker and the kubeconfig. Worker, broker and CLI all call
// this, so they see the same registry.
import { join, resolve } from 'node:path';
import type { RuntimeConfig } from '../config/runtime';
import { resolveSecret } from '../config/runtime';
import { ConfigError } from '../config/catalog';
import type { EndpointSyncConfig } from '../config/endpoints';
import type { KubeConfig } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { ServiceRegistry, ServiceRegistryBroker } from './service-registries';
import type { CallObserver } from './service-registries/call-budget';
import {
  EtcdPersistenceProvider,
  FilePersistenceProvider,
  KubernetesPersistenceProvider,
  MachineId,
  RedundantStore,
  S3PersistenceProvider,
  SecretPersistenceProvider,
  objectKey,
  type ObjectStore,
  type PersistedObject,
  type PersistenceProvider,
} from './persistence';
import { ConflictError, PermissionError, UnavailableError } from './errors';
import { Registry } from './registry';
import {
  connectTenantEtcd,
  EtcdPrefixDriver,
  EtcdUserDriver,
  KubernetesObjectDriver,
  ServiceRegistryDriver,
  type ResourceDriver,
  type SecretStore,
} from './resources';
import { NotFoundError } from './errors';

/** The registry and what it was built on. */
export interface RegistryBundle {
  registry: Registry;
  store: RedundantStore;
  secrets: RedundantStore;
  providers: PersistenceProvider[];
  /** Every replica of both stores: up or down, behind (pending repairs), primary. */
  replicaHealth(): RegistryReplicaHealth[];
  close(): Promise<void>;
}

/** One replica of the registry's plain (`objects`) or secret store, as /readyz and the metrics report it. */
export interface RegistryReplicaHealth {
  store: 'objects' | 'secrets';
  replica: string;
  up: boolean;
  degraded: boolean;
  pendingRepairs: number;
  primary: boolean;
  lastError?: string;
}

/** Default seconds between two repairs of replicas that are down or behind (`registry.repairIntervalSeconds`). */
export const DEFAULT_REPAIR_INTERVAL_SECONDS = 60;

function encryptionKeys(cfg: RuntimeConfig): { keys: Array<{ id: string; key: string }>; currentKeyId: string } {
  if (!cfg.encryption) {
    throw new ConfigError('encryption: keys are required (credentials are stored encrypted at rest)', 'encryption');
  }
  return {
    keys: cfg.encryption.keys.map((k, i) => ({ id: k.id, key: resolveSecret(k.key, `encryption.keys[${i}].key`, cfg.baseDir) })),
    currentKeyId: cfg.encryption.currentKeyId,
  };
}

/** One persistence provider for the configured backend; `sub` keeps plain and secret objects apart. */
function providerFor(cfg: RuntimeConfig, sub: 'objects' | 'secrets'): PersistenceProvider {
  const reg = cfg.registry ?? { backend: 'file' as const, file: { dirs: [join(cfg.baseDir, '.data', 'registry')] } };
  switch (reg.backend) {
    case 'file':
      if (!reg.file) throw new ConfigError('registry.file: required when registry.backend is file', 'registry.file');
      return new FilePersistenceProvider({ directories: reg.file.dirs.map((d) => join(resolve(cfg.baseDir, d), sub)) });
    case 'etcd':
      if (!cfg.etcd) throw new ConfigError('etcd: required when registry.backend is etcd', 'etcd');
      return new EtcdPersistenceProvider({
        replicas: [
          {
            endpoints: cfg.etcd.endpoints,
            prefix: `${cfg.etcd.prefix ?? '/brokerflow'}/registry/${sub}`,
            ...(cfg.etcd.auth ? { auth: { username: cfg.etcd.auth.username, password: resolveSecret(cfg.etcd.auth.password, 'etcd.auth.password', cfg.baseDir) } } : {}),
          },
        ],
      });
    case 'kubernetes':
      if (!reg.kubernetes) throw new ConfigError('registry.kubernetes: required when registry.backend is kubernetes', 'registry.kubernetes');
      return new KubernetesPersistenceProvider({
        replicas: [
          {
            ...(cfg.kubernetes?.kubeconfig ? { kubeconfigPath: resolve(cfg.baseDir, cfg.kubernetes.kubeconfig) } : {}),
            namespace: reg.kubernetes.namespace,
            store: sub === 'objects' ? 'registry' : 'registry-secrets',
            // Everything behind the secret provider (binding credentials, driver secrets) is a Secret, whatever
            // its kind: no list of kind names here that could drift from what the registry writes.
            ...(sub === 'secrets' ? { secretKinds: '*' as const } : {}),
          },
        ],
      });
    case 's3':
      if (!reg.s3) throw new ConfigError('registry.s3: required when registry.backend is s3', 'registry.s3');
      return new S3PersistenceProvider({
        replicas: reg.s3.endpoints.map((e) => ({
          bucket: e.bucket,
          region: e.region,
          ...(e.endpoint ? { endpoint: e.endpoint } : {}),
          ...(e.forcePathStyle !== undefined ? { forcePathStyle: e.forcePathStyle } : {}),
          prefix: `brokerflow/${sub}/`,
        })),
      });
  }
}

async function storeOver(provider: PersistenceProvider, machineId: MachineId): Promise<RedundantStore> {
  try {
    await provider.initialize(machineId);
  } catch (err) {
    // Some replicas are down: start on the others (the store reports the rest degraded and reopens them in its
    // repairs), but not with none.
    const up = (r: string) => {
      const s = provider.replicaStatus(r);
      return s.exists && s.status;
    };
    if (!(err instanceof UnavailableError) || !provider.replicas().some(up)) throw err;
  }
  return new RedundantStore(provider.replicas().map((replica) => ({ provider, replica })));
}

/** The registry of this configuration, initialised and ready. */
export async function createRegistry(cfg: RuntimeConfig): Promise<RegistryBundle> {
  const machineId = await MachineId.load({ dataDir: join(cfg.baseDir, '.data') });
  const plain = providerFor(cfg, 'objects');
  const secret = new SecretPersistenceProvider(providerFor(cfg, 'secrets'), encryptionKeys(cfg));
  const [store, secrets] = await Promise.all([storeOver(plain, machineId), storeOver(secret, machineId)]);
  // What a replica missed before a restart is kept in the other replicas: read it back and repair now, then
  // again every interval (a single replica has nothing to repair, and this makes no call then).
  await Promise.all([store.recover(), secrets.recover()]);
  const intervalMs = (cfg.registry?.repairIntervalSeconds ?? DEFAULT_REPAIR_INTERVAL_SECONDS) * 1000;
  store.startRepairs(intervalMs);
  secrets.startRepairs(intervalMs);
  const registry = new Registry({ store, secrets, ...(cfg.registry?.kubernetes ? { defaultNamespace: cfg.registry.kubernetes.namespace } : {}) });
  const report = (name: RegistryReplicaHealth['store'], s: RedundantStore): RegistryReplicaHealth[] =>
    s.health().map((h) => {
      const r: RegistryReplicaHealth = { store: name, replica: h.replica, up: h.status.exists && h.status.status, degraded: h.degraded, pendingRepairs: h.pendingRepairs, primary: h.primary };
      if (h.status.exists && h.status.lastError !== undefined) r.lastError = h.status.lastError;
      return r;
    });
  return {
    registry,
    store,
    secrets,
    providers: [plain, secret],
    replicaHealth: () => [...report('objects', store), ...report('secrets', secrets)],
    async close() {
      store.stopRepairs();
      secrets.stopRepairs();
      await Promise.allSettled([plain.close(), secret.close()]);
    },
  };
}

/** Where drivers keep generated secrets: objects of kind DriverSecret in the encrypted store. */
export function driverSecretStore(secrets: ObjectStore): SecretStore {
  const objectFor = (name: string, value?: string): PersistedObject =>
    ({
      apiVersion: 'secrets.brokerflow.io/v1',
      kind: 'DriverSecret',
      // Names are readable (`etcd-user/<binding>`); '/' and other separators become '.' in the object name.
      metadata: { name: name.replace(/[^A-Za-z0-9._-]/g, '.') },
      ...(value !== undefined ? { value } : {}),
    }) as PersistedObject;
  const read = async (name: string) => {
    const o = (await secrets.get(objectKey(objectFor(name)))) as (PersistedObject & { value?: unknown }) | undefined;
    return typeof o?.value === 'string' ? o.value : undefined;
  };
  return {
    async ensure(name, generate) {
      const existing = await read(name);
      if (existing !== undefined) return existing;
      try {
        await secrets.put(objectFor(name, generate()), { ifNoneMatch: '*' });
      } catch (err) {
        // A concurrent ensure won the race: its value is the one stored, and the one we return.
        if (!(err instanceof ConflictError)) throw err;
      }
      const stored = await read(name);
      if (stored === undefined) throw new NotFoundError(`driver secret ${name} vanished while being created`);
      return stored;
    },
    get: read,
    async delete(name) {
      await secrets.delete(objectKey(objectFor(name)));
    },
  };
}

/**
 * A secret store that only reads: what a dry run gives the drivers. A write (a password created or deleted) fails
 * with a PermissionError instead of happening; a dry run calls no step that writes, and this makes sure of it.
 */
export function readOnlySecretStore(store: SecretStore): SecretStore {
  return {
    get: (name) => store.get(name),
    async ensure(name) {
      const existing = await store.get(name);
      if (existing === undefined) throw new PermissionError(`driver secret ${name} would be created, but this secret store is read-only`);
      return existing;
    },
    async delete(name) {
      throw new PermissionError(`driver secret ${name} would be deleted, but this secret store is read-only`);
    },
  };
}

/** The resource drivers this configuration enables, by kind. */
export async function createDrivers(
  cfg: RuntimeConfig,
  secrets: SecretStore,
  opts: { observer?: CallObserver } = {},
): Promise<{ drivers: Map<string, ResourceDriver>; close(): Promise<void> }> {
  const drivers = new Map<string, ResourceDriver>();
  const closers: Array<() => void | Promise<void>> = [];
  if (cfg.drivers?.etcd) {
    const e = cfg.drivers.etcd;
    const client = connectTenantEtcd({
      endpoints: e.endpoints,
      auth: { username: e.auth.username, password: resolveSecret(e.auth.password, 'drivers.etcd.auth.password', cfg.baseDir) },
    });
    closers.push(() => client.close());
    drivers.set('etcd-prefix', new EtcdPrefixDriver({ client }));
    drivers.set('etcd-user', new EtcdUserDriver({ client, secrets, endpoints: e.endpoints }));
  }
  if (cfg.kubernetes?.kubeconfig || process.env.KUBECONFIG) {
    const path = cfg.kubernetes?.kubeconfig ? resolve(cfg.baseDir, cfg.kubernetes.kubeconfig) : process.env.KUBECONFIG;
    drivers.set('kubernetes', await KubernetesObjectDriver.fromKubeconfig(path));
  }
  if (cfg.drivers?.serviceRegistry) {
    const sr = cfg.drivers.serviceRegistry;
    const registry = connectServiceRegistry(sr, cfg.baseDir, 'drivers.serviceRegistry', opts.observer);
    closers.push(() => registry.close());
    drivers.set('service-registry', new ServiceRegistryDriver({ registry, ...(sr.ownerKey ? { ownerKey: sr.ownerKey } : {}) }));
  }
  return {
    drivers,
    async close() {
      await Promise.allSettled(closers.map(async (c) => c()));
    },
  };
}

/** What endpoint reconciliation reads and writes through: the Broker in front of the configured registry, and the cluster. */
export interface EndpointAdapters {
  /** The ownership-checking Broker in front of the configured service registry. */
  broker: ServiceRegistryBroker;
  /** Where namespaces and services are read and watched. */
  kubeConfig: KubeConfig;
  /** Closes the service registry's connection. */
  close(): Promise<void>;
}

// Loaded only when endpoint reconciliation is configured: the broker and the CLI build their adapters here too
// but never mirror endpoints, and the service registry clients (AWS Cloud Map, Google Service Directory) with
// @kubernetes/client-node cost about 100 MB of memory. Client-node is ESM-only, hence import() for it.
const loadServiceRegistries = () => require('./service-registries') as typeof import('./service-registries');
const loadKubernetesClient = () => import('@kubernetes/client-node');

/** The connection fields of a service registry, as `endpoints:` and `drivers.serviceRegistry` both give them. */
export type ServiceRegistryConnection = Pick<EndpointSyncConfig, 'registry' | 'etcd' | 'cloudmap' | 'servicedirectory'>;

/** Connects the configured service registry backend (the caller closes it); `section` names the fields in errors. */
export function connectServiceRegistry(cfg: ServiceRegistryConnection, baseDir?: string, section = 'endpoints', observer?: CallObserver): ServiceRegistry {
  const { CloudMapServiceRegistry, EtcdServiceRegistry, ServiceDirectoryServiceRegistry } = loadServiceRegistries();
  const missing = (): ConfigError =>
    new ConfigError(`${section}.${cfg.registry} is required when ${section}.registry is ${cfg.registry}`, `${section}.${cfg.registry}`);
  switch (cfg.registry) {
    case 'etcd': {
      if (!cfg.etcd) throw missing();
      const auth = cfg.etcd.auth ? { username: cfg.etcd.auth.username, password: resolveSecret(cfg.etcd.auth.password, `${section}.etcd.auth.password`, baseDir) } : undefined;
      return EtcdServiceRegistry.connect({ endpoints: cfg.etcd.endpoints, ...(cfg.etcd.prefix ? { prefix: cfg.etcd.prefix } : {}), ...(auth ? { auth } : {}) });
    }
    case 'cloudmap':
      if (!cfg.cloudmap) throw missing();
      // Credentials come from the AWS default chain (environment, profile, instance role), never the file.
      return new CloudMapServiceRegistry({
        clientConfig: { region: cfg.cloudmap.region, ...(cfg.cloudmap.endpoint ? { endpoint: cfg.cloudmap.endpoint } : {}) },
        ...(cfg.cloudmap.callsPerSecond ? { callsPerSecond: cfg.cloudmap.callsPerSecond } : {}),
        ...(cfg.cloudmap.maxInstancesPerService ? { maxInstancesPerService: cfg.cloudmap.maxInstancesPerService } : {}),
        ...(observer ? { observer } : {}),
      });
    case 'servicedirectory': {
      const sd = cfg.servicedirectory;
      if (!sd) throw missing();
      return new ServiceDirectoryServiceRegistry({
        projectId: sd.projectId,
        location: sd.location,
        clientOptions: { ...(sd.apiEndpoint ? { apiEndpoint: sd.apiEndpoint } : {}), ...(sd.port ? { port: sd.port } : {}) },
        ...(sd.callsPerSecond ? { callsPerSecond: sd.callsPerSecond } : {}),
        ...(sd.maxEndpointsPerService ? { maxEndpointsPerService: sd.maxEndpointsPerService } : {}),
        ...(observer ? { observer } : {}),
      });
    }
  }
}

/**
 * The adapters of endpoint reconciliation: the configured registry behind the ownership-checking Broker, and
 * the kubeconfig (`endpoints.kubeconfig`, else `opts.kubeconfig`, else $KUBECONFIG, ~/.kube/config or in-cluster).
 */
export async function createEndpointAdapters(
  cfg: EndpointSyncConfig,
  opts: { kubeconfig?: string; baseDir?: string; observer?: CallObserver } = {},
): Promise<EndpointAdapters> {
  const { ServiceRegistryBroker } = loadServiceRegistries();
  const { KubeConfig } = await loadKubernetesClient();
  const kubeConfig = new KubeConfig();
  const path = cfg.kubeconfig ?? opts.kubeconfig;
  if (path) kubeConfig.loadFromFile(path);
  else kubeConfig.loadFromDefault();
  const registry = connectServiceRegistry(cfg, opts.baseDir, 'endpoints', opts.observer);
  const broker = new ServiceRegistryBroker(registry, {
    ...(cfg.ownerPair ? { ownerPair: cfg.ownerPair } : {}),
    ...(cfg.persistentMetadata ? { persistentMetadata: cfg.persistentMetadata } : {}),
  });
  return { broker, kubeConfig, close: () => registry.close() };
}
