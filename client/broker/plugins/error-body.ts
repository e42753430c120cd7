// Every failure answers with the OSB error body `{error?, description}`: one error handler for what routes and
// hooks throw, the not-found handler, and the router's own refusals. Registered with fastify-plugin so that the
// handlers are the root's and every route inherits them.
import fp from 'fastify-plugin';
import type { FastifyError, FastifyServerOptions } from 'fastify';
import { UnavailableError, ValidationError } from '../../../adapters/errors';
import { OsbError } from '../errors';

export const osbErrorBody = fp(
  async (app) => {
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
  },
  { name: 'brokerflow-error-body', fastify: '5.x' },
);

/** URLs the router refuses (undecodable, a parameter too long) get the OSB error body too (a server option). */
export const frameworkErrorBody: NonNullable<FastifyServerOptions['frameworkErrors']> = (err, _req, reply) => {
  void (reply as unknown as { code(n: number): { send(b: unknown): unknown } }).code(err.statusCode ?? 400).send({ description: err.message });
};
