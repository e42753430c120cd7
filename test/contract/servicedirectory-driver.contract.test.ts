// The service-registry resource driver on Google Service Directory: the shared driver suite, with the real client
// talking gRPC to the in-process contract server (see servicedirectory.contract.test.ts for why a contract test).
import * as grpc from '@grpc/grpc-js';
import { ServiceDirectoryServiceRegistry } from '../../adapters/service-registries';
import { serviceRegistryDriverConformance } from '../conformance/service-registry-driver-conformance';
import { startServiceDirectoryContractServer, type ServiceDirectoryContractServer } from './servicedirectory-server';

let server: ServiceDirectoryContractServer;
serviceRegistryDriverConformance({
  name: 'Google Service Directory (contract server)',
  async open() {
    server = await startServiceDirectoryContractServer();
    return new ServiceDirectoryServiceRegistry({
      projectId: 'brokerflow-test',
      location: 'us-east1',
      clientOptions: { apiEndpoint: server.host, port: server.port, sslCreds: grpc.credentials.createInsecure() },
    });
  },
  async close(registry) {
    await registry.close();
    await server.stop();
  },
});
