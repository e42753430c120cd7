// Divergences the model-based test (test/model) reported, replayed against the reference model alone: no broker,
// no Temporal. Each case feeds the model the requests and answers of the trace and checks which worlds survive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bnd, canonical, emptyWorld, explain, inst, settle, type Answer, type Request, type WireHeaders, type World } from '../support/osb-model';
import { APP_BOUND_PLAN, PLAN, SERVICE } from '../support/osb';

const H: WireHeaders = { auth: 'ok', version: '2.17' };
const I0 = 'mfp4b5r27-i0';
const B1 = 'mfp4b5r27-b1';
const REFUSED_BIND = 'bind-19976aa3c1e9f9997180aab533f5491d';
const concurrency = (description: string): Answer => ({ status: 422, body: { description, error: 'ConcurrencyError' } });
const finalOf = (id: string, answer: Answer, path: { instance: string; binding?: string }) => new Map([[id, { answer, path }]]);

/** i0 ready (provisioned by the model itself: async provision, polled to success), binding b1 absent. */
function readyI0(): World[] {
  const provision: Request = {
    kind: 'provision',
    instance: I0,
    async: true,
    headers: H,
    body: { service_id: SERVICE, plan_id: PLAN, organization_guid: 'org-b', space_guid: 'space-a', parameters: { quotaKeys: 9 }, context: { platform: 'model' } },
  };
  const started = explain([emptyWorld()], [provision], [{ status: 202, body: { operation: 'provision-bc36ed8362214aa92d029b72e99b7135' } }], 'waiters').worlds;
  const worlds = settle(started, finalOf('provision-bc36ed8362214aa92d029b72e99b7135', { status: 200, body: { state: 'succeeded' } }, { instance: I0 }));
  assert.equal(worlds.length, 1);
  assert.equal(inst(worlds[0]!, I0).state, 'ready');
  assert.equal(bnd(worlds[0]!, B1).state, 'absent');
  return worlds;
}

/** The identical bind of b1 (no parameters, no app) that the burst and, later, the last command sent. */
const bareBind: Request = { kind: 'bind', instance: I0, binding: B1, async: true, headers: H, body: { service_id: SERVICE, plan_id: PLAN } };

/** Lane mfp4b5, seed 20300801: the burst of 6 on i0, then the bind's poll (trace steps 18–24). */
function burstAndPoll(): World[] {
  const requests: Request[] = [
    { kind: 'update', instance: I0, async: true, headers: H, body: { service_id: SERVICE, plan_id: APP_BOUND_PLAN, context: { platform: 'model', note: 'changed' } } },
    { kind: 'bind', instance: I0, binding: B1, async: true, headers: H, body: { service_id: SERVICE, plan_id: PLAN, bind_resource: { app_guid: 'app-1' } } },
    { kind: 'update', instance: I0, async: false, headers: { auth: 'ok', version: '2.13' }, body: { service_id: SERVICE } },
    { kind: 'deprovision', instance: I0, async: false, headers: H, query: { service_id: SERVICE, plan_id: PLAN } },
    {
      kind: 'provision',
      instance: I0,
      async: true,
      headers: H,
      body: { service_id: SERVICE, plan_id: PLAN, organization_guid: 'org-a', space_guid: 'space-a', context: { platform: 'model', note: 'changed' } },
    },
    bareBind,
  ];
  const answers: Answer[] = [
    concurrency('the instance is being deprovisioned'),
    concurrency('the instance is busy (deprovisioning)'),
    { status: 200, body: {} },
    { status: 200, body: {} },
    { status: 409, body: { description: 'the instance already exists with different attributes' } },
    { status: 202, body: { operation: REFUSED_BIND } },
  ];
  const ex = explain(readyI0(), requests, answers, 'any');
  assert.ok(ex.worlds.length > 0, 'the burst itself is allowed (the bind may lose the instance lock to the deprovision)');
  const failed: Answer = { status: 200, body: { state: 'failed', description: `instance ${I0} is busy: deprovision deprovision-a3e37a55d4a9db93d8df2222277fdf1d is in progress` } };
  return settle(ex.worlds, finalOf(REFUSED_BIND, failed, { instance: I0, binding: B1 }));
}

test('trace mfp4b5: a bind that lost the instance lock to a sync deprovision in a burst, polled "failed", is explained only by its refusal', () => {
  const worlds = burstAndPoll();
  assert.ok(worlds.length > 0, 'the broker\'s answers to the burst and the poll are allowed');
  // "failed" is the refused run's answer (Races: "answers failed, or 410 when the instance is gone"). A world in
  // which the bind bound and the deprovision then removed it answers 410 for b1 (Bindings: last_operation), so it
  // must not survive the poll even though the bind does not run there any more when the burst ends.
  for (const w of worlds) {
    assert.equal(inst(w, I0).state, 'absent');
    assert.deepEqual(bnd(w, B1).refused, { id: REFUSED_BIND, type: 'bind', state: 'failed', instance: I0 });
    assert.equal(bnd(w, B1).last, undefined, 'no world where the bind bound and was then removed');
  }
});

test('trace mfp4b5: a later identical bind on the re-provisioned instance answered with the refused run\'s operation is not allowed', () => {
  // Trace step 28: i0 provisioned again (sync, 201); the commands between touch neither i0's state nor b1.
  const reprovision: Request = {
    kind: 'provision',
    instance: I0,
    async: false,
    headers: H,
    body: { service_id: SERVICE, plan_id: PLAN, organization_guid: 'org-b', space_guid: 'space-a', parameters: { quotaKeys: 7 } },
  };
  const ready = explain(burstAndPoll(), [reprovision], [{ status: 201, body: {} }], 'waiters').worlds;
  assert.ok(ready.length > 0);
  assert.ok(ready.every((w) => inst(w, I0).state === 'ready' && bnd(w, B1).state === 'absent'));

  // The last command of the sequence: the identical bind again. The broker derived the same operation ID (the
  // refused run recorded nothing, so the "previous operation" is unchanged), Temporal deduplicated the start by
  // that request ID against the closed refused run, and the broker answered 202 with it; its poll then said
  // "failed ... deprovision ... is in progress" — about a deprovision that had ended long before. The contract
  // (Bindings: "PUT absent or bind-failed → start bind: 202") wants a new bind here; the model refuses this answer.
  const stale = explain(ready, [bareBind], [{ status: 202, body: { operation: REFUSED_BIND } }], 'waiters');
  assert.equal(stale.worlds.length, 0, 'a new bind must not be answered with the operation of a run that already ended');

  // What the contract allows instead: a new operation, which binds.
  const fresh = explain(ready, [bareBind], [{ status: 202, body: { operation: 'bind-new' } }], 'waiters').worlds;
  const bound = settle(fresh, finalOf('bind-new', { status: 200, body: { state: 'succeeded' } }, { instance: I0, binding: B1 }));
  assert.ok(bound.length > 0 && bound.every((w) => bnd(w, B1).state === 'bound'));
});

test('a synchronous provision that outlives the broker\'s sync wait answers 500 naming its operation, which goes on to succeed', () => {
  const P = 'provision-5b0d3c1e9a7f42d68c1e2b3a4d5e6f70';
  const provision: Request = {
    kind: 'provision',
    instance: I0,
    async: false,
    headers: H,
    body: { service_id: SERVICE, plan_id: PLAN, organization_guid: 'org-a', space_guid: 'space-a' },
  };
  const continues: Answer = {
    status: 500,
    body: { description: `the operation did not finish within 60 s and continues (operation ${P}): repeat the request with accepts_incomplete=true, or delete to undo it` },
  };
  const ex = explain([emptyWorld()], [provision], [continues], 'waiters');
  assert.ok(ex.worlds.length > 0, 'the answer is allowed');
  for (const w of ex.worlds) assert.equal(w.ops[P]?.type, 'provision', 'the named operation is still running');
  const worlds = settle(ex.worlds, finalOf(P, { status: 200, body: { state: 'succeeded' } }, { instance: I0 }));
  assert.equal(worlds.length, 1);
  assert.equal(inst(worlds[0]!, I0).state, 'ready');
  // A 500 that names no continuing operation is the provision's failure, which nothing here explains (no fault is
  // planted in the instance's prefix): only the sync-wait answer lets the operation go on.
  const failed = explain([emptyWorld()], [provision], [{ status: 500, body: { description: 'provision failed: boom' } }], 'waiters');
  assert.deepEqual(failed.worlds, []);
});

test('explaining a burst of identical requests with identical answers explores one order of them, and finds the same worlds as all orders', () => {
  // Lane seed 20277044: a burst of 6 identical synchronous provisions took 22 s to explain with every order
  // explored, blocking every broker and worker of the model test meanwhile (a keep-alive connection then reset).
  const provision: Request = {
    kind: 'provision',
    instance: I0,
    async: false,
    headers: H,
    body: { service_id: SERVICE, plan_id: APP_BOUND_PLAN, organization_guid: 'org-a', space_guid: 'space-a' },
  };
  const other: Request = { kind: 'fetchInstance', instance: I0, headers: H };
  const cases: Array<{ name: string; requests: Request[]; answers: Answer[] }> = [
    { name: '4 identical provisions, all 201', requests: [provision, provision, provision, provision], answers: Array.from({ length: 4 }, () => ({ status: 201, body: {} })) },
    {
      name: 'identical provisions with a GET between them',
      requests: [provision, other, provision],
      answers: [{ status: 201, body: {} }, { status: 404, body: { description: 'the instance does not exist or is still being provisioned' } }, { status: 201, body: {} }],
    },
  ];
  for (const c of cases) {
    const pruned = explain([emptyWorld()], c.requests, c.answers, 'waiters');
    const full = explain([emptyWorld()], c.requests, c.answers, 'waiters', { symmetry: false });
    const worlds = (ex: typeof pruned) => ex.worlds.map((w) => canonical(w)).sort();
    assert.deepEqual(worlds(pruned), worlds(full), `${c.name}: the same worlds`);
    assert.ok(full.worlds.length > 0, `${c.name}: the answers are allowed`);
    assert.ok(pruned.visited < full.visited, `${c.name}: fewer states visited (${pruned.visited} of ${full.visited})`);
  }
});
