// The service-registry resource driver against the real etcd and the moto server (AWS Cloud Map) of the test run:
// the shared driver suite, whose ownership rules are those of endpoint reconciliation.
import { randomBytes } from 'node:crypto';
import { EtcdDatastore } from '../../adapters/datastore';
import { CloudMapServiceRegistry, EtcdServiceRegistry } from '../../adapters/service-registries';
import { requireTestEnv } from '../support/env';
import { serviceRegistryDriverConformance } from '../conformance/service-registry-driver-conformance';

const run = randomBytes(4).toString('hex');

serviceRegistryDriverConformance({
  name: 'etcd',
  async open() {
    return new EtcdServiceRegistry(new EtcdDatastore({ endpoints: [requireTestEnv('etcdEndpoint')], prefix: `/brokerflow-test-srd-${run}` }), { ownsDatastore: true });
  },
});

serviceRegistryDriverConformance({
  name: 'AWS Cloud Map (moto)',
  async open() {
    return new CloudMapServiceRegistry({
      clientConfig: { endpoint: requireTestEnv('motoEndpoint'), region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } },
      // moto finishes operations at once; a short poll interval keeps a real PENDING answer cheap too.
      pollIntervalMs: 50,
      operationTimeoutMs: 10_000,
      callTimeoutMs: 10_000,
    });
  },
});
