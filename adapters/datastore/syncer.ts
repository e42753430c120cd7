// The Syncer (Calico's watchersyncer): lists and then watches a set of prefixes and turns what it sees into a
// stream of new/updated/deleted updates that, once InSync, paints the full current state. After a watch ends
// (compaction, etcd restart) it lists again and reconciles against what it has already reported, so consumers
// see deletes for keys removed meanwhile and nothing twice.
import { ErrorValidation } from './errors';
import { keyInPrefix, validatePrefix } from './keys';
import type { Datastore, KVList, WatchStream } from './types';

/**
 * Where the syncer stands: waiting for the datastore (never listed, or a list failed), listing (first sync or a
 * resync after a watch ended), or in sync (every prefix listed and all its updates delivered).
 */
export type SyncStatus = 'WaitForDatastore' | 'ResyncInProgress' | 'InSync';

/** What happened to a key, as the consumer should apply it. */
export type SyncUpdateType = 'new' | 'updated' | 'deleted';

/** One update: `value` is the parsed value for new/updated, absent for deleted. */
export interface SyncUpdate<T = string> {
  type: SyncUpdateType;
  key: string;
  value?: T;
  revision: string;
}

/** What the syncer reports to. Callbacks run synchronously on the syncer's loop and must not throw. */
export interface SyncerCallbacks<T = string> {
  onStatusUpdated(status: SyncStatus): void;
  onUpdates(updates: Array<SyncUpdate<T>>): void;
  /** A value `parse` rejected; the key is reported as deleted if it had been reported before. */
  onParseFailed?(key: string, value: string, error: unknown): void;
}

/** What to watch and how. */
export interface SyncerOptions<T = string> {
  /** The watched "types": prefixes such as `/registry/instances`; they must not overlap. */
  prefixes: string[];
  /** Turns a stored value into what the consumer gets; a throw sends the pair to `onParseFailed`. */
  parse?: (key: string, value: string) => T;
  /** Delay before re-listing after a failure: doubles from `initialMs` (default 100) up to `maxMs` (default 5000). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Most updates in one `onUpdates` call; default 10 000. */
  maxBatchSize?: number;
}

type PrefixState = 'waiting' | 'resyncing' | 'synced';

interface PrefixWatcher {
  prefix: string;
  state: PrefixState;
  /** Every key seen, with the revision last seen for it. */
  known: Map<string, string>;
  /**
   * The known keys whose last value failed to parse: the consumer has not got them, so no delete is owed. Kept
   * apart (and almost always empty) so that `known` holds no object per key.
   */
  unreported: Set<string>;
  stream?: WatchStream;
}

/** Keeps a consumer's picture of some datastore prefixes complete and current. */
export class Syncer<T = string> {
  private readonly watchers: PrefixWatcher[];
  private readonly parse: (key: string, value: string) => T;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly maxBatch: number;
  private pending: Array<SyncUpdate<T>> = [];
  private flushScheduled = false;
  private current: SyncStatus | undefined;
  private everListed = false;
  private started = false;
  private stopped = false;
  private loops: Array<Promise<void>> = [];
  private readonly sleepers = new Set<() => void>();

  constructor(
    private readonly datastore: Datastore,
    options: SyncerOptions<T>,
    private readonly callbacks: SyncerCallbacks<T>,
  ) {
    if (!Array.isArray(options.prefixes) || options.prefixes.length === 0) {
      throw new ErrorValidation('prefixes must be a non-empty list', 'prefixes');
    }
    const prefixes = options.prefixes.map((p) => validatePrefix(p, 'prefixes'));
    for (const a of prefixes) {
      for (const b of prefixes) {
        if (a !== b && keyInPrefix(b, a)) throw new ErrorValidation(`prefixes ${a} and ${b} overlap`, 'prefixes');
      }
    }
    if (new Set(prefixes).size !== prefixes.length) throw new ErrorValidation('prefixes has duplicates', 'prefixes');
    this.watchers = prefixes.map((prefix) => ({ prefix, state: 'resyncing', known: new Map(), unreported: new Set() }));
    this.parse = options.parse ?? ((_key, value) => value as unknown as T);
    this.initialMs = options.backoff?.initialMs ?? 100;
    this.maxMs = options.backoff?.maxMs ?? 5_000;
    this.maxBatch = options.maxBatchSize ?? 10_000;
    if (!(this.initialMs > 0) || !(this.maxMs >= this.initialMs)) {
      throw new ErrorValidation('backoff needs 0 < initialMs <= maxMs', 'backoff');
    }
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new ErrorValidation('maxBatchSize must be a positive integer', 'maxBatchSize');
  }

  /** The last status reported (undefined before `start`). */
  get status(): SyncStatus | undefined {
    return this.current;
  }

  /** Starts listing and watching in the background; reports WaitForDatastore at once. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.setStatus('WaitForDatastore');
    this.loops = this.watchers.map((w) => this.run(w));
  }

  /** Stops every watch, waits for the loops to end, then reports a delete for every key reported so far. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const w of this.watchers) w.stream?.stop();
    for (const wake of [...this.sleepers]) wake();
    await Promise.all(this.loops);
    this.flush();
    const deletes: Array<SyncUpdate<T>> = [];
    for (const w of this.watchers) {
      for (const [key, revision] of w.known) if (!w.unreported.has(key)) deletes.push({ type: 'deleted', key, revision });
      w.known.clear();
      w.unreported.clear();
    }
    for (let i = 0; i < deletes.length; i += this.maxBatch) this.callbacks.onUpdates(deletes.slice(i, i + this.maxBatch));
  }

  /** One prefix: list, reconcile, watch until the watch ends, and again, with a capped exponential backoff. */
  private async run(w: PrefixWatcher): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      if (failures > 0) {
        await this.sleep(Math.min(this.maxMs, this.initialMs * 2 ** (failures - 1)));
        if (this.stopped) return;
      }
      let listed: KVList | undefined;
      try {
        listed = await this.datastore.list(w.prefix);
      } catch {
        // Any failure to list means we cannot see the datastore: report it and try again later.
        failures++;
        this.setPrefixState(w, 'waiting');
        continue;
      }
      if (this.stopped) return;
      this.everListed = true;
      this.setPrefixState(w, 'resyncing');
      this.reconcile(w, listed);
      const listedAt = listed.revision;
      // This frame lives as long as the watch: let the pairs go, only the revision is needed from here on.
      listed = undefined;
      this.setPrefixState(w, 'synced');

      const watchedSince = Date.now();
      let stream: WatchStream;
      try {
        stream = this.datastore.watch(w.prefix, listedAt);
      } catch {
        failures++;
        this.setPrefixState(w, 'resyncing');
        continue;
      }
      w.stream = stream;
      for await (const ev of stream) {
        if (ev.type === 'ERROR') break;
        if (ev.type === 'DELETED') {
          if (ev.old) this.forget(w, ev.old.key, ev.revision ?? ev.old.revision);
        } else if (ev.new) {
          this.observe(w, ev.new.key, ev.new.value, ev.new.revision);
        }
      }
      w.stream = undefined;
      if (this.stopped) return;
      // A watch that lived longer than the longest backoff was healthy: start the backoff over.
      failures = Date.now() - watchedSince > this.maxMs ? 1 : failures + 1;
      this.setPrefixState(w, 'resyncing');
    }
  }

  /** Applies a fresh list: news and updates for what changed, deletes for what is gone, nothing for the rest. */
  private reconcile(w: PrefixWatcher, listed: KVList): void {
    if (w.known.size === 0) {
      // First sync (or everything was deleted): nothing can be owed a delete, so skip the bookkeeping.
      for (const pair of listed.pairs) this.observe(w, pair.key, pair.value, pair.revision);
      return;
    }
    const seen = new Set<string>();
    for (const pair of listed.pairs) {
      seen.add(pair.key);
      this.observe(w, pair.key, pair.value, pair.revision);
    }
    // Deleting the entry being visited is safe while iterating a Map.
    for (const key of w.known.keys()) if (!seen.has(key)) this.forget(w, key, listed.revision);
  }

  private observe(w: PrefixWatcher, key: string, value: string, revision: string): void {
    const known = w.known.get(key);
    // Seen at this revision already (a list overlapping a watch, or a resync of an unchanged key).
    if (known === revision) return;
    const reported = known !== undefined && (w.unreported.size === 0 || !w.unreported.has(key));
    let parsed: T;
    try {
      parsed = this.parse(key, value);
    } catch (err) {
      w.known.set(key, revision);
      w.unreported.add(key);
      if (reported) this.enqueue({ type: 'deleted', key, revision });
      this.callbacks.onParseFailed?.(key, value, err);
      return;
    }
    w.known.set(key, revision);
    if (known !== undefined && !reported) w.unreported.delete(key);
    this.enqueue({ type: reported ? 'updated' : 'new', key, value: parsed, revision });
  }

  private forget(w: PrefixWatcher, key: string, revision: string): void {
    if (!w.known.delete(key)) return;
    // A key whose last value failed to parse was never reported (or its delete was reported then).
    if (!w.unreported.delete(key)) this.enqueue({ type: 'deleted', key, revision });
  }

  private enqueue(update: SyncUpdate<T>): void {
    this.pending.push(update);
    if (this.pending.length >= this.maxBatch) {
      this.flush();
    } else if (!this.flushScheduled) {
      // Everything that arrives in the same turn of the event loop goes out as one batch.
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.callbacks.onUpdates(batch);
  }

  private setPrefixState(w: PrefixWatcher, state: PrefixState): void {
    w.state = state;
    let next: SyncStatus;
    if (this.watchers.every((x) => x.state === 'synced')) next = 'InSync';
    else if (!this.everListed || this.watchers.some((x) => x.state === 'waiting')) next = 'WaitForDatastore';
    else next = 'ResyncInProgress';
    this.setStatus(next);
  }

  private setStatus(status: SyncStatus): void {
    if (this.current === status || this.stopped) return;
    // Updates gathered so far belong before the status change (InSync promises they have all been delivered).
    this.flush();
    this.current = status;
    this.callbacks.onStatusUpdated(status);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }
}
