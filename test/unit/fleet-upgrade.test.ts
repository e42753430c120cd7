// The pure rules of fleet upgrades (domain/fleet.ts): the maintenance window as `--window` writes it (clear errors on
// bad input), when the window is open and how long until it opens, which instances of a plan an upgrade changes, and
// the CLI's plan lookup and progress line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatMaintenanceWindow,
  InvalidWindowError,
  msUntilWindowCloses,
  msUntilWindowOpens,
  parseMaintenanceWindow,
  planFleetUpgrade,
} from '../../domain/fleet';
import { progressLine, resolveFleetPlan, UpgradeRefused } from '../../client/cli/upgrade';
import type { Catalog } from '../../config/catalog';

const at = (iso: string) => Date.parse(iso);
const MIN = 60_000;
const HOUR = 60 * MIN;

test('a window reads days, a time range and UTC', () => {
  assert.deepEqual(parseMaintenanceWindow('Mon-Fri 22:00-04:00 UTC'), { days: [1, 2, 3, 4, 5], startMinute: 22 * 60, endMinute: 4 * 60 });
  assert.deepEqual(parseMaintenanceWindow('sat,sun 01:30-05:00 utc'), { days: [0, 6], startMinute: 90, endMinute: 300 });
  assert.deepEqual(parseMaintenanceWindow('daily 00:00-24:00 UTC'), { days: [0, 1, 2, 3, 4, 5, 6], startMinute: 0, endMinute: 1440 });
  assert.deepEqual(parseMaintenanceWindow('  Mon,Wed-Thu   9:05-10:00 UTC '), { days: [1, 3, 4], startMinute: 545, endMinute: 600 });
  assert.deepEqual(parseMaintenanceWindow('Fri-Mon 02:00-03:00 UTC').days, [0, 1, 5, 6], 'a range wraps over the weekend');
  assert.deepEqual(parseMaintenanceWindow('Tuesday 02:00-03:00 UTC').days, [2]);
});

test('a window prints back as it is read', () => {
  for (const text of ['Mon,Tue,Wed,Thu,Fri 22:00-04:00 UTC', 'daily 02:00-03:00 UTC', 'Sun,Sat 01:30-05:00 UTC']) {
    const w = parseMaintenanceWindow(text);
    assert.deepEqual(parseMaintenanceWindow(formatMaintenanceWindow(w)), w);
  }
  assert.equal(formatMaintenanceWindow(parseMaintenanceWindow('Mon-Fri 22:00-04:00 UTC')), 'Mon,Tue,Wed,Thu,Fri 22:00-04:00 UTC');
});

test('a bad window is refused with a message that says what is wrong and what is expected', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /the window is empty/],
    ['Mon-Fri 22:00-04:00', /2 parts where three are expected/],
    ['Mon-Fri 22:00-04:00 CET', /the zone is "CET": windows are written in UTC/],
    ['Mon-Fri 22:00 UTC', /"22:00" is not a time range HH:MM-HH:MM/],
    ['Mon-Fri 25:00-04:00 UTC', /"25:00" is not a time of day/],
    ['Mon-Fri 22:60-04:00 UTC', /"22:60" is not a time of day/],
    ['Mon-Fri 2200-0400 UTC', /"2200" is not a time HH:MM/],
    ['Mon-Fri 10:00-10:00 UTC', /opens and closes at the same time/],
    ['Mon-Fry 22:00-04:00 UTC', /"Fry" is not a day/],
    ['Mon,,Fri 22:00-04:00 UTC', /an empty day/],
    ['Mon-Wed-Fri 22:00-04:00 UTC', /"Mon-Wed-Fri" is not a day or a range of days/],
    ['Monk 22:00-04:00 UTC', /"Monk" is not a day/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseMaintenanceWindow(text), (err: unknown) => {
      assert.ok(err instanceof InvalidWindowError, `${text}: ${String(err)}`);
      assert.match(err.message, message, text);
      assert.match(err.message, /expected "<days> HH:MM-HH:MM UTC"/);
      assert.equal(err.code, 'Invalid');
      return true;
    });
  }
});

test('inside the window nothing is waited for; outside, the wait ends when it opens', () => {
  const w = parseMaintenanceWindow('Mon-Fri 22:00-04:00 UTC');
  // 2026-12-07 is a Monday.
  assert.equal(msUntilWindowOpens(w, at('2026-12-07T22:00:00Z')), 0, 'open at its start');
  assert.equal(msUntilWindowOpens(w, at('2026-12-08T03:59:00Z')), 0, 'open past midnight');
  assert.equal(msUntilWindowOpens(w, at('2026-12-08T04:00:00Z')), 18 * HOUR, 'closed at its end; opens again Tuesday 22:00');
  assert.equal(msUntilWindowOpens(w, at('2026-12-07T12:00:00Z')), 10 * HOUR);
  // Friday's window runs into Saturday; then nothing until Monday 22:00.
  assert.equal(msUntilWindowOpens(w, at('2026-12-12T02:00:00Z')), 0, 'Friday night runs into Saturday');
  assert.equal(msUntilWindowOpens(w, at('2026-12-12T05:00:00Z')), 2 * 24 * HOUR + 17 * HOUR, 'Saturday morning waits until Monday 22:00');
  assert.equal(msUntilWindowOpens(w, at('2026-12-07T01:00:00Z')), 21 * HOUR, 'Sunday night (Monday 01:00) is not Sunday\'s window: none on Sunday');
  assert.equal(msUntilWindowCloses(w, at('2026-12-07T23:00:00Z')), 5 * HOUR);
  assert.equal(msUntilWindowCloses(w, at('2026-12-07T12:00:00Z')), 0);
  const always = parseMaintenanceWindow('daily 00:00-24:00 UTC');
  assert.equal(msUntilWindowOpens(always, at('2026-12-09T13:17:00Z')), 0);
});

test('an upgrade changes the provisioned instances not at the target, in ID order, and says why it leaves any', () => {
  const plan = planFleetUpgrade(
    [
      { instanceId: 'c', provisioned: true, maintenanceVersion: '1.0.0' },
      { instanceId: 'a', provisioned: true, maintenanceVersion: '2.0.0' },
      { instanceId: 'b', provisioned: true },
      { instanceId: 'd', provisioned: false, maintenanceVersion: '1.0.0' },
    ],
    '2.0.0',
  );
  assert.deepEqual(plan, {
    targetVersion: '2.0.0',
    changes: [
      { instanceId: 'b', to: '2.0.0' },
      { instanceId: 'c', from: '1.0.0', to: '2.0.0' },
    ],
    current: ['a'],
    skipped: [{ instanceId: 'd', reason: 'not provisioned (its provision failed or runs)' }],
  });
});

test('the CLI finds the plan by ID, or by name when only one service has it, and says what to do otherwise', () => {
  const plan = (id: string, name: string) => ({ id, name, description: '', brokerflow: { resourceSet: 'x' } });
  const catalog = {
    services: [
      { id: 's1', name: 'one', description: '', bindable: false, plans: [plan('p1', 'standard'), plan('p2', 'large')] },
      { id: 's2', name: 'two', description: '', bindable: false, plans: [plan('p3', 'standard')] },
    ],
  } as unknown as Catalog;
  assert.equal(resolveFleetPlan(catalog, 'p3', undefined, 2).plan.id, 'p3');
  assert.equal(resolveFleetPlan(catalog, 'large', undefined, 2).service.id, 's1');
  assert.equal(resolveFleetPlan(catalog, 'standard', 'two', 2).plan.id, 'p3');
  assert.throws(() => resolveFleetPlan(catalog, 'standard', undefined, 2), (err: UpgradeRefused) => {
    assert.match(err.message, /plan name "standard" is in several services \(one, two\): name one with --service, or give the plan ID/);
    assert.equal(err.exitCode, 2);
    return true;
  });
  assert.throws(() => resolveFleetPlan(catalog, 'tiny', undefined, 2), /no plan "tiny" in the catalog/);
  assert.throws(() => resolveFleetPlan(catalog, 'standard', 'three', 2), /no service "three" in the catalog/);
});

test('a progress line says done, failed, waiting, in flight and remaining, and why it stopped', () => {
  const line = progressLine({
    planId: 'p1',
    targetVersion: '2.0.0',
    phase: 'stopped',
    total: 10,
    done: 5,
    upgraded: 4,
    current: 1,
    failed: 2,
    waiting: 1,
    inFlight: [],
    remaining: 1,
    skipped: [{ instanceId: 'x', reason: 'gone' }],
    failures: [],
    paused: false,
    stoppedBecause: 'stopped after 2 failed updates (--stop-after-failures 2)',
    startedAt: 0,
    runs: 1,
  });
  assert.equal(
    line,
    'fleet upgrade of plan p1 to 2.0.0: stopped: 5/10 done (4 upgraded, 1 already current), 2 failed, 1 waiting, 0 in flight, 1 remaining, 1 skipped (stopped after 2 failed updates (--stop-after-failures 2))',
  );
});
