// The Kubernetes backend: each object is a ConfigMap (or, for the kinds configured as secret, a Secret) holding
// the object as JSON under `object.json`. The version is the resourceVersion, so optimistic concurrency is the
// API server's own; the holder's uid gives owner references, so deleting a registry entry garbage-collects
// what it owns. Objects land in their `metadata.namespace`, else in the replica's namespace; a replica serves
// only the namespaces it is configured with, so every call (lists included) is namespaced and a Role per
// namespace is all the RBAC it needs: get, create, update and delete, plus list for the kinds that are listed.
import { createHash } from 'node:crypto';
import type { CoreV1Api, KubeConfig, V1ConfigMap, V1ObjectMeta, V1Secret } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { BrokerflowError, ConflictError, NotFoundError, PermissionError, UnavailableError, ValidationError } from '../errors';
import { isRefusal, refusalIsFinal } from '../kubernetes/refusal';
import { inKeyOrder, PersistenceBackend, replicaConfigs, type GroupKind } from './backend';
import { formatKey, identityOf, parseKey, parseStored, validateNamespace, type ObjectIdentity } from './object-key';
import type { ReplicaState } from './replicas';
import type { ObjectKey, OwnerReference, PersistedObject, PutResult, ReplicaList, WritePrecondition } from './types';

// @kubernetes/client-node is ESM-only; this package is CommonJS, so the library is loaded with import().
type K8s = typeof import('@kubernetes/client-node', { with: { 'resolution-mode': 'import' } });

/** One Kubernetes replica: a cluster (kubeconfig + context) and the namespace objects without one go to. */
export interface KubernetesReplicaConfig {
  /** Path of a kubeconfig; in-cluster or $KUBECONFIG/~/.kube/config when absent. */
  kubeconfigPath?: string;
  /** kubeconfig context; the current one when absent. */
  context?: string;
  namespace: string;
  /**
   * Keeps several stores on one cluster apart (a DNS label of at most 30 characters, part of every object
   * name and of the replica's identity), like a key prefix in etcd or S3. Default: none.
   */
  store?: string;
  /**
   * Kinds stored as Secrets instead of ConfigMaps (default: none), or `'*'`: every object is a Secret, which is
   * what a store behind the secret provider wants (nothing to keep in step with the kinds written there).
   */
  secretKinds?: string[] | '*';
  /**
   * Further namespaces objects may name in `metadata.namespace` (default: none, only `namespace`). Lists read
   * these namespaces one by one; an object in any other namespace is refused before any I/O.
   */
  namespaces?: string[];
}

/** Configuration of the Kubernetes backend. */
export type KubernetesPersistenceOptions = ReplicaList<KubernetesReplicaConfig>;

interface KubeReplica {
  config: KubernetesReplicaConfig;
  /** Whether objects of a kind are held in Secrets. */
  isSecret: (kind: string) => boolean;
  /** Every object is a Secret (`secretKinds: '*'`). */
  allSecrets: boolean;
  /** The namespaces this replica serves: its own first. */
  namespaces: string[];
  /** The store name, or '' for none: prefixes object names. */
  store: string;
  /** Short hash of the replica identity: a label that keeps two replicas on one cluster apart in lists. */
  storeLabel: string;
  core?: CoreV1Api;
  /** The kubeconfig `core` was made from. */
  kc?: KubeConfig;
}

type Holder = V1ConfigMap | V1Secret;

const LABEL_PREFIX = 'persistence.brokerflow.io';
const KEY_ANNOTATION = `${LABEL_PREFIX}/key`;
const DATA_KEY = 'object.json';
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

let k8sModule: Promise<K8s> | undefined;
function loadK8s(): Promise<K8s> {
  k8sModule ??= import('@kubernetes/client-node');
  return k8sModule;
}

function shortHash(text: string, length: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/**
 * The ConfigMap/Secret name of an object: `[<store>.]<kind>.<name>` when that is a valid Kubernetes name, else
 * the name part is a hash of the object's key.
 */
export function holderName(id: ObjectIdentity, store = ''): string {
  const head = `${store ? `${store}.` : ''}${id.kind.toLowerCase()}.`;
  const readable = `${head}${id.name}`;
  if (readable.length <= 253 && DNS_SUBDOMAIN.test(readable)) return readable;
  return `${head}h-${shortHash(formatKey({ ...id, namespace: undefined }), 40)}`;
}

function labelValue(text: string): string {
  return LABEL_VALUE.test(text) ? text : `h-${shortHash(text, 40)}`;
}

function httpStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/**
 * A typed error for a failed API call; the response body is never copied (it could echo Secret data). `kc` is the
 * replica's kubeconfig, asked whether the API server is ready when it refuses a call.
 */
async function kubeError(kc: KubeConfig | undefined, what: string, err: unknown): Promise<BrokerflowError> {
  if (err instanceof BrokerflowError) return err;
  const status = httpStatus(err);
  if (status === 409) return new ConflictError(`kubernetes persistence: ${what} conflicted with another writer`);
  if (status === 400 || status === 422) return new ValidationError(`kubernetes persistence: ${what} was rejected (HTTP ${status})`);
  // A request a ready API server denies does not heal by itself: RBAC or credentials must change, so it is not
  // retried. A starting one denies what it allows a moment later (adapters/kubernetes/refusal.ts).
  if (isRefusal(status) && (!kc || (await refusalIsFinal(kc)))) {
    return new PermissionError(`kubernetes persistence: ${what} was denied (HTTP ${status}): check the ServiceAccount's RBAC`);
  }
  if (isRefusal(status)) return new UnavailableError(`kubernetes persistence: ${what} was denied (HTTP ${status}) while the API server is not ready`);
  // Network trouble, 5xx and 429: the replica cannot serve now.
  return new UnavailableError(`kubernetes persistence: ${what} failed (${status ? `HTTP ${status}` : (err as Error)?.message ?? 'error'})`);
}

/** Persists objects as ConfigMaps and Secrets. */
export class KubernetesPersistenceProvider extends PersistenceBackend<KubeReplica> {
  constructor(opts: KubernetesPersistenceOptions) {
    super(
      'kubernetes',
      replicaConfigs(opts).map((config) => {
        validateNamespace(config.namespace, 'namespace');
        const store = config.store ?? '';
        if (store !== '' && (!/^[a-z0-9]([-a-z0-9]{0,28}[a-z0-9])?$/.test(store))) {
          throw new ValidationError('store must be a DNS label of at most 30 characters', 'store');
        }
        const identity = { kubeconfig: config.kubeconfigPath ?? 'default', context: config.context ?? 'current', namespace: config.namespace, store };
        const kinds = config.secretKinds ?? [];
        if (kinds !== '*' && !Array.isArray(kinds)) throw new ValidationError("secretKinds must be a list of kinds or '*'", 'secretKinds');
        const secretKinds = new Set(kinds === '*' ? [] : kinds);
        const namespaces = [config.namespace, ...(config.namespaces ?? []).map((n, i) => validateNamespace(n, `namespaces[${i}]`))];
        return {
          config: {
            config,
            store,
            isSecret: kinds === '*' ? () => true : (kind: string) => secretKinds.has(kind),
            allSecrets: kinds === '*',
            namespaces: [...new Set(namespaces)],
            storeLabel: shortHash(JSON.stringify(identity), 16),
          },
          identity,
        };
      }),
    );
  }

  protected async connect({ config: replica }: ReplicaState<KubeReplica>): Promise<void> {
    const k8s = await loadK8s();
    const kc: KubeConfig = new k8s.KubeConfig();
    try {
      if (replica.config.kubeconfigPath) kc.loadFromFile(replica.config.kubeconfigPath);
      else kc.loadFromDefault();
      if (replica.config.context) kc.setCurrentContext(replica.config.context);
    } catch (err) {
      throw new UnavailableError(`kubernetes persistence: cannot load the kubeconfig (${(err as Error).message})`);
    }
    replica.core = kc.makeApiClient(k8s.CoreV1Api);
    replica.kc = kc;
    // The probe reads one holder that is never written (404 is the expected answer), with the verb every
    // caller needs anyway: a read-only identity that may only get passes it, a denied one fails here.
    const probe = { name: 'brokerflow-persistence-probe', namespace: replica.config.namespace };
    const asSecret = replica.allSecrets;
    try {
      if (asSecret) await replica.core.readNamespacedSecret(probe);
      else await replica.core.readNamespacedConfigMap(probe);
    } catch (err) {
      if (httpStatus(err) !== 404) throw await kubeError(kc, `reaching namespace ${replica.config.namespace}`, err);
    }
  }

  protected async write(state: ReplicaState<KubeReplica>, id: ObjectIdentity, stored: PersistedObject, precondition: WritePrecondition): Promise<PutResult> {
    const key = formatKey(id);
    const api = this.api(state, id);
    const body = this.holder(state, id, JSON.stringify(stored));
    let expected = precondition.ifMatch;
    if (precondition.ifNoneMatch !== '*' && expected === undefined) {
      // Unconditional: update what is there (only if it is ours), create when nothing is.
      const current = await api.read();
      if (current && !this.isOurs(state, current, key)) throw new ConflictError(`${key}: ${api.kind} ${body.metadata!.name} exists and is not ours`);
      expected = current?.metadata?.resourceVersion;
      if (expected === undefined) return this.result(key, await api.create(body, key));
    }
    if (precondition.ifNoneMatch === '*') return this.result(key, await api.create(body, key));
    body.metadata!.resourceVersion = expected;
    return this.result(key, await api.replace(body, key));
  }

  protected async read(state: ReplicaState<KubeReplica>, id: ObjectIdentity): Promise<PersistedObject | undefined> {
    const current = await this.api(state, id).read();
    if (!current || !this.isOurs(state, current, formatKey(id))) return undefined;
    return this.decode(current, formatKey(id), state.config.isSecret(id.kind));
  }

  protected async remove(state: ReplicaState<KubeReplica>, id: ObjectIdentity, precondition: Pick<WritePrecondition, 'ifMatch'>): Promise<void> {
    const k = formatKey(id);
    const api = this.api(state, id);
    const current = await api.read();
    if (!current || !this.isOurs(state, current, k)) {
      if (precondition.ifMatch !== undefined) throw new ConflictError(`${k} no longer exists`);
      return;
    }
    if (precondition.ifMatch !== undefined && precondition.ifMatch !== current.metadata?.resourceVersion) {
      throw new ConflictError(`${k} was changed by another writer`);
    }
    // The uid precondition makes sure the object deleted is the one just checked (ours), not a recreated one.
    await api.delete(current.metadata!.uid!, precondition.ifMatch, k);
  }

  protected async list(state: ReplicaState<KubeReplica>, gk: GroupKind): Promise<PersistedObject[]> {
    const core = this.core(state);
    const selector = [
      `${LABEL_PREFIX}/store=${state.config.storeLabel}`,
      `${LABEL_PREFIX}/kind=${gk.kind}`,
      `${LABEL_PREFIX}/group=${labelValue(gk.group || 'core')}`,
    ].join(',');
    const out: PersistedObject[] = [];
    const asSecret = state.config.isSecret(gk.kind);
    for (const namespace of state.config.namespaces) {
      let cont: string | undefined;
      do {
        let page: { items: Holder[]; metadata?: { _continue?: string } };
        try {
          const query = { namespace, labelSelector: selector, limit: 500, ...(cont ? { _continue: cont } : {}) };
          page = asSecret ? await core.listNamespacedSecret(query) : await core.listNamespacedConfigMap(query);
        } catch (err) {
          throw await kubeError(state.config.kc, `listing ${gk.kind} objects in ${namespace}`, err);
        }
        out.push(...this.decodeAll(page.items, gk, asSecret));
        cont = page.metadata?._continue || undefined;
      } while (cont);
    }
    return inKeyOrder(out);
  }

  private decodeAll(items: Holder[], gk: GroupKind, asSecret: boolean): PersistedObject[] {
    const out: PersistedObject[] = [];
    for (const item of items) {
      const key = item.metadata?.annotations?.[KEY_ANNOTATION];
      if (!key) continue;
      let id: ObjectIdentity;
      try {
        id = parseKey(key);
      } catch {
        continue;
      }
      if (id.kind !== gk.kind || id.group !== gk.group) continue;
      out.push(this.decode(item, formatKey(id), asSecret));
    }
    return out;
  }

  protected async disconnect({ config: replica }: ReplicaState<KubeReplica>): Promise<void> {
    delete replica.core;
    delete replica.kc;
  }

  override ownerReference(replica: string, object: PersistedObject): OwnerReference | undefined {
    const state = this.table.get(replica);
    const id = identityOf(object);
    const uid = object.metadata.uid;
    if (!uid) return undefined;
    return {
      apiVersion: 'v1',
      kind: state.config.isSecret(id.kind) ? 'Secret' : 'ConfigMap',
      name: holderName(id, state.config.store),
      uid,
      controller: false,
      blockOwnerDeletion: false,
    };
  }

  /** The object's namespace, which must be one this replica serves (else lists would miss it). */
  private namespaceOf(state: ReplicaState<KubeReplica>, id: ObjectIdentity): string {
    const namespace = id.namespace ?? state.config.config.namespace;
    if (!state.config.namespaces.includes(namespace)) {
      throw new ValidationError(`kubernetes persistence: namespace ${namespace} is not one this replica serves (add it to namespaces)`, 'metadata.namespace');
    }
    return namespace;
  }

  private core(state: ReplicaState<KubeReplica>): CoreV1Api {
    return state.connection(state.config.core);
  }

  private result(key: ObjectKey, stored: Holder): PutResult {
    const r: PutResult = { key, resourceVersion: stored.metadata?.resourceVersion ?? '' };
    if (stored.metadata?.uid) r.uid = stored.metadata.uid;
    return r;
  }

  private isOurs(state: ReplicaState<KubeReplica>, holder: Holder, key: ObjectKey): boolean {
    return (
      holder.metadata?.labels?.[`${LABEL_PREFIX}/store`] === state.config.storeLabel &&
      holder.metadata?.annotations?.[KEY_ANNOTATION] === key
    );
  }

  private holder(state: ReplicaState<KubeReplica>, id: ObjectIdentity, text: string): Holder {
    const metadata: V1ObjectMeta = {
      name: holderName(id, state.config.store),
      namespace: this.namespaceOf(state, id),
      labels: {
        'app.kubernetes.io/managed-by': 'brokerflow',
        [`${LABEL_PREFIX}/store`]: state.config.storeLabel,
        [`${LABEL_PREFIX}/kind`]: id.kind,
        [`${LABEL_PREFIX}/group`]: labelValue(id.group || 'core'),
      },
      annotations: { [KEY_ANNOTATION]: formatKey(id) },
    };
    if (state.config.isSecret(id.kind)) {
      return { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata, data: { [DATA_KEY]: Buffer.from(text).toString('base64') } };
    }
    return { apiVersion: 'v1', kind: 'ConfigMap', metadata, data: { [DATA_KEY]: text } };
  }

  private decode(holder: Holder, key: ObjectKey, secret: boolean): PersistedObject {
    const raw = holder.data?.[DATA_KEY] ?? '';
    const text = secret ? Buffer.from(raw, 'base64').toString('utf8') : raw;
    const object = parseStored(text, key);
    object.metadata.resourceVersion = holder.metadata?.resourceVersion;
    if (holder.metadata?.uid) object.metadata.uid = holder.metadata.uid;
    return object;
  }

  /** The few calls made on one object's ConfigMap or Secret, with errors mapped. */
  private api(state: ReplicaState<KubeReplica>, id: ObjectIdentity) {
    const core = this.core(state);
    const kc = state.config.kc;
    const name = holderName(id, state.config.store);
    const namespace = this.namespaceOf(state, id);
    const secret = state.config.isSecret(id.kind);
    const kind = secret ? 'Secret' : 'ConfigMap';
    return {
      kind,
      read: async (): Promise<Holder | undefined> => {
        try {
          return secret ? await core.readNamespacedSecret({ name, namespace }) : await core.readNamespacedConfigMap({ name, namespace });
        } catch (err) {
          if (httpStatus(err) === 404) return undefined;
          throw await kubeError(kc, `reading ${kind} ${namespace}/${name}`, err);
        }
      },
      create: async (body: Holder, key: ObjectKey): Promise<Holder> => {
        try {
          return secret
            ? await core.createNamespacedSecret({ namespace, body: body as V1Secret })
            : await core.createNamespacedConfigMap({ namespace, body: body as V1ConfigMap });
        } catch (err) {
          if (httpStatus(err) === 409) throw new ConflictError(`${key} already exists`);
          if (httpStatus(err) === 404) throw new NotFoundError(`namespace ${namespace} does not exist`);
          throw await kubeError(kc, `creating ${kind} ${namespace}/${name}`, err);
        }
      },
      replace: async (body: Holder, key: ObjectKey): Promise<Holder> => {
        try {
          return secret
            ? await core.replaceNamespacedSecret({ name, namespace, body: body as V1Secret })
            : await core.replaceNamespacedConfigMap({ name, namespace, body: body as V1ConfigMap });
        } catch (err) {
          if (httpStatus(err) === 404) throw new ConflictError(`${key} no longer exists`);
          if (httpStatus(err) === 409) throw new ConflictError(`${key} was changed by another writer`);
          throw await kubeError(kc, `replacing ${kind} ${namespace}/${name}`, err);
        }
      },
      delete: async (uid: string, resourceVersion: string | undefined, key: ObjectKey): Promise<void> => {
        const missingIsFine = resourceVersion === undefined;
        const body = { preconditions: resourceVersion === undefined ? { uid } : { uid, resourceVersion }, propagationPolicy: 'Background' };
        try {
          if (secret) await core.deleteNamespacedSecret({ name, namespace, body });
          else await core.deleteNamespacedConfigMap({ name, namespace, body });
        } catch (err) {
          if (httpStatus(err) === 404 && missingIsFine) return;
          if (httpStatus(err) === 404 || httpStatus(err) === 409) throw new ConflictError(`${key} was changed by another writer`);
          throw await kubeError(kc, `deleting ${kind} ${namespace}/${name}`, err);
        }
      },
    };
  }
}
