// The OSB headers, as two hooks on either side of authentication: X-Broker-API-Request-Identity is echoed on
// every answer (401s included, so its hook comes first), X-Broker-API-Version is checked on authenticated /v2/
// requests (412, after authentication, so a stranger gets 401 whatever the header says) and
// X-Broker-API-Originating-Identity is checked after it (400 when malformed) and decoded to the platform and user
// that the request's log and the audit trail name. Both with fastify-plugin, to cover every route.
import fp from 'fastify-plugin';
import type { RequestOrigin } from '../../../domain/audit';
import { requesterLabel } from '../../../domain/audit';
import { badRequest, preconditionFailed } from '../errors';
import { OriginatingIdentityError, parseOriginatingIdentity } from '../identity';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who the platform says asked (X-Broker-API-Originating-Identity); undefined when it did not say. */
    originatingIdentity?: RequestOrigin;
  }
}

/** The lowest OSB minor version this broker answers; newer 2.x minors are backwards compatible. */
const MIN_MINOR = 13;

/** Echoes X-Broker-API-Request-Identity (at most 256 characters) on the answer. Register before authentication. */
export const requestIdentityHeader = fp(
  async (app) => {
    app.addHook('onRequest', async (req, reply) => {
      const identity = req.headers['x-broker-api-request-identity'];
      if (typeof identity === 'string') void reply.header('X-Broker-API-Request-Identity', identity.slice(0, 256));
    });
  },
  { name: 'brokerflow-request-identity', fastify: '5.x' },
);

/**
 * Refuses /v2/ requests without a supported X-Broker-API-Version (412) or with a malformed
 * X-Broker-API-Originating-Identity (400); binds the decoded identity (platform and user only) into the log.
 */
export const apiVersionHeader = fp(
  async (app) => {
    app.addHook('onRequest', async (req) => {
      if (req.principal === undefined) return; // a public path
      if (!req.url.startsWith('/v2/')) return;
      const version = req.headers['x-broker-api-version'];
      const m = typeof version === 'string' ? /^2\.(\d{1,3})$/.exec(version.trim()) : null;
      if (!m || Number(m[1]) < MIN_MINOR) {
        throw preconditionFailed(
          `X-Broker-API-Version ${typeof version === 'string' ? `"${version.slice(0, 20)}" is not supported` : 'header is missing'}: this broker speaks 2.${MIN_MINOR} to 2.17`,
        );
      }
      const originating = req.headers['x-broker-api-originating-identity'];
      if (typeof originating === 'string') {
        try {
          req.originatingIdentity = parseOriginatingIdentity(originating);
        } catch (err) {
          if (err instanceof OriginatingIdentityError) throw badRequest(err.message);
          throw err;
        }
        req.log = req.log.child({ originatingIdentity: requesterLabel(req.originatingIdentity) });
      }
    });
  },
  { name: 'brokerflow-api-version', fastify: '5.x', dependencies: ['brokerflow-authentication'] },
);
