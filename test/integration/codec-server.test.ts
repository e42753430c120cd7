// The codec server decodes what worker and broker encrypted, for callers who authenticate, and nobody else.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { defaultPayloadConverter } from '@temporalio/common';
import { AesGcmPayloadCodec } from '../../platform/codec';
import { buildCodecServer } from '../../client/codec-server';
import { createLogger } from '../../platform/logging';

const key1 = { id: 'k1', key: randomBytes(32) };
const key2 = { id: 'k2', key: randomBytes(32) };
const workerCodec = new AesGcmPayloadCodec([key1], 'k1');
const creds = { basic: [{ username: 'ops', password: 'codec-pass-1' }], bearerTokens: ['token-xyz'] };
let app: FastifyInstance;
const auth = `Basic ${Buffer.from('ops:codec-pass-1').toString('base64')}`;
const origin = 'http://127.0.0.1:8233';

before(async () => {
  app = await buildCodecServer({
    codec: new AesGcmPayloadCodec([key1, key2], 'k2'),
    credentials: creds,
    corsOrigins: [origin],
    logger: createLogger('test', { level: 'silent' }),
  });
});
after(() => app.close());

const asJson = (p: { metadata?: Record<string, Uint8Array | null> | null; data?: Uint8Array | null }) => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v!).toString('base64')])),
  data: Buffer.from(p.data!).toString('base64'),
});

test('a payload the worker encrypted is decoded for an authenticated caller', async () => {
  const [encrypted] = await workerCodec.encode([defaultPayloadConverter.toPayload({ password: 's3cret' })]);
  assert.ok(!Buffer.from(encrypted!.data!).toString('latin1').includes('s3cret'), 'the payload is not readable in clear');
  const res = await app.inject({ method: 'POST', url: '/decode', headers: { authorization: auth, 'content-type': 'application/json' }, payload: { payloads: [asJson(encrypted!)] } });
  assert.equal(res.statusCode, 200);
  const out = res.json().payloads[0];
  const decoded = defaultPayloadConverter.fromPayload({
    metadata: Object.fromEntries(Object.entries(out.metadata as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(out.data, 'base64'),
  });
  assert.deepEqual(decoded, { password: 's3cret' });
});

test('encode uses the current key (decode above read the previous one)', async () => {
  const plain = asJson(defaultPayloadConverter.toPayload('hello'));
  const enc = await app.inject({ method: 'POST', url: '/encode', headers: { authorization: 'Bearer token-xyz' }, payload: { payloads: [plain] } });
  assert.equal(enc.statusCode, 200);
  const meta = enc.json().payloads[0].metadata;
  assert.equal(Buffer.from(meta['encryption-key-id'], 'base64').toString(), 'k2');
});

test('calls without valid credentials are refused and reveal nothing', async () => {
  const [encrypted] = await workerCodec.encode([defaultPayloadConverter.toPayload('x')]);
  for (const headers of [{}, { authorization: 'Basic ' + Buffer.from('ops:wrong').toString('base64') }, { authorization: 'Bearer nope' }]) {
    const res = await app.inject({ method: 'POST', url: '/decode', headers, payload: { payloads: [asJson(encrypted!)] } });
    assert.equal(res.statusCode, 401);
    assert.equal(res.body.includes('data'), false);
  }
});

test('a payload under an unknown key fails with a message naming the key only', async () => {
  const stranger = new AesGcmPayloadCodec([{ id: 'other', key: randomBytes(32) }], 'other');
  const [encrypted] = await stranger.encode([defaultPayloadConverter.toPayload('x')]);
  const res = await app.inject({ method: 'POST', url: '/decode', headers: { authorization: auth }, payload: { payloads: [asJson(encrypted!)] } });
  assert.equal(res.statusCode, 400);
  assert.match(res.json().message, /key "other", which is not configured/);
});

test('the Web UI origin passes CORS preflight; other origins get no CORS grant', async () => {
  const ok = await app.inject({ method: 'OPTIONS', url: '/decode', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' } });
  assert.equal(ok.headers['access-control-allow-origin'], origin);
  assert.equal(ok.headers['access-control-allow-credentials'], 'true');
  const bad = await app.inject({ method: 'OPTIONS', url: '/decode', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
  assert.equal(bad.headers['access-control-allow-origin'], undefined);
});
