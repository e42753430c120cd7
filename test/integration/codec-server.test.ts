// The codec server decodes what worker and broker encrypted, for callers who hold a codec credential, for the
// namespaces it serves, and nobody else: the OSB platform's credentials do not read payloads.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { defaultPayloadConverter } from '@temporalio/common';
import { AesGcmPayloadCodec } from '../../platform/codec';
import { buildCodecServer, codecAccess } from '../../client/codec-server';
import { createLogger } from '../../platform/logging';
import { validateRuntimeConfig } from '../../config/runtime';

const key1 = { id: 'k1', key: randomBytes(32) };
const key2 = { id: 'k2', key: randomBytes(32) };
const workerCodec = new AesGcmPayloadCodec([key1], 'k1');
const platformPassword = `platform-${randomBytes(6).toString('hex')}`;
const codecPassword = `codec-${randomBytes(6).toString('hex')}`;
const codecToken = `token-${randomBytes(6).toString('hex')}`;
// One configuration for broker and codec server, as deployed: the platform's credential and the codec server's own.
const config = validateRuntimeConfig(
  {
    catalog: resolve(__dirname, '..', '..', 'config', 'catalog.example.yaml'),
    temporal: { namespace: 'brokerflow' },
    broker: { auth: { basic: [{ username: 'platform', password: platformPassword }], bearerTokens: [`platform-token-${platformPassword}`] } },
    codecServer: { auth: { basic: [{ username: 'ops', password: codecPassword }], bearerTokens: [codecToken] }, namespaces: ['brokerflow', 'brokerflow-staging'] },
  },
  'test config',
  process.cwd(),
);
let app: FastifyInstance;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const auth = basic('ops', codecPassword);
const platformAuth = basic('platform', platformPassword);
const ns = { 'x-namespace': 'brokerflow' };
const origin = 'http://127.0.0.1:8233';
let logText = '';

before(async () => {
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      logText += chunk.toString();
      done();
    },
  });
  app = await buildCodecServer({
    codec: new AesGcmPayloadCodec([key1, key2], 'k2'),
    ...codecAccess(config),
    corsOrigins: [origin],
    logger: createLogger('test', { level: 'debug', destination }),
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
  const res = await app.inject({ method: 'POST', url: '/decode', headers: { authorization: auth, ...ns, 'content-type': 'application/json' }, payload: { payloads: [asJson(encrypted!)] } });
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
  const enc = await app.inject({ method: 'POST', url: '/encode', headers: { authorization: `Bearer ${codecToken}`, 'x-namespace': 'brokerflow-staging' }, payload: { payloads: [plain] } });
  assert.equal(enc.statusCode, 200);
  const meta = enc.json().payloads[0].metadata;
  assert.equal(Buffer.from(meta['encryption-key-id'], 'base64').toString(), 'k2');
});

test('calls without valid credentials are refused and reveal nothing', async () => {
  const [encrypted] = await workerCodec.encode([defaultPayloadConverter.toPayload('x')]);
  for (const headers of [{}, { authorization: basic('ops', 'wrong') }, { authorization: 'Bearer nope' }]) {
    const res = await app.inject({ method: 'POST', url: '/decode', headers: { ...headers, ...ns }, payload: { payloads: [asJson(encrypted!)] } });
    assert.equal(res.statusCode, 401);
    assert.equal(res.body.includes('data'), false);
  }
});

test('a payload under an unknown key fails with a message naming the key only', async () => {
  const stranger = new AesGcmPayloadCodec([{ id: 'other', key: randomBytes(32) }], 'other');
  const [encrypted] = await stranger.encode([defaultPayloadConverter.toPayload('x')]);
  const res = await app.inject({ method: 'POST', url: '/decode', headers: { authorization: auth, ...ns }, payload: { payloads: [asJson(encrypted!)] } });
  assert.equal(res.statusCode, 400);
  assert.match(res.json().message, /key "other", which is not configured/);
});

test('the Web UI origin passes CORS preflight; other origins get no CORS grant', async () => {
  const ok = await app.inject({ method: 'OPTIONS', url: '/decode', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization,x-namespace' } });
  assert.equal(ok.headers['access-control-allow-origin'], origin);
  assert.match(String(ok.headers['access-control-allow-headers']), /X-Namespace/);
  assert.equal(ok.headers['access-control-allow-credentials'], 'true');
  const bad = await app.inject({ method: 'OPTIONS', url: '/decode', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
  assert.equal(bad.headers['access-control-allow-origin'], undefined);
});

test('the OSB platform\'s credentials, right for the broker, are refused: a platform may call the OSB API, not read every payload', async () => {
  const [encrypted] = await workerCodec.encode([defaultPayloadConverter.toPayload({ password: 'tenant-secret' })]);
  for (const authorization of [platformAuth, `Bearer platform-token-${platformPassword}`, basic('ops', platformPassword)]) {
    for (const url of ['/decode', '/encode']) {
      const res = await app.inject({ method: 'POST', url, headers: { authorization, ...ns }, payload: { payloads: [asJson(encrypted!)] } });
      assert.equal(res.statusCode, 401, `${url} with a platform credential`);
      assert.deepEqual(res.json(), { message: 'authentication required' });
      assert.equal(res.headers['www-authenticate'], 'Basic realm="brokerflow codec"');
    }
  }
});

test('a namespace the codec server does not serve is refused with 403, and so is a request that names none', async () => {
  const [encrypted] = await workerCodec.encode([defaultPayloadConverter.toPayload({ password: 'tenant-secret' })]);
  const body = { payloads: [asJson(encrypted!)] };
  const served = await app.inject({ method: 'POST', url: '/decode?preserveStorageRefs=true', headers: { authorization: auth, 'x-namespace': 'brokerflow-staging' }, payload: body });
  assert.equal(served.statusCode, 200, 'a namespace in codecServer.namespaces (with the query the Web UI adds)');
  for (const headers of [{ 'x-namespace': 'another-team' }, { 'x-namespace': '' }, { 'x-namespace': 'BROKERFLOW' }, {}]) {
    for (const url of ['/decode', '/encode']) {
      const res = await app.inject({ method: 'POST', url, headers: { authorization: auth, ...headers }, payload: body });
      assert.equal(res.statusCode, 403, `${url} ${JSON.stringify(headers)}`);
      assert.deepEqual(res.json(), { message: 'this codec server does not serve the namespace named in X-Namespace' });
    }
  }
  // The namespace is checked only once the caller is known: an anonymous caller learns nothing about the scope.
  const anon = await app.inject({ method: 'POST', url: '/decode', headers: { 'x-namespace': 'another-team' }, payload: body });
  assert.equal(anon.statusCode, 401);
});

test('no credential appears in the codec server\'s log, and refusals are logged by who and which namespace', async () => {
  await app.inject({ method: 'POST', url: '/decode', headers: { authorization: auth, 'x-namespace': 'another-team' }, payload: { payloads: [] } });
  assert.match(logText, /"principal":"ops","namespace":"another-team".*codec request refused: namespace not served/);
  for (const secret of [codecPassword, codecToken, platformPassword, auth.slice('Basic '.length), platformAuth.slice('Basic '.length)]) {
    assert.ok(!logText.includes(secret), 'no secret in the log');
  }
});
