// How worker, broker and CLI connect to Temporal: the standard environment configuration (`@temporalio/envconfig`:
// TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE and the TOML profile file)
// wins over brokerflow's own configuration file, which wins over the defaults.
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { DataConverter } from '@temporalio/common';
import type { RuntimeConfig } from '../config/runtime';
import { codecFromConfig } from './codec';

/** Where and how to reach Temporal. */
export interface TemporalSettings {
  address: string;
  namespace: string;
  taskQueue: string;
  tls?: ConnectionOptions['tls'];
  apiKey?: string;
}

/** Merges the envconfig profile and environment over the configuration file. */
export function temporalSettings(cfg: Pick<RuntimeConfig, 'temporal'>): TemporalSettings {
  const env = loadClientConnectConfig();
  const opts = env.connectionOptions as { address?: string; tls?: ConnectionOptions['tls']; apiKey?: string };
  return {
    address: opts.address ?? cfg.temporal.address,
    namespace: env.namespace ?? cfg.temporal.namespace,
    taskQueue: cfg.temporal.taskQueue,
    ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
    ...(typeof opts.apiKey === 'string' ? { apiKey: opts.apiKey } : {}),
  };
}

/** The data converter: the AES-GCM codec when encryption is configured. */
export function dataConverter(cfg: RuntimeConfig): DataConverter {
  const codec = codecFromConfig(cfg);
  return codec ? { payloadCodecs: [codec] } : {};
}

/** Thrown when Temporal cannot be reached; the message says where we looked and what to check. */
export class TemporalUnreachableError extends Error {
  readonly code = 'TemporalUnreachable';
}

/** Connects a Client, failing fast with a helpful message when the server does not answer. */
export async function connectClient(cfg: RuntimeConfig, opts: { connectTimeoutMs?: number } = {}): Promise<Client> {
  const s = temporalSettings(cfg);
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  let connection: Connection;
  try {
    connection = await Connection.connect({
      address: s.address,
      connectTimeout: connectTimeoutMs,
      ...(s.tls !== undefined ? { tls: s.tls } : {}),
      ...(s.apiKey ? { apiKey: s.apiKey } : {}),
    });
  } catch (err) {
    throw new TemporalUnreachableError(
      `cannot reach the Temporal server at ${s.address} (namespace ${s.namespace}; no answer within ${connectTimeoutMs / 1000} s): ${(err as Error).message}. ` +
        'Start it with `npm run dev`, or set TEMPORAL_ADDRESS / the configuration file\'s temporal.address.',
    );
  }
  return new Client({ connection, namespace: s.namespace, dataConverter: dataConverter(cfg) });
}
