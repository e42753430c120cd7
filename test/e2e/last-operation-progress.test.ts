// last_operation says what a running operation is doing
// (docs/design/contracts/osb-api.md#what-a-running-operations-description-says): while the tenant etcd the drivers
// manage is stopped, a provision's or a bind's first step fails and Temporal retries it, and the description a platform
// polls names the resource, the step, the attempt and the last error; `brokerflow status --json` shows the same. Once
// etcd is back the operation succeeds and the answer is the plain one again. No secret (the tenant etcd's root
// password, the platform's password, the encryption key, the binding's credentials) is ever in what the platform or the
// CLI sees. The failure is real: this file's own etcd, stopped and started.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestStack, pollLastOperation, type TestStack } from '../support/stack';
import { testBrokerUser, testEncryptionKey } from '../support/config';
import { cliRunner, EXIT } from '../support/cli';
import { ORG_SPACE, PLAN, SERVICE, bindingPath, instancePath, newId, provisionAndWait } from '../support/osb';
import { startOwnTenantEtcd, type OwnTenantEtcd } from '../support/reliability/servers';

let tenant: OwnTenantEtcd;
let stack: TestStack;
before(async () => {
  tenant = await startOwnTenantEtcd('last-operation');
  stack = await startTestStack({
    overrides: { drivers: { etcd: { endpoints: [tenant.server.endpoint], auth: { username: 'root', password: tenant.rootPassword } } } },
  });
});
after(async () => {
  await stack?.close();
  await tenant?.server.stop();
});

const { cli } = cliRunner(() => stack.configFile);
const secrets = () => [tenant.rootPassword, testBrokerUser.password, testEncryptionKey];

type Body = { state?: string; description?: string };

/** Polls last_operation until `done` holds for its answer; returns every answer seen, the last one satisfying it. */
async function pollUntil(path: string, operation: string, done: (b: Body) => boolean, timeoutMs = 60_000): Promise<Body[]> {
  const seen: Body[] = [];
  const end = Date.now() + timeoutMs;
  for (;;) {
    const res = await stack.osb('GET', `${path}/last_operation?operation=${encodeURIComponent(operation)}`);
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json() as Body;
    seen.push(body);
    if (done(body)) return seen;
    if (Date.now() > end) throw new Error(`last_operation never satisfied the condition; last answer: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * A step being retried, as a platform reads it. The resource is named exactly once: at the head when a worker
 * reported the step within the poll's deadline, else by the last error, which names it too.
 */
function retriedStep(description: string | undefined, resource: string, driver: string, step: string): { attempt: number; error: string } | undefined {
  const m = new RegExp(`^(${resource}: )?${step} \\(attempt (\\d+) of 7, last error: (resource "${resource}" \\(${driver}\\) ${step}: )?(.+)\\)$`).exec(description ?? '');
  if (!m || Boolean(m[1]) === Boolean(m[3])) return undefined;
  return { attempt: Number(m[2]), error: m[4]! };
}

const retrying = (resource: string, driver: string, step: string) => (b: Body) => b.state === 'in progress' && (retriedStep(b.description, resource, driver, step)?.attempt ?? 0) >= 2;

function assertNoSecret(texts: string[], extra: string[] = []): void {
  const all = texts.join('\n');
  for (const secret of [...secrets(), ...extra]) assert.ok(!all.includes(secret), 'a secret appears in what the platform or the CLI saw');
}

test('a provision waiting out a stopped tenant etcd names resource, step, attempt and last error; the plain answer returns once it succeeds', async () => {
  const id = newId('lo-prov');
  await tenant.server.stop();
  let seen: Body[];
  let operation: string;
  try {
    const res = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN, ...ORG_SPACE, parameters: { quotaKeys: 5 } });
    assert.equal(res.statusCode, 202, res.body);
    operation = res.json().operation as string;
    seen = await pollUntil(instancePath(id), operation, retrying('keyspace', 'etcd-prefix', 'getCurrentState'));
  } finally {
    await tenant.server.restart();
  }
  const during = seen[seen.length - 1]!;
  const step = retriedStep(during.description, 'keyspace', 'etcd-prefix', 'getCurrentState')!;
  assert.ok(step.attempt >= 2 && step.attempt <= 7, during.description);
  assert.match(step.error, /^etcd /, 'the last error is the driver\'s, as the failure description would say it');
  // Every answer while it ran kept the OSB shape: in progress, and a description that is a string when present.
  for (const b of seen) {
    assert.equal(b.state, 'in progress');
    assert.ok(b.description === undefined || typeof b.description === 'string');
  }

  const after = await pollLastOperation(stack, instancePath(id), operation);
  assert.deepEqual(after, { status: 200, body: { state: 'succeeded' } }, 'the finished operation answers as before: no step, no attempt');
  assertNoSecret([...seen, after.body].map((b) => JSON.stringify(b)));
});

test('once a worker has named the retried step, every poll names it while that activity is pending, also with no worker up', async () => {
  const id = newId('lo-kept');
  await tenant.server.stop();
  let first: { attempt: number; error: string };
  let operation: string;
  const without: Body[] = [];
  try {
    const res = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN, ...ORG_SPACE });
    assert.equal(res.statusCode, 202, res.body);
    operation = res.json().operation as string;
    // Until the worker's own report is in an answer (the resource at the head).
    const seen = await pollUntil(instancePath(id), operation, (b) => retrying('keyspace', 'etcd-prefix', 'getCurrentState')(b) && b.description!.startsWith('keyspace: '));
    first = retriedStep(seen[seen.length - 1]!.description, 'keyspace', 'etcd-prefix', 'getCurrentState')!;
    // No worker answers a query now; the step is still being retried (the same activity, waiting for a worker).
    await stack.stopWorker();
    try {
      for (let i = 0; i < 5; i++) {
        const r = await stack.osb('GET', `${instancePath(id)}/last_operation?operation=${encodeURIComponent(operation)}`);
        assert.equal(r.statusCode, 200, r.body);
        without.push(r.json() as Body);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await stack.startWorker();
    }
  } finally {
    await tenant.server.restart();
  }
  for (const b of without) {
    assert.equal(b.state, 'in progress');
    // The head is the worker's report, kept from the earlier poll: the answer does not switch to the no-worker wording.
    assert.ok(b.description?.startsWith('keyspace: getCurrentState (attempt '), `the step is no longer named with its resource: ${b.description}`);
    const step = retriedStep(b.description, 'keyspace', 'etcd-prefix', 'getCurrentState');
    assert.ok(step && step.attempt >= first.attempt, b.description);
  }
  assert.deepEqual(await pollLastOperation(stack, instancePath(id), operation), { status: 200, body: { state: 'succeeded' } });
});

test('brokerflow status --json shows the same step, attempt and last error as last_operation', async () => {
  const id = newId('lo-cli');
  await tenant.server.stop();
  let operation: string;
  let seen: Body[];
  let status;
  try {
    const res = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN, ...ORG_SPACE });
    assert.equal(res.statusCode, 202, res.body);
    operation = res.json().operation as string;
    seen = await pollUntil(instancePath(id), operation, retrying('keyspace', 'etcd-prefix', 'getCurrentState'));
    status = await cli(['status', id, '--operation', operation]);
  } finally {
    await tenant.server.restart();
  }
  assert.equal(status.code, EXIT.ok, status.stdout + status.stderr);
  const s = status.json;
  assert.deepEqual(
    [s.operation, s.operationId, s.state, s.instanceId, s.resource, s.step, s.maximumAttempts],
    ['provision', operation, 'in progress', id, 'keyspace', 'getCurrentState', 7],
  );
  assert.ok(typeof s.attempt === 'number' && s.attempt >= 2, status.stdout);
  assert.match(String(s.lastFailure), /^resource "keyspace" \(etcd-prefix\) getCurrentState: etcd /);
  // The description is last_operation's line, for the attempt the CLI saw.
  const step = retriedStep(String(s.description), 'keyspace', 'etcd-prefix', 'getCurrentState');
  assert.ok(step, String(s.description));
  assert.equal(s.description, `keyspace: getCurrentState (attempt ${s.attempt} of 7, last error: ${step.error})`);
  // The same last error as the platform read, as far as both show it: a description cuts it to 200 characters, and
  // one without the worker's report keeps the resource and step in it, so it is cut sooner.
  const platform = retriedStep(seen[seen.length - 1]!.description, 'keyspace', 'etcd-prefix', 'getCurrentState')!;
  const [a, b] = [step.error, platform.error].map((e) => e.replace(/…$/, '')).sort((x, y) => x.length - y.length);
  assert.ok(b!.startsWith(a!), `the platform and the CLI read different last errors: ${platform.error} / ${step.error}`);

  const done = await cli(['status', id, '--operation', operation, '--watch']);
  assert.equal(done.code, EXIT.ok, done.stdout + done.stderr);
  assert.deepEqual(done.json, { operation: 'provision', operationId: operation, state: 'succeeded', instanceId: id });
  assertNoSecret([status.stdout, status.stderr, done.stdout, done.stderr]);
});

test('a bind waiting out a stopped tenant etcd shows its step in the binding last_operation, and never its credentials', async () => {
  const id = newId('lo-inst');
  const bid = newId('lo-bind');
  await provisionAndWait(stack, id);
  await tenant.server.stop();
  let seen: Body[];
  let operation: string;
  try {
    const res = await stack.osb('PUT', `${bindingPath(id, bid)}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN });
    assert.equal(res.statusCode, 202, res.body);
    operation = res.json().operation as string;
    seen = await pollUntil(bindingPath(id, bid), operation, retrying('user', 'etcd-user', 'getCurrentState'));
  } finally {
    await tenant.server.restart();
  }
  const step = retriedStep(seen[seen.length - 1]!.description, 'user', 'etcd-user', 'getCurrentState')!;
  assert.match(step.error, /^etcd /);
  // The instance's own last_operation still tells of its provision, not of the bind.
  const instance = await stack.osb('GET', `${instancePath(id)}/last_operation`);
  assert.deepEqual(instance.json(), { state: 'succeeded' });

  const after = await pollLastOperation(stack, bindingPath(id, bid), operation);
  assert.deepEqual(after, { status: 200, body: { state: 'succeeded' } });
  const fetched = await stack.osb('GET', bindingPath(id, bid));
  const credentials = fetched.json().credentials as { username: string; password: string };
  assert.ok(credentials.password, fetched.body);
  assertNoSecret([...seen, after.body].map((b) => JSON.stringify(b)), [credentials.password]);
});
