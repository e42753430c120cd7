// Every row of docs/design/osb-semantics.md against the pure decision module: one case per row, named after it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bindingState,
  decideBind,
  decideDeprovision,
  decideFetchBinding,
  decideFetchInstance,
  decideProvision,
  decideRotationRequest,
  decideUnbind,
  decideUpdate,
  instanceState,
  type BindingFacts,
  type Decision,
  type InstanceFacts,
  type OperationFact,
} from '../../client/broker/decide';

const FP = 'fp-applied';
const op = (operation: OperationFact['operation'], state: OperationFact['state'], extra: Partial<OperationFact> = {}): OperationFact => ({
  operation,
  operationId: `${operation}-1`,
  state,
  ...extra,
});
const running = (operation: OperationFact['operation'], fingerprint = FP) => ({ ...op(operation, 'in progress'), operationId: `${operation}-run`, fingerprint });

const instance: Record<string, InstanceFacts> = {
  absent: { exists: false, provisioned: false, bindingOperations: 0 },
  gone: { exists: false, provisioned: false, record: op('deprovision', 'succeeded', { gone: true }), bindingOperations: 0 },
  provisioning: { exists: true, provisioned: false, record: op('provision', 'in progress'), running: running('provision'), fingerprint: FP, bindingOperations: 0 },
  provisioningUnrecorded: { exists: false, provisioned: false, running: running('provision'), bindingOperations: 0 },
  provisionFailed: { exists: true, provisioned: false, record: op('provision', 'failed'), fingerprint: FP, serviceId: 's', planId: 'p', bindingOperations: 0 },
  ready: { exists: true, provisioned: true, record: op('provision', 'succeeded'), fingerprint: FP, serviceId: 's', planId: 'p', maintenanceVersion: '1', bindingOperations: 0 },
  readyAfterFailedUpdate: { exists: true, provisioned: true, record: op('update', 'failed'), fingerprint: FP, serviceId: 's', planId: 'p', bindingOperations: 0 },
  updating: { exists: true, provisioned: true, record: op('update', 'in progress'), running: running('update', 'fp-target'), fingerprint: FP, serviceId: 's', planId: 'p', bindingOperations: 0 },
  deprovisioning: { exists: true, provisioned: true, record: op('deprovision', 'in progress'), running: running('deprovision'), fingerprint: FP, serviceId: 's', planId: 'p', bindingOperations: 0 },
  // A deprovision of an instance whose provision failed, or was stopped by the DELETE (before or after it began).
  deprovisioningUnprovisioned: { exists: true, provisioned: false, record: op('deprovision', 'in progress'), running: running('deprovision'), fingerprint: FP, serviceId: 's', planId: 'p', bindingOperations: 0 },
  deprovisioningUnrecorded: { exists: false, provisioned: false, running: running('deprovision'), bindingOperations: 0 },
  readyWithBinds: { exists: true, provisioned: true, record: op('provision', 'succeeded'), fingerprint: FP, serviceId: 's', planId: 'p', bindingOperations: 2 },
};

const binding: Record<string, BindingFacts> = {
  absent: { exists: false, ownedByAnotherInstance: false },
  elsewhere: { exists: false, ownedByAnotherInstance: true },
  gone: { exists: false, ownedByAnotherInstance: false, record: op('unbind', 'succeeded', { gone: true }) },
  binding: { exists: true, ownedByAnotherInstance: false, record: op('bind', 'in progress'), running: running('bind', 'fp-bind'), fingerprint: 'fp-bind' },
  bindFailed: { exists: true, ownedByAnotherInstance: false, record: op('bind', 'failed'), fingerprint: 'fp-bind' },
  bound: { exists: true, ownedByAnotherInstance: false, record: op('bind', 'succeeded'), fingerprint: 'fp-bind' },
  unbinding: { exists: true, ownedByAnotherInstance: false, record: op('unbind', 'in progress'), running: running('unbind', 'fp-unbind'), fingerprint: 'fp-bind' },
  expired: { exists: true, ownedByAnotherInstance: false, record: op('bind', 'succeeded'), fingerprint: 'fp-bind', expiredAt: '2026-12-08T12:00:00.000Z' },
};

const req = (fingerprint = FP, accepts = true, asyncOnly = false) => ({ accepts, asyncOnly, fingerprint });
const brief = (d: Decision): string =>
  d.kind === 'error' ? `${d.status}${d.error ? ` ${d.error}` : ''}` : d.kind === 'answer' ? `${d.status} ${d.body}` : d.kind === 'join' ? `join ${d.operationId}` : d.kind;

test('instance and binding states derive from the record and the running operation', () => {
  assert.deepEqual(Object.fromEntries(Object.entries(instance).map(([k, f]) => [k, instanceState(f)])), {
    absent: 'absent',
    gone: 'absent',
    provisioning: 'provisioning',
    provisioningUnrecorded: 'provisioning',
    provisionFailed: 'provision-failed',
    ready: 'ready',
    readyAfterFailedUpdate: 'ready',
    updating: 'updating',
    deprovisioning: 'deprovisioning',
    deprovisioningUnprovisioned: 'deprovisioning',
    deprovisioningUnrecorded: 'deprovisioning',
    readyWithBinds: 'ready',
  });
  assert.deepEqual(Object.fromEntries(Object.entries(binding).map(([k, f]) => [k, bindingState(f)])), {
    absent: 'absent',
    elsewhere: 'absent',
    gone: 'absent',
    binding: 'binding',
    bindFailed: 'bind-failed',
    bound: 'bound',
    unbinding: 'unbinding',
    expired: 'expired',
  });
});

test('PUT instance: every row', () => {
  const rows: Array<[string, InstanceFacts, ReturnType<typeof req>, string]> = [
    ['ready, identical', instance.ready!, req(), '200 dashboard'],
    ['ready, different', instance.ready!, req('other'), '409'],
    ['updating', instance.updating!, req(), '422 ConcurrencyError'],
    ['deprovisioning (identical attributes too)', instance.deprovisioning!, req(), '422 ConcurrencyError'],
    ['provisioning, identical', instance.provisioning!, req(), 'join provision-run'],
    ['provisioning before its first record, identical', instance.provisioningUnrecorded!, req(), 'join provision-run'],
    ['provisioning, different', instance.provisioning!, req('other'), '409'],
    ['absent, async-only plan, sync request', instance.absent!, req(FP, false, true), '422 AsyncRequired'],
    ['absent', instance.absent!, req(), 'start'],
    ['gone (tombstone)', instance.gone!, req(), 'start'],
    ['provision failed: a retry starts again', instance.provisionFailed!, req(), 'start'],
    ['ready, identical, async-only plan, sync request: nothing to wait for', instance.ready!, req(FP, false, true), '200 dashboard'],
  ];
  for (const [name, facts, r, want] of rows) assert.equal(brief(decideProvision(r, facts)), want, name);
});

test('PATCH instance: every row', () => {
  const u = (over: Partial<Parameters<typeof decideUpdate>[0]> = {}) => ({ ...req('fp-target'), serviceId: 's', planChange: false, planUpdateable: true, unchanged: false, ...over });
  const rows: Array<[string, InstanceFacts, ReturnType<typeof u>, string]> = [
    ['absent', instance.absent!, u(), '404'],
    ['gone', instance.gone!, u(), '404'],
    ['provision failed', instance.provisionFailed!, u(), '404'],
    ['provisioning', instance.provisioning!, u(), '422 ConcurrencyError'],
    ['another service', instance.ready!, u({ serviceId: 'x' }), '400'],
    ['plan change on a plan that is not updateable', instance.ready!, u({ planChange: true, planUpdateable: false }), '400'],
    ['updating, identical target', instance.updating!, u(), 'join update-run'],
    ['updating, another target', instance.updating!, u({ fingerprint: 'fp-x' }), '422 ConcurrencyError'],
    ['deprovisioning', instance.deprovisioning!, u(), '422 ConcurrencyError'],
    ['binding operations run', instance.readyWithBinds!, u(), '422 ConcurrencyError'],
    ['unchanged', instance.ready!, u({ unchanged: true }), '200 empty'],
    ['async-only plan, sync request', instance.ready!, u({ accepts: false, asyncOnly: true }), '422 AsyncRequired'],
    ['ready', instance.ready!, u(), 'start'],
    ['after a failed update, the identical retry starts a new update', instance.readyAfterFailedUpdate!, u(), 'start'],
  ];
  for (const [name, facts, r, want] of rows) assert.equal(brief(decideUpdate(r, facts)), want, name);
});

test('DELETE instance: every row; existence comes before asynchrony', () => {
  const rows: Array<[string, InstanceFacts, ReturnType<typeof req>, string]> = [
    ['absent, async-only plan, sync request', instance.absent!, req(FP, false, true), '410'],
    ['gone', instance.gone!, req(), '410'],
    ['deprovisioning', instance.deprovisioning!, req(), 'join deprovision-run'],
    ['provisioning', instance.provisioning!, req(), 'interrupt'],
    ['updating', instance.updating!, req(), '422 ConcurrencyError'],
    ['binding operations run', instance.readyWithBinds!, req(), '422 ConcurrencyError'],
    ['ready, async-only plan, sync request', instance.ready!, req(FP, false, true), '422 AsyncRequired'],
    ['ready', instance.ready!, req(), 'start'],
    ['provision failed: orphan mitigation', instance.provisionFailed!, req(), 'start'],
  ];
  for (const [name, facts, r, want] of rows) assert.equal(brief(decideDeprovision(r, facts)), want, name);
});

test('GET instance: every row', () => {
  const rows: Array<[string, InstanceFacts, string]> = [
    ['absent', instance.absent!, '404'],
    ['provisioning', instance.provisioning!, '404'],
    ['provision failed', instance.provisionFailed!, '404'],
    ['updating', instance.updating!, '422 ConcurrencyError'],
    ['ready', instance.ready!, '200 instance'],
    ['deprovisioning', instance.deprovisioning!, '200 instance'],
    ['deprovisioning an instance whose provision failed or was stopped', instance.deprovisioningUnprovisioned!, '404'],
    ['deprovisioning, requested before the stopped provision recorded anything', instance.deprovisioningUnrecorded!, '404'],
  ];
  for (const [name, facts, want] of rows) assert.equal(brief(decideFetchInstance(facts)), want, name);
});

test('PUT binding: every row', () => {
  const b = (over: Partial<Parameters<typeof decideBind>[0]> = {}) => ({ ...req('fp-bind'), matchesInstance: true, ...over });
  const rows: Array<[string, InstanceFacts, BindingFacts, ReturnType<typeof b>, string]> = [
    ['instance absent', instance.absent!, binding.absent!, b(), '404'],
    ['instance provision failed', instance.provisionFailed!, binding.absent!, b(), '404'],
    ['instance provisioning', instance.provisioning!, binding.absent!, b(), '422 ConcurrencyError'],
    ['instance updating', instance.updating!, binding.absent!, b(), '422 ConcurrencyError'],
    ['instance deprovisioning', instance.deprovisioning!, binding.absent!, b(), '422 ConcurrencyError'],
    ['service/plan not the instance\'s', instance.ready!, binding.absent!, b({ matchesInstance: false }), '400'],
    ['binding ID of another instance', instance.ready!, binding.elsewhere!, b(), '409'],
    ['bound, identical', instance.ready!, binding.bound!, b(), '200 binding'],
    ['bound, different', instance.ready!, binding.bound!, b({ fingerprint: 'x' }), '409'],
    ['binding, identical', instance.ready!, binding.binding!, b(), 'join bind-run'],
    ['binding, different', instance.ready!, binding.binding!, b({ fingerprint: 'x' }), '409'],
    ['unbinding', instance.ready!, binding.unbinding!, b(), '422 ConcurrencyError'],
    ['absent, async-only plan, sync request', instance.ready!, binding.absent!, b({ accepts: false, asyncOnly: true }), '422 AsyncRequired'],
    ['absent', instance.ready!, binding.absent!, b(), 'start'],
    ['gone', instance.ready!, binding.gone!, b(), 'start'],
    ['bind failed: a retry starts again', instance.ready!, binding.bindFailed!, b(), 'start'],
    ['expired, identical: its credentials are gone', instance.ready!, binding.expired!, b(), '409'],
    ['other bindings run on the instance: binds run concurrently', instance.readyWithBinds!, binding.absent!, b(), 'start'],
  ];
  for (const [name, inst, facts, r, want] of rows) assert.equal(brief(decideBind(r, inst, facts)), want, name);
});

test('DELETE binding: every row; existence comes before asynchrony', () => {
  const rows: Array<[string, BindingFacts, ReturnType<typeof req>, string]> = [
    ['absent, async-only plan, sync request', binding.absent!, req('u', false, true), '410'],
    ['another instance\'s binding', binding.elsewhere!, req('u'), '410'],
    ['gone', binding.gone!, req('u'), '410'],
    ['binding', binding.binding!, req('u'), '422 ConcurrencyError'],
    ['unbinding', binding.unbinding!, req('u'), 'join unbind-run'],
    ['bound, async-only plan, sync request', binding.bound!, req('u', false, true), '422 AsyncRequired'],
    ['bound', binding.bound!, req('u'), 'start'],
    ['bind failed', binding.bindFailed!, req('u'), 'start'],
    ['expired: the platform still has it, so it is deleted like a bound one', binding.expired!, req('u'), 'start'],
  ];
  for (const [name, facts, r, want] of rows) assert.equal(brief(decideUnbind(r, facts)), want, name);
});

test('GET binding: only a bound binding under its own instance is served', () => {
  const rows: Array<[string, BindingFacts, string]> = [
    ['absent', binding.absent!, '404'],
    ['another instance\'s binding', binding.elsewhere!, '404'],
    ['binding', binding.binding!, '404'],
    ['bind failed', binding.bindFailed!, '404'],
    ['gone', binding.gone!, '404'],
    ['bound', binding.bound!, '200 binding'],
    ['unbinding', binding.unbinding!, '404'],
    ['expired', binding.expired!, '404'],
  ];
  for (const [name, facts, want] of rows) assert.equal(brief(decideFetchBinding(facts)), want, name);
});

test('GET binding of an expired binding says when its credentials expired', () => {
  const d = decideFetchBinding(binding.expired!);
  assert.equal(d.kind, 'error');
  assert.match((d as { description: string }).description, /expired at 2026-12-08T12:00:00.000Z and were revoked/);
});

test('PUT binding with predecessor_binding_id (rotation): every row', () => {
  const rotation = (predecessor: BindingFacts, over: { rotatable?: boolean; predecessorId?: string } = {}) => ({
    rotatable: true,
    bindingId: 'new',
    predecessorId: 'old',
    predecessor,
    ...over,
  });
  const b = (r: ReturnType<typeof rotation>, over: Partial<Parameters<typeof decideBind>[0]> = {}) => ({ ...req('fp-bind'), matchesInstance: true, rotation: r, ...over });
  const rows: Array<[string, BindingFacts, ReturnType<typeof b>, string, RegExp?]> = [
    ['plan not rotatable', binding.absent!, b(rotation(binding.bound!, { rotatable: false })), '400', /not binding_rotatable/],
    ['predecessor is the binding itself', binding.absent!, b(rotation(binding.bound!, { predecessorId: 'new' })), '400', /names the binding itself/],
    ['predecessor does not exist', binding.absent!, b(rotation(binding.absent!)), '400', /"old" does not exist under this service instance/],
    ['predecessor deleted', binding.absent!, b(rotation(binding.gone!)), '400', /does not exist/],
    ['predecessor bind failed', binding.absent!, b(rotation(binding.bindFailed!)), '400', /does not exist/],
    ['predecessor belongs to another instance', binding.absent!, b(rotation(binding.elsewhere!)), '400', /belongs to another service instance/],
    ['predecessor expired', binding.absent!, b(rotation(binding.expired!)), '400', /expired at 2026-12-08T12:00:00.000Z/],
    ['predecessor still being bound', binding.absent!, b(rotation(binding.binding!)), '400', /still being created/],
    ['predecessor being unbound', binding.absent!, b(rotation(binding.unbinding!)), '400', /being deleted/],
    ['predecessor bound: the successor is created', binding.absent!, b(rotation(binding.bound!)), 'start'],
    ['async-only plan, sync request', binding.absent!, b(rotation(binding.bound!), { accepts: false, asyncOnly: true }), '422 AsyncRequired'],
    // A repeated rotation is answered from the successor, even after the platform deleted the predecessor.
    ['successor bound by the same rotation, predecessor deleted since', binding.bound!, b(rotation(binding.gone!)), '200 binding'],
    ['successor being bound by the same rotation', binding.binding!, b(rotation(binding.bound!)), 'join bind-run'],
    ['successor ID bound by another request', binding.bound!, b(rotation(binding.bound!), { fingerprint: 'x' }), '409'],
  ];
  for (const [name, facts, r, want, says] of rows) {
    const d = decideBind(r, instance.ready!, facts);
    assert.equal(brief(d), want, name);
    if (says) assert.match((d as { description: string }).description, says, name);
  }
  // The request-level rows need no state at all.
  assert.equal(decideRotationRequest({ rotatable: true, bindingId: 'new', predecessorId: 'old' }), undefined);
  assert.equal(brief(decideRotationRequest({ rotatable: false, bindingId: 'new', predecessorId: 'old' })!), '400');
});
