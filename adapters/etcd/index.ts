// The etcd client as brokerflow connects it: per-call deadlines, fast reconnects and no client-side retries or
// circuit breaker, shared by the datastore and the tenant etcd resource drivers.
export { etcdClientOptions, isEtcdEndpointList, type EtcdConnection, type EtcdTls } from './client-options';
