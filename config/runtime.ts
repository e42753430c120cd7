// The runtime configuration of worker, broker, CLI and codec server: one YAML file, validated once at start-up
// with a JSON Schema; every error names the bad field. Secret values are never written in the file itself
// in production: they are `{ env: NAME }` or `{ file: PATH }` references resolved here.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import Ajv from 'ajv';
import { parse as parseYaml } from 'yaml';
import { ConfigError, describeSchemaError, loadCatalog, type Catalog } from './catalog';
import { loadResourceSets, type ResourceSetDef } from './resource-sets';
import { etcdAuthSchema, etcdEndpointsSchema, secretSourceSchema as secretSource, type SecretSource } from './secret-source';
import {
  checkServiceRegistryDriverConfig,
  endpointSyncConfigSchema,
  serviceRegistryDriverConfigSchema,
  type EndpointSyncConfig,
  type ServiceRegistryDriverConfig,
} from './endpoints';

export type { SecretSource } from './secret-source';

/** An AES-256 key for payload and at-rest encryption, with the ID stored next to each ciphertext. */
export interface EncryptionKeyConfig {
  id: string;
  /** 32 bytes, base64. */
  key: SecretSource;
}

/** HTTP Basic users and bearer tokens a server accepts (the broker's, or the codec server's own). */
export interface CredentialsConfig {
  basic?: Array<{ username: string; password: SecretSource }>;
  bearerTokens?: SecretSource[];
}

/** The validated configuration file, before secrets are resolved. */
export interface RuntimeConfigFile {
  temporal?: { address?: string; namespace?: string; taskQueue?: string };
  catalog: string;
  /** The resource sets file (what each plan reconciles). */
  resourceSets?: string;
  /** What resource drivers manage: the tenant etcd (auth enabled, root user), Kubernetes objects and service registry entries. */
  drivers?: {
    etcd?: { endpoints: string[]; auth: { username: string; password: SecretSource } };
    /** The registry the `service-registry` driver writes to, and the metadata key of its owner mark (default `owner`). */
    serviceRegistry?: ServiceRegistryDriverConfig;
  };
  broker?: {
    host?: string;
    port?: number;
    auth?: CredentialsConfig;
    tls?: { cert: string; key: string };
    /** How long a synchronous request (no `accepts_incomplete`) waits for its workflow. */
    syncTimeoutSeconds?: number;
    bodyLimitBytes?: number;
    /** How long a last_operation poll waits for a worker to report the running step (ms; 0: never asked). */
    lastOperationStepDeadlineMs?: number;
  };
  etcd?: { endpoints: string[]; prefix?: string; auth?: { username: string; password: SecretSource } };
  registry?: {
    backend: 'file' | 'etcd' | 'kubernetes' | 's3';
    file?: { dirs: string[] };
    kubernetes?: { namespace: string };
    s3?: { endpoints: Array<{ endpoint?: string; region: string; bucket: string; forcePathStyle?: boolean }> };
    /** How often replicas that are down or behind are repaired (default 60). */
    repairIntervalSeconds?: number;
  };
  encryption?: { currentKeyId: string; keys: EncryptionKeyConfig[] };
  kubernetes?: { kubeconfig?: string; namespace?: string };
  codecServer?: {
    host?: string;
    port?: number;
    corsOrigins?: string[];
    /** Who may decode payloads: credentials of the codec server's own, never the broker's (OSB platforms hold those). */
    auth?: CredentialsConfig;
    /** The Temporal namespaces it decodes for (the `X-Namespace` header); default `temporal.namespace`. */
    namespaces?: string[];
  };
  /** Endpoint reconciliation: Kubernetes services mirrored into a service registry (absent = off). */
  endpoints?: EndpointSyncConfig;
  worker?: {
    maxConcurrentActivities?: number;
    maxConcurrentWorkflowTasks?: number;
    /** brokerflow's own worker metrics (reconcile metrics) on 127.0.0.1:<port>/metrics. */
    metricsPort?: number;
    /** The Temporal SDK runtime's Prometheus metrics (task latencies, slots, polls) on 127.0.0.1:<port>/metrics. */
    sdkMetricsPort?: number;
  };
}


const hostPort = { host: { type: 'string', minLength: 1 }, port: { type: 'integer', minimum: 0, maximum: 65535 } } as const;

const credentialsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    basic: {
      type: 'array',
      items: {
        type: 'object',
        required: ['username', 'password'],
        additionalProperties: false,
        properties: { username: { type: 'string', pattern: '^[^:\\s]{1,128}$' }, password: secretSource },
      },
    },
    bearerTokens: { type: 'array', items: secretSource },
  },
} as const;

const runtimeSchema = {
  type: 'object',
  required: ['catalog'],
  additionalProperties: false,
  properties: {
    temporal: {
      type: 'object',
      additionalProperties: false,
      properties: {
        address: { type: 'string', pattern: '^[^\\s:]+:\\d{1,5}$' },
        namespace: { type: 'string', minLength: 1 },
        taskQueue: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,200}$' },
      },
    },
    catalog: { type: 'string', minLength: 1 },
    resourceSets: { type: 'string', minLength: 1 },
    drivers: {
      type: 'object',
      additionalProperties: false,
      properties: {
        etcd: {
          type: 'object',
          required: ['endpoints', 'auth'],
          additionalProperties: false,
          properties: {
            endpoints: etcdEndpointsSchema,
            auth: etcdAuthSchema,
          },
        },
        serviceRegistry: serviceRegistryDriverConfigSchema,
      },
    },
    broker: {
      type: 'object',
      additionalProperties: false,
      properties: {
        ...hostPort,
        auth: credentialsSchema,
        tls: {
          type: 'object',
          required: ['cert', 'key'],
          additionalProperties: false,
          properties: { cert: { type: 'string' }, key: { type: 'string' } },
        },
        syncTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 3600 },
        bodyLimitBytes: { type: 'integer', minimum: 1024, maximum: 104857600 },
        lastOperationStepDeadlineMs: { type: 'integer', minimum: 0, maximum: 1000 },
      },
    },
    etcd: {
      type: 'object',
      required: ['endpoints'],
      additionalProperties: false,
      properties: {
        endpoints: etcdEndpointsSchema,
        prefix: { type: 'string', pattern: '^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$' },
        auth: etcdAuthSchema,
      },
    },
    registry: {
      type: 'object',
      required: ['backend'],
      additionalProperties: false,
      properties: {
        backend: { enum: ['file', 'etcd', 'kubernetes', 's3'] },
        repairIntervalSeconds: { type: 'integer', minimum: 5, maximum: 86400 },
        file: {
          type: 'object',
          required: ['dirs'],
          additionalProperties: false,
          properties: { dirs: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } } },
        },
        kubernetes: {
          type: 'object',
          required: ['namespace'],
          additionalProperties: false,
          properties: { namespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' } },
        },
        s3: {
          type: 'object',
          required: ['endpoints'],
          additionalProperties: false,
          properties: {
            endpoints: {
              type: 'array',
              minItems: 1,
              items: {
                type: 'object',
                required: ['region', 'bucket'],
                additionalProperties: false,
                properties: {
                  endpoint: { type: 'string' },
                  region: { type: 'string' },
                  bucket: { type: 'string', pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$' },
                  forcePathStyle: { type: 'boolean' },
                },
              },
            },
          },
        },
      },
    },
    encryption: {
      type: 'object',
      required: ['currentKeyId', 'keys'],
      additionalProperties: false,
      properties: {
        currentKeyId: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
        keys: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            required: ['id', 'key'],
            additionalProperties: false,
            properties: { id: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' }, key: secretSource },
          },
        },
      },
    },
    kubernetes: {
      type: 'object',
      additionalProperties: false,
      properties: { kubeconfig: { type: 'string' }, namespace: { type: 'string' } },
    },
    codecServer: {
      type: 'object',
      additionalProperties: false,
      properties: {
        ...hostPort,
        corsOrigins: { type: 'array', items: { type: 'string' } },
        auth: credentialsSchema,
        namespaces: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
      },
    },
    endpoints: endpointSyncConfigSchema,
    worker: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxConcurrentActivities: { type: 'integer', minimum: 1, maximum: 10000 },
        maxConcurrentWorkflowTasks: { type: 'integer', minimum: 2, maximum: 10000 },
        metricsPort: { type: 'integer', minimum: 0, maximum: 65535 },
        sdkMetricsPort: { type: 'integer', minimum: 1, maximum: 65535 },
      },
    },
  },
} as const;

/** The configuration with defaults applied, paths made absolute and the catalog loaded. */
export interface RuntimeConfig extends RuntimeConfigFile {
  temporal: { address: string; namespace: string; taskQueue: string };
  catalogFile: string;
  catalogData: Catalog;
  /** The resource sets, checked against the catalog (empty when no file is configured). */
  resourceSetData: ResourceSetDef[];
  /** The folder the configuration file is in; relative paths are resolved against it. */
  baseDir: string;
}

/** Resolves a secret reference; the error names the field, never the value. */
export function resolveSecret(source: SecretSource, field: string, baseDir = process.cwd()): string {
  if (typeof source === 'string') return source;
  if ('env' in source) {
    const value = process.env[source.env];
    if (!value) throw new ConfigError(`${field}: environment variable ${source.env} is not set`, field);
    return value;
  }
  try {
    return readFileSync(resolve(baseDir, source.file), 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`${field}: cannot read secret file ${source.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, field);
  }
}

/** Validates a parsed configuration object (from YAML) and applies defaults. */
export function validateRuntimeConfig(raw: unknown, source: string, baseDir: string): RuntimeConfig {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile<RuntimeConfigFile>(runtimeSchema);
  if (!validate(raw)) {
    // oneOf failures repeat per branch; keep the first message per field.
    const problems = [...new Set((validate.errors ?? []).map((e) => describeSchemaError(e)))];
    throw new ConfigError(`${source} is invalid:\n  - ${problems.join('\n  - ')}`, problems[0]);
  }
  const cfg = raw;
  if (cfg.encryption && !cfg.encryption.keys.some((k) => k.id === cfg.encryption!.currentKeyId)) {
    throw new ConfigError(`${source} is invalid: encryption.currentKeyId "${cfg.encryption.currentKeyId}" names no key in encryption.keys`, 'encryption.currentKeyId');
  }
  if (cfg.drivers?.serviceRegistry) {
    try {
      checkServiceRegistryDriverConfig(cfg.drivers.serviceRegistry);
    } catch (err) {
      const e = err as Error & { field?: string };
      throw new ConfigError(`${source} is invalid: ${e.message}`, e.field);
    }
  }
  const catalogFile = isAbsolute(cfg.catalog) ? cfg.catalog : resolve(baseDir, cfg.catalog);
  const catalogData = loadCatalog(catalogFile);
  const resourceSetData = cfg.resourceSets ? loadResourceSets(resolve(baseDir, cfg.resourceSets), catalogData) : [];
  return {
    ...cfg,
    temporal: {
      address: cfg.temporal?.address ?? '127.0.0.1:7233',
      namespace: cfg.temporal?.namespace ?? 'default',
      taskQueue: cfg.temporal?.taskQueue ?? 'brokerflow',
    },
    catalogFile,
    catalogData,
    resourceSetData,
    baseDir,
  };
}

/** Reads, validates and completes a configuration file. */
export function loadRuntimeConfig(file: string): RuntimeConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read configuration file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`configuration file ${file} is not valid YAML: ${(err as Error).message}`);
  }
  return validateRuntimeConfig(raw, `configuration file ${file}`, dirname(resolve(file)));
}
