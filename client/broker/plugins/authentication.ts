// Authentication of every request but those to public paths, as the first hook after the request identity:
// 401 with a Basic challenge unless a configured credential matches (`../auth.ts` compares them in constant
// time). The principal is decorated on the request and bound into its log. Registered with fastify-plugin so
// that the hook guards every route of the app.
import fp from 'fastify-plugin';
import { createAuthenticator, type BrokerCredentials, type Principal } from '../auth';
import { unauthorized } from '../errors';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who the request authenticated as; undefined on a public path. */
    principal?: Principal;
  }
}

/** Whom to let in, and the paths anyone may read. */
export interface AuthenticationOptions {
  credentials: BrokerCredentials;
  publicPaths: readonly string[];
}

export const authentication = fp<AuthenticationOptions>(
  async (app, opts) => {
    const authenticate = createAuthenticator(opts.credentials);
    const publicPaths = new Set(opts.publicPaths);
    app.decorateRequest('principal', undefined);
    app.addHook('onRequest', async (req, reply) => {
      if (publicPaths.has(req.url.split('?')[0] ?? '')) return;
      const principal = authenticate(req);
      if (!principal) {
        void reply.header('WWW-Authenticate', 'Basic realm="brokerflow"');
        throw unauthorized();
      }
      req.principal = principal;
      req.log = req.log.child({ principal: principal.name });
    });
  },
  { name: 'brokerflow-authentication', fastify: '5.x' },
);
