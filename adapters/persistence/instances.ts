// Instance bookkeeping shared by every backend: names derived from configuration, up/down state, and the
// mean persist latency that instanceStatus reports.
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { NotFoundError, UnavailableError, ValidationError } from '../errors';
import type { InstanceStatus } from './types';

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
export function instanceName(kind: string, identity: unknown): string {
  const hash = createHash('sha256').update(JSON.stringify(canonical(identity))).digest('hex').slice(0, 16);
  return `${kind}-${hash}`;
}

/** One instance's configuration and health. */
export class InstanceState<C> {
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

  status(): InstanceStatus {
    const s: InstanceStatus = {
      exists: true,
      status: this.up,
      meanPersistLatencyMs: this.puts ? this.putMsTotal / this.puts : 0,
      puts: this.puts,
    };
    if (this.lastError !== undefined) s.lastError = this.lastError;
    return s;
  }

  /** Fails fast (retryable) when the instance never initialized. */
  requireInitialized(): void {
    if (!this.initialized) throw new UnavailableError(`persistence instance ${this.name} is not initialized`);
  }

  /**
   * Runs one backend call and keeps the health current: a transport failure (UnavailableError) marks the
   * instance down, any answer marks it up; a put also feeds the mean latency (measured to the durable ack).
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

/** The instances of one provider, by name. */
export class InstanceTable<C> {
  private readonly byName = new Map<string, InstanceState<C>>();

  constructor(kind: string, configs: Array<{ config: C; identity: unknown }>) {
    if (configs.length === 0) throw new ValidationError(`a ${kind} persistence provider needs at least one instance`, 'instances');
    for (const { config, identity } of configs) {
      const name = instanceName(kind, identity);
      if (this.byName.has(name)) {
        throw new ValidationError(`two ${kind} persistence instances have the same configuration`, 'instances');
      }
      this.byName.set(name, new InstanceState(name, config));
    }
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  all(): InstanceState<C>[] {
    return [...this.byName.values()];
  }

  /** The named instance; NotFoundError for a name this provider does not serve. */
  get(name: string): InstanceState<C> {
    const state = this.byName.get(name);
    if (!state) throw new NotFoundError(`no persistence instance named ${JSON.stringify(String(name).slice(0, 80))}`);
    return state;
  }

  status(name: string): InstanceStatus {
    return this.byName.get(name)?.status() ?? { exists: false };
  }

  /**
   * Initializes every instance with `open`; failed ones are marked down. Rejects with one UnavailableError
   * naming the failed instances, so the caller knows the provider is (partly) dead.
   */
  async initializeAll(kind: string, open: (state: InstanceState<C>) => Promise<void>): Promise<void> {
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
    if (failed.length) throw new UnavailableError(`${kind} persistence instances failed to initialize: ${failed.join('; ')}`);
  }
}
