// The registry over the file backend: the registry conformance suite.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilePersistenceProvider } from '../../adapters/persistence';
import { registryConformance } from '../conformance/registry-conformance';

const root = mkdtempSync(join(tmpdir(), 'bf-registry-file-'));

registryConformance({
  kind: 'file',
  namespaces: ['team-a', 'team-b'],
  make: (scope) => ({
    plain: new FilePersistenceProvider({ directories: [join(root, scope, 'plain')] }),
    secretInner: new FilePersistenceProvider({ directories: [join(root, scope, 'secret')] }),
  }),
  cleanup: async () => rmSync(root, { recursive: true, force: true }),
});
