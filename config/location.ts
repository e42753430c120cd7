// Where a process finds its configuration file: `--config FILE`, else $BROKERFLOW_CONFIG, else the example.
import { resolve } from 'node:path';

export function configPathFromArgs(argv: string[] = process.argv.slice(2)): string {
  const i = argv.indexOf('--config');
  if (i >= 0 && argv[i + 1]) return resolve(argv[i + 1]!);
  const eq = argv.find((a) => a.startsWith('--config='));
  if (eq) return resolve(eq.slice('--config='.length));
  return resolve(process.env.BROKERFLOW_CONFIG ?? resolve(__dirname, 'brokerflow.example.yaml'));
}
