// The workflow bundle, built once in a separate process and cached on disk by a hash of the workflow sources:
// webpack needs ~100 MB while bundling that a worker would otherwise keep for its whole life.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '..');

function sourcesHash(): string {
  const h = createHash('sha256');
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (name.endsWith('.ts')) h.update(name).update(readFileSync(p));
      else if (!name.includes('.')) walk(p);
    }
  };
  walk(join(root, 'workflows'));
  // Workflows import values from domain/ (the non-retryable error codes), so it is part of the bundle.
  walk(join(root, 'domain'));
  h.update(readFileSync(join(root, 'package-lock.json')));
  return h.digest('hex').slice(0, 16);
}

/** The path of an up-to-date workflow bundle, building it in a child process when the cache has none. */
export function prebuiltWorkflowBundle(cacheDir = process.env.BROKERFLOW_BUNDLE_DIR ?? join(tmpdir(), 'brokerflow-workflow-bundles')): string {
  const file = join(cacheDir, `workflows-${sourcesHash()}.js`);
  if (existsSync(file)) return file;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const res = spawnSync(process.execPath, ['--import', 'tsx', __filename, tmp], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (res.status !== 0) throw new Error(`bundling the workflows failed (exit ${res.status}); run \`node --import tsx worker/bundle.ts out.js\` to see why`);
  renameSync(tmp, file);
  return file;
}

if (require.main === module) {
  const out = process.argv[2];
  if (!out) {
    process.stderr.write('usage: node --import tsx worker/bundle.ts <out.js>\n');
    process.exit(2);
  }
  void (async () => {
    const { bundleWorkflows } = require('./worker') as typeof import('./worker');
    writeFileSync(out, (await bundleWorkflows()).code);
  })().catch((err: Error) => {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  });
}
