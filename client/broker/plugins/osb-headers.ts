// The OSB headers, as two hooks on either side of authentication: X-Broker-API-Request-Identity is echoed on
// every answer (401s included, so its hook comes first), X-Broker-API-Version is checked on authenticated /v2/
// requests (412, after authentication, so a stranger gets 401 whatever the header says) and
// X-Broker-API-Originating-Identity is bound into the request's log. Both with fastify-plugin, to cover every route.
import fp from 'fastify-plugin';
import { preconditionFailed } from '../errors';

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

/** Refuses /v2/ requests without a supported X-Broker-API-Version; logs the originating identity. */
export const apiVersionHeader = fp(
  async (app) => {
    app.addHook('onRequest', async (req) => {
      if (req.principal === undefined) return; // a public path
      const originating = req.headers['x-broker-api-originating-identity'];
      if (typeof originating === 'string') req.log = req.log.child({ originatingIdentity: originating.slice(0, 512) });
      if (!req.url.startsWith('/v2/')) return;
      const version = req.headers['x-broker-api-version'];
      const m = typeof version === 'string' ? /^2\.(\d{1,3})$/.exec(version.trim()) : null;
      if (!m || Number(m[1]) < MIN_MINOR) {
        throw preconditionFailed(
          `X-Broker-API-Version ${typeof version === 'string' ? `"${version.slice(0, 20)}" is not supported` : 'header is missing'}: this broker speaks 2.${MIN_MINOR} to 2.17`,
        );
      }
    });
  },
  { name: 'brokerflow-api-version', fastify: '5.x', dependencies: ['brokerflow-authentication'] },
);
