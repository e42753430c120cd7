// The broker's HTTP face: a fastify app built from one plugin per concern. The order of registration is the
// order of the request hooks: the request identity is echoed on every answer, then authentication (401), then the
// OSB version header (412), so a stranger learns nothing but 401.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Catalog } from '../../config/catalog';
import type { BrokerCredentials } from './auth';
import { createBrokerMetrics, type BrokerMetrics } from './metrics';
import type { OsbService } from './service';
import { authentication } from './plugins/authentication';
import { frameworkErrorBody, osbErrorBody } from './plugins/error-body';
import { emptyJsonBodies } from './plugins/json-body';
import { observability, type ReadinessCheck } from './plugins/observability';
import { apiVersionHeader, requestIdentityHeader } from './plugins/osb-headers';
import { catalogRoutes } from './routes/catalog';
import { osbRoutes } from './routes/osb';

/** Everything the broker app is built from. */
export interface BrokerAppOptions {
  catalog: Catalog;
  credentials: BrokerCredentials;
  logger: FastifyBaseLogger;
  readiness?: ReadinessCheck[];
  metrics?: BrokerMetrics;
  bodyLimitBytes?: number;
  /** Serve HTTPS with this key and certificate (PEM). */
  https?: { key: Buffer; cert: Buffer };
  /** Serves the OSB instance and binding routes with it (left out, the HTTP shell can be tested alone). */
  osb?: OsbService;
}

export async function buildBrokerApp(opts: BrokerAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(opts.https ? { https: opts.https } : {}),
    loggerInstance: opts.logger,
    bodyLimit: opts.bodyLimitBytes ?? 1024 * 1024,
    // brokerflow logs one line per request itself (observability), with the route pattern instead of the raw URL.
    logController: new LogController({ disableRequestLogging: true }),
    // OSB IDs are path segments; never let an encoded slash become a path separator.
    routerOptions: { maxParamLength: 300 },
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
    frameworkErrors: frameworkErrorBody,
  });

  await app.register(osbErrorBody);
  await app.register(emptyJsonBodies);
  await app.register(requestIdentityHeader);
  await app.register(authentication, { credentials: opts.credentials, publicPaths: ['/healthz'] });
  await app.register(apiVersionHeader);
  await app.register(observability, { metrics: opts.metrics ?? createBrokerMetrics(), readiness: opts.readiness ?? [] });
  await app.register(catalogRoutes, { catalog: opts.catalog });
  if (opts.osb) await app.register(osbRoutes, { osb: opts.osb });
  return app;
}
