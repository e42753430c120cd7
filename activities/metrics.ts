// Reconciliation metrics (Prometheus, as operatorkit exported them): an event histogram labelled update|delete,
// and per resource and step a total counter, an error counter (failures only) and a duration histogram.
import { Counter, Histogram, Registry } from 'prom-client';
import type { CallObserver } from '../adapters/service-registries/call-budget';

/** The reconcile metric instruments, on the worker's registry. */
export interface ReconcileMetrics {
  observeStep(resource: string, step: string, seconds: number, failed: boolean): void;
  observeEvent(event: 'update' | 'delete', seconds: number): void;
}

export function createReconcileMetrics(registry: Registry): ReconcileMetrics {
  const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
  const event = new Histogram({
    name: 'brokerflow_reconcile_event_duration_seconds',
    help: 'Duration of whole reconciliations, by event (update or delete).',
    labelNames: ['event'],
    buckets,
    registers: [registry],
  });
  const total = new Counter({
    name: 'brokerflow_reconcile_step_total',
    help: 'Reconcile steps run, by resource and step.',
    labelNames: ['resource', 'step'],
    registers: [registry],
  });
  const errors = new Counter({
    name: 'brokerflow_reconcile_step_errors_total',
    help: 'Reconcile steps that failed, by resource and step.',
    labelNames: ['resource', 'step'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'brokerflow_reconcile_step_duration_seconds',
    help: 'Duration of reconcile steps, by resource and step.',
    labelNames: ['resource', 'step'],
    buckets,
    registers: [registry],
  });
  return {
    observeStep(resource, step, seconds, failed) {
      total.inc({ resource, step });
      duration.observe({ resource, step }, seconds);
      if (failed) errors.inc({ resource, step });
    },
    observeEvent(ev, seconds) {
      event.observe({ event: ev }, seconds);
    },
  };
}

/**
 * Calls to a cloud service registry (Cloud Map, Service Directory): how many went out, how long they waited for
 * the client-side rate budget, and how many the cloud refused for throttling (the figure the budget keeps at 0).
 */
export function createServiceRegistryCallMetrics(registry: Registry): CallObserver {
  const calls = new Counter({
    name: 'brokerflow_service_registry_calls_total',
    help: 'API calls sent to a cloud service registry, by registry.',
    labelNames: ['registry'],
    registers: [registry],
  });
  const waited = new Counter({
    name: 'brokerflow_service_registry_budget_wait_seconds_total',
    help: 'Time calls waited for the client-side rate budget before they were sent, by registry.',
    labelNames: ['registry'],
    registers: [registry],
  });
  const throttled = new Counter({
    name: 'brokerflow_service_registry_throttled_total',
    help: 'Calls a cloud service registry refused for throttling, by registry.',
    labelNames: ['registry'],
    registers: [registry],
  });
  return {
    called: (r) => calls.inc({ registry: r }),
    waited: (r, ms) => waited.inc({ registry: r }, ms / 1000),
    throttled: (r) => throttled.inc({ registry: r }),
  };
}
