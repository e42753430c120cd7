// Platforms and conformance checkers send `Content-Type: application/json` on DELETE (and GET) requests, which
// carry no body in OSB: serve them exactly like requests without the header. Other requests keep fastify's JSON
// parser, with its prototype-poisoning protection. Registered with fastify-plugin, as parsers are encapsulated.
import fp from 'fastify-plugin';

export const emptyJsonBodies = fp(
  async (app) => {
    const defaultJson = app.getDefaultJsonParser('error', 'error');
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
      if (body === '' && (req.method === 'DELETE' || req.method === 'GET')) {
        done(null, undefined);
        return;
      }
      void defaultJson(req, body as string, done);
    });
  },
  { name: 'brokerflow-empty-json-bodies', fastify: '5.x' },
);
