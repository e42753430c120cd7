// The OSB API under concurrency (docs/design/osb-semantics.md#races): identical requests share one operation;
// conflicting ones lose cleanly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestStack, pollLastOperation, type TestStack } from '../support/stack';
import { SERVICE, instancePath, newId, provisionBody } from '../support/osb';
import { deferred } from '../support/deferred';
import type { OperationInput } from '../../workflows/messages';

let stack: TestStack;
before(async () => {
  stack = await startTestStack();
});
after(() => stack.close());

async function runsOf(id: string): Promise<number> {
  let n = 0;
  for await (const _ of stack.client.workflow.list({ query: `WorkflowId = 'instance/${id}'` })) n++;
  return n;
}

test('100 concurrent identical PUTs start one workflow and all answer 202 or 200 with the same operation', async () => {
  const id = newId('same');
  const body = provisionBody({ parameters: { quotaKeys: 42 } });
  const answers = await Promise.all(Array.from({ length: 100 }, () => stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, body)));
  const codes = new Set(answers.map((a) => a.statusCode));
  assert.ok([...codes].every((c) => c === 202 || c === 200), `codes: ${[...codes].join(',')}`);
  const operations = new Set(answers.filter((a) => a.statusCode === 202).map((a) => a.json().operation as string));
  assert.equal(operations.size, 1, `one operation for all: ${[...operations].join(', ')}`);
  const [operation] = operations;
  assert.equal((await pollLastOperation(stack, instancePath(id), operation)).body.state, 'succeeded');
  // Visibility is eventually consistent: wait for it to list the run, then check there is exactly one.
  for (let i = 0; i < 50 && (await runsOf(id)) === 0; i++) await new Promise((r) => setTimeout(r, 200));
  assert.equal(await runsOf(id), 1);
});

test('20 concurrent conflicting PUTs: one wins with 202, the rest get 409, and the winner is what exists', async () => {
  const id = newId('race');
  const answers = await Promise.all(
    Array.from({ length: 20 }, (_, i) => stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: i + 1 } }))),
  );
  const winners = answers.filter((a) => a.statusCode === 202);
  assert.equal(winners.length, 1, answers.map((a) => a.statusCode).join(','));
  assert.equal(answers.filter((a) => a.statusCode === 409).length, 19);
  assert.equal((await pollLastOperation(stack, instancePath(id), winners[0]!.json().operation)).body.state, 'succeeded');
  const winnerIndex = answers.indexOf(winners[0]!);
  assert.deepEqual((await stack.osb('GET', instancePath(id))).json().parameters, { quotaKeys: winnerIndex + 1 });
});

test('a conflicting PUT decided before another provision ran, and started after it ended, gets 409, not a second 202', async () => {
  // The window the 20-PUT race can hit under load: request B decides (no instance yet) and is held before its
  // start; request A provisions the instance whole; then B starts. B's run finds the instance and records nothing.
  const id = newId('stale');
  const operations = (stack.broker.osb as unknown as { deps: { operations: { start(input: OperationInput): Promise<unknown> } } }).deps.operations;
  const start = operations.start.bind(operations);
  const held = deferred<void>();
  const release = deferred<void>();
  operations.start = async (input: OperationInput) => {
    if (input.instanceId === id && input.parameters.quotaKeys === 2) {
      held.resolve();
      await release.promise;
    }
    return start(input);
  };
  try {
    const late = stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 2 } }));
    await held.promise;
    const first = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { quotaKeys: 1 } }));
    assert.equal(first.statusCode, 202, first.body);
    assert.equal((await pollLastOperation(stack, instancePath(id), first.json().operation)).body.state, 'succeeded');
    await stack.client.workflow.getHandle(`instance/${id}`).result();
    release.resolve();
    const answer = await late;
    assert.equal(answer.statusCode, 409, answer.body);
  } finally {
    release.resolve();
    operations.start = start;
  }
  assert.deepEqual((await stack.osb('GET', instancePath(id))).json().parameters, { quotaKeys: 1 });
});

test('concurrent PATCHes on one instance: one runs, the others get 422 ConcurrencyError or join it', async () => {
  const id = newId('patch');
  const put = await stack.osb('PUT', `${instancePath(id)}?accepts_incomplete=true`, provisionBody());
  await pollLastOperation(stack, instancePath(id), put.json().operation);
  const answers = await Promise.all(
    Array.from({ length: 10 }, (_, i) => stack.osb('PATCH', `${instancePath(id)}?accepts_incomplete=true`, { service_id: SERVICE, parameters: { quotaKeys: 100 + i } })),
  );
  const accepted = answers.filter((a) => a.statusCode === 202);
  assert.ok(accepted.length >= 1);
  assert.ok(answers.every((a) => a.statusCode === 202 || (a.statusCode === 422 && a.json().error === 'ConcurrencyError')), answers.map((a) => a.statusCode).join(','));
  for (const a of accepted) assert.equal((await pollLastOperation(stack, instancePath(id), a.json().operation)).body.state, 'succeeded');
});
