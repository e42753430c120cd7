// The activities of endpoint reconciliation: reconcile one Kubernetes service into the registry through the
// ownership-checking Broker (always from current state), run the informers while heartbeating, and compare the
// whole cluster with the registry for the scheduled resync. The settings come from config/endpoints.ts, the
// adapters from adapters/factory.ts, and the signals go out through platform/endpoint-workflows.ts.
import { Context, CancelledFailure } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ApiException, CoreV1Api, type KubeConfig, type V1Namespace, type V1Service } from '@kubernetes/client-node';
import { NotFoundError, PermissionError, UnavailableError, ValidationError } from '../adapters/errors';
import { extractServiceData, isNamespaceWatched, isRefusal, refusalIsFinal } from '../adapters/kubernetes';
import { KubeServiceWatcher, type ServiceKey, type WatcherStats } from '../adapters/kubernetes/watcher';
import {
  EndpointNotOwnedError,
  NamespaceNotEmptyError,
  NamespaceNotOwnedError,
  NoEndpointsError,
  ServiceHasForeignEndpointsError,
  ServiceNotOwnedError,
  validateName,
  type Endpoint,
  type ServiceRegistryBroker,
  type ServiceWrite,
} from '../adapters/service-registries';
import { mapLimited } from '../adapters/service-registries/concurrency';
import type { EndpointSyncSettings } from '../config/endpoints';
import { signalKubeService } from '../platform/endpoint-workflows';
import type { KubeServiceOutcome, ResyncSummary, WatchSummary } from '../workflows/endpoints-messages';
import { asActivity, toFailure } from './failures';

/** What the endpoint activities are built from (the worker builds it: worker/dependencies.ts). */
export interface EndpointDeps {
  settings: EndpointSyncSettings;
  /** The Broker in front of the configured registry. */
  broker: ServiceRegistryBroker;
  /** Where namespaces and services are read and watched. */
  kubeConfig: KubeConfig;
  /** Signals per-service workflows; default: the worker's own client (activity context). */
  client?: Client;
  /** Releases what `createEndpointDeps` opened. */
  close?: () => Promise<void>;
}

/**
 * The heartbeat details of the watch activity (shown with the pending activity in the Web UI): the informers'
 * counters and, once the watch's first comparison with the registry is done, its summary.
 */
export type WatchProgress = WatcherStats & { caughtUp?: ResyncSummary };

/** A reconcile asked of a worker that mirrors another registry. Not retryable. */
export class UnknownSyncError extends ValidationError {
  constructor(asked: string, served: string) {
    super(`this worker mirrors endpoints for ${JSON.stringify(served)}, not ${JSON.stringify(asked)}`, 'sync');
  }
}

/** A parent vanished under a create (another service's workflow removed the namespace). Retryable: the next attempt recreates it. */
export class RegistryParentGoneError extends UnavailableError {
  constructor(path: string, cause?: unknown) {
    super(`the registry namespace of ${path} was removed while registering it`, cause);
  }
}

/**
 * A Kubernetes read with typed errors: refused by a ready API server -> PermissionError; refused by one that is not
 * ready (starting: adapters/kubernetes/refusal.ts) and anything else -> UnavailableError (retried).
 */
async function kubeRead<T>(kc: KubeConfig, what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof ApiException) {
      if (err.code === 404) throw new NotFoundError(`Kubernetes has no ${what}`);
      if (isRefusal(err.code)) {
        if (await refusalIsFinal(kc)) throw new PermissionError(`Kubernetes refused to read ${what} (${err.code})`);
        throw new UnavailableError(`Kubernetes refused to read ${what} (${err.code}) while the API server is not ready`);
      }
      throw new UnavailableError(`Kubernetes failed to read ${what} (${err.code})`);
    }
    throw new UnavailableError(`cannot reach Kubernetes to read ${what}: ${(err as Error)?.message ?? String(err)}`, err);
  }
}

/** {@link kubeRead} of one object, undefined when it does not exist. */
async function readOrUndefined<T>(kc: KubeConfig, what: string, read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await kubeRead(kc, what, read);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** Why a service should not be in the registry, or undefined when it should. */
function removalReason(s: EndpointSyncSettings, ns: V1Namespace | undefined, svc: V1Service | undefined): string | undefined {
  if (!ns) return 'namespace-gone';
  if (ns.metadata?.deletionTimestamp) return 'namespace-terminating';
  if (!isNamespaceWatched(ns, s.policy)) return 'namespace-unwatched';
  if (!svc) return 'service-gone';
  return undefined;
}

export function createEndpointActivities(deps: EndpointDeps) {
  const s = deps.settings;
  const { broker } = deps;
  const core = deps.kubeConfig.makeApiClient(CoreV1Api);
  const checkSync = (sync: string) => {
    if (sync !== s.name) throw new UnknownSyncError(sync, s.name);
  };

  async function register(path: string, x: Extract<ReturnType<typeof extractServiceData>, { action: 'register' }>): Promise<KubeServiceOutcome> {
    const { name: nsName } = x.namespace;
    const svcName = x.service.name;
    try {
      await broker.manageNs(x.namespace);
      const serv = await broker.manageServ(x.service);
      // A service someone else registered under this name stays theirs: no endpoints of ours are mixed into it.
      if (!broker.isOwned(serv.metadata)) return { action: 'registered', endpoints: 0, untouched: ['service-not-owned'] };
      const errors = await broker.manageServEndps(nsName, svcName, x.endpoints);
      const untouched: string[] = [];
      let failure: Error | undefined;
      for (const [name, err] of errors) {
        if (err instanceof EndpointNotOwnedError) untouched.push(name);
        else failure ??= err;
      }
      if (failure) throw failure;
      return { action: 'registered', endpoints: x.endpoints.length, untouched };
    } catch (err) {
      if (err instanceof NotFoundError) throw new RegistryParentGoneError(path, err);
      throw err;
    }
  }

  async function remove(nsName: string, svcName: string, reason: string): Promise<KubeServiceOutcome> {
    const untouched: string[] = [];
    try {
      await broker.removeServ(nsName, svcName, true);
    } catch (err) {
      if (err instanceof ServiceHasForeignEndpointsError) untouched.push('foreign-endpoints');
      else if (err instanceof ServiceNotOwnedError) untouched.push('service-not-owned');
      else throw err;
    }
    // The namespace goes with its last owned service; one still holding services (or not ours) stays.
    try {
      await broker.removeNs(nsName, false);
    } catch (err) {
      if (!(err instanceof NamespaceNotEmptyError || err instanceof NamespaceNotOwnedError)) throw err;
    }
    return { action: 'removed', reason, endpoints: 0, untouched };
  }

  type Registration = Extract<ReturnType<typeof extractServiceData>, { action: 'register' }>;

  /**
   * The cluster as the registry should mirror it, from one list of namespaces and one of services: each wanted
   * service by `ns/svc`, the namespaces holding one, and the resourceVersion of every namespace and service
   * (what tells, after a write, whether either changed meanwhile). A list that fails fails the whole read: an
   * empty answer must never read as "remove everything".
   */
  async function readCluster(): Promise<{ desired: Map<string, Registration>; wantedNs: Set<string>; versions: Map<string, string> }> {
    const [nsList, svcList] = await Promise.all([
      kubeRead(deps.kubeConfig, 'namespace list', () => core.listNamespace()),
      kubeRead(deps.kubeConfig, 'service list', () => core.listServiceForAllNamespaces()),
    ]);
    const namespaces = new Map(nsList.items.map((n) => [n.metadata?.name ?? '', n]));
    const versions = new Map<string, string>();
    for (const [name, n] of namespaces) versions.set(name, n.metadata?.resourceVersion ?? '');
    const desired = new Map<string, Registration>();
    const wantedNs = new Set<string>();
    for (const svc of svcList.items) {
      versions.set(`${svc.metadata?.namespace ?? ''}/${svc.metadata?.name ?? ''}`, svc.metadata?.resourceVersion ?? '');
      const ns = namespaces.get(svc.metadata?.namespace ?? '');
      if (removalReason(s, ns, svc) || !ns) continue;
      let x: ReturnType<typeof extractServiceData>;
      try {
        x = extractServiceData(ns, svc, { allowedAnnotations: s.allowlist });
      } catch {
        continue; // a name the registry cannot hold; its own reconcile reports why
      }
      if (x.action !== 'register') continue;
      desired.set(`${x.namespace.name}/${x.service.name}`, x);
      wantedNs.add(x.namespace.name);
    }
    return { desired, wantedNs, versions };
  }

  /**
   * Compares every watched Kubernetes service with the registry and brings the registry in line; removes owned
   * namespaces left empty and unwanted. Both the scheduled resync and a starting watch use it.
   *
   * With a registry that can read itself whole and write many services at once (etcd), the services to register
   * or update are written here, in guarded transactions, and only the rest is signalled to the per-service
   * workflows: removals, and writes whose guard failed because someone wrote meanwhile. Otherwise (Cloud Map,
   * Service Directory) every service that differs is signalled.
   */
  async function compareAndSignal(client: Client, taskQueue: string, heartbeat: (details: unknown) => void, abort?: AbortSignal): Promise<ResyncSummary> {
    const cluster = await readCluster();
    const { desired, wantedNs } = cluster;
    const desiredCount = desired.size;
    const registry = broker.registry;
    const bulk = registry.snapshot && registry.writeServices ? { snapshot: registry.snapshot.bind(registry), write: registry.writeServices.bind(registry) } : undefined;

    const toSignal = new Map<string, ServiceKey>();
    const emptyOwnedNs: string[] = [];
    let registered = 0;
    let written = 0;
    if (bulk) {
      const snap = await bulk.snapshot();
      const servicesIn = new Map<string, number>();
      for (const [key, sv] of snap.services) {
        const nsName = sv.value.namespace;
        if (!snap.namespaces.has(nsName)) continue; // left below a deleted namespace: invisible
        servicesIn.set(nsName, (servicesIn.get(nsName) ?? 0) + 1);
        if (!broker.isOwned(sv.value.metadata)) continue; // foreign: never ours to change
        registered += 1;
        if (!desired.has(key)) toSignal.set(key, { namespace: nsName, service: sv.value.name });
      }
      for (const [name, ns] of snap.namespaces) {
        if (!servicesIn.has(name) && broker.isOwned(ns.value.metadata) && !wantedNs.has(name)) emptyOwnedNs.push(name);
      }
      // Namespaces first (few), through the Broker's own rules; their services are written below.
      const nsFailed = new Set<string>();
      const nsToManage = [...new Map([...desired.values()].map((x) => [x.namespace.name, x.namespace])).values()].filter((n) => {
        const seen = snap.namespaces.get(n.name)?.value;
        return !seen || (broker.isOwned(seen.metadata) && !broker.sameMetadata(n.metadata, seen.metadata));
      });
      await mapLimited(nsToManage, s.signalConcurrency, async (n) => {
        try {
          await broker.manageNs(n);
        } catch {
          nsFailed.add(n.name); // its services take the careful path, which reports why
        }
      });
      const writes: ServiceWrite[] = [];
      for (const [key, x] of desired) {
        if (nsFailed.has(x.namespace.name)) {
          toSignal.set(key, { namespace: x.namespace.name, service: x.service.name });
          continue;
        }
        try {
          const plan = broker.planServiceWrite(snap, { service: x.service, endpoints: x.endpoints });
          if (plan.write) writes.push(plan.write);
        } catch {
          toSignal.set(key, { namespace: x.namespace.name, service: x.service.name }); // its workflow fails visibly
        }
      }
      heartbeat({ writing: writes.length });
      const left = writes.length ? await bulk.write(snap, writes) : [];
      for (const w of left) toSignal.set(`${w.namespace}/${w.service}`, { namespace: w.namespace, service: w.service });
      written = writes.length - left.length;
      if (written > 0) {
        // What changed in the cluster while this ran may have been reconciled before these writes landed: a
        // second read tells which services or namespaces changed since the first, and their workflows run again.
        const again = await readCluster();
        const leftKeys = new Set(left.map((w) => `${w.namespace}/${w.service}`));
        for (const w of writes) {
          const key = `${w.namespace}/${w.service}`;
          if (leftKeys.has(key)) continue;
          const same = (k: string) => cluster.versions.get(k) === again.versions.get(k);
          if (!same(w.namespace) || !same(key)) toSignal.set(key, { namespace: w.namespace, service: w.service });
        }
      }
    } else {
      const registryNs = await registry.listNs();
      for (const regNs of registryNs) {
        heartbeat({ namespace: regNs.name });
        const services = await registry.listServ(regNs.name).catch((err: unknown) => {
          if (err instanceof NotFoundError) return [];
          throw err;
        });
        if (services.length === 0 && broker.isOwned(regNs.metadata) && !wantedNs.has(regNs.name)) emptyOwnedNs.push(regNs.name);
        for (const sv of services) {
          const key = `${regNs.name}/${sv.name}`;
          const want = desired.get(key);
          if (!broker.isOwned(sv.metadata)) {
            desired.delete(key); // foreign: never ours to change
            continue;
          }
          registered += 1;
          if (!want) {
            toSignal.set(key, { namespace: regNs.name, service: sv.name });
            continue;
          }
          desired.delete(key);
          const persistent = Object.fromEntries(broker.persistentMetadata.map((p) => [p.key, p.value]));
          const nsDiffers = broker.isOwned(regNs.metadata) && !broker.sameMetadata(want.namespace.metadata, regNs.metadata);
          if (nsDiffers || !broker.sameMetadata({ ...want.service.metadata, ...persistent }, sv.metadata)) {
            toSignal.set(key, { namespace: regNs.name, service: sv.name });
            continue;
          }
          const endpoints = await registry.listEndp(regNs.name, sv.name).catch((err: unknown) => {
            if (err instanceof NotFoundError) return undefined;
            throw err;
          });
          if (!endpoints || !sameEndpoints(broker, want.endpoints, endpoints)) toSignal.set(key, { namespace: regNs.name, service: sv.name });
        }
      }
      // What is wanted but was not found in the registry at all.
      for (const [key, x] of desired) toSignal.set(key, { namespace: x.namespace.name, service: x.service.name });
    }

    const keys = [...toSignal.values()];
    let next = 0;
    const lane = async () => {
      while (next < keys.length && !abort?.aborted) {
        const key = keys[next++]!;
        await signalKubeService(client, taskQueue, s, key, 'resync');
        heartbeat({ signalled: next });
      }
    };
    await Promise.all(Array.from({ length: Math.min(s.signalConcurrency, keys.length) }, lane));

    let namespacesRemoved = 0;
    for (const nsName of emptyOwnedNs) {
      if (abort?.aborted) break;
      try {
        await broker.removeNs(nsName, false);
        namespacesRemoved += 1;
      } catch (err) {
        if (!(err instanceof NamespaceNotEmptyError || err instanceof NamespaceNotOwnedError)) throw err;
      }
    }
    return { desired: desiredCount, registered, written, signalled: keys.length, namespacesRemoved };
  }

  return {
    /**
     * Makes the registry match one Kubernetes service as it is now: registered (namespace, service, endpoints)
     * when its namespace is watched and it has allowed annotations and endpoints, removed otherwise. Foreign
     * objects are left as they are and listed in `untouched`.
     */
    async reconcileKubeService(input: { sync: string; namespace: string; service: string }): Promise<KubeServiceOutcome> {
      const path = `${input.namespace}/${input.service}`;
      return asActivity(`reconcile of service ${path}`, async () => {
        checkSync(input.sync);
        validateName('namespace', input.namespace);
        validateName('service', input.service);
        const [ns, svc] = await Promise.all([
          readOrUndefined(deps.kubeConfig, `namespace ${input.namespace}`, () => core.readNamespace({ name: input.namespace })),
          readOrUndefined(deps.kubeConfig, `service ${path}`, () => core.readNamespacedService({ name: input.service, namespace: input.namespace })),
        ]);
        const reason = removalReason(s, ns, svc);
        if (reason || !ns || !svc) return remove(input.namespace, input.service, reason ?? 'service-gone');
        const x = extractServiceData(ns, svc, { allowedAnnotations: s.allowlist });
        if (x.action === 'remove') return remove(input.namespace, input.service, x.reason instanceof NoEndpointsError ? 'no-endpoints' : 'no-metadata');
        return register(path, x);
      });
    },

    /**
     * Runs the namespace and service informers, signalling the per-service workflow of every service that may
     * need reconciling, and heartbeats their counters. Once the first lists are in, it compares the cluster
     * with the registry and signals only what differs, instead of every service: a watch that moved to another
     * worker (or continued as new) costs a registry read, not a workflow per service. Ends after
     * `maxRunSeconds` (the workflow continues as new), fails (retryably) when the watch keeps failing or a
     * signal cannot be sent, and stops on cancellation.
     */
    async watchKubernetes(input: { sync: string; maxRunSeconds: number }): Promise<WatchSummary> {
      const ctx = Context.current();
      try {
        checkSync(input.sync);
      } catch (err) {
        throw toFailure(err, 'endpoint watch');
      }
      const client = deps.client ?? ctx.client;
      const taskQueue = ctx.info.taskQueue;
      const watcher = new KubeServiceWatcher({
        kubeConfig: deps.kubeConfig,
        policy: s.policy,
        allowedAnnotations: s.allowlist,
        stallTimeoutMs: s.stallTimeoutMs,
        concurrency: s.signalConcurrency,
        onChange: async (key, change, initial) => {
          if (!initial) await signalKubeService(client, taskQueue, s, key, change);
        },
        onRestart: (reason, err) => ctx.log.warn('Kubernetes informers restarted', { reason, error: err instanceof Error ? err.message : undefined }),
      });
      const heartbeatMs = ctx.info.heartbeatTimeoutMs ?? s.heartbeatTimeoutSeconds * 1000;
      // The details (shown with the pending activity in the Web UI) carry the informers' counters and, once the
      // first comparison with the registry is done, what it found and did.
      let caughtUp: ResyncSummary | undefined;
      const details = (): WatchProgress => ({ ...watcher.stats(), ...(caughtUp ? { caughtUp } : {}) });
      const beat = setInterval(() => ctx.heartbeat(details()), Math.max(100, Math.floor(heartbeatMs / 3)));
      let timer: NodeJS.Timeout | undefined;
      const ended = new AbortController();
      const timeUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(1, input.maxRunSeconds) * 1000)));
      ctx.heartbeat(details());
      try {
        watcher.start();
        const catchUp = watcher.synced
          .then(() => compareAndSignal(client, taskQueue, () => undefined, ended.signal))
          .then((summary) => {
            caughtUp = summary;
            ctx.heartbeat(details());
            ctx.log.info('endpoint watch caught up with the registry', { ...summary });
          });
        await Promise.race([watcher.done, ctx.cancelled, timeUp, catchUp.then(() => Promise.race([watcher.done, ctx.cancelled, timeUp]))]);
        await watcher.stop();
        const st = watcher.stats();
        return { events: st.events, notified: st.notified, restarts: st.restarts };
      } catch (err) {
        await watcher.stop();
        if (err instanceof CancelledFailure) throw err;
        throw toFailure(err, 'endpoint watch');
      } finally {
        ended.abort();
        clearInterval(beat);
        clearTimeout(timer);
      }
    },

    /** The scheduled full resync: {@link compareAndSignal} as an activity. */
    async resyncEndpoints(input: { sync: string }): Promise<ResyncSummary> {
      return asActivity('endpoint resync', async () => {
        checkSync(input.sync);
        const ctx = Context.current();
        return compareAndSignal(deps.client ?? ctx.client, ctx.info.taskQueue, (d) => ctx.heartbeat(d));
      });
    },
  };
}

/** Whether the owned endpoints in the registry are exactly the wanted ones (names, addresses, ports). */
function sameEndpoints(broker: ServiceRegistryBroker, want: Endpoint[], have: Endpoint[]): boolean {
  const owned = have.filter((e) => broker.isOwned(e.metadata));
  if (owned.length !== want.length) return false;
  const byName = new Map(owned.map((e) => [e.name, e]));
  return want.every((w) => {
    const h = byName.get(w.name);
    return h !== undefined && h.address === w.address && h.port === w.port && broker.sameMetadata(w.metadata, h.metadata);
  });
}

/** The endpoint activities, as workflows see them. */
export type EndpointActivities = ReturnType<typeof createEndpointActivities>;
