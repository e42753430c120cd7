// The PayloadCodec that keeps binding credentials and secret parameters out of Temporal history in clear:
// AES-256-GCM, the key ID in the payload metadata so keys can rotate. Worker, broker, CLI and the codec
// server use the same keys from configuration.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { METADATA_ENCODING_KEY } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { ConfigError } from '../config/catalog';
import { resolveSecret, type RuntimeConfig } from '../config/runtime';

const ENCODING = 'binary/encrypted';
const KEY_ID = 'encryption-key-id';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An AES-256 key and its ID. */
export interface CodecKey {
  id: string;
  key: Buffer;
}

/** Thrown when a payload was encrypted with a key this process does not have, or was tampered with. */
export class PayloadDecryptionError extends Error {
  readonly code = 'PayloadDecryption';
}

/** Encrypts every payload with the current key; decrypts with whichever configured key it names. */
export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly keys: Map<string, Buffer>;
  private readonly current: CodecKey;

  constructor(keys: CodecKey[], currentKeyId: string) {
    this.keys = new Map(keys.map((k) => [k.id, k.key]));
    const current = this.keys.get(currentKeyId);
    if (!current) throw new ConfigError(`encryption key "${currentKeyId}" is not configured`, 'encryption.currentKeyId');
    this.current = { id: currentKeyId, key: current };
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const plain = temporal.api.common.v1.Payload.encode(payload).finish();
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
      cipher.setAAD(encoder.encode(this.current.id));
      const body = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: { [METADATA_ENCODING_KEY]: encoder.encode(ENCODING), [KEY_ID]: encoder.encode(this.current.id) },
        data: body,
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
      if (!encoding || decoder.decode(encoding) !== ENCODING) return payload;
      const keyIdBytes = payload.metadata?.[KEY_ID];
      const keyId = keyIdBytes ? decoder.decode(keyIdBytes) : '';
      const key = this.keys.get(keyId);
      if (!key) throw new PayloadDecryptionError(`payload was encrypted with key "${keyId}", which is not configured`);
      const data = Buffer.from(payload.data ?? new Uint8Array());
      if (data.length < 28) throw new PayloadDecryptionError('encrypted payload is truncated');
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, 12));
      decipher.setAAD(encoder.encode(keyId));
      decipher.setAuthTag(data.subarray(data.length - 16));
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(data.subarray(12, data.length - 16)), decipher.final()]);
      } catch {
        throw new PayloadDecryptionError(`payload failed authentication with key "${keyId}"`);
      }
      return temporal.api.common.v1.Payload.decode(plain);
    });
  }
}

/** Decodes a configured key; the error names the field, never the key. */
export function parseKey(id: string, base64: string, field: string): CodecKey {
  const key = Buffer.from(base64, 'base64');
  if (key.length !== 32) throw new ConfigError(`${field}: key "${id}" must be 32 bytes in base64 (got ${key.length} bytes)`, field);
  return { id, key };
}

/** The codec configured in `encryption`, or undefined when encryption is not configured. */
export function codecFromConfig(cfg: RuntimeConfig): AesGcmPayloadCodec | undefined {
  if (!cfg.encryption) return undefined;
  const keys = cfg.encryption.keys.map((k, i) =>
    parseKey(k.id, resolveSecret(k.key, `encryption.keys[${i}].key`, cfg.baseDir), `encryption.keys[${i}].key`),
  );
  return new AesGcmPayloadCodec(keys, cfg.encryption.currentKeyId);
}
