// The etcd backend of the datastore (etcd3 library): every key lives under one prefix, revisions are etcd mod
// revisions, and each conditional write is a single transaction comparing the key's create or mod revision.
import {
  ClientClosedError,
  CompareResult,
  CompareTarget,
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  GRPCInvalidArgumentError,
  GRPCOutOfRangeError,
  GRPCUnauthenticatedError,
  isRecoverableError,
  type IKeyValue,
  type IRangeRequest,
  type Watcher,
} from 'etcd3';
import { BrokerflowError } from '../errors';
import { etcdClientOptions, isAuthRevisionRace, isEtcdEndpointList, repeatingAuthRaces, type EtcdTls } from '../etcd';
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
import { maxBatchOperations, type Datastore, type GuardedBatch, type KVList, type KVPair, type WatchStream } from './types';
import { PushWatchStream } from './watch-stream';

/** How to reach etcd and where this datastore's keys live. */
export interface EtcdDatastoreOptions {
  /** Client URLs, e.g. `http://127.0.0.1:2379`. */
  endpoints: string[];
  /** Key prefix all pairs live under; default `/brokerflow`. */
  prefix?: string;
  auth?: { username: string; password: string };
  /** PEM material for `https://` endpoints. */
  tls?: EtcdTls;
  /**
   * Deadline of each request in ms, connecting included (etcd3 1.1.2 ignores its own dialTimeout); default 30 000.
   * Watches have no deadline.
   */
  dialTimeoutMs?: number;
  /** Keys per range request when listing; default 50 000 (etcd 3.4 counts the whole remaining range for every page, so small pages cost more than round trips). */
  listPageSize?: number;
}

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

/** The key that ends the range of all keys starting with `start` (which ends in `/`, so `0` is the next byte). */
function rangeEndAfterSlash(start: string): Buffer {
  return utf8(`${start.slice(0, -1)}0`);
}

/** {@link Datastore} on etcd v3. */
export class EtcdDatastore implements Datastore {
  /** The prefix every key lives under. */
  readonly prefix: string;
  private readonly client: Etcd3;
  private readonly prefixBytes: number;
  private readonly pageSize: number;
  private readonly streams = new Set<PushWatchStream>();
  private closed = false;

  constructor(opts: EtcdDatastoreOptions) {
    if (!isEtcdEndpointList(opts.endpoints)) {
      throw new ErrorValidation('endpoints must be a non-empty list of http(s)://host:port URLs', 'endpoints');
    }
    this.prefix = validateKey(opts.prefix ?? '/brokerflow', 'prefix');
    this.prefixBytes = Buffer.byteLength(this.prefix, 'utf8');
    this.pageSize = opts.listPageSize ?? 50_000;
    if (!Number.isInteger(this.pageSize) || this.pageSize < 1) {
      throw new ErrorValidation('listPageSize must be a positive integer', 'listPageSize');
    }
    const timeoutMs = opts.dialTimeoutMs ?? 30_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new ErrorValidation('dialTimeoutMs must be positive', 'dialTimeoutMs');
    this.client = new Etcd3(
      etcdClientOptions({
        endpoints: opts.endpoints,
        ...(opts.auth ? { auth: opts.auth } : {}),
        ...(opts.tls ? { tls: opts.tls } : {}),
        timeoutMs,
        // Pages of large values can exceed grpc-js's 4 MiB default; the page size bounds what we ask for.
        grpcOptions: { 'grpc.max_receive_message_length': -1 },
      }),
    );
  }

  async create(key: string, value: string): Promise<KVPair> {
    validateKey(key);
    checkValue(value);
    const k = this.full(key);
    const res = await this.call('create', key, () =>
      this.client.kv.txn({
        compare: [{ key: k, target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 }],
        success: [{ request_put: { key: k, value: utf8(value) } }],
        failure: [{ request_range: { key: k } }],
      }),
    );
    if (res.succeeded) return { key, value, revision: res.header.revision };
    const existing = res.responses[0]?.response_range.kvs[0];
    // Both branches run in one transaction, so a failed compare always reads the pair that made it fail.
    if (!existing) throw new ErrorResourceUpdateConflict(key);
    throw new ErrorResourceAlreadyExists(key, this.pair(existing));
  }

  async update(pair: KVPair): Promise<KVPair> {
    const key = validateKey(pair?.key);
    const revision = validateRevision(pair.revision);
    checkValue(pair.value);
    const k = this.full(key);
    const res = await this.call('update', key, () =>
      this.client.kv.txn({
        compare: [{ key: k, target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: revision }],
        success: [{ request_put: { key: k, value: utf8(pair.value) } }],
        failure: [{ request_range: { key: k } }],
      }),
    );
    if (res.succeeded) return { key, value: pair.value, revision: res.header.revision };
    const current = res.responses[0]?.response_range.kvs[0];
    if (!current) throw new ErrorResourceDoesNotExist(key);
    throw new ErrorResourceUpdateConflict(key, this.pair(current));
  }

  async writeAll(batch: GuardedBatch): Promise<boolean> {
    const unchanged = batch.unchanged ?? [];
    const compares = batch.exists.length + batch.absent.length + unchanged.length;
    const writes = batch.puts.length + batch.deletes.length;
    if (compares > maxBatchOperations || writes > maxBatchOperations) {
      throw new ErrorValidation(`a batch holds at most ${maxBatchOperations} guards and ${maxBatchOperations} writes`, 'batch');
    }
    for (const k of [...batch.exists, ...batch.absent, ...batch.deletes]) validateKey(k);
    const revisions = unchanged.map((u) => (validateKey(u.key), validateRevision(u.revision, 'unchanged.revision')));
    for (const p of batch.puts) {
      validateKey(p.key);
      checkValue(p.value);
    }
    if (writes === 0) return true;
    const res = await this.call('writeAll', batch.puts[0]?.key ?? batch.deletes[0]!, () =>
      this.client.kv.txn({
        compare: [
          ...batch.exists.map((k) => ({ key: this.full(k), target: CompareTarget.Create, result: CompareResult.Greater, create_revision: 0 })),
          ...batch.absent.map((k) => ({ key: this.full(k), target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 })),
          ...unchanged.map((u, i) => ({ key: this.full(u.key), target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: revisions[i]! })),
        ],
        success: [
          ...batch.puts.map((p) => ({ request_put: { key: this.full(p.key), value: utf8(p.value) } })),
          ...batch.deletes.map((k) => ({ request_delete_range: { key: this.full(k) } })),
        ],
      }),
    );
    return res.succeeded;
  }

  async apply(key: string, value: string): Promise<KVPair> {
    validateKey(key);
    checkValue(value);
    const res = await this.call('apply', key, () => this.client.kv.put({ key: this.full(key), value: utf8(value) }));
    return { key, value, revision: res.header.revision };
  }

  async delete(key: string, revision?: string): Promise<KVPair> {
    validateKey(key);
    const rev = validateOptionalRevision(revision);
    const k = this.full(key);
    if (rev === undefined) {
      const res = await this.call('delete', key, () => this.client.kv.deleteRange({ key: k, prev_kv: true }));
      const prev = res.prev_kvs[0];
      if (!prev) throw new ErrorResourceDoesNotExist(key);
      return this.pair(prev);
    }
    const res = await this.call('delete', key, () =>
      this.client.kv.txn({
        compare: [{ key: k, target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: rev }],
        success: [{ request_delete_range: { key: k, prev_kv: true } }],
        failure: [{ request_range: { key: k } }],
      }),
    );
    if (res.succeeded) {
      const prev = res.responses[0]?.response_delete_range.prev_kvs[0];
      if (!prev) throw new ErrorResourceDoesNotExist(key);
      return this.pair(prev);
    }
    const current = res.responses[0]?.response_range.kvs[0];
    if (!current) throw new ErrorResourceDoesNotExist(key);
    throw new ErrorResourceUpdateConflict(key, this.pair(current));
  }

  async get(key: string, revision?: string): Promise<KVPair> {
    validateKey(key);
    const rev = validateOptionalRevision(revision);
    const req: IRangeRequest = { key: this.full(key) };
    if (rev !== undefined) req.revision = rev;
    const res = await this.call('get', key, () => this.client.kv.range(req), rev);
    const kv = res.kvs[0];
    if (!kv) throw new ErrorResourceDoesNotExist(key);
    return this.pair(kv);
  }

  async list(prefix: string, revision?: string): Promise<KVList> {
    const p = validatePrefix(prefix);
    const rev = validateOptionalRevision(revision);
    const start = p === '/' ? `${this.prefix}/` : `${this.prefix}${p}/`;
    const end = rangeEndAfterSlash(start);
    const first: IRangeRequest = { key: utf8(start), range_end: end, limit: this.pageSize };
    if (rev !== undefined) first.revision = rev;
    const pairs: KVPair[] = [];
    let readAt: string;
    let page: { kvs: IKeyValue[]; more: boolean };
    if (p === '/') {
      const res = await this.call('list', p, () => this.client.kv.range(first), rev);
      readAt = rev ?? res.header.revision;
      page = res;
    } else {
      // The key itself and the keys under `key/`, read in one transaction so both come from the same revision;
      // one range from `key` would also return `key-x`, `key.x` and everything under them.
      const exact: IRangeRequest = { key: this.full(p) };
      if (rev !== undefined) exact.revision = rev;
      const res = await this.call('list', p, () =>
        this.client.kv.txn({ success: [{ request_range: exact }, { request_range: first }] }),
        rev,
      );
      readAt = rev ?? res.header.revision;
      const own = res.responses[0]?.response_range.kvs[0];
      if (own) pairs.push(this.pair(own));
      page = res.responses[1]!.response_range;
    }
    for (;;) {
      const last = page.kvs[page.kvs.length - 1];
      let next: Promise<typeof page> | undefined;
      if (page.more && last) {
        // Later pages read at the first page's revision, so the whole list is one consistent snapshot. The next
        // page is asked for before this one is converted, so etcd reads it meanwhile.
        const req: IRangeRequest = { key: Buffer.concat([last.key, Buffer.from([0])]), range_end: end, limit: this.pageSize, revision: readAt };
        next = this.call('list', p, () => this.client.kv.range(req), readAt);
      }
      for (const kv of page.kvs) pairs.push(this.pair(kv));
      if (!next) break;
      page = await next;
    }
    return { pairs, revision: readAt };
  }

  watch(prefix: string, revision?: string): WatchStream {
    const p = validatePrefix(prefix);
    const rev = validateOptionalRevision(revision);
    if (this.closed) throw new ErrorDatastoreClosed();
    let watcher: Watcher | undefined;
    let serverCanceled = false;
    const stream: PushWatchStream = new PushWatchStream(() => {
      this.streams.delete(stream);
      // A watcher etcd already canceled is gone from etcd3's manager; canceling it again would wait forever.
      if (watcher && !serverCanceled) watcher.cancel().catch(() => undefined);
    });
    this.streams.add(stream);
    const start = p === '/' ? `${this.prefix}/` : `${this.prefix}${p}`;
    const end = p === '/' ? rangeEndAfterSlash(start) : utf8(`${start}0`);
    const begin = async () => {
      let from = rev;
      if (from === undefined) {
        let listed: KVList;
        try {
          listed = await this.list(p);
        } catch (err) {
          const e = err instanceof BrokerflowError ? err : this.mapError(err, 'list', p);
          stream.fail(new ErrorWatchTerminated('list-failed', e.message, e));
          return;
        }
        for (const pair of listed.pairs) stream.push({ type: 'ADDED', new: pair, revision: pair.revision });
        from = listed.revision;
      }
      if (!stream.open) return;
      const w = this.client
        .watch()
        .inRange({ start: utf8(start), end })
        .startRevision(String(Number(from) + 1))
        .withPreviousKV()
        .watcher();
      watcher = w;
      w.on('data', (res) => {
        for (const ev of res.events) {
          const key = ev.kv.key.toString('utf8', this.prefixBytes);
          // The range [prefix, prefix0) also holds siblings such as `/a-b`; only `/a` and `/a/...` belong.
          if (p !== '/' && !keyInPrefix(key, p)) continue;
          const revisionOf = ev.kv.mod_revision;
          if (ev.type === 'Put') {
            const pair = { key, value: ev.kv.value.toString('utf8'), revision: revisionOf };
            if (ev.kv.version === '1') stream.push({ type: 'ADDED', new: pair, revision: revisionOf });
            else if (ev.prev_kv) stream.push({ type: 'MODIFIED', old: this.pair(ev.prev_kv), new: pair, revision: revisionOf });
            else stream.push({ type: 'MODIFIED', new: pair, revision: revisionOf });
          } else {
            const old = ev.prev_kv ? this.pair(ev.prev_kv) : { key, value: '', revision: revisionOf };
            stream.push({ type: 'DELETED', old, revision: revisionOf });
          }
        }
      });
      w.on('error', (err: Error) => {
        serverCanceled = true;
        // etcd cancels a watch whose start revision was compacted with an empty reason (3.4) or a "compacted" one.
        const compacted = /canceled: ?$|compacted/i.test(err.message);
        stream.fail(new ErrorWatchTerminated(compacted ? 'compacted' : 'canceled', compacted ? 'start revision compacted' : errorText(err), err));
      });
      w.on('disconnected', (err: Error) => {
        stream.fail(new ErrorWatchTerminated('disconnected', errorText(err), err));
      });
    };
    void begin();
    return stream;
  }

  async ensureInitialized(): Promise<void> {
    await this.call('ensureInitialized', this.prefix, () =>
      this.client.kv.range({ key: utf8(`${this.prefix}/`), range_end: rangeEndAfterSlash(`${this.prefix}/`), count_only: true }),
    );
  }

  async clean(): Promise<void> {
    const start = `${this.prefix}/`;
    await this.call('clean', this.prefix, () => this.client.kv.deleteRange({ key: utf8(start), range_end: rangeEndAfterSlash(start) }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.streams]) s.stop();
    this.client.close();
  }

  private full(key: string): Buffer {
    return utf8(this.prefix + key);
  }

  private pair(kv: IKeyValue): KVPair {
    return { key: kv.key.toString('utf8', this.prefixBytes), value: kv.value.toString('utf8'), revision: kv.mod_revision };
  }

  private async call<T>(op: string, key: string, fn: () => Promise<T>, revision?: string): Promise<T> {
    if (this.closed) throw new ErrorDatastoreClosed();
    try {
      return await repeatingAuthRaces(fn);
    } catch (err) {
      throw this.mapError(err, op, key, revision);
    }
  }

  /** Turns an etcd3/gRPC error into a typed datastore error; messages carry no credentials. */
  private mapError(err: unknown, op: string, key: string, revision?: string): BrokerflowError {
    if (err instanceof BrokerflowError) return err;
    if (err instanceof ClientClosedError) return new ErrorDatastoreClosed();
    const e = err instanceof Error ? err : new Error(String(err));
    if (e instanceof GRPCOutOfRangeError && revision !== undefined) {
      if (/compacted/.test(e.message)) return new ErrorRevisionUnavailable(revision, 'compacted');
      if (/future/.test(e.message)) return new ErrorRevisionUnavailable(revision, 'future');
    }
    if (e instanceof EtcdAuthenticationFailedError || e instanceof GRPCUnauthenticatedError) {
      return new ErrorDatastorePermission(`etcd ${op} ${key}: authentication failed`, e);
    }
    if (e instanceof EtcdPermissionDeniedError) return new ErrorDatastorePermission(`etcd ${op} ${key}: permission denied`, e);
    // etcd checks a write's permissions again when it applies it, against the auth revision the request was
    // authorised at: a user or role changed meanwhile (on a cluster shared with the tenant etcd, every bind creates
    // one) refuses it as InvalidArgument, unapplied, yet the same call succeeds when repeated.
    if (isAuthRevisionRace(e)) {
      return new ErrorDatastoreUnavailable(`etcd ${op} ${key}: the auth store changed meanwhile (${errorText(e)})`, e);
    }
    if (e instanceof GRPCInvalidArgumentError) return new ErrorValidation(`etcd ${op} ${key}: ${errorText(e)}`);
    // Everything else is connection trouble (gRPC UNAVAILABLE, DEADLINE_EXCEEDED, ...) or an etcd server hiccup
    // (no leader, request timed out): the same call may succeed later.
    const kind = isRecoverableError(e) ? 'unavailable' : 'failed';
    return new ErrorDatastoreUnavailable(`etcd ${op} ${key}: ${kind} (${errorText(e)})`, e);
  }
}

function checkValue(value: unknown): void {
  if (typeof value !== 'string') throw new ErrorValidation('value must be a string', 'value');
}

/** The first line of an etcd/gRPC error message (these carry codes and addresses, never credentials). */
function errorText(err: Error): string {
  return (err.message.split('\n')[0] ?? '').slice(0, 300);
}
