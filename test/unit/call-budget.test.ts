// The client-side rate budget of cloud registry calls: never faster than its rate (a burst of one second's
// worth, then the rate), in arrival order, and a bad setting refused with the field's name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../adapters/errors';
import { CallBudget } from '../../adapters/service-registries';

test('a budget of N calls a second lets a burst of N through, then never more than N a second', async () => {
  const budget = new CallBudget(10);
  const t0 = performance.now();
  const started: number[] = [];
  const waits = await Promise.all(
    Array.from({ length: 30 }, async (_, i) => {
      const waited = await budget.take();
      started[i] = performance.now() - t0;
      return waited;
    }),
  );
  const order = started.map((t, i) => ({ t, i })).sort((a, b) => a.t - b.t);
  // The k-th call (from 0) cannot start before (k + 1 - N) / N seconds: the token bucket's bound. Timer
  // granularity allows a few milliseconds early.
  order.forEach(({ t }, k) => assert.ok(t >= ((k + 1 - 10) / 10) * 1000 - 15, `call ${k} started at ${t.toFixed(0)} ms`));
  // What the observer hears: the 20 beyond the burst each waited for their turn, most of a second or more.
  assert.ok(waits.filter((w) => w >= 900).length >= 20, `the calls beyond the burst waited: ${waits.map((w) => w.toFixed(0)).join(' ')}`);
  // In arrival order: each caller starts no earlier than the one before it.
  for (let i = 1; i < started.length; i++) assert.ok(started[i]! >= started[i - 1]! - 1, `call ${i} overtook call ${i - 1}`);
});

test('a budget that is not an integer from 1 to 10000 is refused, naming the field', () => {
  for (const bad of [0, -1, 1.5, Number.NaN, 10_001]) {
    assert.throws(() => new CallBudget(bad, 'endpoints.cloudmap.callsPerSecond'), (e: unknown) =>
      e instanceof ValidationError && e.field === 'endpoints.cloudmap.callsPerSecond' && /integer from 1 to 10000/.test(e.message));
  }
});
