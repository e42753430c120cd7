// The etcd backend (through the datastore) against the test etcd: the conformance suite.
import { randomBytes } from 'node:crypto';
import { EtcdDatastore } from '../../adapters/datastore';
import { EtcdPersistenceProvider } from '../../adapters/persistence';
import { requireTestEnv } from '../support/env';
import { persistenceConformance } from '../conformance/persistence-conformance';

const endpoint = requireTestEnv('etcdEndpoint');
const root = `/bf-persist-${randomBytes(4).toString('hex')}`;

persistenceConformance({
  kind: 'etcd',
  namespaces: ['team-a', 'team-b'],
  make: (scopes) => new EtcdPersistenceProvider({ replicas: scopes.map((s) => ({ endpoints: [endpoint], prefix: `${root}/${s}` })) }),
  // Nothing listens on port 9 (discard) on loopback.
  makeUnreachable: () => new EtcdPersistenceProvider({ replicas: [{ endpoints: ['http://127.0.0.1:9'], prefix: `${root}/dead`, dialTimeoutMs: 1_000 }] }),
  cleanup: async () => {
    const ds = new EtcdDatastore({ endpoints: [endpoint], prefix: root });
    await ds.clean();
    await ds.close();
  },
});
