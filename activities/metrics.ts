// Reconciliation metrics (Prometheus, as operatorkit exported them): an event histogram labelled update|delete,
// and per resource and step a total counter, an error counter (failures only) and a duration histogram.
import { Counter, Histogram, Registry } from 'prom-client';

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
