// The `endpoints:` section of the runtime configuration: which Kubernetes services are mirrored into which
// service registry, and how (see docs/ENDPOINTS.md). Its schema is the one validation of the section;
// `endpointSettings` adds the defaults and the two checks a schema cannot express.
import { ValidationError } from '../adapters/errors';
// The files themselves, not the folder's index: that one also exports the watcher and with it the Kubernetes client.
import { AnnotationAllowlist } from '../adapters/kubernetes/annotations';
import { watchLabelKey, type NamespaceWatchPolicy } from '../adapters/kubernetes/watch';
import type { MetadataPair } from '../adapters/service-registries';
import { etcdAuthSchema, etcdEndpointsSchema, type SecretSource } from './secret-source';

/** The `endpoints:` section of the runtime configuration (see docs/ENDPOINTS.md). */
export interface EndpointSyncConfig {
  /** Name of this mirror, a DNS label; workflow and schedule IDs carry it (default: the registry kind). */
  name?: string;
  registry: 'etcd' | 'cloudmap' | 'servicedirectory';
  etcd?: { endpoints: string[]; prefix?: string; auth?: { username: string; password: SecretSource } };
  /** `callsPerSecond`: the client-side budget of API calls (default 50); `maxInstancesPerService`: Cloud Map's quota (default 1000). */
  cloudmap?: { region: string; endpoint?: string; callsPerSecond?: number; maxInstancesPerService?: number };
  /** `callsPerSecond`: a client-side budget of API calls (default none); `maxEndpointsPerService` (default none). */
  servicedirectory?: { projectId: string; location: string; apiEndpoint?: string; port?: number; callsPerSecond?: number; maxEndpointsPerService?: number };
  /** Path of a kubeconfig; default: $KUBECONFIG, ~/.kube/config or in-cluster. */
  kubeconfig?: string;
  /** Annotation allowlist: `*\/*`, exact keys, `prefix/*`, `*\/name`. */
  allowedAnnotations: string[];
  /** Namespace label prefix: `<prefix>/watch=enabled|disabled` (default `brokerflow.io`). */
  labelPrefix?: string;
  /** Whether a namespace without that label is watched (default false). */
  watchByDefault?: boolean;
  /** The pair that marks what brokerflow owns in the registry (default `owner=brokerflow`). */
  ownerPair?: MetadataPair;
  /** Pairs added to every registered service (e.g. the cluster's name). */
  persistentMetadata?: MetadataPair[];
  /** Interval of the full resync schedule (default 3600). */
  resyncIntervalSeconds?: number;
  /** Quiet time before a service is reconciled again right after a reconcile; a first change goes at once (default 500). */
  debounceMs?: number;
  /** How long a per-service workflow waits for more changes once in sync before it ends (default 0). */
  idleSeconds?: number;
  /** Heartbeat timeout of the watch: how fast it moves off a dead worker (default 15). */
  heartbeatTimeoutSeconds?: number;
  /** No Kubernetes event for this long restarts the informers (default 300). */
  stallTimeoutSeconds?: number;
  /** Deadline of one reconcile attempt (default 60). */
  reconcileTimeoutSeconds?: number;
  /**
   * Where a reconcile runs: `local-activity` (inside the workflow task: half the round trips, for a registry
   * that answers in milliseconds; the default for etcd) or `activity` (a task of its own, visible while it
   * runs; the default for Cloud Map and Service Directory, whose operations take seconds).
   */
  reconcileIn?: 'local-activity' | 'activity';
}

/** The JSON Schema of {@link EndpointSyncConfig}, for the runtime configuration's schema. */
export const endpointSyncConfigSchema = {
  type: 'object',
  required: ['registry', 'allowedAnnotations'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' },
    registry: { enum: ['etcd', 'cloudmap', 'servicedirectory'] },
    etcd: {
      type: 'object',
      required: ['endpoints'],
      additionalProperties: false,
      properties: {
        endpoints: etcdEndpointsSchema,
        prefix: { type: 'string', pattern: '^/[A-Za-z0-9._/-]*$' },
        auth: etcdAuthSchema,
      },
    },
    cloudmap: {
      type: 'object',
      required: ['region'],
      additionalProperties: false,
      properties: {
        region: { type: 'string', minLength: 1 },
        endpoint: { type: 'string', pattern: '^https?://' },
        callsPerSecond: { type: 'integer', minimum: 1, maximum: 10000 },
        maxInstancesPerService: { type: 'integer', minimum: 1, maximum: 1000000 },
      },
    },
    servicedirectory: {
      type: 'object',
      required: ['projectId', 'location'],
      additionalProperties: false,
      properties: {
        projectId: { type: 'string', minLength: 1 },
        location: { type: 'string', minLength: 1 },
        apiEndpoint: { type: 'string', minLength: 1 },
        port: { type: 'integer', minimum: 1, maximum: 65535 },
        callsPerSecond: { type: 'integer', minimum: 1, maximum: 10000 },
        maxEndpointsPerService: { type: 'integer', minimum: 1, maximum: 1000000 },
      },
    },
    kubeconfig: { type: 'string', minLength: 1 },
    allowedAnnotations: { type: 'array', items: { type: 'string', minLength: 1 } },
    labelPrefix: { type: 'string', minLength: 1 },
    watchByDefault: { type: 'boolean' },
    ownerPair: {
      type: 'object',
      required: ['key', 'value'],
      additionalProperties: false,
      properties: { key: { type: 'string', minLength: 1 }, value: { type: 'string', minLength: 1 } },
    },
    persistentMetadata: {
      type: 'array',
      items: {
        type: 'object',
        required: ['key', 'value'],
        additionalProperties: false,
        properties: { key: { type: 'string', minLength: 1 }, value: { type: 'string' } },
      },
    },
    resyncIntervalSeconds: { type: 'integer', minimum: 10, maximum: 604800 },
    debounceMs: { type: 'integer', minimum: 0, maximum: 60000 },
    idleSeconds: { type: 'integer', minimum: 0, maximum: 3600 },
    heartbeatTimeoutSeconds: { type: 'integer', minimum: 2, maximum: 600 },
    stallTimeoutSeconds: { type: 'integer', minimum: 5, maximum: 86400 },
    reconcileTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 3600 },
    reconcileIn: { enum: ['local-activity', 'activity'] },
  },
} as const;


/** The section completed with defaults: what the endpoint activities and the workflow starters read. */
export interface EndpointSyncSettings {
  name: string;
  allowlist: AnnotationAllowlist;
  policy: Required<NamespaceWatchPolicy>;
  resyncIntervalSeconds: number;
  debounceMs: number;
  idleMs: number;
  heartbeatTimeoutSeconds: number;
  stallTimeoutMs: number;
  reconcileTimeoutSeconds: number;
  reconcileIn: 'local-activity' | 'activity';
  /** signalWithStart calls in flight at once. */
  signalConcurrency: number;
}

/**
 * Applies the defaults to a section that {@link endpointSyncConfigSchema} accepted, and checks what the schema
 * cannot: the label prefix is a DNS subdomain and every allowlist entry has a form the allowlist knows. Each
 * error names the bad field.
 */
export function endpointSettings(cfg: EndpointSyncConfig): EndpointSyncSettings {
  const labelPrefix = cfg.labelPrefix ?? 'brokerflow.io';
  try {
    watchLabelKey(labelPrefix);
  } catch {
    throw new ValidationError(`endpoints.labelPrefix ${JSON.stringify(labelPrefix)} is not a DNS subdomain`, 'endpoints.labelPrefix');
  }
  let allowlist: AnnotationAllowlist;
  try {
    allowlist = new AnnotationAllowlist(cfg.allowedAnnotations ?? []);
  } catch (err) {
    throw new ValidationError(`endpoints.allowedAnnotations: ${(err as Error).message}`, 'endpoints.allowedAnnotations');
  }
  return {
    name: cfg.name ?? cfg.registry,
    allowlist,
    policy: { labelPrefix, watchByDefault: cfg.watchByDefault ?? false },
    resyncIntervalSeconds: cfg.resyncIntervalSeconds ?? 3600,
    debounceMs: cfg.debounceMs ?? 500,
    idleMs: (cfg.idleSeconds ?? 0) * 1000,
    heartbeatTimeoutSeconds: cfg.heartbeatTimeoutSeconds ?? 15,
    stallTimeoutMs: (cfg.stallTimeoutSeconds ?? 300) * 1000,
    reconcileTimeoutSeconds: cfg.reconcileTimeoutSeconds ?? 60,
    // A registry that answers in milliseconds reconciles inside the workflow task (see reconcileIn above).
    reconcileIn: cfg.reconcileIn ?? (cfg.registry === 'etcd' ? 'local-activity' : 'activity'),
    signalConcurrency: 8,
  };
}

/** `drivers.serviceRegistry`: the registry the `service-registry` resource driver writes to. */
export interface ServiceRegistryDriverConfig {
  registry: EndpointSyncConfig['registry'];
  etcd?: EndpointSyncConfig['etcd'];
  cloudmap?: EndpointSyncConfig['cloudmap'];
  servicedirectory?: EndpointSyncConfig['servicedirectory'];
  /** The metadata key of the owner mark; its value names the instance (default `owner`). */
  ownerKey?: string;
}

/** The JSON Schema of {@link ServiceRegistryDriverConfig}: the connection fields of the `endpoints:` section. */
export const serviceRegistryDriverConfigSchema = {
  type: 'object',
  required: ['registry'],
  additionalProperties: false,
  properties: {
    registry: endpointSyncConfigSchema.properties.registry,
    etcd: endpointSyncConfigSchema.properties.etcd,
    cloudmap: endpointSyncConfigSchema.properties.cloudmap,
    servicedirectory: endpointSyncConfigSchema.properties.servicedirectory,
    ownerKey: { type: 'string', minLength: 1, maxLength: 317, pattern: '^[^\\u0000-\\u001f\\u007f]+$' },
  },
} as const;

/**
 * What the schema cannot say about `drivers.serviceRegistry`: the section of the chosen registry is present. The
 * error names the missing field.
 */
export function checkServiceRegistryDriverConfig(cfg: ServiceRegistryDriverConfig): void {
  if (!cfg[cfg.registry]) {
    throw new ValidationError(
      `drivers.serviceRegistry.${cfg.registry} is required when drivers.serviceRegistry.registry is ${cfg.registry}`,
      `drivers.serviceRegistry.${cfg.registry}`,
    );
  }
}
