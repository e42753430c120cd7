// Where a process finds its files: its configuration (`--config FILE`, else $BROKERFLOW_CONFIG, else the example),
// and the installation's root, the folder of package.json. The code runs from the sources (through tsx) or from
// the compiled build in dist/ (`npm run build`), so paths are taken from the root, never counted up from a module.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

let root: string | undefined;

/** The nearest folder above this module that holds package.json: the checkout, or /app in the image. */
export function packageRoot(): string {
  if (root) return root;
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return (root = dir);
    if (dirname(dir) === dir) throw new Error(`no package.json above ${__dirname}: brokerflow runs from its installation folder`);
  }
}

export function configPathFromArgs(argv: string[] = process.argv.slice(2)): string {
  const i = argv.indexOf('--config');
  if (i >= 0 && argv[i + 1]) return resolve(argv[i + 1]!);
  const eq = argv.find((a) => a.startsWith('--config='));
  if (eq) return resolve(eq.slice('--config='.length));
  return resolve(process.env.BROKERFLOW_CONFIG ?? join(packageRoot(), 'config', 'brokerflow.example.yaml'));
}
