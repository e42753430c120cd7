// Long on purpose: one informer wrapper whose restart, namespace and service bookkeeping share one state.
// The Kubernetes source of endpoint reconciliation: informers on namespaces and services that say WHICH service
// may need reconciling, never what to do with it (the reconciler reads current state itself, so a lost or
// repeated notification is harmless).
//
// Why the informers are wrapped:
// - client-node 1.x informers stop for good on any error other than 410 Gone; here an error restarts them
//   after a short delay (doubling up to a cap), and failing continuously for `failAfterMs` ends the watcher
//   with a retryable WatcherFailedError, so the caller's retry policy takes over.
// - A watch can stall silently (a half-open connection delivers nothing, and client-node sets no deadline);
//   a watchdog restarts the informers after `stallTimeoutMs` without any event.
// - Each restart builds fresh informers (reusing a stopped ListWatch races with its own abort handling) and
//   relists. The watcher keeps its own fingerprints of what matters (watch label, allowed annotations, IPs,
//   ports), so a relist notifies only what changed meanwhile, and objects missing from the new list are
//   reported as deleted.
import {
  CoreV1Api,
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1Namespace,
  type V1Service,
} from '@kubernetes/client-node';
import { UnavailableError, ValidationError } from '../errors';
import { AnnotationAllowlist } from './annotations';
import { serviceIPs } from './extract';
import { KeyedQueue } from './keyed-queue';
import type { KubeNamespace } from './types';
import { isNamespaceWatched, watchLabelKey, type NamespaceWatchPolicy } from './watch';
import type { ServiceChangeKind } from '../../domain/endpoints';

/** A Kubernetes service, by namespace and name. */
export interface ServiceKey {
  namespace: string;
  service: string;
}

/** What the watcher saw happen to a service or its namespace. */
export type WatchedChange = ServiceChangeKind;

/** How a {@link KubeServiceWatcher} watches and whom it tells. */
export interface KubeServiceWatcherOptions {
  kubeConfig: KubeConfig;
  /** Which namespaces are watched (label `<prefix>/watch`, default). */
  policy: NamespaceWatchPolicy;
  /** Which annotations matter; changes to others are not reported. */
  allowedAnnotations: AnnotationAllowlist | readonly string[];
  /**
   * Told about each service that may need reconciling. Calls for one service never overlap and a burst for one
   * service is coalesced; a rejection ends the watcher with that error. `initial` is true for what the very
   * first list found: a caller that compares the whole cluster with its target after `synced` may skip those.
   */
  onChange(key: ServiceKey, change: WatchedChange, initial: boolean): Promise<void>;
  /** Notifications in flight at once (default 8). */
  concurrency?: number;
  /** First pause before restarting after an informer error (default 1 s; doubles per consecutive error). */
  restartDelayMs?: number;
  /** Longest pause between restarts (default 30 s). */
  maxRestartDelayMs?: number;
  /** No event for this long restarts the informers (default 300 s). */
  stallTimeoutMs?: number;
  /** Failing continuously for this long ends the watcher with WatcherFailedError (default 120 s). */
  failAfterMs?: number;
  /** Told about every restart, for logs. */
  onRestart?(reason: 'error' | 'stall' | 'requested', err?: unknown): void;
}

/** Counters for heartbeats, logs and tests. */
export interface WatcherStats {
  /** Informer generations started (1 + restarts). */
  generation: number;
  restarts: number;
  stallRestarts: number;
  errors: number;
  /** Informer callbacks seen. */
  events: number;
  /** Notifications delivered. */
  notified: number;
  /** Notifications waiting or in flight. */
  pending: number;
  /** Epoch ms of the last informer activity. */
  lastEventAt: number;
  namespaces: number;
  services: number;
  /** Whether the first lists of namespaces and services have completed. */
  synced: boolean;
}

/** The watcher gave up: the informers kept failing for longer than `failAfterMs`. Retryable. */
export class WatcherFailedError extends UnavailableError {
  constructor(message: string, cause?: unknown) {
    super(message, cause);
  }
}

// A generation that ran this long before failing counts as healthy: the next failure starts a new streak.
const healthyAfterMs = 10_000;

interface NamespaceState {
  watched: boolean;
  /** Fingerprint of the allowed annotations (the registry's namespace metadata). */
  fingerprint: string;
}

interface Generation {
  id: number;
  startedAt: number;
  informers: Array<{ stop(): Promise<void> }>;
}

/** Namespace and service informers that report services needing reconciliation. */
export class KubeServiceWatcher {
  private readonly opts: Required<Omit<KubeServiceWatcherOptions, 'onRestart'>> & Pick<KubeServiceWatcherOptions, 'onRestart'>;
  private readonly allowlist: AnnotationAllowlist;
  private readonly core: CoreV1Api;
  private readonly namespaces = new Map<string, NamespaceState>();
  /** Service fingerprints by namespace, then name. */
  private readonly services = new Map<string, Map<string, string>>();
  private readonly queue: KeyedQueue<Notification>;
  private generation: Generation | undefined;
  private generationCount = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private errorStreakSince: number | undefined;
  private consecutiveErrors = 0;
  private state: 'new' | 'running' | 'stopped' | 'failed' = 'new';
  private readonly counters = { restarts: 0, stallRestarts: 0, errors: 0, events: 0, lastEventAt: Date.now() };
  private namespacesListed = false;
  private servicesListed = false;
  /** True while the informer delivers the ADDs of the very first services list. */
  private firstListing = false;
  private resolveDone!: () => void;
  private rejectDone!: (err: Error) => void;
  private resolveSynced!: () => void;
  /** Settles when the watcher ends: resolves after `stop()`, rejects with the reason it failed. */
  readonly done: Promise<void>;
  /** Resolves once the first lists of namespaces and services have completed. */
  readonly synced: Promise<void>;

  constructor(opts: KubeServiceWatcherOptions) {
    watchLabelKey(opts.policy.labelPrefix);
    const positive = (v: number | undefined, d: number, field: string) => {
      const n = v ?? d;
      if (!Number.isFinite(n) || n <= 0) throw new ValidationError(`${field} must be a positive number`, field);
      return n;
    };
    this.opts = {
      ...opts,
      concurrency: Math.floor(positive(opts.concurrency, 8, 'concurrency')),
      restartDelayMs: positive(opts.restartDelayMs, 1_000, 'restartDelayMs'),
      maxRestartDelayMs: positive(opts.maxRestartDelayMs, 30_000, 'maxRestartDelayMs'),
      stallTimeoutMs: positive(opts.stallTimeoutMs, 300_000, 'stallTimeoutMs'),
      failAfterMs: positive(opts.failAfterMs, 120_000, 'failAfterMs'),
    };
    this.allowlist = opts.allowedAnnotations instanceof AnnotationAllowlist ? opts.allowedAnnotations : new AnnotationAllowlist(opts.allowedAnnotations);
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.queue = new KeyedQueue<Notification>(
      this.opts.concurrency,
      (n) => `${n.key.namespace}/${n.key.service}`,
      (n) => opts.onChange(n.key, n.change, n.initial),
      (err) => this.fail(err),
    );
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // Nobody has to await `done`: a failure is also visible through the state and stats.
    this.done.catch(() => undefined);
    this.synced = new Promise<void>((resolve) => (this.resolveSynced = resolve));
  }

  /** Starts the informers (namespaces first, so services find their namespace known). */
  start(): void {
    if (this.state !== 'new') throw new ValidationError('a watcher starts once', 'watcher');
    this.state = 'running';
    const period = Math.max(50, Math.min(5_000, this.opts.stallTimeoutMs / 4));
    this.watchdog = setInterval(() => this.checkStall(), period);
    this.launch();
  }

  /** Stops the informers and waits for notifications in flight; `done` resolves. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'failed') return;
    this.state = 'stopped';
    this.teardown();
    await this.queue.drainInFlight();
    this.resolveDone();
  }

  /** Restarts the informers now (what the watchdog does on a stall). */
  restart(): void {
    if (this.state !== 'running') return;
    this.counters.restarts += 1;
    this.opts.onRestart?.('requested');
    this.launch();
  }

  stats(): WatcherStats {
    let services = 0;
    for (const m of this.services.values()) services += m.size;
    return {
      generation: this.generationCount,
      restarts: this.counters.restarts,
      stallRestarts: this.counters.stallRestarts,
      errors: this.counters.errors,
      events: this.counters.events,
      notified: this.queue.delivered,
      pending: this.queue.size,
      lastEventAt: this.counters.lastEventAt,
      namespaces: this.namespaces.size,
      services,
      synced: this.namespacesListed && this.servicesListed,
    };
  }

  // ---- informer lifecycle

  private launch(): void {
    this.clearRestartTimer();
    this.stopGeneration();
    const gen: Generation = { id: ++this.generationCount, startedAt: Date.now(), informers: [] };
    this.generation = gen;
    this.counters.lastEventAt = Date.now();
    const live = () => this.state === 'running' && this.generation === gen;
    const seen = () => {
      this.counters.events += 1;
      this.counters.lastEventAt = Date.now();
    };

    const nsInformer = makeInformer<V1Namespace>(this.opts.kubeConfig, '/api/v1/namespaces', async () => {
      const list = await this.core.listNamespace();
      if (live()) this.onNamespaceList(list.items);
      return list as KubernetesListObject<V1Namespace>;
    });
    const svcInformer = makeInformer<V1Service>(this.opts.kubeConfig, '/api/v1/services', async () => {
      const list = await this.core.listServiceForAllNamespaces();
      if (live()) this.onServiceList(list.items);
      return list as KubernetesListObject<V1Service>;
    });
    const on = <T extends KubernetesObject>(inf: Informer<T>, handle: (o: T, deleted: boolean) => void) => {
      const event = (deleted: boolean) => (o: T) => {
        if (!live()) return;
        seen();
        handle(o, deleted);
      };
      inf.on('add', event(false));
      inf.on('update', event(false));
      inf.on('delete', event(true));
      inf.on('connect', () => {
        if (live()) seen();
      });
      inf.on('error', (err: unknown) => {
        if (live()) this.onInformerError(err);
      });
      gen.informers.push(inf);
    };
    on(nsInformer, (o, deleted) => this.onNamespace(o, deleted));
    on(svcInformer, (o, deleted) => this.onService(o, deleted));

    // start() reports its failures through 'error' callbacks; it only rejects on a bug.
    void (async () => {
      await nsInformer.start();
      if (live() && this.namespacesListed) await svcInformer.start();
    })().catch((err: unknown) => live() && this.onInformerError(err));
  }

  private stopGeneration(): void {
    const old = this.generation;
    this.generation = undefined;
    // A stopped informer aborts its request and reports the abort as an error: the generation check ignores it.
    for (const inf of old?.informers ?? []) void inf.stop().catch(() => undefined);
  }

  private onInformerError(err: unknown): void {
    const now = Date.now();
    this.counters.errors += 1;
    if (this.generation && now - this.generation.startedAt >= healthyAfterMs) {
      this.consecutiveErrors = 0;
      this.errorStreakSince = undefined;
    }
    this.consecutiveErrors += 1;
    this.errorStreakSince ??= now;
    this.stopGeneration();
    if (now - this.errorStreakSince >= this.opts.failAfterMs) {
      this.fail(new WatcherFailedError(`the Kubernetes watch kept failing for ${Math.round((now - this.errorStreakSince) / 1000)} s: ${describe(err)}`, err));
      return;
    }
    const delay = Math.min(this.opts.restartDelayMs * 2 ** (this.consecutiveErrors - 1), this.opts.maxRestartDelayMs);
    this.clearRestartTimer();
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.state !== 'running') return;
      this.counters.restarts += 1;
      this.opts.onRestart?.('error', err);
      this.launch();
    }, delay);
  }

  private checkStall(): void {
    if (this.state !== 'running' || this.restartTimer) return;
    if (Date.now() - this.counters.lastEventAt < this.opts.stallTimeoutMs) return;
    this.counters.restarts += 1;
    this.counters.stallRestarts += 1;
    this.opts.onRestart?.('stall');
    this.launch();
  }

  private clearRestartTimer(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
  }

  private teardown(): void {
    this.clearRestartTimer();
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
    this.stopGeneration();
  }

  private fail(err: unknown): void {
    if (this.state !== 'running') return;
    this.state = 'failed';
    this.teardown();
    this.rejectDone(err instanceof Error ? err : new WatcherFailedError(String(err)));
  }

  // ---- what changed

  private onNamespaceList(items: V1Namespace[]): void {
    const present = new Set(items.map((n) => n.metadata?.name));
    for (const name of [...this.namespaces.keys()]) if (!present.has(name)) this.namespaceGone(name);
    this.namespacesListed = true;
  }

  private onServiceList(items: V1Service[]): void {
    const present = new Set(items.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`));
    for (const [ns, byName] of [...this.services]) {
      for (const name of [...byName.keys()]) if (!present.has(`${ns}/${name}`)) this.serviceGone(ns, name);
    }
    if (!this.servicesListed) {
      this.servicesListed = true;
      this.firstListing = true;
      // The informer fires its ADDs once this returns (microtasks, before any watch event can arrive); by the
      // time this runs they have all been queued.
      setImmediate(() => {
        this.firstListing = false;
        this.resolveSynced();
      });
    }
  }

  private onNamespace(ns: V1Namespace, deleted: boolean): void {
    const name = ns.metadata?.name;
    if (!name) return;
    if (deleted) return this.namespaceGone(name);
    const next: NamespaceState = {
      // A terminating namespace is on its way out: its services leave the registry now.
      watched: isNamespaceWatched(ns as KubeNamespace, this.opts.policy) && !ns.metadata?.deletionTimestamp,
      fingerprint: stableJson(this.allowlist.filter(ns.metadata?.annotations)),
    };
    const prev = this.namespaces.get(name);
    this.namespaces.set(name, next);
    if (!prev) {
      if (next.watched) this.notifyNamespace(name, 'namespace-watched');
    } else if (prev.watched !== next.watched) {
      this.notifyNamespace(name, next.watched ? 'namespace-watched' : 'namespace-unwatched');
    } else if (next.watched && prev.fingerprint !== next.fingerprint) {
      this.notifyNamespace(name, 'namespace-updated');
    }
  }

  private namespaceGone(name: string): void {
    const prev = this.namespaces.get(name);
    this.namespaces.delete(name);
    if (prev?.watched) this.notifyNamespace(name, 'namespace-deleted');
  }

  private onService(svc: V1Service, deleted: boolean): void {
    const ns = svc.metadata?.namespace;
    const name = svc.metadata?.name;
    if (!ns || !name) return;
    if (deleted) return this.serviceGone(ns, name);
    const fingerprint = this.serviceFingerprint(svc);
    let byName = this.services.get(ns);
    if (!byName) this.services.set(ns, (byName = new Map()));
    const prev = byName.get(name);
    if (prev === fingerprint) return;
    byName.set(name, fingerprint);
    if (this.concerns(ns)) this.queue.push({ key: { namespace: ns, service: name }, change: prev === undefined ? 'service-added' : 'service-updated', initial: this.firstListing });
  }

  private serviceGone(ns: string, name: string): void {
    const byName = this.services.get(ns);
    if (!byName?.delete(name)) return;
    if (byName.size === 0) this.services.delete(ns);
    if (this.concerns(ns)) this.queue.push({ key: { namespace: ns, service: name }, change: 'service-deleted', initial: false });
  }

  /** A service matters when its namespace is watched, or not known yet (the safe side: the reconciler decides). */
  private concerns(ns: string): boolean {
    return this.namespaces.get(ns)?.watched ?? true;
  }

  private notifyNamespace(ns: string, change: WatchedChange): void {
    for (const name of this.services.get(ns)?.keys() ?? []) this.queue.push({ key: { namespace: ns, service: name }, change, initial: false });
  }

  /** What the registry entry depends on: allowed annotations, external and ingress IPs, ports. */
  private serviceFingerprint(svc: V1Service): string {
    return stableJson({
      a: this.allowlist.filter(svc.metadata?.annotations),
      ip: serviceIPs(svc),
      p: (svc.spec?.ports ?? []).map((p) => p.port),
    });
  }
}

/** One change to deliver. */
interface Notification {
  key: ServiceKey;
  change: WatchedChange;
  initial: boolean;
}

/** JSON with object keys sorted, so equal content gives equal fingerprints. */
function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val && typeof val === 'object' && !Array.isArray(val)
      ? Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : val,
  );
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const status = (err as { statusCode?: number; code?: unknown }).statusCode ?? (err as { code?: unknown }).code;
    return status !== undefined ? `${err.message} (${String(status)})` : err.message;
  }
  return String(err);
}
