// What operators watch: one log line and the HTTP metrics per answered request (by route pattern, not raw URL),
// liveness (`/healthz`, public), readiness of the dependencies (`/readyz`) and the Prometheus exposition
// (`/metrics`). Registered with fastify-plugin so that the response hook sees every route of the app.
import fp from 'fastify-plugin';
import type { BrokerMetrics } from '../metrics';

/**
 * A named dependency check for `/readyz`: resolves when the dependency answers (ready), possibly with details
 * that are shown and do not change readiness (for the registry: replicas that are down or behind while a
 * primary still serves).
 */
export interface ReadinessCheck {
  name: string;
  check: () => Promise<void | Record<string, unknown>>;
}

/** The instruments to count into and the dependencies `/readyz` asks. */
export interface ObservabilityOptions {
  metrics: BrokerMetrics;
  readiness: ReadinessCheck[];
}

export const observability = fp<ObservabilityOptions>(
  async (app, { metrics, readiness }) => {
    app.addHook('onResponse', async (req, reply) => {
      const route = req.routeOptions.url ?? 'unmatched';
      metrics.httpRequests.inc({ method: req.method, route, status: String(reply.statusCode) });
      metrics.httpDuration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
      req.log.info({ method: req.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    });

    app.get('/healthz', async () => ({ status: 'ok' }));

    app.get('/readyz', async (_req, reply) => {
      const results = await Promise.all(
        readiness.map(async (c) => {
          try {
            const detail = await c.check();
            return { name: c.name, ok: true, ...(detail ? { detail } : {}) };
          } catch (err) {
            return { name: c.name, ok: false, error: (err as Error).message };
          }
        }),
      );
      const ready = results.every((r) => r.ok);
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks: results });
    });

    app.get('/metrics', async (_req, reply) => {
      return reply.header('Content-Type', metrics.registry.contentType).send(await metrics.registry.metrics());
    });
  },
  { name: 'brokerflow-observability', fastify: '5.x' },
);
