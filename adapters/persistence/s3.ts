// The S3 backend: one object per persisted object, under a prefix in a bucket, one replica per
// (endpoint, bucket, prefix). Optimistic concurrency uses S3 conditional writes (If-None-Match: * to create,
// If-Match: <ETag> to update or delete); every write carries a fresh write ID so an ETag never repeats
// (S3 ETags are content hashes: without it, writing A, B, A again would make a stale copy current).
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { BrokerflowError, ConflictError, UnavailableError, ValidationError } from '../errors';
import { inKeyOrder, listedIdentity, NO_NAMESPACE, PersistenceBackend, replicaConfigs, type GroupKind } from './backend';
import { formatKey, parseStored, resourceOf, type ObjectIdentity } from './object-key';
import type { ReplicaState } from './replicas';
import type { ObjectKey, PersistedObject, PutResult, ReplicaList, WritePrecondition } from './types';

/** One S3 replica: a bucket (and key prefix) at an endpoint. Credentials are not part of the replica name. */
export interface S3ReplicaConfig {
  bucket: string;
  /** Default `us-east-1`. */
  region?: string;
  /** For S3-compatible servers (MinIO, moto); AWS when absent. */
  endpoint?: string;
  /** Path-style URLs (`<endpoint>/<bucket>/<key>`), needed by most S3-compatible servers. */
  forcePathStyle?: boolean;
  /** Key prefix, e.g. `brokerflow/`; must end with `/` when not empty. */
  prefix?: string;
  /** Static credentials; the SDK's default chain (environment, profile, instance role) when absent. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Create the bucket at initialize when it is missing (development, tests). */
  createBucket?: boolean;
}

/** Configuration of the S3 backend. */
export type S3PersistenceOptions = ReplicaList<S3ReplicaConfig>;

interface S3Replica {
  config: S3ReplicaConfig;
  prefix: string;
  client?: S3Client;
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX = /^([A-Za-z0-9._-]+\/)*$/;

/** The stored body: the object plus a write ID that makes every ETag unique. */
interface Envelope {
  writeId: string;
  object: PersistedObject;
}

function statusOf(err: unknown): number | undefined {
  return err instanceof S3ServiceException ? err.$metadata?.httpStatusCode : undefined;
}

function s3Error(what: string, err: unknown): BrokerflowError {
  if (err instanceof BrokerflowError) return err;
  const status = statusOf(err);
  const name = (err as { name?: string })?.name ?? 'Error';
  if (status === 400) return new ValidationError(`s3 persistence: ${what} was rejected (${name})`);
  // Everything else (network, 5xx, a missing bucket, denied credentials) means the replica cannot serve now.
  return new UnavailableError(`s3 persistence: ${what} failed (${name}${status ? ` ${status}` : ''})`, err);
}

function unquote(etag: string | undefined): string {
  if (!etag) throw new UnavailableError('s3 persistence: the server returned no ETag');
  return etag.replace(/"/g, '');
}

/** Persists objects in S3 buckets. */
export class S3PersistenceProvider extends PersistenceBackend<S3Replica> {
  constructor(opts: S3PersistenceOptions) {
    super(
      's3',
      replicaConfigs(opts).map((config) => {
        if (typeof config.bucket !== 'string' || !BUCKET.test(config.bucket) || config.bucket.includes('..')) {
          throw new ValidationError('an s3 bucket name is 3-63 lowercase letters, digits, dots and hyphens', 'bucket');
        }
        const prefix = config.prefix ?? '';
        if (!PREFIX.test(prefix) || prefix.split('/').some((seg) => seg === '.' || seg === '..') || prefix.length > 512) {
          throw new ValidationError('an s3 prefix is empty or path segments ending in "/" (no "." or "..")', 'prefix');
        }
        return {
          config: { config, prefix },
          identity: { endpoint: config.endpoint ?? 'aws', region: config.region ?? 'us-east-1', bucket: config.bucket, prefix },
        };
      }),
    );
  }

  protected async connect({ config: replica }: ReplicaState<S3Replica>): Promise<void> {
    const c = replica.config;
    replica.client?.destroy();
    replica.client = new S3Client({
      region: c.region ?? 'us-east-1',
      ...(c.endpoint ? { endpoint: c.endpoint } : {}),
      forcePathStyle: c.forcePathStyle ?? false,
      ...(c.credentials ? { credentials: c.credentials } : {}),
      // Retries are the caller's policy (Temporal activities), not hidden inside the client.
      maxAttempts: 1,
    });
    try {
      await replica.client.send(new HeadBucketCommand({ Bucket: c.bucket }));
    } catch (err) {
      if (!(c.createBucket && statusOf(err) === 404)) throw s3Error('checking the bucket', err);
      try {
        await replica.client.send(new CreateBucketCommand({ Bucket: c.bucket }));
      } catch (createErr) {
        if ((createErr as { name?: string })?.name !== 'BucketAlreadyOwnedByYou') throw s3Error('creating the bucket', createErr);
      }
    }
  }

  protected async write(state: ReplicaState<S3Replica>, id: ObjectIdentity, stored: PersistedObject, precondition: WritePrecondition): Promise<PutResult> {
    const envelope: Envelope = { writeId: randomBytes(12).toString('hex'), object: stored };
    try {
      const res = await client(state).send(
        new PutObjectCommand({
          Bucket: state.config.config.bucket,
          Key: s3Key(state, id),
          Body: JSON.stringify(envelope),
          ContentType: 'application/json',
          ...(precondition.ifMatch !== undefined ? { IfMatch: `"${precondition.ifMatch}"` } : {}),
          ...(precondition.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
        }),
      );
      return { key: formatKey(id), resourceVersion: unquote(res.ETag) };
    } catch (err) {
      throw preconditionError(formatKey(id), err, precondition) ?? s3Error('putting an object', err);
    }
  }

  protected async remove(state: ReplicaState<S3Replica>, id: ObjectIdentity, precondition: Pick<WritePrecondition, 'ifMatch'>): Promise<void> {
    try {
      await client(state).send(
        new DeleteObjectCommand({
          Bucket: state.config.config.bucket,
          Key: s3Key(state, id),
          ...(precondition.ifMatch !== undefined ? { IfMatch: `"${precondition.ifMatch}"` } : {}),
        }),
      );
    } catch (err) {
      throw preconditionError(formatKey(id), err, precondition) ?? s3Error('deleting an object', err);
    }
  }

  protected async list(state: ReplicaState<S3Replica>, gk: GroupKind): Promise<PersistedObject[]> {
    const base = `${state.config.prefix}${resourceOf(gk)}/`;
    const ids: ObjectIdentity[] = [];
    let token: string | undefined;
    do {
      let page;
      try {
        page = await client(state).send(
          new ListObjectsV2Command({ Bucket: state.config.config.bucket, Prefix: base, ContinuationToken: token }),
        );
      } catch (err) {
        throw s3Error('listing objects', err);
      }
      for (const item of page.Contents ?? []) {
        const rest = (item.Key ?? '').slice(base.length).split('/');
        if (rest.length !== 2 || !rest[1]!.endsWith('.json')) continue;
        const id = listedIdentity(gk, rest[0]!, rest[1]!.slice(0, -'.json'.length));
        if (id) ids.push(id);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const out: PersistedObject[] = [];
    // Bounded parallelism: fast on a large list without opening hundreds of sockets at once.
    for (let i = 0; i < ids.length; i += 16) {
      const batch = await Promise.all(ids.slice(i, i + 16).map((id) => this.read(state, id)));
      for (const obj of batch) if (obj) out.push(obj);
    }
    return inKeyOrder(out);
  }

  protected async disconnect({ config: replica }: ReplicaState<S3Replica>): Promise<void> {
    replica.client?.destroy();
    delete replica.client;
  }

  protected async read(state: ReplicaState<S3Replica>, id: ObjectIdentity): Promise<PersistedObject | undefined> {
    const key = formatKey(id);
    let text: string;
    let etag: string;
    try {
      const res = await client(state).send(new GetObjectCommand({ Bucket: state.config.config.bucket, Key: s3Key(state, id) }));
      text = (await res.Body?.transformToString('utf8')) ?? '';
      etag = unquote(res.ETag);
    } catch (err) {
      if ((err as { name?: string })?.name === 'NoSuchKey') return undefined;
      throw s3Error('getting an object', err);
    }
    let envelope: Envelope;
    try {
      envelope = JSON.parse(text) as Envelope;
    } catch {
      throw new ValidationError(`stored object ${key} is not valid JSON`, 'key');
    }
    const object = parseStored(JSON.stringify(envelope.object ?? null), key);
    object.metadata.resourceVersion = etag;
    return object;
  }
}

function client(state: ReplicaState<S3Replica>): S3Client {
  return state.connection(state.config.client);
}

function s3Key(state: ReplicaState<S3Replica>, id: ObjectIdentity): string {
  return `${state.config.prefix}${resourceOf(id)}/${id.namespace ?? NO_NAMESPACE}/${id.name}.json`;
}

/** A failed condition (412, 409 ConditionalRequestConflict, or a missing object under If-Match) is a conflict. */
function preconditionError(key: ObjectKey, err: unknown, pre: WritePrecondition): ConflictError | undefined {
  const status = statusOf(err);
  if (status === 412 || status === 409) return new ConflictError(`${key} was changed by another writer`);
  if (pre.ifMatch !== undefined && status === 404 && (err as { name?: string })?.name !== 'NoSuchBucket') {
    return new ConflictError(`${key} no longer exists`);
  }
  return undefined;
}
