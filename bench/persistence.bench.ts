// Persistence provider latency: put and get p50/p99 per backend (file, s3, etcd, and kubernetes when the harness
// started it), each beside the raw backend call in the same run: fs write+fsync / read, raw S3 PutObject /
// GetObject, raw etcd3 put / get, raw ConfigMap replace / read.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteBucketCommand, DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Etcd3 } from 'etcd3';
import {
  EtcdPersistenceProvider,
  FilePersistenceProvider,
  KubernetesPersistenceProvider,
  MachineId,
  S3PersistenceProvider,
  type PersistedObject,
  type PersistenceProvider,
} from '../adapters/persistence';
import { percentile, row, type BenchContext, type BenchRow, type Benchmark } from './harness';

const machineId = new MachineId('0badc0de0badc0de0badc0de0badc0de');
const PAYLOAD = { spec: { plan: 'small', parameters: { size: 3, tags: ['a', 'b'] }, note: 'x'.repeat(800) } };
const KEYS = 16;
const obj = (i: number): PersistedObject => ({ apiVersion: 'bench.brokerflow.io/v1', kind: 'BenchObject', metadata: { name: `o${i % KEYS}` }, ...PAYLOAD });
const TEXT = JSON.stringify(obj(0));

/** One backend: the provider and the raw calls it is compared with. */
interface Subject {
  name: string;
  provider: PersistenceProvider;
  rawPut(i: number): Promise<unknown>;
  rawGet(i: number): Promise<unknown>;
  close(): Promise<void>;
}

/** Latencies (ms) of `n` sequential calls. */
async function latencies(n: number, op: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await op(i);
    out.push(performance.now() - t0);
  }
  return out;
}

async function fileSubject(dir: string): Promise<Subject> {
  const provider = new FilePersistenceProvider({ directories: [join(dir, 'provider')] });
  const rawDir = join(dir, 'raw');
  await mkdir(rawDir, { recursive: true });
  return {
    name: 'file',
    provider,
    async rawPut(i) {
      const fh = await open(join(rawDir, `o${i % KEYS}.json`), 'w');
      try {
        await fh.writeFile(TEXT);
        await fh.sync();
      } finally {
        await fh.close();
      }
    },
    rawGet: (i) => readFile(join(rawDir, `o${i % KEYS}.json`), 'utf8').then((t) => JSON.parse(t) as unknown),
    close: () => provider.close(),
  };
}

function s3Subject(endpoint: string, bucket: string): Subject {
  const credentials = { accessKeyId: 'bench', secretAccessKey: 'bench' };
  const provider = new S3PersistenceProvider({ replicas: [{ endpoint, bucket, prefix: 'provider/', forcePathStyle: true, credentials, createBucket: true }] });
  const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, maxAttempts: 1 });
  return {
    name: 's3',
    provider,
    rawPut: (i) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: `raw/o${i % KEYS}.json`, Body: TEXT, ContentType: 'application/json' })),
    rawGet: async (i) => JSON.parse(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `raw/o${i % KEYS}.json` }))).Body!.transformToString()) as unknown,
    async close() {
      await provider.close();
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
      const objects = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (objects.length) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects } }));
      await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
      s3.destroy();
    },
  };
}

function etcdSubject(endpoint: string, root: string): Subject {
  const provider = new EtcdPersistenceProvider({ replicas: [{ endpoints: [endpoint], prefix: `${root}/provider` }] });
  const etcd = new Etcd3({ hosts: endpoint });
  return {
    name: 'etcd',
    provider,
    rawPut: async (i) => etcd.put(`${root}/raw/o${i % KEYS}`).value(TEXT).exec(),
    rawGet: async (i) => JSON.parse((await etcd.get(`${root}/raw/o${i % KEYS}`).string())!) as unknown,
    async close() {
      await provider.close();
      await etcd.delete().prefix(`${root}/`);
      etcd.close();
    },
  };
}

async function kubeSubject(kubeconfigPath: string, namespace: string): Promise<Subject> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  for (let i = 0; i < KEYS; i++) await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: `raw-o${i}` }, data: { 'object.json': TEXT } } });
  const provider = new KubernetesPersistenceProvider({ replicas: [{ kubeconfigPath, namespace }] });
  return {
    name: 'kubernetes',
    provider,
    // The provider reads before an unconditional write (ownership check); the raw baseline is a blind replace.
    rawPut: (i) => core.replaceNamespacedConfigMap({ name: `raw-o${i % KEYS}`, namespace, body: { metadata: { name: `raw-o${i % KEYS}` }, data: { 'object.json': TEXT } } }),
    rawGet: async (i) => JSON.parse((await core.readNamespacedConfigMap({ name: `raw-o${i % KEYS}`, namespace })).data!['object.json']!) as unknown,
    async close() {
      await provider.close();
      await core.deleteNamespace({ name: namespace });
    },
  };
}

export const benchmark: Benchmark = {
  name: 'persistence',
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const id = randomBytes(4).toString('hex');
    const dir = mkdtempSync(join(ctx.workDir, 'bench-persistence-'));
    const ops = (base: number) => Math.max(20, Math.round((ctx.quick ? base : base * 5) * ctx.scale));
    const sizes: Record<string, number> = { file: ops(200), etcd: ops(200), s3: ops(100), kubernetes: ops(60) };
    const subjects: Subject[] = [await fileSubject(dir), s3Subject(ctx.motoEndpoint, `bf-bench-${id}`), etcdSubject(ctx.etcdEndpoint, `/bf-bench-persistence-${id}`)];
    if (ctx.kubeconfig) subjects.push(await kubeSubject(ctx.kubeconfig, `bf-bench-persistence-${id}`));
    const rows: BenchRow[] = [];
    try {
      for (const s of subjects) {
        await s.provider.initialize(machineId);
        const inst = s.provider.replicas()[0]!;
        const n = sizes[s.name]!;
        const put = (i: number) => s.provider.putObject(inst, obj(i));
        const get = (i: number) => s.provider.getObject(inst, `BenchObject.bench.brokerflow.io/o${i % KEYS}`);
        // Warm-up: connections, JIT, and every key present for the gets.
        await latencies(KEYS * 2, put);
        await latencies(KEYS * 2, s.rawPut);
        await latencies(KEYS, get);
        await latencies(KEYS, s.rawGet);
        const samples: Record<string, number[]> = {};
        const add = (k: string, v: number) => (samples[k] ??= []).push(v);
        for (let r = 0; r < ctx.runs; r++) {
          // Alternate which subject goes first so neither always meets a warmer server.
          const order = r % 2 ? (['baseline', 'brokerflow'] as const) : (['brokerflow', 'baseline'] as const);
          for (const subject of order) {
            const putL = await latencies(n, subject === 'brokerflow' ? put : s.rawPut);
            const getL = await latencies(n, subject === 'brokerflow' ? get : s.rawGet);
            add(`${subject} put p50`, percentile(putL, 50));
            add(`${subject} put p99`, percentile(putL, 99));
            add(`${subject} get p50`, percentile(getL, 50));
            add(`${subject} get p99`, percentile(getL, 99));
          }
        }
        for (const [label, values] of Object.entries(samples)) {
          const [subject, op, p] = label.split(' ') as ['brokerflow' | 'baseline', string, string];
          rows.push(row({ benchmark: 'persistence', case: `${s.name} ${op} (${n} sequential)`, subject, metric: `latency ${p}`, unit: 'ms' }, values));
        }
        const status = s.provider.replicaStatus(inst);
        if (status.exists) {
          rows.push(row({ benchmark: 'persistence', case: `${s.name} put`, subject: 'brokerflow', metric: 'meanPersistLatencyMs (instanceStatus)', unit: 'ms' }, [status.meanPersistLatencyMs]));
        }
      }
    } finally {
      await Promise.allSettled(subjects.map((s) => s.close()));
      rmSync(dir, { recursive: true, force: true });
    }
    return rows;
  },
};
