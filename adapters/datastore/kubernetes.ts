// Long on purpose: one Datastore implementation over ConfigMaps; every method shares the same naming, marks and error mapping.
// The Kubernetes backend of the datastore: each pair is a ConfigMap in one namespace, named by a hash of the
// datastore prefix and key, with the key in an annotation and the value under `data.value`. The revision is the
// ConfigMap's resourceVersion, so optimistic concurrency is the API server's own.
import { createHash } from 'node:crypto';
import type {
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  V1ConfigMap,
  V1ConfigMapList,
} from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { BrokerflowError } from '../errors';
import {
  ErrorDatastoreClosed,
  ErrorDatastorePermission,
  ErrorDatastoreUnavailable,
  ErrorResourceAlreadyExists,
  ErrorResourceDoesNotExist,
  ErrorResourceUpdateConflict,
  ErrorRevisionUnavailable,
  ErrorValidation,
  ErrorWatchTerminated,
} from './errors';
import { keyInPrefix, validateKey, validateOptionalRevision, validatePrefix, validateRevision } from './keys';
import type { Datastore, KVList, KVPair, WatchStream } from './types';
import { PushWatchStream } from './watch-stream';

// @kubernetes/client-node is ESM-only; this package is CommonJS, so the library is loaded with import().
type K8s = typeof import('@kubernetes/client-node', { with: { 'resolution-mode': 'import' } });

/** Where the datastore keeps its ConfigMaps and how to reach the cluster. */
export interface KubernetesDatastoreOptions {
  /** Namespace holding the ConfigMaps; `ensureInitialized()` creates it when missing. */
  namespace: string;
  /** Key prefix that scopes this datastore (several may share a namespace); default `/brokerflow`. */
  prefix?: string;
  /** Path of a kubeconfig; default: $KUBECONFIG, ~/.kube/config or in-cluster. */
  kubeconfigPath?: string;
  /** kubeconfig context; default: the current one. */
  context?: string;
  /** ConfigMaps per list page; default 500. */
  listPageSize?: number;
  /**
   * How long the API server keeps one watch request open before closing it (default: the server's own, 30-60
   * minutes). A closed watch is resumed from the last revision seen; the stream does not notice.
   */
  watchTimeoutSeconds?: number;
}

const GROUP = 'datastore.brokerflow.io';
const STORE_LABEL = `${GROUP}/store`;
const TOP_LABEL = `${GROUP}/top`;
const KEY_ANNOTATION = `${GROUP}/key`;
const FIELD_MANAGER = 'brokerflow-datastore';
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/**
 * A key no pair has (not a valid key: it has no leading slash), read at a revision to learn whether etcd still
 * keeps it. The API server's watch cache can answer lists and watches at revisions etcd has compacted, but only
 * while its own window lasts; checking etcd makes "compacted" mean the same here as on the etcd backend.
 */
const PROBE_KEY = 'revision-probe';
/** A watch that the server closes sooner than this after it started is treated as broken, not resumed. */
const MIN_HEALTHY_WATCH_MS = 1_000;

let k8sModule: Promise<K8s> | undefined;
function loadK8s(): Promise<K8s> {
  k8sModule ??= import('@kubernetes/client-node');
  return k8sModule;
}

const hash = (s: string, n: number): string => createHash('sha256').update(s).digest('hex').slice(0, n);

interface Clients {
  k8s: K8s;
  kc: KubeConfig;
  core: CoreV1Api;
  objects: KubernetesObjectApi;
}

/** {@link Datastore} on Kubernetes ConfigMaps. */
export class KubernetesDatastore implements Datastore {
  /** The prefix that scopes this datastore. */
  readonly prefix: string;
  readonly namespace: string;
  private readonly storeLabel: string;
  private readonly pageSize: number;
  private readonly opts: KubernetesDatastoreOptions;
  private clients: Promise<Clients> | undefined;
  private readonly streams = new Set<PushWatchStream>();
  private closed = false;

  constructor(opts: KubernetesDatastoreOptions) {
    if (typeof opts.namespace !== 'string' || !DNS_LABEL.test(opts.namespace)) {
      throw new ErrorValidation('namespace must be a DNS label (lowercase letters, digits, "-", at most 63)', 'namespace');
    }
    this.namespace = opts.namespace;
    this.prefix = validateKey(opts.prefix ?? '/brokerflow', 'prefix');
    this.storeLabel = hash(this.prefix, 20);
    this.pageSize = opts.listPageSize ?? 500;
    if (!Number.isInteger(this.pageSize) || this.pageSize < 1) throw new ErrorValidation('listPageSize must be a positive integer', 'listPageSize');
    const wt = opts.watchTimeoutSeconds;
    if (wt !== undefined && (!Number.isInteger(wt) || wt < 2)) throw new ErrorValidation('watchTimeoutSeconds must be an integer >= 2', 'watchTimeoutSeconds');
    this.opts = opts;
  }

  async create(key: string, value: string): Promise<KVPair> {
    validateKey(key);
    checkValue(value);
    const { core } = await this.api();
    try {
      const cm = await core.createNamespacedConfigMap({ namespace: this.namespace, body: this.object(key, value), fieldManager: FIELD_MANAGER });
      return this.pair(cm);
    } catch (err) {
      if (statusOf(err) !== 409) throw this.mapError(err, 'create', key);
    }
    const existing = await this.read(key);
    // Deleted again between our create and the read: a concurrent change, not an existing key.
    if (!existing) throw new ErrorResourceUpdateConflict(key);
    throw new ErrorResourceAlreadyExists(key, existing);
  }

  async update(pair: KVPair): Promise<KVPair> {
    const key = validateKey(pair?.key);
    const revision = validateRevision(pair.revision);
    checkValue(pair.value);
    const { core } = await this.api();
    const body = this.object(key, pair.value);
    body.metadata!.resourceVersion = revision;
    try {
      return this.pair(await core.replaceNamespacedConfigMap({ name: this.name(key), namespace: this.namespace, body, fieldManager: FIELD_MANAGER }));
    } catch (err) {
      const status = statusOf(err);
      if (status === 404) throw new ErrorResourceDoesNotExist(key);
      if (status !== 409) throw this.mapError(err, 'update', key);
    }
    const current = await this.read(key);
    if (!current) throw new ErrorResourceDoesNotExist(key);
    throw new ErrorResourceUpdateConflict(key, current);
  }

  async apply(key: string, value: string): Promise<KVPair> {
    validateKey(key);
    checkValue(value);
    const { k8s, objects } = await this.api();
    try {
      // Server-side apply creates or overwrites in one request, whatever the current revision.
      const cm = await objects.patch<V1ConfigMap>(
        { apiVersion: 'v1', kind: 'ConfigMap', ...this.object(key, value) },
        undefined,
        undefined,
        FIELD_MANAGER,
        true,
        k8s.PatchStrategy.ServerSideApply,
      );
      return this.pair(cm);
    } catch (err) {
      throw this.mapError(err, 'apply', key);
    }
  }

  async delete(key: string, revision?: string): Promise<KVPair> {
    validateKey(key);
    const rev = validateOptionalRevision(revision);
    // The API returns a Status, not the object, so read first and delete with that resourceVersion as a
    // precondition: what we return is then exactly what was deleted. An unconditional delete that loses a race
    // with a writer reads once more.
    for (let attempt = 0; ; attempt++) {
      const current = await this.read(key);
      if (!current) throw new ErrorResourceDoesNotExist(key);
      if (rev !== undefined && current.revision !== rev) throw new ErrorResourceUpdateConflict(key, current);
      const { core } = await this.api();
      try {
        await core.deleteNamespacedConfigMap({
          name: this.name(key),
          namespace: this.namespace,
          body: { preconditions: { resourceVersion: current.revision } },
        });
        return current;
      } catch (err) {
        const status = statusOf(err);
        if (status === 404) throw new ErrorResourceDoesNotExist(key);
        if (status !== 409) throw this.mapError(err, 'delete', key);
        if (rev !== undefined || attempt >= 1) {
          const now = await this.read(key);
          if (!now) throw new ErrorResourceDoesNotExist(key);
          throw new ErrorResourceUpdateConflict(key, now);
        }
      }
    }
  }

  async get(key: string, revision?: string): Promise<KVPair> {
    validateKey(key);
    const rev = validateOptionalRevision(revision);
    const pair = rev === undefined ? await this.read(key) : await this.readAt(key, rev);
    if (!pair) throw new ErrorResourceDoesNotExist(key);
    return pair;
  }

  async list(prefix: string, revision?: string): Promise<KVList> {
    const p = validatePrefix(prefix);
    const rev = validateOptionalRevision(revision);
    const { core } = await this.api();
    const probe = rev === undefined ? undefined : this.readAt(PROBE_KEY, rev, 'list');
    probe?.catch(() => undefined);
    const pairs: KVPair[] = [];
    let listRevision = rev;
    let token: string | undefined;
    do {
      let page: V1ConfigMapList;
      try {
        page = await core.listNamespacedConfigMap({
          namespace: this.namespace,
          labelSelector: this.selector(p),
          limit: this.pageSize,
          // Later pages continue the first page's snapshot; only the first names the revision.
          ...(token ? { _continue: token } : rev !== undefined ? { resourceVersion: rev, resourceVersionMatch: 'Exact' } : {}),
        });
      } catch (err) {
        throw this.mapError(err, 'list', p, rev);
      }
      listRevision ??= page.metadata?.resourceVersion;
      for (const cm of page.items) {
        const pair = this.pairIfMine(cm);
        if (pair && keyInPrefix(pair.key, p)) pairs.push(pair);
      }
      token = page.metadata?._continue || undefined;
    } while (token);
    await probe;
    // The API server lists by object name (a hash); the contract, like etcd, lists in key order.
    pairs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    if (!listRevision) throw new ErrorDatastoreUnavailable(`kubernetes list ${p}: the API server returned no resourceVersion`);
    return { pairs, revision: listRevision };
  }

  watch(prefix: string, revision?: string): WatchStream {
    const p = validatePrefix(prefix);
    const rev = validateOptionalRevision(revision);
    if (this.closed) throw new ErrorDatastoreClosed();
    let abort: AbortController | undefined;
    const stream: PushWatchStream = new PushWatchStream(() => {
      this.streams.delete(stream);
      abort?.abort();
    });
    this.streams.add(stream);
    // The API server's events carry only the new object; MODIFIED's old pair comes from this picture of the prefix.
    const known = new Map<string, KVPair>();
    const start = async () => {
      let from: string;
      try {
        // With a revision, list at exactly that revision: it seeds the old values and fails as the store would
        // if the revision is compacted.
        const listed = await this.list(p, rev);
        for (const pair of listed.pairs) {
          known.set(pair.key, pair);
          if (rev === undefined) stream.push({ type: 'ADDED', new: pair, revision: pair.revision });
        }
        from = listed.revision;
      } catch (err) {
        const e = err instanceof BrokerflowError ? err : this.mapError(err, 'watch', p);
        const reason = e instanceof ErrorRevisionUnavailable ? 'compacted' : 'list-failed';
        stream.fail(new ErrorWatchTerminated(reason, e.message, e));
        return;
      }
      const { k8s, kc } = await this.api();
      const path = `/api/v1/namespaces/${this.namespace}/configmaps`;
      const follow = async (): Promise<void> => {
        if (!stream.open) return;
        const startedAt = Date.now();
        const onEvent = (phase: string, obj: unknown) => {
          if (phase === 'BOOKMARK') {
            from = (obj as V1ConfigMap).metadata?.resourceVersion ?? from;
            return;
          }
          if (phase === 'ERROR') {
            const status = obj as { code?: number; message?: string };
            const gone = status.code === 410;
            stream.fail(new ErrorWatchTerminated(gone ? 'compacted' : 'canceled', gone ? 'resourceVersion too old' : `HTTP ${status.code ?? '?'}`));
            return;
          }
          const cm = obj as V1ConfigMap;
          const eventRevision = cm.metadata?.resourceVersion;
          if (eventRevision) from = eventRevision;
          const pair = this.pairIfMine(cm);
          if (!pair || !keyInPrefix(pair.key, p)) return;
          if (phase === 'DELETED') {
            const old = known.get(pair.key) ?? pair;
            known.delete(pair.key);
            stream.push({ type: 'DELETED', old, revision: pair.revision });
          } else if (phase === 'ADDED' || phase === 'MODIFIED') {
            const old = known.get(pair.key);
            known.set(pair.key, pair);
            if (old) stream.push({ type: 'MODIFIED', old, new: pair, revision: pair.revision });
            else stream.push({ type: 'ADDED', new: pair, revision: pair.revision });
          }
        };
        const onDone = (err: unknown) => {
          if (!stream.open) return;
          if (err) {
            const status = (err as { statusCode?: number }).statusCode;
            if (status === 410) stream.fail(new ErrorWatchTerminated('compacted', 'resourceVersion too old'));
            else stream.fail(new ErrorWatchTerminated('disconnected', errorText(err), err));
          } else if (Date.now() - startedAt < MIN_HEALTHY_WATCH_MS) {
            stream.fail(new ErrorWatchTerminated('disconnected', 'the API server closed the watch at once'));
          } else {
            // The API server ends every watch after its request timeout; carry on from the last revision seen.
            void follow();
          }
        };
        abort = await new k8s.Watch(kc).watch(
          path,
          {
            labelSelector: this.selector(p),
            resourceVersion: from,
            allowWatchBookmarks: true,
            ...(this.opts.watchTimeoutSeconds ? { timeoutSeconds: this.opts.watchTimeoutSeconds } : {}),
          },
          onEvent,
          onDone,
        );
        if (!stream.open) abort.abort();
      };
      await follow();
    };
    start().catch((err: unknown) => stream.fail(new ErrorWatchTerminated('disconnected', errorText(err), err)));
    return stream;
  }

  async ensureInitialized(): Promise<void> {
    const { core } = await this.api();
    try {
      await core.readNamespace({ name: this.namespace });
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw this.mapError(err, 'ensureInitialized', this.namespace);
    }
    try {
      await core.createNamespace({ body: { metadata: { name: this.namespace, labels: { 'app.kubernetes.io/managed-by': 'brokerflow' } } } });
    } catch (err) {
      if (statusOf(err) !== 409) throw this.mapError(err, 'ensureInitialized', this.namespace);
    }
  }

  async clean(): Promise<void> {
    const { core } = await this.api();
    try {
      await core.deleteCollectionNamespacedConfigMap({ namespace: this.namespace, labelSelector: `${STORE_LABEL}=${this.storeLabel}` });
    } catch (err) {
      throw this.mapError(err, 'clean', this.prefix);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const s of [...this.streams]) s.stop();
  }

  private api(): Promise<Clients> {
    if (this.closed) return Promise.reject(new ErrorDatastoreClosed());
    this.clients ??= loadK8s().then((k8s) => {
      const kc = new k8s.KubeConfig();
      if (this.opts.kubeconfigPath) kc.loadFromFile(this.opts.kubeconfigPath);
      else kc.loadFromDefault();
      if (this.opts.context) kc.setCurrentContext(this.opts.context);
      return { k8s, kc, core: kc.makeApiClient(k8s.CoreV1Api), objects: k8s.KubernetesObjectApi.makeApiClient(kc) };
    });
    return this.clients;
  }

  /** ConfigMap names are DNS subdomains; a hash of prefix and key fits any key and cannot collide in practice. */
  private name(key: string): string {
    return `bfds-${hash(`${this.prefix}\n${key}`, 40)}`;
  }

  /** The label selector for a prefix: this store, and for a prefix below the root its first segment. */
  private selector(prefix: string): string {
    const store = `${STORE_LABEL}=${this.storeLabel}`;
    return prefix === '/' ? store : `${store},${TOP_LABEL}=${this.topLabel(prefix)}`;
  }

  private topLabel(key: string): string {
    const end = key.indexOf('/', 1);
    return hash(`${this.prefix}\n${end < 0 ? key : key.slice(0, end)}`, 20);
  }

  private object(key: string, value: string): V1ConfigMap {
    return {
      metadata: {
        name: this.name(key),
        namespace: this.namespace,
        labels: { [STORE_LABEL]: this.storeLabel, [TOP_LABEL]: this.topLabel(key), 'app.kubernetes.io/managed-by': 'brokerflow' },
        annotations: { [KEY_ANNOTATION]: key },
      },
      data: { value },
    };
  }

  private pair(cm: V1ConfigMap): KVPair {
    const pair = this.pairIfMine(cm);
    if (!pair) throw new ErrorDatastoreUnavailable('kubernetes: the API server returned a ConfigMap without the datastore key');
    return pair;
  }

  private pairIfMine(cm: V1ConfigMap): KVPair | undefined {
    const key = cm.metadata?.annotations?.[KEY_ANNOTATION];
    const revision = cm.metadata?.resourceVersion;
    if (!key || !revision || cm.metadata?.labels?.[STORE_LABEL] !== this.storeLabel) return undefined;
    return { key, value: cm.data?.value ?? '', revision };
  }

  /** The current pair, or undefined when missing. */
  private async read(key: string): Promise<KVPair | undefined> {
    const { core } = await this.api();
    let cm: V1ConfigMap;
    try {
      cm = await core.readNamespacedConfigMap({ name: this.name(key), namespace: this.namespace });
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.mapError(err, 'get', key);
    }
    const pair = this.pairIfMine(cm);
    return pair?.key === key ? pair : undefined;
  }

  /**
   * The pair as it was at `revision`: a list of one name at exactly that resourceVersion. The API server answers
   * such a list from etcd, never from its watch cache, so it fails with 410 once etcd has compacted the revision.
   */
  private async readAt(key: string, revision: string, op = 'get'): Promise<KVPair | undefined> {
    const { core } = await this.api();
    let page: V1ConfigMapList;
    try {
      page = await core.listNamespacedConfigMap({
        namespace: this.namespace,
        fieldSelector: `metadata.name=${this.name(key)}`,
        resourceVersion: revision,
        resourceVersionMatch: 'Exact',
      });
    } catch (err) {
      throw this.mapError(err, op, key, revision);
    }
    const pair = page.items[0] ? this.pairIfMine(page.items[0]) : undefined;
    return pair?.key === key ? pair : undefined;
  }

  /** Turns an API error into a typed datastore error; messages carry the server's reason, never credentials. */
  private mapError(err: unknown, op: string, key: string, revision?: string): BrokerflowError {
    if (err instanceof BrokerflowError) return err;
    const status = statusOf(err);
    const reason = statusMessage(err);
    const what = `kubernetes ${op} ${key}`;
    if (status === 410 && revision !== undefined) return new ErrorRevisionUnavailable(revision, 'compacted');
    if (revision !== undefined && /too large resource version/i.test(reason)) return new ErrorRevisionUnavailable(revision, 'future');
    if (status === 401) return new ErrorDatastorePermission(`${what}: unauthorized`, err);
    if (status === 403) return new ErrorDatastorePermission(`${what}: forbidden (${reason})`, err);
    if (status === 400 || status === 413 || status === 422) return new ErrorValidation(`${what}: ${reason}`);
    // Missing keys are handled where they can occur; a 404 anywhere else means the namespace is missing.
    if (status === 404) return new ErrorValidation(`${what}: namespace ${this.namespace} does not exist (ensureInitialized() creates it)`, 'namespace');
    return new ErrorDatastoreUnavailable(`${what}: ${status ? `HTTP ${status} ` : ''}${reason}`, err);
  }
}

function checkValue(value: unknown): void {
  if (typeof value !== 'string') throw new ErrorValidation('value must be a string', 'value');
}

function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown; statusCode?: unknown })?.code ?? (err as { statusCode?: unknown })?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** The API server's own explanation (Status.message) or the error's first line. */
function statusMessage(err: unknown): string {
  let body = (err as { body?: unknown })?.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body) as unknown;
    } catch {
      /* not JSON */
    }
  }
  const message = (body as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' ? message.slice(0, 300) : errorText(err);
}

function errorText(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return (message.split('\n')[0] ?? '').slice(0, 300);
}
