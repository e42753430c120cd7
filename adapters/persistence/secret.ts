// SecretPersistenceProvider: the persistence API for sensitive objects (binding credentials). It wraps any
// provider and stores each object encrypted at rest with AES-256-GCM: only the identity (apiVersion, kind,
// name, namespace) stays readable, the key ID travels with the ciphertext, and several configured keys make
// rotation possible (old data stays readable, new data is written under the current key).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { BrokerflowError, ConflictError, ValidationError } from '../errors';
import type { MachineId } from './machine-id';
import { identityOf, objectKey, storableCopy } from './object-key';
import type { ObjectKey, OwnerReference, PersistedObject, PersistenceProvider, PutResult, ReplicaStatus, TypeMeta, WritePrecondition } from './types';

/** One data-encryption key from configuration: an ID and 32 random bytes, base64-encoded. */
export interface SecretKeyConfig {
  id: string;
  /** base64 of exactly 32 bytes. Never logged, never in an error. */
  key: string;
}

/** Configuration of the secret provider. */
export interface SecretPersistenceOptions {
  /** At least one key; several during a rotation. */
  keys: SecretKeyConfig[];
  /** The key new data is written under; default the first. */
  currentKeyId?: string;
}

/** Stored data that cannot be decrypted: unknown key ID, wrong key, or tampered ciphertext. Never retried. */
export class DecryptionError extends BrokerflowError {
  constructor(message: string) {
    super('DecryptionFailed', message);
  }
}

/** The at-rest form of an encrypted object: its identity in clear, everything else in `encrypted`. */
export interface EncryptedEnvelope {
  /** Format version of the envelope. */
  v: 1;
  alg: 'AES-256-GCM';
  keyId: string;
  /** base64 12-byte nonce, fresh for every write. */
  iv: string;
  /** base64 16-byte GCM tag. */
  tag: string;
  /** base64 ciphertext of the whole object as JSON. */
  data: string;
}

const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Persists objects through an inner provider, encrypted. Implements the same PersistenceProvider API. */
export class SecretPersistenceProvider implements PersistenceProvider {
  readonly kind: string;
  // A private field: util.inspect, JSON.stringify and error reporters never see the key material.
  readonly #keys = new Map<string, Buffer>();
  readonly #currentKeyId: string;

  constructor(
    private readonly inner: PersistenceProvider,
    opts: SecretPersistenceOptions,
  ) {
    this.kind = `secret+${inner.kind}`;
    if (!Array.isArray(opts.keys) || opts.keys.length === 0) {
      throw new ValidationError('the secret provider needs at least one key', 'keys');
    }
    opts.keys.forEach((k, i) => {
      const field = `keys[${i}]`;
      if (typeof k.id !== 'string' || !KEY_ID.test(k.id)) {
        throw new ValidationError(`${field}.id must be 1-64 letters, digits, '.', '_' or '-'`, `${field}.id`);
      }
      if (this.#keys.has(k.id)) throw new ValidationError(`${field}.id repeats key ID ${k.id}`, `${field}.id`);
      const bytes = typeof k.key === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(k.key) ? Buffer.from(k.key, 'base64') : Buffer.alloc(0);
      if (bytes.length !== 32) throw new ValidationError(`${field}.key must be base64 of exactly 32 bytes`, `${field}.key`);
      this.#keys.set(k.id, bytes);
    });
    this.#currentKeyId = opts.currentKeyId ?? opts.keys[0]!.id;
    if (!this.#keys.has(this.#currentKeyId)) {
      throw new ValidationError('currentKeyId names no configured key', 'currentKeyId');
    }
  }

  /** The ID of the key new data is written under. */
  get currentKeyId(): string {
    return this.#currentKeyId;
  }

  initialize(machineId: MachineId): Promise<void> {
    return this.inner.initialize(machineId);
  }

  replicas(): string[] {
    return this.inner.replicas();
  }

  async reopen(replica: string): Promise<void> {
    await this.inner.reopen?.(replica);
  }

  replicaStatus(replica: string): ReplicaStatus {
    return this.inner.replicaStatus(replica);
  }

  async putObject(replica: string, object: PersistedObject, precondition?: WritePrecondition): Promise<PutResult> {
    return this.inner.putObject(replica, this.encrypt(object), precondition);
  }

  async getObject(replica: string, key: ObjectKey): Promise<PersistedObject | undefined> {
    const stored = await this.inner.getObject(replica, key);
    return stored && this.decrypt(stored);
  }

  deleteObject(replica: string, key: ObjectKey, precondition?: Pick<WritePrecondition, 'ifMatch'>): Promise<void> {
    return this.inner.deleteObject(replica, key, precondition);
  }

  async getAllObjects(replica: string, type: TypeMeta): Promise<PersistedObject[]> {
    return (await this.inner.getAllObjects(replica, type)).map((o) => this.decrypt(o));
  }

  ownerReference(replica: string, object: PersistedObject): OwnerReference | undefined {
    return this.inner.ownerReference(replica, object);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /**
   * Re-encrypts under the current key every object of this type still under an older key (finishing a
   * rotation, after which the old key can be removed). Each rewrite is conditional, so a concurrent
   * update is never overwritten; returns how many objects were rewritten.
   */
  async rotate(replica: string, type: TypeMeta): Promise<number> {
    let rewritten = 0;
    for (const stored of await this.inner.getAllObjects(replica, type)) {
      const envelope = envelopeOf(stored);
      if (envelope.keyId === this.#currentKeyId) continue;
      const plain = this.decrypt(stored);
      try {
        await this.inner.putObject(replica, this.encrypt(plain), { ifMatch: stored.metadata.resourceVersion! });
        rewritten += 1;
      } catch (err) {
        // Someone wrote it meanwhile, and every write uses the current key: nothing left to rotate there.
        if (!(err instanceof ConflictError)) throw err;
      }
    }
    return rewritten;
  }

  private encrypt(object: PersistedObject): PersistedObject {
    const plain = storableCopy(object);
    const id = identityOf(plain);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#keys.get(this.#currentKeyId)!, iv);
    // The object's key is authenticated too, so a ciphertext moved under another name does not decrypt.
    cipher.setAAD(Buffer.from(objectKey(plain)));
    const data = Buffer.concat([cipher.update(JSON.stringify(plain), 'utf8'), cipher.final()]);
    const encrypted: EncryptedEnvelope = {
      v: 1,
      alg: 'AES-256-GCM',
      keyId: this.#currentKeyId,
      iv: iv.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
      data: data.toString('base64'),
    };
    const metadata: PersistedObject['metadata'] = { name: id.name };
    if (id.namespace !== undefined) metadata.namespace = id.namespace;
    return { apiVersion: plain.apiVersion, kind: plain.kind, metadata, encrypted };
  }

  private decrypt(stored: PersistedObject): PersistedObject {
    const key = objectKey(stored);
    const envelope = envelopeOf(stored);
    const secret = this.#keys.get(envelope.keyId);
    if (!secret) throw new DecryptionError(`${key} is encrypted under key ${envelope.keyId}, which is not configured`);
    let plain: PersistedObject;
    try {
      const decipher = createDecipheriv('aes-256-gcm', secret, Buffer.from(envelope.iv, 'base64'));
      decipher.setAAD(Buffer.from(key));
      decipher.setAuthTag(Buffer.from(envelope.tag, 'base64'));
      const text = Buffer.concat([decipher.update(Buffer.from(envelope.data, 'base64')), decipher.final()]).toString('utf8');
      plain = JSON.parse(text) as PersistedObject;
    } catch {
      throw new DecryptionError(`${key} does not decrypt under key ${envelope.keyId} (wrong key or tampered data)`);
    }
    if (objectKey(plain) !== key) throw new DecryptionError(`${key} decrypts to another object`);
    plain.metadata.resourceVersion = stored.metadata.resourceVersion;
    if (stored.metadata.uid !== undefined) plain.metadata.uid = stored.metadata.uid;
    return plain;
  }
}

function envelopeOf(stored: PersistedObject): EncryptedEnvelope {
  const e = stored.encrypted as Partial<EncryptedEnvelope> | undefined;
  if (!e || e.v !== 1 || e.alg !== 'AES-256-GCM' || typeof e.keyId !== 'string' || typeof e.iv !== 'string' || typeof e.tag !== 'string' || typeof e.data !== 'string') {
    throw new DecryptionError(`${objectKey(stored)} is not an encrypted object`);
  }
  return e as EncryptedEnvelope;
}
