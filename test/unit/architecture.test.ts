// The layer rules (docs/design/architecture.md, "Dependency rules") hold on the product code, and the check that
// enforces them does fail: each rule of .dependency-cruiser.cjs is broken once in a planted tree and must be named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../../scripts/lib/process';

const PRODUCT = ['domain', 'workflows', 'activities', 'adapters', 'worker', 'client', 'platform', 'config'];
const config = join(repoRoot, '.dependency-cruiser.cjs');
const depcruise = join(repoRoot, 'node_modules', '.bin', 'depcruise');

interface Cruise {
  summary: { violations: Array<{ from: string; to: string; rule: { name: string } }>; totalCruised: number };
  modules: Array<{ source: string; dependencies: Array<{ resolved: string; dependencyTypes: string[] }> }>;
}

async function cruise(cwd: string, folders: string[]): Promise<Cruise> {
  // depcruise exits non-zero when it finds violations; the JSON on stdout is the answer either way.
  const run = await promisify(execFile)(depcruise, ['--config', config, '--output-type', 'json', ...folders], { cwd, maxBuffer: 64 * 1024 * 1024 }).catch(
    (err: { stdout?: string; stderr?: string }) => {
      if (!err.stdout) throw new Error(`depcruise failed: ${err.stderr ?? String(err)}`);
      return { stdout: err.stdout };
    },
  );
  return JSON.parse(run.stdout) as Cruise;
}

const ruleNames = (): string[] => (require(config) as { forbidden: Array<{ name: string }> }).forbidden.map((r) => r.name).sort();

test('the product code keeps every layer rule, type-only imports included', async () => {
  const out = await cruise(repoRoot, PRODUCT);
  assert.deepEqual(
    out.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`),
    [],
  );
  assert.ok(out.summary.totalCruised > 100, `only ${out.summary.totalCruised} modules cruised`);
  // The check sees type-only imports (the workflows' activity types), or the rules about them would pass vacuously.
  const typeOnly = out.modules.filter((m) => m.source.startsWith('workflows/')).flatMap((m) => m.dependencies).filter((d) => d.resolved.startsWith('activities/'));
  assert.ok(typeOnly.length > 0 && typeOnly.every((d) => d.dependencyTypes.includes('type-only')), JSON.stringify(typeOnly));
});

test('each layer rule fails on a planted violation, naming the rule', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brokerflow-architecture-'));
  try {
    const files: Record<string, string> = {
      'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'node16', moduleResolution: 'node16', strict: true } }),
      // no-circular
      'config/a.ts': "import { b } from './b';\nexport const a = () => b;\n",
      'config/b.ts': "import { a } from './a';\nexport const b = () => a;\n",
      // domain-imports-nothing
      'domain/x.ts': "import { a } from '../config/a';\nexport const x = a;\n",
      // workflows-never-import-adapters (even for a type)
      'workflows/w1.ts': "import type { T } from '../adapters/t';\nexport type W = T;\n",
      // workflows-import-types-only-from-activities-and-config
      'workflows/w2.ts': "import { f } from '../activities/f';\nexport const w = f;\n",
      // workflows-no-io
      'workflows/w3.ts': "import 'etcd3';\n",
      // workflows-no-node-builtins
      'workflows/w4.ts': "import { readFileSync } from 'node:fs';\nexport const r = readFileSync;\n",
      'workflows/w5.ts': 'export const w5 = 1;\n',
      // adapters-import-no-temporal
      'adapters/t.ts': "import '@temporalio/client';\nexport type T = 1;\n",
      // adapters-stay-below-the-processes
      'adapters/u.ts': "import { p } from '../platform/p';\nexport const u = p;\n",
      // client-imports-no-activity-values
      'client/c.ts': "import { f } from '../activities/f';\nexport const c = f;\n",
      // worker-and-client-are-siblings
      'worker/w.ts': "import { c2 } from '../client/c2';\nexport const w = c2;\n",
      // client-does-not-import-the-worker
      'client/c2.ts': "import { w2 } from '../worker/w2';\nexport const c2 = w2;\n",
      'worker/w2.ts': 'export const w2 = 1;\n',
      // platform-below-the-processes
      'platform/p.ts': "import { c3 } from '../client/c3';\nexport const p = c3;\n",
      'client/c3.ts': 'export const c3 = 1;\n',
      // activities-never-import-workflow-code (its messages are fine)
      'activities/f.ts': "import { w5 } from '../workflows/w5';\nimport type { M } from '../workflows/messages';\nexport const f = w5;\nexport type F = M;\n",
      'workflows/messages.ts': 'export type M = 1;\n',
      // product-never-imports-tests-or-scripts
      'config/t.ts': "import { s } from '../test/s';\nexport const t = s;\n",
      'test/s.ts': 'export const s = 1;\n',
    };
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    const out = await cruise(dir, PRODUCT);
    const violated = [...new Set(out.summary.violations.map((v) => v.rule.name))].sort();
    assert.deepEqual(violated, ruleNames());
    // Allowed imports stay allowed: an activity's type import of the workflows' messages is no violation.
    assert.ok(!out.summary.violations.some((v) => v.to === 'workflows/messages.ts'), JSON.stringify(out.summary.violations));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
