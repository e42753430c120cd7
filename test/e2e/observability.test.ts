// What an operator watches: the broker's Prometheus metrics after real traffic, `/readyz` following the Temporal
// server (this file starts and stops a Temporal dev server of its own, never the shared one), and the JSON logs
// of all that traffic, which must never carry a credential.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startTemporal, type TemporalDevServer } from '../../scripts/lib/temporal';
import { createBroker, type RunningBroker } from '../../client/broker/server';
import { createLogger } from '../../platform/logging';
import { startTestStack, type TestStack } from '../support/stack';
import { basicAuth, testBrokerUser, testEncryptionKey, writeTestConfig } from '../support/config';
import { requireTestEnv } from '../support/env';
import { newId, instancePath, bindingPath, deleteQuery, provisionBody, PLAN, SERVICE } from '../support/osb';

/** Every line the brokers of this file logged, as written (JSON). */
const logLines: string[] = [];
const logStream = new Writable({
  write(chunk: Buffer, _enc, done) {
    logLines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
    done();
  },
});
const logger = (component: string) => createLogger(component, { level: 'debug', destination: logStream });

let stack: TestStack;
let broker: RunningBroker;
before(async () => {
  stack = await startTestStack();
  // A broker of our own on the stack's configuration, so its log lines land in logStream.
  broker = await createBroker(stack.config, logger('broker'));
});
after(async () => {
  await broker.close();
  await stack.close();
});

type Headers = Record<string, string>;
const osbHeaders: Headers = { authorization: basicAuth(), 'x-broker-api-version': '2.17' };

async function call(b: RunningBroker, method: 'GET' | 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown, headers: Headers = osbHeaders) {
  return b.app.inject({ method, url, headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { payload: JSON.stringify(body) } : {}) });
}

/** The value of one Prometheus sample, or undefined when the series does not exist. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2]!.split(',');
    if (want.every((w) => have.includes(w)) && have.length === want.length) return Number(m[3]);
  }
  return undefined;
}

/** Waits for an operation through the broker under test. */
async function waitDone(path: string, operation: string): Promise<{ status: number; state?: unknown }> {
  const end = Date.now() + 60_000;
  for (;;) {
    const res = await call(broker, 'GET', `${path}/last_operation?operation=${encodeURIComponent(operation)}`);
    const state = res.statusCode === 200 ? (res.json() as { state: string }).state : undefined;
    if (state !== 'in progress') return { status: res.statusCode, state };
    if (Date.now() > end) throw new Error(`${path} still in progress`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

let bindingPassword = '';

test('after real traffic /metrics counts HTTP requests by route and status, and operations by type and outcome', async () => {
  const id = newId('obs');
  const bid = newId('obs-b');
  const put = await call(broker, 'PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 5 } }));
  assert.equal(put.statusCode, 202, put.body);
  assert.deepEqual(await waitDone(instancePath(id), put.json().operation), { status: 200, state: 'succeeded' });
  const conflict = await call(broker, 'PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 6 } }));
  assert.equal(conflict.statusCode, 409);
  const bad = await call(broker, 'PUT', `${instancePath(newId('obs-bad'))}?accepts_incomplete=true`, { service_id: SERVICE });
  assert.equal(bad.statusCode, 400);
  const anonymous = await call(broker, 'GET', '/v2/catalog', undefined, { 'x-broker-api-version': '2.17' });
  assert.equal(anonymous.statusCode, 401);
  const nowhere = await call(broker, 'GET', '/v2/nowhere');
  assert.equal(nowhere.statusCode, 404);

  const bind = await call(broker, 'PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN });
  assert.equal(bind.statusCode, 202, bind.body);
  assert.equal((await waitDone(bindingPath(id, bid), bind.json().operation)).state, 'succeeded');
  const fetched = await call(broker, 'GET', bindingPath(id, bid));
  bindingPassword = (fetched.json() as { credentials: { password: string } }).credentials.password;
  assert.ok(bindingPassword.length >= 16, 'the binding has a password for the log check below');
  const unbind = await call(broker, 'DELETE', `${bindingPath(id, bid)}?accepts_incomplete=true&${deleteQuery()}`);
  assert.equal(unbind.statusCode, 202);
  assert.equal((await waitDone(bindingPath(id, bid), unbind.json().operation)).status, 410);
  const del = await call(broker, 'DELETE', `${instancePath(id)}?accepts_incomplete=true&${deleteQuery()}`);
  assert.equal(del.statusCode, 202);
  assert.equal((await waitDone(instancePath(id), del.json().operation)).status, 410);

  const anonymousMetrics = await call(broker, 'GET', '/metrics', undefined, {});
  assert.equal(anonymousMetrics.statusCode, 401, 'metrics are not public');
  const res = await call(broker, 'GET', '/metrics');
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const text = res.body;
  const http = (method: string, route: string, status: number) => sample(text, 'brokerflow_http_requests_total', { method, route, status: String(status) });
  const inst = '/v2/service_instances/:instance_id';
  const bnd = `${inst}/service_bindings/:binding_id`;
  assert.equal(http('PUT', inst, 202), 1);
  assert.equal(http('PUT', inst, 409), 1);
  assert.equal(http('PUT', inst, 400), 1);
  assert.equal(http('GET', '/v2/catalog', 401), 1);
  assert.equal(http('GET', 'unmatched', 404), 1, 'unknown paths are counted under one label, not one per URL');
  assert.equal(http('PUT', bnd, 202), 1);
  assert.equal(http('GET', bnd, 200), 1);
  assert.equal(http('DELETE', bnd, 202), 1);
  assert.equal(http('DELETE', inst, 202), 1);
  assert.ok((http('GET', `${inst}/last_operation`, 200) ?? 0) >= 1);
  assert.equal(http('GET', `${inst}/last_operation`, 410), 1);
  assert.equal(http('GET', `${bnd}/last_operation`, 410), 1);
  assert.ok(!text.includes(id), 'no series is labelled with an instance ID');
  assert.ok((sample(text, 'brokerflow_http_request_duration_seconds_count', { method: 'PUT', route: inst }) ?? 0) >= 3);
  for (const type of ['provision', 'bind', 'unbind', 'deprovision']) {
    assert.equal(sample(text, 'brokerflow_osb_operations_total', { type, outcome: 'accepted' }), 1, `${type} accepted once`);
  }
  assert.match(text, /^brokerflow_broker_process_resident_memory_bytes \d+/m, 'process metrics are there too');
});

test('the broker logs one JSON line per request with its ID, route and status, and never a credential', async () => {
  assert.ok(logLines.length > 10, 'the traffic above was logged');
  const entries = logLines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const requests = entries.filter((e) => e.msg === 'request');
  assert.ok(requests.length >= 10);
  for (const r of requests) {
    assert.equal(r.component, 'broker');
    assert.equal(typeof r.reqId, 'string');
    assert.equal(typeof r.route, 'string');
    assert.equal(typeof r.status, 'number');
    assert.ok(typeof r.time === 'string' && !Number.isNaN(Date.parse(r.time)), 'ISO timestamps');
  }
  assert.ok(requests.some((r) => r.principal === testBrokerUser.username), 'the authenticated principal is named');
  const operations = entries.filter((e) => e.msg === 'operation');
  assert.ok(operations.length >= 4, 'every accepted operation is logged');
  for (const o of operations) {
    assert.equal(typeof o.operationId, 'string');
    assert.equal(o.principal, testBrokerUser.username, 'an operation is logged with the principal that asked for it');
  }
  const secrets = {
    'broker password': testBrokerUser.password,
    'Basic authorization header': basicAuth().slice('Basic '.length),
    'binding password': bindingPassword,
    'payload encryption key': testEncryptionKey,
    'tenant etcd root password': requireTestEnv('tenantEtcdRootPassword'),
  };
  const all = logLines.join('\n');
  for (const [what, value] of Object.entries(secrets)) {
    assert.ok(value.length >= 8, `${what} is a real value`);
    assert.ok(!all.includes(value), `the logs contain the ${what}`);
  }
  assert.doesNotMatch(all, /"authorization"/i, 'no authorization header is logged, even redacted');
});

test('/readyz is 200 while Temporal and the registry answer, and 503 naming Temporal once its server is stopped (so is an unrecorded last_operation)', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(requireTestEnv('workDir'), 'obs-temporal-'));
  const own: TemporalDevServer = await startTemporal({ dataDir: join(dir, 'data'), logDir: join(dir, 'logs') });
  let b: RunningBroker | undefined;
  try {
    const { config } = writeTestConfig({ temporal: { address: own.address, namespace: 'default', taskQueue: `tq-obs-${randomBytes(4).toString('hex')}` } });
    b = await createBroker(config, logger('broker-readyz'));
    const healthy = await call(b, 'GET', '/readyz');
    assert.equal(healthy.statusCode, 200, healthy.body);
    const ready = healthy.json() as { status: string; checks: Array<{ name: string; ok: boolean; detail?: { degraded: number; pendingRepairs: number; replicas: unknown[] } }> };
    assert.deepEqual([ready.status, ready.checks.map((c) => [c.name, c.ok])], ['ready', [['temporal', true], ['registry', true]]]);
    // The registry's detail: its replicas (one per store here), none degraded.
    assert.deepEqual(ready.checks[1]!.detail && { ...ready.checks[1]!.detail, replicas: ready.checks[1]!.detail.replicas.length }, { degraded: 0, pendingRepairs: 0, replicas: 2 });

    await own.stop();
    const started = Date.now();
    const down = await call(b, 'GET', '/readyz');
    const tookMs = Date.now() - started;
    assert.equal(down.statusCode, 503, down.body);
    const body = down.json() as { status: string; checks: Array<{ name: string; ok: boolean; error?: string }> };
    assert.equal(body.status, 'not ready');
    assert.deepEqual(body.checks.map((c) => [c.name, c.ok]), [['temporal', false], ['registry', true]]);
    assert.ok(body.checks[0]!.error && body.checks[0]!.error.length > 0, 'the failing check says why');
    console.log(`# /readyz with Temporal stopped: ${down.statusCode} in ${tookMs} ms: ${down.body}`);
    // /healthz is liveness only: the process is fine, so it stays 200 and Kubernetes does not restart it.
    assert.equal((await call(b, 'GET', '/healthz', undefined, {})).statusCode, 200);
    // last_operation of an operation the registry has no record of cannot be answered without Temporal (the run
    // may not have written its first record yet): 503 with Retry-After, so the platform polls again, never 404.
    const unknown = await call(b, 'GET', '/v2/service_instances/obs-not-recorded/last_operation?operation=provision-0123');
    assert.equal(unknown.statusCode, 503, unknown.body);
    assert.equal(unknown.headers['retry-after'], '2');
    assert.match(String(unknown.json().description), /Temporal did not answer.*poll again/);
    // A request that cannot be decided without Temporal is refused the same way: nothing was done, repeat it.
    const put = await call(b, 'PUT', '/v2/service_instances/obs-no-temporal?accepts_incomplete=true', {
      service_id: '6db0d0a4-2b5e-4c1e-9a1f-7f6d2c0e5a11',
      plan_id: '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a01',
      organization_guid: 'org',
      space_guid: 'space',
    });
    assert.equal(put.statusCode, 503, put.body);
    assert.match(String(put.json().description), /Temporal did not answer/);

    await own.restart();
    const back = await call(b, 'GET', '/readyz');
    assert.equal(back.statusCode, 200, `ready again once Temporal is back: ${back.body}`);
  } finally {
    await b?.close();
    await own.stop();
  }
});
