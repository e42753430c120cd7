// The etcd client as brokerflow connects it: per-call deadlines, fast reconnects and no client-side retries or
// circuit breaker, shared by the datastore and the tenant etcd resource drivers.
export {
  AUTH_RACE_ATTEMPTS,
  etcdClientOptions,
  isAuthRevisionRace,
  isEtcdEndpointList,
  repeatingAuthRaces,
  type EtcdConnection,
  type EtcdTls,
} from './client-options';
