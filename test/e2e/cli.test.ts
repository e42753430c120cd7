// The `brokerflow` CLI as a script sees it: `node bin/brokerflow.js --config <file> --json ...` in a child process
// against the test run's Temporal, the registry and a worker (in this process), asserting on the JSON it prints
// and the exit codes scripts rely on (0 ok, 1 failed, 2 usage, 3 not found, 4 conflict, 5 unreachable).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { startTestStack, type TestStack } from '../support/stack';
import { writeTestConfig } from '../support/config';
import { requireTestEnv } from '../support/env';
import { freePort } from '../../scripts/lib/process';
import { newId, PLAN, SERVICE, ASYNC_ONLY_PLAN } from '../support/osb';
import { cliRunner, EXIT, type CliRun, type Json } from '../support/cli';
import { randomBytes } from 'node:crypto';
import { Client } from '@temporalio/client';
import { AesGcmPayloadCodec } from '../../platform/codec';
import { operationStartRecord } from '../../client/operations';

let stack: TestStack;
let tenant: Etcd3;
before(async () => {
  stack = await startTestStack();
  tenant = new Etcd3({ hosts: requireTestEnv('tenantEtcdEndpoint'), auth: { username: 'root', password: requireTestEnv('tenantEtcdRootPassword') } });
});
after(async () => {
  tenant.close();
  await stack.close();
});

const { startCli, cli } = cliRunner(() => stack.configFile);

async function until<T>(what: string, fn: () => T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('catalog --json lists the services with their plans and IDs', async () => {
  const run = await cli(['catalog']);
  assert.equal(run.code, EXIT.ok, run.stderr);
  const services = run.json.services as Array<{ id: string; name: string; plans: Array<{ id: string; name: string; brokerflow?: unknown }> }>;
  const svc = services.find((s) => s.id === SERVICE);
  assert.ok(svc, run.stdout);
  assert.equal(svc.name, 'etcd-keyspace');
  assert.deepEqual(svc.plans.map((p) => p.name).slice(0, 2), ['standard', 'async-only']);
  assert.equal(svc.plans[0]!.brokerflow, undefined, 'the private plan settings are not shown');
});

test('provision, status, update, bind, unbind and deprovision run end to end and answer in JSON', async () => {
  const id = newId('cli');
  const bid = newId('cli-b');
  const prov = await cli(['provision', id, '--service', 'etcd-keyspace', '--plan', 'standard', '--params', '{"quotaKeys":10}']);
  assert.equal(prov.code, EXIT.ok, prov.stdout + prov.stderr);
  assert.equal(prov.json.status, 202);
  const op = prov.json.operation as string;
  assert.match(op, /^provision-/);

  const watched = await cli(['status', id, '--operation', op, '--watch']);
  assert.equal(watched.code, EXIT.ok, watched.stdout + watched.stderr);
  assert.deepEqual(
    { state: watched.json.state, operation: watched.json.operation, operationId: watched.json.operationId, instanceId: watched.json.instanceId },
    { state: 'succeeded', operation: 'provision', operationId: op, instanceId: id },
  );

  // The same request again is answered from what exists; a different one is a conflict (exit 4).
  const again = await cli(['provision', id, '--service', SERVICE, '--plan', PLAN, '--params', '{"quotaKeys":10}']);
  assert.equal(again.code, EXIT.ok, again.stdout);
  assert.equal(again.json.status, 200);
  const different = await cli(['provision', id, '--service', SERVICE, '--plan', PLAN, '--params', '{"quotaKeys":11}']);
  assert.equal(different.code, EXIT.conflict, different.stdout);
  assert.equal(different.json.status, 409);
  assert.match(String(different.json.description), /already exists with different attributes/);

  const upd = await cli(['update', id, '--params', '{"quotaKeys":20}', '--wait']);
  assert.equal(upd.code, EXIT.ok, upd.stdout + upd.stderr);
  assert.equal(upd.json.operation, 'update');
  assert.equal(upd.json.state, 'succeeded');

  const bind = await cli(['bind', id, bid, '--params', '{"readOnly":true}', '--wait']);
  assert.equal(bind.code, EXIT.ok, bind.stdout + bind.stderr);
  assert.deepEqual([bind.json.operation, bind.json.state, bind.json.bindingId], ['bind', 'succeeded', bid]);
  const secret = ((await stack.osb('GET', `/v2/service_instances/${id}/service_bindings/${bid}`)).json() as { credentials: { password: string } }).credentials.password;
  assert.ok(!bind.stdout.includes(secret), 'credentials are not printed by bind (only where they are)');

  const bstatus = await cli(['status', id, '--binding', bid]);
  assert.equal(bstatus.code, EXIT.ok);
  assert.deepEqual([bstatus.json.operation, bstatus.json.state, bstatus.json.instanceId, bstatus.json.bindingId], ['bind', 'succeeded', id, bid]);

  const unbind = await cli(['unbind', id, bid, '--wait']);
  assert.equal(unbind.code, EXIT.ok, unbind.stdout + unbind.stderr);
  assert.deepEqual([unbind.json.operation, unbind.json.state, unbind.json.gone], ['unbind', 'succeeded', true]);

  const deprov = await cli(['deprovision', id, '--wait']);
  assert.equal(deprov.code, EXIT.ok, deprov.stdout + deprov.stderr);
  assert.deepEqual([deprov.json.operation, deprov.json.state, deprov.json.gone], ['deprovision', 'succeeded', true]);
  assert.equal((await tenant.getAll().prefix(`/tenants/${id}/`).keys()).length, 0, 'the keyspace is gone');

  // The final state is kept: status still answers after the instance is gone.
  const after = await cli(['status', id]);
  assert.equal(after.code, EXIT.ok);
  assert.deepEqual([after.json.operation, after.json.state, after.json.gone], ['deprovision', 'succeeded', true]);
});

test('status --watch prints progress lines while the operation runs and ends when it succeeds', async () => {
  const id = newId('cli-watch');
  // No worker at first: the operation is accepted and stays in progress until one comes.
  await stack.stopWorker();
  let workerStopped = true;
  const startWorker = async () => {
    if (workerStopped) await stack.startWorker();
    workerStopped = false;
  };
  let op: string;
  try {
    const prov = await cli(['provision', id, '--service', 'etcd-keyspace', '--plan', 'async-only', '--params', '{"quotaKeys":7}']);
    assert.equal(prov.code, EXIT.ok, prov.stdout + prov.stderr);
    op = prov.json.operation as string;
    const json = startCli(['status', id, '--watch']);
    const human = startCli(['status', id, '--watch'], { json: false });
    const first = JSON.parse(await until('the first --watch line', () => json.lines[0])) as Json;
    assert.deepEqual([first.state, first.operation, first.operationId, first.instanceId], ['in progress', 'provision', op, id]);
    assert.match(await until('the first human --watch line', () => human.lines[0]), new RegExp(`^in progress · provision ${op}`));

    // While it runs, a different provision of the same instance is a conflict (exit 4); a one-shot status answers.
    const [other, snapshot] = await Promise.all([
      cli(['provision', id, '--service', SERVICE, '--plan', ASYNC_ONLY_PLAN, '--params', '{"quotaKeys":8}']),
      cli(['status', id]),
    ]);
    assert.equal(other.code, EXIT.conflict, other.stdout);
    assert.equal(other.json.status, 409);
    assert.equal(snapshot.code, EXIT.ok);
    assert.equal(snapshot.json.state, 'in progress', 'a one-shot status answers at once while the watch keeps waiting');

    await startWorker();
    const [jsonRun, humanRun] = await Promise.all([json.done, human.done]);
    assert.equal(jsonRun.code, EXIT.ok, jsonRun.stderr);
    assert.equal(humanRun.code, EXIT.ok, humanRun.stderr);
    assert.ok(jsonRun.lines.length >= 2, jsonRun.stdout);
    assert.deepEqual(jsonRun.lines.map((l) => l.operationId), jsonRun.lines.map(() => op));
    assert.deepEqual(jsonRun.lines.slice(0, -1).map((l) => l.state), jsonRun.lines.slice(0, -1).map(() => 'in progress'));
    assert.equal(jsonRun.json.state, 'succeeded');
    const humanLines = humanRun.stdout.trim().split('\n');
    assert.ok(humanLines.length >= 2, humanRun.stdout);
    assert.match(humanLines[humanLines.length - 1]!, new RegExp(`^succeeded · provision ${op}`));
  } finally {
    await startWorker();
  }
  const deprov = await cli(['deprovision', id, '--wait']);
  assert.equal(deprov.code, EXIT.ok, deprov.stdout);
});

test('list filters instances and bindings by service, plan and state, and operations through visibility', async () => {
  const a = newId('cli-list-a');
  const b = newId('cli-list-b');
  const bid = newId('cli-list-bind');
  const [pa, pb] = await Promise.all([
    cli(['provision', a, '--service', 'etcd-keyspace', '--plan', 'standard', '--wait']),
    cli(['provision', b, '--service', 'etcd-keyspace', '--plan', 'async-only', '--wait']),
  ]);
  assert.equal(pa.code, EXIT.ok, pa.stdout + pa.stderr);
  assert.equal(pb.code, EXIT.ok, pb.stdout + pb.stderr);
  assert.equal((await cli(['bind', a, bid, '--wait'])).code, EXIT.ok);

  const [standard, asyncOnly, succeeded, failedOnly, bindings] = await Promise.all([
    cli(['list', '--service', 'etcd-keyspace', '--plan', 'standard']),
    cli(['list', '--kind', 'instances', '--service', SERVICE, '--plan', 'async-only']),
    cli(['list', '--state', 'succeeded']),
    cli(['list', '--state', 'failed']),
    cli(['list', '--kind', 'bindings']),
  ]);
  const ids = (r: CliRun) => (r.json.items as Json[]).map((i) => i.id);
  assert.equal(standard.code, EXIT.ok, standard.stderr);
  assert.equal(standard.json.kind, 'instances');
  assert.ok(ids(standard).includes(a) && !ids(standard).includes(b), standard.stdout);
  assert.ok(ids(asyncOnly).includes(b) && !ids(asyncOnly).includes(a), asyncOnly.stdout);
  const rowA = (standard.json.items as Json[]).find((i) => i.id === a);
  assert.deepEqual(rowA, { id: a, serviceId: SERVICE, planId: PLAN, operation: 'provision', state: 'succeeded', operationId: pa.json.operationId });
  assert.ok(ids(succeeded).includes(a) && ids(succeeded).includes(b));
  assert.ok(!ids(failedOnly).includes(a));
  assert.deepEqual(
    (bindings.json.items as Json[]).find((i) => i.id === bid),
    { id: bid, instanceId: a, serviceId: SERVICE, planId: PLAN, operation: 'bind', state: 'succeeded', operationId: (await cli(['status', a, '--binding', bid])).json.operationId },
  );

  // Operations come from Temporal visibility (search attributes), which is eventually consistent: poll, bounded.
  const end = Date.now() + 30_000;
  let ops: Json[] = [];
  for (;;) {
    const run = await cli(['list', '--kind', 'operations', '--state', 'succeeded', '--service', 'etcd-keyspace', '--plan', 'async-only', '--limit', '1000']);
    assert.equal(run.code, EXIT.ok, run.stdout + run.stderr);
    assert.equal(run.json.kind, 'operations');
    ops = run.json.items as Json[];
    if (ops.some((o) => o.instanceId === b)) break;
    if (Date.now() > end) assert.fail(`visibility never listed the provision of ${b} as succeeded: ${run.stdout}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const row = ops.find((o) => o.instanceId === b)!;
  assert.deepEqual(
    { operation: row.operation, state: row.state, serviceId: row.serviceId, planId: row.planId, operationId: row.operationId },
    { operation: 'provision', state: 'succeeded', serviceId: SERVICE, planId: ASYNC_ONLY_PLAN, operationId: pb.json.operationId },
  );
  assert.ok(ops.every((o) => o.state === 'succeeded' && o.planId === ASYNC_ONLY_PLAN), 'the filters hold for every row');
  assert.ok(!ops.some((o) => o.instanceId === a), 'the standard plan instance is filtered out');

  await Promise.all([cli(['unbind', a, bid, '--wait']).then(() => cli(['deprovision', a, '--wait'])), cli(['deprovision', b, '--wait'])]);
});

test('list --kind operations shows a run whose memo it cannot decrypt (another key) as unreadable, and lists the others', async () => {
  // Another deployment in the namespace, or a key this configuration has retired: its runs' memos are encrypted
  // with a key the CLI does not hold. Their search attributes are in clear, so the run is still listed.
  const foreignKey = { id: 'retired-key', key: randomBytes(32) };
  const foreign = new Client({ connection: stack.client.connection, namespace: stack.client.options.namespace, dataConverter: { payloadCodecs: [new AesGcmPayloadCodec([foreignKey], foreignKey.id)] } });
  const id = newId('cli-foreign');
  const input = { operation: 'provision' as const, operationId: `provision-${id}`, instanceId: id, serviceId: SERVICE, planId: PLAN, parameters: {}, context: {}, fingerprint: 'f' };
  const { memo, typedSearchAttributes } = operationStartRecord(input);
  // A task queue no worker polls: the run stays open until the test terminates it.
  const handle = await foreign.workflow.start('provision', { taskQueue: `tq-nobody-${id}`, workflowId: `instance/${id}`, args: [input], memo: memo as unknown as Record<string, unknown>, typedSearchAttributes });
  try {
    const end = Date.now() + 30_000;
    for (;;) {
      // Newest first: the run started just now is on the first page.
      const run = await cli(['list', '--kind', 'operations', '--limit', '1000']);
      assert.equal(run.code, EXIT.ok, run.stdout + run.stderr);
      const rows = (run.json.items as Json[]).filter((r) => r.instanceId === id);
      if (rows.length > 0) {
        assert.deepEqual(
          rows.map((r) => ({ instanceId: r.instanceId, operation: r.operation, state: r.state, serviceId: r.serviceId, operationId: r.operationId, memo: r.memo })),
          [{ instanceId: id, operation: 'provision', state: 'in progress', serviceId: SERVICE, operationId: undefined, memo: "not readable with this configuration's encryption keys" }],
        );
        break;
      }
      if (Date.now() > end) assert.fail(`visibility never listed the run of ${id}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await handle.terminate('test over');
  }
});

test('an operation that fails exits 1 with its reason, and so does status afterwards', async () => {
  const id = newId('cli-fail');
  // Someone else's key already sits in the instance's keyspace: brokerflow refuses to take it over.
  await tenant.put(`/tenants/${id}/foreign`).value('not ours');
  try {
    const prov = await cli(['provision', id, '--service', 'etcd-keyspace', '--plan', 'standard', '--wait']);
    assert.equal(prov.code, EXIT.failed, prov.stdout + prov.stderr);
    assert.equal(prov.json.state, 'failed');
    assert.match(String(prov.json.description), /keyspace/);
    const status = await cli(['status', id]);
    assert.equal(status.code, EXIT.failed);
    assert.equal(status.json.state, 'failed');
  } finally {
    await tenant.delete().key(`/tenants/${id}/foreign`);
  }
});

test('unknown instances, bindings and operations exit 3 with a JSON error', async () => {
  const id = newId('cli-none');
  const runs = await Promise.all([
    cli(['status', id]),
    cli(['status', id, '--operation', 'provision-00000000-0000-0000-0000-000000000000']),
    cli(['deprovision', id]),
    cli(['update', id, '--params', '{}']),
    cli(['unbind', id, 'no-such-binding']),
    cli(['bind', id, 'b1']),
  ]);
  for (const run of runs) {
    assert.equal(run.code, EXIT.notFound, run.stdout + run.stderr);
    assert.equal(run.json.exitCode, EXIT.notFound);
    assert.match(String(run.json.error), /does not exist|no operation known/);
  }
});

test('bad usage and invalid input exit 2, and nothing is started', async () => {
  const id = newId('cli-bad');
  const [noService, badJson, badSchema, badId, unknownCommand, badChoice, missingPlan] = await Promise.all([
    cli(['provision', id, '--service', 'no-such-service', '--plan', 'standard']),
    cli(['provision', id, '--service', 'etcd-keyspace', '--plan', 'standard', '--params', '{oops']),
    cli(['provision', id, '--service', 'etcd-keyspace', '--plan', 'standard', '--params', '{"quotaKeys":0}']),
    cli(['provision', '../escape', '--service', 'etcd-keyspace', '--plan', 'standard']),
    cli(['frobnicate']),
    cli(['list', '--kind', 'everything']),
    cli(['provision', id, '--service', 'etcd-keyspace']),
  ]);
  assert.equal(noService.code, EXIT.usage);
  assert.match(String(noService.json.error), /no service "no-such-service" in the catalog/);
  assert.equal(badJson.code, EXIT.usage);
  assert.match(String(badJson.json.error), /--params is not valid JSON/);
  assert.equal(badSchema.code, EXIT.usage, badSchema.stdout);
  assert.equal(badSchema.json.status, 400);
  assert.match(String(badSchema.json.description), /quotaKeys/);
  assert.equal(badId.code, EXIT.usage, badId.stdout + badId.stderr);
  for (const run of [unknownCommand, badChoice, missingPlan]) {
    assert.equal(run.code, EXIT.usage, run.stdout + run.stderr);
    assert.match(run.stderr, /error: /);
  }
  assert.match(unknownCommand.stderr, /unknown command 'frobnicate'/);
  assert.match(missingPlan.stderr, /--plan/);
  const status = await cli(['status', id]);
  assert.equal(status.code, EXIT.notFound, 'nothing was started for the instance');
});

test('when Temporal is unreachable the CLI exits 5 and says where it looked and what to do', async () => {
  const closed = await freePort();
  const { file } = writeTestConfig({ temporal: { address: `127.0.0.1:${closed}`, namespace: 'default', taskQueue: 'tq-unreachable' } });
  const [status, provision, human] = await Promise.all([
    cli(['status', 'any-instance'], { config: file }),
    cli(['provision', newId('cli-x'), '--service', 'etcd-keyspace', '--plan', 'standard'], { config: file }),
    cli(['list'], { config: file, json: false }),
  ]);
  for (const run of [status, provision]) {
    assert.equal(run.code, EXIT.unreachable, run.stdout + run.stderr);
    assert.equal(run.json.exitCode, EXIT.unreachable);
    // It gives up after the CLI's connect timeout (5 s) instead of retrying for minutes, and says so.
    assert.match(String(run.json.error), new RegExp(`cannot reach the Temporal server at 127\\.0\\.0\\.1:${closed} \\(namespace default; no answer within 5 s\\)`));
    assert.match(String(run.json.error), /TEMPORAL_ADDRESS/);
  }
  assert.equal(human.code, EXIT.unreachable);
  assert.match(human.stderr, /^brokerflow: cannot reach the Temporal server/);
  assert.equal(human.stdout, '');
});

test('doctor checks Temporal, the registry and a worker: exit 0 with a worker, 5 without one', async () => {
  const ok = await cli(['doctor', '--timeout', '20']);
  assert.equal(ok.code, EXIT.ok, ok.stdout + ok.stderr);
  const checks = ok.json.checks as Array<{ name: string; ok: boolean; detail?: string }>;
  assert.deepEqual(checks.map((c) => [c.name, c.ok]), [['temporal', true], ['registry', true], ['worker', true]]);
  assert.match(checks[2]!.detail!, new RegExp(`task queue ${stack.config.temporal.taskQueue}`));

  // The same servers, but a task queue no worker polls.
  const { file } = writeTestConfig();
  const none = await cli(['doctor', '--timeout', '2'], { config: file });
  assert.equal(none.code, EXIT.unreachable, none.stdout + none.stderr);
  const noneChecks = none.json.checks as Array<{ name: string; ok: boolean; detail?: string }>;
  assert.deepEqual(noneChecks.map((c) => [c.name, c.ok]), [['temporal', true], ['registry', true], ['worker', false]]);
  assert.match(noneChecks[2]!.detail!, /no worker ran a workflow on task queue tq-/);
});
