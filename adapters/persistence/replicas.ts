// Replica bookkeeping shared by every backend: names derived from configuration, up/down state, and the
// mean persist latency that replicaStatus reports. A replica is one independent copy a provider serves (a
// directory, a bucket and prefix, an etcd prefix, a Kubernetes namespace); "instance" is kept for OSB service
// instances.
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { NotFoundError, UnavailableError, ValidationError } from '../errors';
import type { ReplicaStatus } from './types';

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value as Record<string, unknown>)
        .sort()
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** `<kind>-<16 hex>`: the hash covers the identifying configuration only (never credentials), so it is stable. */
export function replicaName(kind: string, identity: unknown): string {
  const hash = createHash('sha256').update(JSON.stringify(canonical(identity))).digest('hex').slice(0, 16);
  return `${kind}-${hash}`;
}

/** One replica's configuration (and the connection the backend keeps in it) and health. */
export class ReplicaState<C> {
  up = false;
  initialized = false;
  lastError: string | undefined = 'not initialized';
  private puts = 0;
  private putMsTotal = 0;

  constructor(
    readonly name: string,
    readonly config: C,
  ) {}

  markUp(): void {
    this.up = true;
    this.lastError = undefined;
  }

  markDown(reason: string): void {
    this.up = false;
    this.lastError = reason;
  }

  recordPut(ms: number): void {
    this.puts += 1;
    this.putMsTotal += ms;
  }

  status(): ReplicaStatus {
    const s: ReplicaStatus = {
      exists: true,
      status: this.up,
      meanPersistLatencyMs: this.puts ? this.putMsTotal / this.puts : 0,
      puts: this.puts,
    };
    if (this.lastError !== undefined) s.lastError = this.lastError;
    return s;
  }

  /** Fails fast (retryable) when the replica never initialized. */
  requireInitialized(): void {
    if (!this.initialized) throw new UnavailableError(`persistence replica ${this.name} is not initialized`);
  }

  /** The client a backend opened for this replica; unavailable (retryable) once closed or before initialize. */
  connection<T>(client: T | undefined): T {
    if (client === undefined) throw new UnavailableError(`persistence replica ${this.name} is not initialized`);
    return client;
  }

  /**
   * Runs one backend call and keeps the health current: a transport failure (UnavailableError) marks the
   * replica down, any answer marks it up; a put also feeds the mean latency (measured to the durable ack).
   */
  async track<T>(fn: () => Promise<T>, opts: { put?: boolean } = {}): Promise<T> {
    this.requireInitialized();
    const t0 = performance.now();
    try {
      const result = await fn();
      if (opts.put) this.recordPut(performance.now() - t0);
      this.markUp();
      return result;
    } catch (err) {
      if (err instanceof UnavailableError) this.markDown(err.message);
      else this.markUp();
      throw err;
    }
  }
}

/** The replicas of one provider, by name. */
export class ReplicaTable<C> {
  private readonly byName = new Map<string, ReplicaState<C>>();

  constructor(kind: string, configs: Array<{ config: C; identity: unknown }>) {
    if (configs.length === 0) throw new ValidationError(`a ${kind} persistence provider needs at least one replica`, 'replicas');
    for (const { config, identity } of configs) {
      const name = replicaName(kind, identity);
      if (this.byName.has(name)) {
        throw new ValidationError(`two ${kind} persistence replicas have the same configuration`, 'replicas');
      }
      this.byName.set(name, new ReplicaState(name, config));
    }
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  all(): ReplicaState<C>[] {
    return [...this.byName.values()];
  }

  /** The named replica; NotFoundError for a name this provider does not serve. */
  get(name: string): ReplicaState<C> {
    const state = this.byName.get(name);
    if (!state) throw new NotFoundError(`no persistence replica named ${JSON.stringify(String(name).slice(0, 80))}`);
    return state;
  }

  status(name: string): ReplicaStatus {
    return this.byName.get(name)?.status() ?? { exists: false };
  }

  /**
   * Initializes every replica with `open`; failed ones are marked down. Rejects with one UnavailableError
   * naming the failed replicas, so the caller knows the provider is (partly) dead.
   */
  async initializeAll(kind: string, open: (state: ReplicaState<C>) => Promise<void>): Promise<void> {
    const failed: string[] = [];
    await Promise.all(
      this.all().map(async (state) => {
        try {
          await open(state);
          state.initialized = true;
          state.markUp();
        } catch (err) {
          state.initialized = false;
          state.markDown(err instanceof Error ? err.message : String(err));
          failed.push(`${state.name}: ${state.lastError}`);
        }
      }),
    );
    if (failed.length) throw new UnavailableError(`${kind} persistence replicas failed to initialize: ${failed.join('; ')}`);
  }
}
