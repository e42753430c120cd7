// Datastore throughput (get, put, list) and the Syncer's time to InSync on prefixes of 10,000 and 100,000 keys,
// each measured beside the raw etcd3 client doing the same work against the same etcd in the same run.
import { randomBytes } from 'node:crypto';
import { Etcd3, type Watcher } from 'etcd3';
import { EtcdDatastore, Syncer } from '../adapters/datastore';
import { row, type BenchContext, type BenchRow, type Benchmark } from './harness';
import { deferred } from '../test/support/deferred';

const VALUE = JSON.stringify({ spec: { host: '10.0.0.1', port: 8080, labels: { app: 'bench', tier: 'backend' } } });

/** Wall-clock ms and this process's CPU ms of one measured piece of work. */
interface Cost {
  ms: number;
  cpuMs: number;
}

async function timed(fn: () => Promise<unknown>): Promise<Cost> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/** Runs `total` calls of `op` with `concurrency` in flight. */
function throughput(total: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<Cost> {
  let next = 0;
  return timed(() =>
    Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) await op(next++);
      }),
    ),
  );
}

/** Writes `count` keys under `prefix` in transactions of 128 puts (etcd's default limit), 8 in flight. */
async function load(client: Etcd3, prefix: string, count: number): Promise<void> {
  const batches: number[][] = [];
  for (let i = 0; i < count; i += 128) batches.push(Array.from({ length: Math.min(128, count - i) }, (_, j) => i + j));
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < batches.length) {
        const batch = batches[next++]!;
        await client.kv.txn({ success: batch.map((i) => ({ request_put: { key: Buffer.from(`${prefix}/k${String(i).padStart(7, '0')}`), value: Buffer.from(VALUE) } })) });
      }
    }),
  );
}

export const benchmark: Benchmark = {
  name: 'datastore',
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const keys = Math.round((ctx.quick ? 10_000 : 100_000) * ctx.scale);
    const ops = Math.round((ctx.quick ? 2_000 : 10_000) * ctx.scale);
    // Time to InSync at both sizes the target names, also in a quick run (100,000 keys add a few seconds).
    const syncSizes = [10_000, 100_000].map((n) => Math.round(n * ctx.scale));
    /** The prefix that holds `n` keys (under the datastore's prefix). */
    const prefixOf = (n: number) => `/keys-${n}`;
    const concurrency = 32;
    const root = `/bf-bench-${randomBytes(4).toString('hex')}`;
    const raw = new Etcd3({ hosts: ctx.etcdEndpoint, grpcOptions: { 'grpc.max_receive_message_length': -1 } });
    const ds = new EtcdDatastore({ endpoints: [ctx.etcdEndpoint], prefix: root });
    // Wall-clock figures swing with whatever else the machine runs; client CPU per unit of work is the steadier
    // comparison of the two code paths, so both are reported.
    const samples: Record<string, { brokerflow: number[]; baseline: number[] }> = {};
    const push = (c: string, subject: 'brokerflow' | 'baseline', v: number) => {
      samples[c] ??= { brokerflow: [], baseline: [] };
      samples[c][subject].push(v);
    };
    const add = (c: string, subject: 'brokerflow' | 'baseline', cost: Cost, units: number) => {
      push(c, subject, c.startsWith('syncer-insync') ? cost.ms : units / (cost.ms / 1000));
      push(`${c}:cpu`, subject, (cost.cpuMs * 1000) / units);
    };
    try {
      for (const n of new Set([keys, ...syncSizes])) await load(raw, `${root}${prefixOf(n)}`, n);
      await load(raw, `${root}/small`, 1_000);
      // Warm both clients (connections, JIT) before anything is recorded.
      await throughput(200, concurrency, (i) => ds.get(`/small/k${String(i).padStart(7, '0')}`));
      await throughput(200, concurrency, (i) => raw.get(`${root}/small/k${String(i).padStart(7, '0')}`).string());
      await syncerToInSync(ds, '/small', 1_000);
      await rawToInSync(raw, `${root}/small/`, 1_000);
      for (let r = 0; r < ctx.runs; r++) {
        // Alternate which subject goes first so warm-up and etcd state favour neither.
        const order: Array<'brokerflow' | 'baseline'> = r % 2 ? ['baseline', 'brokerflow'] : ['brokerflow', 'baseline'];
        for (const subject of order) {
          const key = (i: number) => `/small/k${String(i % 1000).padStart(7, '0')}`;
          add(
            'get',
            subject,
            await throughput(ops, concurrency, subject === 'brokerflow' ? (i) => ds.get(key(i)) : (i) => raw.get(root + key(i)).string()),
            ops,
          );
          add(
            'put',
            subject,
            await throughput(ops, concurrency, subject === 'brokerflow' ? (i) => ds.apply(key(i), VALUE) : (i) => raw.put(root + key(i)).value(VALUE).exec()),
            ops,
          );
          add(
            'list',
            subject,
            await timed(async () => {
              if (subject === 'brokerflow') {
                const l = await ds.list(prefixOf(keys));
                if (l.pairs.length !== keys) throw new Error(`listed ${l.pairs.length} of ${keys}`);
              } else {
                const res = await raw.getAll().prefix(`${root}${prefixOf(keys)}/`).exec();
                const pairs = res.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), revision: kv.mod_revision }));
                if (pairs.length !== keys) throw new Error(`listed ${pairs.length} of ${keys}`);
              }
            }),
            keys,
          );
          for (const n of syncSizes) {
            add(
              `syncer-insync, ${n} keys`,
              subject,
              subject === 'brokerflow' ? await syncerToInSync(ds, prefixOf(n), n) : await rawToInSync(raw, `${root}${prefixOf(n)}/`, n),
              n,
            );
          }
        }
      }
    } finally {
      await ds.clean().catch(() => undefined);
      await ds.close();
      raw.close();
    }
    const units: Record<string, [string, string]> = {
      get: ['throughput', 'ops/s'],
      put: ['throughput', 'ops/s'],
      list: [`throughput (${keys} keys per list)`, 'keys/s'],
      'get:cpu': ['client CPU per get', 'µs'],
      'put:cpu': ['client CPU per put', 'µs'],
      'list:cpu': ['client CPU per listed key', 'µs'],
    };
    for (const n of syncSizes) {
      units[`syncer-insync, ${n} keys`] = ['time to InSync', 'ms'];
      units[`syncer-insync, ${n} keys:cpu`] = ['client CPU per key to InSync', 'µs'];
    }
    const rows: BenchRow[] = [];
    for (const [c, s] of Object.entries(samples)) {
      const [metric, unit] = units[c]!;
      rows.push(row({ benchmark: 'datastore', case: c, subject: 'brokerflow', metric, unit }, s.brokerflow));
      rows.push(row({ benchmark: 'datastore', case: c, subject: 'baseline', metric, unit }, s.baseline));
    }
    return rows;
  },
};

/** Starts a Syncer on a prefix of `keys` keys and measures until it reports InSync with every key delivered. */
async function syncerToInSync(ds: EtcdDatastore, prefix: string, keys: number): Promise<Cost> {
  let delivered = 0;
  const { promise: inSync, resolve: done } = deferred();
  const syncer = new Syncer(ds, { prefixes: [prefix] }, {
    onStatusUpdated: (s) => s === 'InSync' && done(),
    onUpdates: (u) => (delivered += u.length),
  });
  const cost = await timed(async () => {
    syncer.start();
    await inSync;
  });
  await syncer.stop();
  if (delivered < keys) throw new Error(`syncer delivered ${delivered} of ${keys} before InSync`);
  return cost;
}

/** The same picture with raw etcd3: list the prefix into a map, then watch from the next revision. */
async function rawToInSync(raw: Etcd3, prefix: string, keys: number): Promise<Cost> {
  const state = new Map<string, { value: string; revision: string }>();
  let watcher: Watcher | undefined;
  const cost = await timed(async () => {
    const res = await raw.getAll().prefix(prefix).exec();
    for (const kv of res.kvs) state.set(kv.key.toString(), { value: kv.value.toString(), revision: kv.mod_revision });
    // Like the Syncer, the picture is complete once listed; the watch is started but not waited for.
    watcher = raw
      .watch()
      .prefix(prefix)
      .startRevision(String(Number(res.header.revision) + 1))
      .withPreviousKV()
      .watcher();
  });
  await watcher?.cancel();
  if (state.size !== keys) throw new Error(`raw list saw ${state.size} of ${keys}`);
  return cost;
}
