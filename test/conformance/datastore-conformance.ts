// The datastore conformance suite (docs/design/contracts/datastore.md): every behaviour a Datastore backend and
// the Syncer on top of it must show, written once and run against each backend by its own test file
// (datastore-<backend>.test.ts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ValidationError } from '../../adapters/errors';
import {
  ErrorDatastoreUnavailable,
  ErrorResourceAlreadyExists,
  ErrorResourceDoesNotExist,
  ErrorResourceUpdateConflict,
  ErrorRevisionUnavailable,
  ErrorWatchTerminated,
  Syncer,
  type Datastore,
  type KVList,
  type KVPair,
  type SyncStatus,
  type SyncUpdate,
  type WatchEvent,
  type WatchStream,
} from '../../adapters/datastore';
import { PushWatchStream } from '../../adapters/datastore/watch-stream';

/** A datastore whose store no longer serves `revision` nor the one after it (so a watch from it is compacted too). */
export interface ExpiredRevision {
  datastore: Datastore;
  key: string;
  revision: string;
  /** A later revision that is still served, at which `key` holds `value`. */
  current: KVPair;
  release(): Promise<void>;
}

/** How the suite gets datastores of one backend. */
export interface ConformanceBackend {
  /** A client of the store scoped to `scope`; two calls with the same scope see the same data. */
  make(scope: string): Promise<Datastore>;
  /** A datastore with a compacted revision (etcd compaction; the API server's "too old resource version"). */
  expire(): Promise<ExpiredRevision>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` returns true, failing with `what` after `timeoutMs`. */
export async function eventually(what: string | (() => string), check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await sleep(20);
  }
}

/** Reads a watch stream one event at a time with a deadline, without stopping it on timeout. */
export class EventReader {
  private readonly it: AsyncIterator<WatchEvent>;
  private pending: Promise<IteratorResult<WatchEvent>> | undefined;

  constructor(readonly stream: WatchStream) {
    this.it = stream[Symbol.asyncIterator]();
  }

  /** The next event, or 'end' when the stream has closed. */
  async next(timeoutMs = 10_000): Promise<WatchEvent | 'end'> {
    this.pending ??= this.it.next();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    const res = await Promise.race([this.pending, timeout]);
    clearTimeout(timer);
    if (res === 'timeout') throw new Error(`no watch event within ${timeoutMs} ms`);
    this.pending = undefined;
    return res.done ? 'end' : res.value;
  }

  async take(n: number, timeoutMs = 10_000): Promise<WatchEvent[]> {
    const out: WatchEvent[] = [];
    for (let i = 0; i < n; i++) {
      const ev = await this.next(timeoutMs);
      if (ev === 'end') throw new Error(`stream ended after ${i} of ${n} events: ${JSON.stringify(out)}`);
      out.push(ev);
    }
    return out;
  }

  /** Resolves 'end' or an event if one arrives within `ms`, else 'quiet'. */
  async quiet(ms: number): Promise<WatchEvent | 'end' | 'quiet'> {
    try {
      return await this.next(ms);
    } catch {
      return 'quiet';
    }
  }
}

/** Records what a Syncer reports and keeps the consumer's picture (key -> value). */
export class SyncRecorder<T = string> {
  statuses: SyncStatus[] = [];
  batches: Array<Array<SyncUpdate<T>>> = [];
  parseFailures: Array<{ key: string; value: string }> = [];
  state = new Map<string, T | undefined>();
  /** Problems a consumer would trip over: a `new` for a key it has, an `updated`/`deleted` for one it has not. */
  anomalies: string[] = [];
  /** Updates received after the last InSync, by type. */
  updatesSinceInSync: Array<SyncUpdate<T>> = [];

  readonly callbacks = {
    onStatusUpdated: (s: SyncStatus) => {
      this.statuses.push(s);
      if (s === 'InSync') this.updatesSinceInSync = [];
    },
    onUpdates: (updates: Array<SyncUpdate<T>>) => {
      this.batches.push(updates);
      for (const u of updates) {
        this.updatesSinceInSync.push(u);
        const has = this.state.has(u.key);
        if (u.type === 'new' && has) this.anomalies.push(`new for known key ${u.key}`);
        if (u.type !== 'new' && !has) this.anomalies.push(`${u.type} for unknown key ${u.key}`);
        if (u.type === 'deleted') this.state.delete(u.key);
        else this.state.set(u.key, u.value);
      }
    },
    onParseFailed: (key: string, value: string) => {
      this.parseFailures.push({ key, value });
    },
  };

  get last(): SyncStatus | undefined {
    return this.statuses[this.statuses.length - 1];
  }

  keys(): string[] {
    return [...this.state.keys()].sort();
  }

  updates(): Array<SyncUpdate<T>> {
    return this.batches.flat();
  }
}

/**
 * The real backend with a switch to break it: `interrupt()` ends every live watch with an ERROR (as a dropped
 * connection does) and makes list/watch fail as unavailable until `heal()`. Writes go through untouched, so the
 * test can change the store while the syncer cannot see it.
 */
export class InterruptibleDatastore implements Datastore {
  private down = false;
  private readonly live = new Set<PushWatchStream>();

  constructor(private readonly inner: Datastore) {}

  interrupt(): void {
    this.down = true;
    for (const s of [...this.live]) s.fail(new ErrorWatchTerminated('disconnected', 'interrupted by the test'));
  }

  heal(): void {
    this.down = false;
  }

  create(key: string, value: string) {
    return this.inner.create(key, value);
  }
  update(pair: KVPair) {
    return this.inner.update(pair);
  }
  apply(key: string, value: string) {
    return this.inner.apply(key, value);
  }
  delete(key: string, revision?: string) {
    return this.inner.delete(key, revision);
  }
  get(key: string, revision?: string) {
    return this.inner.get(key, revision);
  }
  async list(prefix: string, revision?: string): Promise<KVList> {
    if (this.down) throw new ErrorDatastoreUnavailable('interrupted by the test');
    return this.inner.list(prefix, revision);
  }
  watch(prefix: string, revision?: string): WatchStream {
    if (this.down) throw new ErrorDatastoreUnavailable('interrupted by the test');
    const inner = this.inner.watch(prefix, revision);
    const outer: PushWatchStream = new PushWatchStream(() => {
      this.live.delete(outer);
      inner.stop();
    });
    this.live.add(outer);
    void (async () => {
      for await (const ev of inner) {
        if (ev.type === 'ERROR' && ev.error) outer.fail(ev.error);
        else outer.push(ev);
      }
    })();
    return outer;
  }
  ensureInitialized() {
    return this.inner.ensureInitialized();
  }
  clean() {
    return this.inner.clean();
  }
  close() {
    return this.inner.close();
  }
}

/** Asserts `promise` rejects with an instance of `cls`, returning the error for further checks. */
export async function rejectsWith<E extends Error>(promise: Promise<unknown>, cls: new (...args: never[]) => E): Promise<E> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    return err;
  }
  assert.fail(`expected ${cls.name}, but the call succeeded`);
}

const rev = (r: string) => BigInt(r);

/** Registers the whole conformance suite for one backend under `describe(name)`. */
export function runDatastoreConformance(name: string, backend: ConformanceBackend): void {
  void describe(`datastore conformance: ${name}`, () => {
    const scope = `c${randomBytes(4).toString('hex')}`;
    let ds: Datastore;
    let n = 0;
    /** A fresh key folder per test, so tests never see each other's keys. */
    const dir = () => `/t${++n}`;

    before(async () => {
      ds = await backend.make(scope);
      await ds.ensureInitialized();
    });
    after(async () => {
      if (ds) {
        await ds.clean();
        await ds.close();
      }
    });

    void test('create returns the pair with its revision and get reads it back', async () => {
      const d = dir();
      const created = await ds.create(`${d}/a`, 'one');
      assert.equal(created.key, `${d}/a`);
      assert.equal(created.value, 'one');
      assert.match(created.revision, /^[1-9][0-9]*$/);
      assert.deepEqual(await ds.get(`${d}/a`), created);
    });

    void test('create of an existing key fails with already-exists carrying the stored pair and changes nothing', async () => {
      const d = dir();
      const first = await ds.create(`${d}/a`, 'first');
      const err = await rejectsWith(ds.create(`${d}/a`, 'second'), ErrorResourceAlreadyExists);
      assert.deepEqual(err.existing, first);
      assert.equal(err.code, 'AlreadyExists');
      assert.equal(err.retryable, false);
      assert.equal((await ds.get(`${d}/a`)).value, 'first');
    });

    void test('update at the current revision stores the value under a newer revision', async () => {
      const d = dir();
      const created = await ds.create(`${d}/a`, 'v1');
      const updated = await ds.update({ ...created, value: 'v2' });
      assert.equal(updated.value, 'v2');
      assert.ok(rev(updated.revision) > rev(created.revision));
      assert.deepEqual(await ds.get(`${d}/a`), updated);
    });

    void test('update with a stale revision fails with a conflict carrying the current pair and changes nothing', async () => {
      const d = dir();
      const created = await ds.create(`${d}/a`, 'v1');
      const current = await ds.update({ ...created, value: 'v2' });
      const err = await rejectsWith(ds.update({ ...created, value: 'lost' }), ErrorResourceUpdateConflict);
      assert.deepEqual(err.current, current);
      assert.equal(err.code, 'Conflict');
      assert.equal((await ds.get(`${d}/a`)).value, 'v2');
    });

    void test('update of a missing key fails with does-not-exist and creates nothing', async () => {
      const d = dir();
      const other = await ds.apply(`${d}/other`, 'x');
      await rejectsWith(ds.update({ key: `${d}/missing`, value: 'v', revision: other.revision }), ErrorResourceDoesNotExist);
      await rejectsWith(ds.get(`${d}/missing`), ErrorResourceDoesNotExist);
    });

    void test('update with an empty or malformed revision is a validation error and changes nothing', async () => {
      const d = dir();
      const created = await ds.create(`${d}/a`, 'v1');
      for (const bad of ['', ' ', 'abc', '-1', '0', '1.5', '12a', '99999999999999999999']) {
        await rejectsWith(ds.update({ key: `${d}/a`, value: 'changed', revision: bad }), ValidationError);
      }
      await rejectsWith(ds.update({ key: `${d}/a`, value: 'changed' } as KVPair), ValidationError);
      assert.deepEqual(await ds.get(`${d}/a`), created);
    });

    void test('apply creates a missing key and overwrites an existing one without a revision', async () => {
      const d = dir();
      const a = await ds.apply(`${d}/a`, 'v1');
      assert.equal((await ds.get(`${d}/a`)).value, 'v1');
      const b = await ds.apply(`${d}/a`, 'v2');
      assert.ok(rev(b.revision) > rev(a.revision));
      assert.deepEqual(await ds.get(`${d}/a`), b);
    });

    void test('delete removes exactly the key: its children and a sibling sharing its name prefix survive', async () => {
      const d = dir();
      const a = await ds.create(`${d}/a`, 'a');
      await ds.create(`${d}/a/child`, 'child');
      await ds.create(`${d}/ab`, 'ab');
      await ds.create(`${d}/a-b`, 'a-b');
      const prev = await ds.delete(`${d}/a`);
      assert.deepEqual(prev, a);
      await rejectsWith(ds.get(`${d}/a`), ErrorResourceDoesNotExist);
      assert.equal((await ds.get(`${d}/a/child`)).value, 'child');
      assert.equal((await ds.get(`${d}/ab`)).value, 'ab');
      assert.equal((await ds.get(`${d}/a-b`)).value, 'a-b');
    });

    void test('delete at a stale revision fails with a conflict and keeps the key; at the current one it deletes', async () => {
      const d = dir();
      const v1 = await ds.create(`${d}/a`, 'v1');
      const v2 = await ds.update({ ...v1, value: 'v2' });
      const err = await rejectsWith(ds.delete(`${d}/a`, v1.revision), ErrorResourceUpdateConflict);
      assert.deepEqual(err.current, v2);
      assert.equal((await ds.get(`${d}/a`)).value, 'v2');
      assert.deepEqual(await ds.delete(`${d}/a`, v2.revision), v2);
      await rejectsWith(ds.get(`${d}/a`), ErrorResourceDoesNotExist);
    });

    void test('delete of a missing key fails with does-not-exist, with or without a revision', async () => {
      const d = dir();
      const other = await ds.apply(`${d}/other`, 'x');
      await rejectsWith(ds.delete(`${d}/missing`), ErrorResourceDoesNotExist);
      await rejectsWith(ds.delete(`${d}/missing`, other.revision), ErrorResourceDoesNotExist);
      await rejectsWith(ds.delete(`${d}/missing`, ''), ValidationError);
    });

    void test('get at an older revision reads the value as it was then', async () => {
      const d = dir();
      const v1 = await ds.create(`${d}/a`, 'v1');
      await ds.update({ ...v1, value: 'v2' });
      assert.deepEqual(await ds.get(`${d}/a`, v1.revision), v1);
      assert.equal((await ds.get(`${d}/a`)).value, 'v2');
    });

    void test('get of a missing key fails with does-not-exist', async () => {
      const d = dir();
      await rejectsWith(ds.get(`${d}/nothing`), ErrorResourceDoesNotExist);
    });

    void test('list by prefix returns the key and the keys under it, never a sibling like /ab for /a', async () => {
      const d = dir();
      const a = await ds.create(`${d}/a`, 'a');
      const ax = await ds.create(`${d}/a/x`, 'ax');
      const axy = await ds.create(`${d}/a/x/y`, 'axy');
      await ds.create(`${d}/ab`, 'ab');
      await ds.create(`${d}/a-b`, 'a-b');
      await ds.create(`${d}/a.b/c`, 'a.b/c');
      const listed = await ds.list(`${d}/a`);
      assert.deepEqual(
        listed.pairs.sort((p, q) => p.key.localeCompare(q.key)),
        [a, ax, axy],
      );
      for (const p of listed.pairs) assert.ok(rev(listed.revision) >= rev(p.revision));
      const all = await ds.list(d);
      // In key order, on every backend.
      assert.deepEqual(all.pairs.map((p) => p.key), [`${d}/a`, `${d}/a-b`, `${d}/a.b/c`, `${d}/a/x`, `${d}/a/x/y`, `${d}/ab`]);
      assert.deepEqual((await ds.list(`${d}/nothing`)).pairs, []);
      const root = await ds.list('/');
      const rootKeys = new Set(root.pairs.map((p) => p.key));
      for (const p of all.pairs) assert.ok(rootKeys.has(p.key), `list / misses ${p.key}`);
    });

    void test('list at an older revision returns the pairs as they were then', async () => {
      const d = dir();
      const a = await ds.create(`${d}/a`, 'a1');
      const b = await ds.create(`${d}/b`, 'b1');
      const then = await ds.list(d);
      await ds.update({ ...a, value: 'a2' });
      await ds.delete(`${d}/b`);
      await ds.create(`${d}/c`, 'c1');
      const old = await ds.list(d, then.revision);
      assert.equal(old.revision, then.revision);
      assert.deepEqual(old.pairs.sort((p, q) => p.key.localeCompare(q.key)), [a, b]);
      const now = await ds.list(d);
      assert.deepEqual(now.pairs.map((p) => [p.key, p.value]).sort(), [[`${d}/a`, 'a2'], [`${d}/c`, 'c1']]);
    });

    void test('keys that could escape their folder or confuse a path are validation errors, before anything is stored', async () => {
      const d = dir();
      const bad = [
        '',
        'relative',
        `${d}/`,
        `${d}//x`,
        `${d}/../escape`,
        `${d}/./x`,
        `${d}/..`,
        `${d}/nul\u0000x`,
        `${d}/line\nbreak`,
        `${d}/del\u007f`,
        `${d}/${'x'.repeat(1100)}`,
      ];
      for (const key of bad) {
        await rejectsWith(ds.create(key, 'v'), ValidationError);
        await rejectsWith(ds.apply(key, 'v'), ValidationError);
        await rejectsWith(ds.get(key), ValidationError);
        await rejectsWith(ds.delete(key), ValidationError);
        await rejectsWith(ds.update({ key, value: 'v', revision: '1' }), ValidationError);
      }
      for (const prefix of ['', 'x', `${d}/`, `${d}/../..`]) {
        await rejectsWith(ds.list(prefix), ValidationError);
        assert.throws(() => ds.watch(prefix), ValidationError);
      }
      assert.deepEqual((await ds.list(d)).pairs, []);
    });

    void test('two clients updating the same key at the same revision: exactly one wins, the other conflicts, nothing is lost', async () => {
      const d = dir();
      const other = await backend.make(scope);
      try {
        const base = await ds.create(`${d}/counter`, '0');
        const results = await Promise.allSettled([
          ds.update({ ...base, value: 'from-a' }),
          other.update({ ...base, value: 'from-b' }),
        ]);
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r) => r.status === 'rejected');
        assert.equal(won.length, 1, JSON.stringify(results));
        assert.equal(lost.length, 1);
        const conflict = (lost[0] as PromiseRejectedResult).reason as unknown;
        assert.ok(conflict instanceof ErrorResourceUpdateConflict, String(conflict));
        const winner = (won[0] as PromiseFulfilledResult<KVPair>).value;
        assert.deepEqual(await ds.get(`${d}/counter`), winner);
        assert.deepEqual(conflict.current, winner);

        // Read-modify-write with retry on conflict from both clients: every increment lands.
        await ds.apply(`${d}/n`, '0');
        const increment = async (client: Datastore, times: number) => {
          for (let i = 0; i < times; i++) {
            for (;;) {
              const cur = await client.get(`${d}/n`);
              try {
                await client.update({ ...cur, value: String(Number(cur.value) + 1) });
                break;
              } catch (err) {
                if (!(err instanceof ErrorResourceUpdateConflict)) throw err;
              }
            }
          }
        };
        await Promise.all([increment(ds, 25), increment(other, 25)]);
        assert.equal((await ds.get(`${d}/n`)).value, '50');
      } finally {
        await other.close();
      }
    });

    void test('ensureInitialized is idempotent and clean removes this datastore\'s pairs but no one else\'s', async () => {
      const mine = await backend.make(`${scope}-clean-mine`);
      const theirs = await backend.make(`${scope}-clean-theirs`);
      try {
        await mine.ensureInitialized();
        await mine.ensureInitialized();
        await theirs.ensureInitialized();
        await mine.apply('/x/one', '1');
        await mine.apply('/y', '2');
        await theirs.apply('/x/one', 'theirs');
        await mine.clean();
        assert.deepEqual((await mine.list('/')).pairs, []);
        assert.equal((await theirs.get('/x/one')).value, 'theirs');
      } finally {
        await theirs.clean();
        await Promise.all([mine.close(), theirs.close()]);
      }
    });

    void test('reads at a compacted revision fail with revision-unavailable (never a stale or empty answer)', async () => {
      const x = await backend.expire();
      try {
        const err = await rejectsWith(x.datastore.get(x.key, x.revision), ErrorRevisionUnavailable);
        assert.equal(err.reason, 'compacted');
        assert.equal(err.retryable, false);
        await rejectsWith(x.datastore.list(x.key, x.revision), ErrorRevisionUnavailable);
        assert.deepEqual(await x.datastore.get(x.key, x.current.revision), x.current);
      } finally {
        await x.release();
      }
    });

    void describe('watch', () => {
      void test('without a revision it lists first (ADDED for each pair) and then reports later changes', async () => {
        const d = dir();
        const a = await ds.create(`${d}/a`, 'a');
        const b = await ds.create(`${d}/b`, 'b');
        const w = new EventReader(ds.watch(d));
        try {
          const initial = await w.take(2);
          assert.deepEqual(
            initial.map((e) => [e.type, e.new]).sort((p, q) => String((p[1] as KVPair).key).localeCompare(String((q[1] as KVPair).key))),
            [
              ['ADDED', a],
              ['ADDED', b],
            ],
          );
          const c = await ds.create(`${d}/c`, 'c');
          const [ev] = await w.take(1);
          assert.equal(ev!.type, 'ADDED');
          assert.deepEqual(ev!.new, c);
        } finally {
          w.stream.stop();
        }
      });

      void test('MODIFIED carries the old and new pair, DELETED carries the old pair and the revision of the delete', async () => {
        const d = dir();
        const listed = await ds.list(d);
        const w = new EventReader(ds.watch(d, listed.revision));
        try {
          const v1 = await ds.create(`${d}/a`, 'v1');
          const v2 = await ds.update({ ...v1, value: 'v2' });
          await ds.delete(`${d}/a`);
          const [added, modified, deleted] = await w.take(3);
          assert.equal(added!.type, 'ADDED');
          assert.deepEqual(added!.new, v1);
          assert.equal(added!.revision, v1.revision);
          assert.equal(modified!.type, 'MODIFIED');
          assert.deepEqual(modified!.old, v1);
          assert.deepEqual(modified!.new, v2);
          assert.equal(deleted!.type, 'DELETED');
          assert.equal(deleted!.old?.key, `${d}/a`);
          assert.equal(deleted!.old?.value, 'v2');
          assert.ok(rev(deleted!.revision!) > rev(v2.revision));
        } finally {
          w.stream.stop();
        }
      });

      void test('from a revision it replays exactly the changes made after that revision', async () => {
        const d = dir();
        await ds.create(`${d}/before`, '1');
        const mark = await ds.list(d);
        const after1 = await ds.create(`${d}/after1`, '2');
        const after2 = await ds.apply(`${d}/before`, '3');
        const w = new EventReader(ds.watch(d, mark.revision));
        try {
          const evs = await w.take(2);
          assert.deepEqual(evs.map((e) => [e.type, e.new]), [
            ['ADDED', after1],
            ['MODIFIED', after2],
          ]);
          assert.equal(await w.quiet(300), 'quiet');
        } finally {
          w.stream.stop();
        }
      });

      void test('a watch on /a sees /a and /a/x but never /ab or /a-b', async () => {
        const d = dir();
        const listed = await ds.list(d);
        const w = new EventReader(ds.watch(`${d}/a`, listed.revision));
        try {
          await ds.create(`${d}/ab`, 'no');
          await ds.create(`${d}/a-b`, 'no');
          const a = await ds.create(`${d}/a`, 'yes');
          const ax = await ds.create(`${d}/a/x`, 'yes');
          const evs = await w.take(2);
          assert.deepEqual(evs.map((e) => e.new), [a, ax]);
          assert.equal(await w.quiet(300), 'quiet');
        } finally {
          w.stream.stop();
        }
      });

      void test('a watch from a compacted revision ends with exactly one ERROR, then closes and reports terminated', async () => {
        const x = await backend.expire();
        try {
          const stream = x.datastore.watch(x.key, x.revision);
          const w = new EventReader(stream);
          const first = await w.next();
          assert.ok(first !== 'end' && first.type === 'ERROR', `expected ERROR, got ${JSON.stringify(first)}`);
          assert.ok(first.error instanceof ErrorWatchTerminated, String(first.error));
          assert.equal(first.error.retryable, true);
          assert.equal(await w.next(), 'end');
          assert.equal(stream.hasTerminated(), true);
        } finally {
          await x.release();
        }
      });

      void test('stop() closes the stream without an ERROR and reports terminated', async () => {
        const d = dir();
        const stream = ds.watch(d);
        const w = new EventReader(stream);
        await ds.create(`${d}/a`, '1');
        await w.take(1);
        assert.equal(stream.hasTerminated(), false);
        stream.stop();
        assert.equal(await w.next(), 'end');
        assert.equal(stream.hasTerminated(), true);
      });
    });

    void describe('syncer', () => {
      void test('goes WaitForDatastore -> ResyncInProgress -> InSync only after every prefix listed, with every pair delivered first', async () => {
        const d = dir();
        for (let i = 0; i < 30; i++) await ds.apply(`${d}/one/k${i}`, `v${i}`);
        for (let i = 0; i < 20; i++) await ds.apply(`${d}/two/k${i}`, `w${i}`);
        await ds.apply(`${d}/elsewhere`, 'not watched');
        const r = new SyncRecorder();
        let keysAtInSync = -1;
        const syncer = new Syncer(ds, { prefixes: [`${d}/one`, `${d}/two`] }, {
          ...r.callbacks,
          onStatusUpdated: (s) => {
            if (s === 'InSync') keysAtInSync = r.state.size;
            r.callbacks.onStatusUpdated(s);
          },
        });
        syncer.start();
        try {
          assert.equal(r.statuses[0], 'WaitForDatastore');
          await eventually('InSync', () => r.last === 'InSync');
          assert.deepEqual(r.statuses, ['WaitForDatastore', 'ResyncInProgress', 'InSync']);
          assert.equal(keysAtInSync, 50);
          assert.ok(r.updates().every((u) => u.type === 'new'));
          assert.equal(r.state.get(`${d}/one/k7`), 'v7');
          assert.equal(r.state.has(`${d}/elsewhere`), false);
          assert.deepEqual(r.anomalies, []);
        } finally {
          await syncer.stop();
        }
      });

      void test('reports later changes as new, updated and deleted with their revisions, in batches', async () => {
        const d = dir();
        const keep = await ds.apply(`${d}/p/keep`, 'k');
        const r = new SyncRecorder();
        const syncer = new Syncer(ds, { prefixes: [`${d}/p`] }, r.callbacks);
        syncer.start();
        try {
          await eventually('InSync', () => r.last === 'InSync');
          const created = await ds.create(`${d}/p/new`, 'n1');
          const updated = await ds.update({ ...created, value: 'n2' });
          await ds.delete(`${d}/p/keep`);
          await Promise.all(Array.from({ length: 40 }, (_, i) => ds.apply(`${d}/p/m${i}`, String(i))));
          await eventually('all changes', () => r.state.size === 41 && !r.state.has(`${d}/p/keep`));
          const after = r.updatesSinceInSync;
          assert.deepEqual(after.slice(0, 3).map((u) => [u.type, u.key, u.value, u.revision]), [
            ['new', `${d}/p/new`, 'n1', created.revision],
            ['updated', `${d}/p/new`, 'n2', updated.revision],
            ['deleted', `${d}/p/keep`, undefined, after[2]?.revision],
          ]);
          assert.ok(rev(after[2]!.revision) > rev(updated.revision), 'a delete carries the revision of the delete');
          assert.ok(rev(keep.revision) < rev(created.revision));
          assert.equal(r.state.get(`${d}/p/m39`), '39');
          assert.ok(r.batches.length < 1 + after.length, 'updates arrive batched, not one call each');
          assert.deepEqual(r.anomalies, []);
        } finally {
          await syncer.stop();
        }
      });

      void test('a value the parser rejects goes to onParseFailed, not onUpdates; a key that turns unparsable is deleted', async () => {
        const d = dir();
        await ds.apply(`${d}/p/good`, '{"n":1}');
        await ds.apply(`${d}/p/bad`, 'not json');
        await ds.apply(`${d}/p/never`, 'never json');
        const r = new SyncRecorder<{ n: number }>();
        const syncer = new Syncer(ds, { prefixes: [`${d}/p`], parse: (_k, v) => JSON.parse(v) as { n: number } }, r.callbacks);
        syncer.start();
        try {
          await eventually('InSync', () => r.last === 'InSync');
          assert.deepEqual(r.keys(), [`${d}/p/good`]);
          assert.deepEqual(r.state.get(`${d}/p/good`), { n: 1 });
          assert.deepEqual(r.parseFailures, [
            { key: `${d}/p/bad`, value: 'not json' },
            { key: `${d}/p/never`, value: 'never json' },
          ]);
          await ds.apply(`${d}/p/good`, '{broken');
          await eventually('the broken key to be deleted', () => !r.state.has(`${d}/p/good`));
          assert.equal(r.parseFailures.length, 3);
          await ds.apply(`${d}/p/bad`, '{"n":2}');
          await eventually('the repaired key to arrive', () => r.state.has(`${d}/p/bad`));
          assert.deepEqual(r.state.get(`${d}/p/bad`), { n: 2 });
          // A key never reported is owed no delete: not when it is deleted, nor when the syncer stops.
          await ds.delete(`${d}/p/never`);
          await ds.apply(`${d}/p/later`, '{"n":3}');
          await eventually('the later key to arrive', () => r.state.has(`${d}/p/later`));
          assert.ok(!r.updates().some((u) => u.key === `${d}/p/never`));
          await syncer.stop();
          assert.equal(r.state.size, 0);
          assert.deepEqual(r.anomalies, []);
        } finally {
          await syncer.stop();
        }
      });

      void test('a change written twice at the same revision is reported once', async () => {
        const d = dir();
        // Watching from an old revision replays what the list already delivered; the syncer must swallow it.
        const r = new SyncRecorder();
        const before = await ds.list(d);
        await ds.apply(`${d}/p/a`, '1');
        await ds.apply(`${d}/p/b`, '2');
        const replaying = new Proxy(ds, {
          get(target, prop) {
            if (prop === 'watch') return (prefix: string) => target.watch(prefix, before.revision);
            const v = Reflect.get(target, prop) as unknown;
            return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          },
        });
        const syncer = new Syncer(replaying, { prefixes: [`${d}/p`] }, r.callbacks);
        syncer.start();
        try {
          await eventually('InSync', () => r.last === 'InSync');
          await ds.apply(`${d}/p/c`, '3');
          await eventually('c', () => r.state.has(`${d}/p/c`));
          assert.deepEqual(r.updates().map((u) => [u.type, u.key]), [
            ['new', `${d}/p/a`],
            ['new', `${d}/p/b`],
            ['new', `${d}/p/c`],
          ]);
        } finally {
          await syncer.stop();
        }
      });

      void test('after a broken watch it resyncs: deletes for keys removed meanwhile, updates for changed ones, nothing for unchanged ones', async () => {
        const d = dir();
        for (const k of ['same', 'changed', 'removed']) await ds.apply(`${d}/p/${k}`, 'v1');
        const flaky = new InterruptibleDatastore(ds);
        const r = new SyncRecorder();
        const syncer = new Syncer(flaky, { prefixes: [`${d}/p`], backoff: { initialMs: 20, maxMs: 100 } }, r.callbacks);
        syncer.start();
        try {
          await eventually('InSync', () => r.last === 'InSync');
          flaky.interrupt();
          await eventually('the syncer to notice', () => r.last === 'WaitForDatastore');
          await ds.apply(`${d}/p/changed`, 'v2');
          await ds.delete(`${d}/p/removed`);
          await ds.apply(`${d}/p/added`, 'v1');
          flaky.heal();
          await eventually('InSync again', () => r.last === 'InSync' && r.statuses.length > 3);
          assert.deepEqual(r.statuses, ['WaitForDatastore', 'ResyncInProgress', 'InSync', 'ResyncInProgress', 'WaitForDatastore', 'ResyncInProgress', 'InSync']);
          const resync = r.batches.slice(1).flat();
          assert.deepEqual(resync.map((u) => [u.type, u.key]).sort(), [
            ['deleted', `${d}/p/removed`],
            ['new', `${d}/p/added`],
            ['updated', `${d}/p/changed`],
          ]);
          assert.deepEqual(r.keys(), [`${d}/p/added`, `${d}/p/changed`, `${d}/p/same`]);
          assert.deepEqual(r.anomalies, []);
        } finally {
          await syncer.stop();
        }
      });

      void test('stop() reports a delete for every key it had reported', async () => {
        const d = dir();
        for (let i = 0; i < 5; i++) await ds.apply(`${d}/p/k${i}`, String(i));
        const r = new SyncRecorder();
        const syncer = new Syncer(ds, { prefixes: [`${d}/p`] }, r.callbacks);
        syncer.start();
        await eventually('InSync', () => r.last === 'InSync');
        assert.equal(r.state.size, 5);
        await syncer.stop();
        assert.equal(r.state.size, 0);
        assert.deepEqual(r.anomalies, []);
        await ds.apply(`${d}/p/late`, 'x');
        await sleep(200);
        assert.equal(r.state.size, 0, 'a stopped syncer reports nothing more');
      });
    });
  });
}
