// The broker's HTTP face on fastify: authentication, the OSB version header, request identity, one error handler
// that produces the OSB error body, health and readiness, metrics, and the OSB routes.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyError } from 'fastify';
import type { Catalog } from '../../config/catalog';
import { publicCatalog } from '../../config/catalog';
import { createAuthenticator, type BrokerCredentials } from './auth';
import { OsbError, preconditionFailed, unauthorized } from './errors';
import { UnavailableError, ValidationError } from '../../adapters/errors';
import { createBrokerMetrics, type BrokerMetrics } from './metrics';
import { openApiDocument } from './openapi';

/** A named dependency check for `/readyz`: resolves when the dependency answers. */
export interface ReadinessCheck {
  name: string;
  check: () => Promise<void>;
}

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
  /** Registers the OSB instance and binding routes (kept apart so the HTTP shell can be tested alone). */
  routes?: (app: FastifyInstance) => Promise<void> | void;
}

/** The lowest OSB minor version this broker answers; newer 2.x minors are backwards compatible. */
const MIN_MINOR = 13;
const PUBLIC_PATHS = new Set(['/healthz']);

export async function buildBrokerApp(opts: BrokerAppOptions): Promise<FastifyInstance> {
  const metrics = opts.metrics ?? createBrokerMetrics();
  const authenticate = createAuthenticator(opts.credentials);
  const app = Fastify({
    ...(opts.https ? { https: opts.https } : {}),
    loggerInstance: opts.logger,
    bodyLimit: opts.bodyLimitBytes ?? 1024 * 1024,
    // brokerflow logs one line per request itself (onResponse), with the route pattern instead of the raw URL.
    logController: new LogController({ disableRequestLogging: true }),
    // OSB IDs are path segments; never let an encoded slash become a path separator.
    routerOptions: { maxParamLength: 300 },
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
    // URLs the router refuses (undecodable, a parameter too long) get the OSB error body too.
    frameworkErrors: (err, _req, reply) => {
      void (reply as unknown as { code(n: number): { send(b: unknown): unknown } }).code(err.statusCode ?? 400).send({ description: err.message });
    },
  });

  // Platforms and conformance checkers send `Content-Type: application/json` on DELETE (and GET) requests, which
  // carry no body in OSB: serve them exactly like requests without the header. Other requests keep fastify's
  // JSON parser, with its prototype-poisoning protection.
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (body === '' && (req.method === 'DELETE' || req.method === 'GET')) {
      done(null, undefined);
      return;
    }
    void defaultJson(req, body as string, done);
  });

  app.addHook('onRequest', async (req, reply) => {
    const identity = req.headers['x-broker-api-request-identity'];
    if (typeof identity === 'string') void reply.header('X-Broker-API-Request-Identity', identity.slice(0, 256));
    const path = req.url.split('?')[0] ?? '';
    if (PUBLIC_PATHS.has(path)) return;
    const principal = authenticate(req);
    if (!principal) {
      void reply.header('WWW-Authenticate', 'Basic realm="brokerflow"');
      throw unauthorized();
    }
    const originating = req.headers['x-broker-api-originating-identity'];
    req.log = req.log.child({
      principal: principal.name,
      ...(typeof originating === 'string' ? { originatingIdentity: originating.slice(0, 512) } : {}),
    });
    if (path.startsWith('/v2/')) {
      const version = req.headers['x-broker-api-version'];
      const m = typeof version === 'string' ? /^2\.(\d{1,3})$/.exec(version.trim()) : null;
      if (!m || Number(m[1]) < MIN_MINOR) {
        throw preconditionFailed(
          `X-Broker-API-Version ${typeof version === 'string' ? `"${version.slice(0, 20)}" is not supported` : 'header is missing'}: this broker speaks 2.${MIN_MINOR} to 2.17`,
        );
      }
    }
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    req.log.info({ method: req.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  app.setErrorHandler(async (err: FastifyError | OsbError, req, reply) => {
    if (err instanceof OsbError) return reply.code(err.statusCode).send(err.body());
    // An ID or key the adapters refuse is bad input, refused before anything changed.
    if (err instanceof ValidationError) return reply.code(400).send({ description: err.message });
    // A dependency did not answer in time: nothing was decided, the platform may repeat the request.
    if (err instanceof UnavailableError) return reply.code(503).header('retry-after', '2').send({ description: err.message });
    if (err.validation) {
      const first = err.validation[0];
      const where = `${err.validationContext ?? 'request'}${first?.instancePath ?? ''}`;
      return reply.code(400).send({ description: `${where} ${first?.message ?? 'is invalid'}`.trim() });
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      // Fastify's own client errors: malformed JSON, body too large, unsupported media type.
      return reply.code(err.statusCode).send({ description: err.message });
    }
    req.log.error({ err: { type: err.name, message: err.message, stack: err.stack } }, 'request failed');
    return reply.code(500).send({ description: 'internal error; see the broker log for details' });
  });

  app.setNotFoundHandler(async (req) => {
    throw new OsbError(404, `no route for ${req.method} ${req.url.split('?')[0]}`);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const results = await Promise.all(
      (opts.readiness ?? []).map(async (c) => {
        try {
          await c.check();
          return { name: c.name, ok: true };
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

  const served = publicCatalog(opts.catalog);
  app.get('/v2/catalog', async () => served);
  const openapi = openApiDocument();
  app.get('/openapi.json', async () => openapi);

  if (opts.routes) await opts.routes(app);
  return app;
}
