// The registry over the etcd backend: the registry conformance suite.
import { randomBytes } from 'node:crypto';
import { EtcdDatastore } from '../../adapters/datastore';
import { EtcdPersistenceProvider } from '../../adapters/persistence';
import { requireTestEnv } from '../support/env';
import { registryConformance } from '../conformance/registry-conformance';

const endpoint = requireTestEnv('etcdEndpoint');
const root = `/bf-registry-${randomBytes(4).toString('hex')}`;

registryConformance({
  kind: 'etcd',
  namespaces: ['team-a', 'team-b'],
  make: (scope) => ({
    plain: new EtcdPersistenceProvider({ replicas: [{ endpoints: [endpoint], prefix: `${root}/${scope}/plain` }] }),
    secretInner: new EtcdPersistenceProvider({ replicas: [{ endpoints: [endpoint], prefix: `${root}/${scope}/secret` }] }),
  }),
  cleanup: async () => {
    const ds = new EtcdDatastore({ endpoints: [endpoint], prefix: root });
    await ds.clean();
    await ds.close();
  },
});
