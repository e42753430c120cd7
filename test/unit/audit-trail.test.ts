// The audit trail's pure rules: a parameters diff names keys and never values, what each operation changes, and
// the bound and idempotence of the trail (docs/design/contracts/registry.md#audit-trail).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { acceptanceRecord, auditChanges, parametersDiff, requesterLabel, withOutcome, withRecord, type AuditRecord } from '../../domain/audit';

const PLAN_A = 'plan-a';
const PLAN_B = 'plan-b';

void describe('parameters diff', () => {
  void test('names added, removed and changed keys, sorted', () => {
    assert.deepEqual(parametersDiff({ a: 1, b: 2, c: 3 }, { b: 2, c: 4, d: 5 }), { added: ['d'], removed: ['a'], changed: ['c'] });
  });

  void test('never holds a value, old or new', () => {
    const diff = parametersDiff({ password: 'old-s3cret', keep: 'same' }, { password: 'new-s3cret', token: 'tok-s3cret', keep: 'same' });
    assert.deepEqual(diff, { added: ['token'], removed: [], changed: ['password'] });
    assert.doesNotMatch(JSON.stringify(diff), /s3cret|same/);
  });

  void test('follows nested objects by dotted path; arrays and type changes count as one change', () => {
    assert.deepEqual(parametersDiff({ db: { user: 'a', port: 1 }, tags: ['x'], mode: 'simple' }, { db: { user: 'b', tls: true }, tags: ['x', 'y'], mode: { kind: 'x' } }), {
      added: ['db.tls'],
      removed: ['db.port'],
      changed: ['db.user', 'mode', 'tags'],
    });
  });

  void test('key order and equal values are no change', () => {
    assert.deepEqual(parametersDiff({ a: { x: 1, y: 2 } }, { a: { y: 2, x: 1 } }), { added: [], removed: [], changed: [] });
  });

  void test('is bounded: at most 50 names per list, then how many more', () => {
    const many = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${String(i).padStart(2, '0')}`, i]));
    const diff = parametersDiff({}, many);
    assert.equal(diff.added.length, 51);
    assert.equal(diff.added[50], '…and 10 more');
  });
});

void describe('what an operation changes', () => {
  const base = { operationId: 'op-1', planId: PLAN_A, maintenanceVersion: '1.0.0', parameters: { quotaKeys: 10, adminPassword: 'pw-s3cret' } };

  void test('a provision sets plan, version and every parameter', () => {
    assert.deepEqual(auditChanges({ ...base, operation: 'provision' }), {
      plan: { to: PLAN_A },
      maintenanceVersion: { to: '1.0.0' },
      parameters: { added: ['adminPassword', 'quotaKeys'], removed: [], changed: [] },
    });
  });

  void test('an update names only what differs from what is applied', () => {
    const applied = { planId: PLAN_A, maintenanceVersion: '1.0.0', parameters: { quotaKeys: 10, adminPassword: 'old' } };
    assert.deepEqual(auditChanges({ ...base, operation: 'update', planId: PLAN_B, maintenanceVersion: '2.0.0' }, applied), {
      plan: { from: PLAN_A, to: PLAN_B },
      maintenanceVersion: { from: '1.0.0', to: '2.0.0' },
      parameters: { added: [], removed: [], changed: ['adminPassword'] },
    });
    assert.deepEqual(auditChanges({ ...base, operation: 'update', parameters: applied.parameters }, applied), {});
  });

  void test('a bind sets its parameters; deprovision and unbind change no setting', () => {
    assert.deepEqual(auditChanges({ ...base, operation: 'bind', parameters: { readOnly: true } }), { parameters: { added: ['readOnly'], removed: [], changed: [] } });
    assert.deepEqual(auditChanges({ ...base, operation: 'deprovision' }), {});
    assert.deepEqual(auditChanges({ ...base, operation: 'unbind' }), {});
  });

  void test('a record names who asked, or "unknown", and holds no parameter value', () => {
    const now = new Date('2030-01-02T03:04:05.000Z');
    const rec = acceptanceRecord({ ...base, operation: 'provision', requestedBy: { platform: 'cloudfoundry', user: 'alice' } }, undefined, now);
    assert.equal(rec.requestedBy, 'cloudfoundry/alice');
    assert.equal(rec.acceptedAt, now.toISOString());
    assert.doesNotMatch(JSON.stringify(rec), /s3cret/);
    assert.equal(acceptanceRecord({ ...base, operation: 'deprovision' }, undefined, now).requestedBy, 'unknown');
    assert.equal(requesterLabel(undefined), 'unknown');
  });
});

void describe('the trail', () => {
  const rec = (n: number): AuditRecord => ({ operation: 'update', operationId: `op-${n}`, requestedBy: 'unknown', acceptedAt: new Date(Date.UTC(2030, 0, 1, 0, 0, n)).toISOString(), changes: {} });

  void test('keeps the last N records, and records an operation once', () => {
    let trail: AuditRecord[] = [];
    for (let n = 0; n < 5; n++) trail = withRecord(trail, rec(n), 3) ?? trail;
    assert.deepEqual(trail.map((r) => r.operationId), ['op-2', 'op-3', 'op-4']);
    assert.equal(withRecord(trail, rec(4), 3), undefined);
  });

  void test('an end is recorded once, with its duration from the acceptance', () => {
    const trail = [rec(0)];
    const ended = withOutcome(trail, 'op-0', { error: 'resource "x" failed', completedAt: new Date(Date.UTC(2030, 0, 1, 0, 0, 2, 500)) });
    assert.deepEqual(ended?.[0]?.outcome, { state: 'failed', description: 'resource "x" failed', completedAt: '2030-01-01T00:00:02.500Z', durationMs: 2500 });
    assert.equal(withOutcome(ended!, 'op-0', { completedAt: new Date() }), undefined, 'a second end changes nothing');
    assert.equal(withOutcome(trail, 'op-9', { completedAt: new Date() }), undefined, 'an operation not in the trail changes nothing');
  });
});
