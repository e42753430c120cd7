// The broker's Prometheus metrics (`/metrics`): HTTP requests by route and status, and OSB operations by
// type and outcome. One registry per broker app so tests and several apps in a process do not collide.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The broker's metric instruments. */
export interface BrokerMetrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
  operations: Counter<'type' | 'outcome'>;
}

export function createBrokerMetrics(opts: { defaultMetrics?: boolean } = {}): BrokerMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'brokerflow_broker_' });
  return {
    registry,
    httpRequests: new Counter({
      name: 'brokerflow_http_requests_total',
      help: 'HTTP requests answered, by route pattern and status code.',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'brokerflow_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by route pattern.',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60],
      registers: [registry],
    }),
    operations: new Counter({
      name: 'brokerflow_osb_operations_total',
      help: 'OSB operations the broker accepted or answered, by type and outcome.',
      labelNames: ['type', 'outcome'],
      registers: [registry],
    }),
  };
}
