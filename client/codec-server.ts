// The codec server for the Temporal Web UI and CLI (`/encode`, `/decode`): it holds the same AES-GCM keys as
// worker and broker, so people allowed to call it can read encrypted payloads. Every call but CORS preflight
// and `/healthz` needs HTTP Basic or a bearer token (the broker's credentials).
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import cors from '@fastify/cors';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { createAuthenticator, type BrokerCredentials } from './broker/auth';

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

const fromJson = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});
const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

const payloadsBody = {
  type: 'object',
  required: ['payloads'],
  properties: {
    payloads: {
      type: 'array',
      maxItems: 10000,
      items: {
        type: 'object',
        properties: {
          metadata: { type: 'object', additionalProperties: { type: 'string' } },
          data: { type: 'string' },
        },
      },
    },
  },
} as const;

/** What the codec server is built from. */
export interface CodecServerOptions {
  codec: PayloadCodec;
  credentials: BrokerCredentials;
  /** Origins allowed to call from a browser (the Web UI's). */
  corsOrigins: string[];
  logger: FastifyBaseLogger;
}

export async function buildCodecServer(opts: CodecServerOptions): Promise<FastifyInstance> {
  const authenticate = createAuthenticator(opts.credentials);
  const app = Fastify({ loggerInstance: opts.logger, bodyLimit: 16 * 1024 * 1024, logController: new LogController({ disableRequestLogging: true }) });
  await app.register(cors, {
    origin: opts.corsOrigins,
    credentials: true,
    methods: ['POST', 'OPTIONS'],
    allowedHeaders: ['Content-Type', 'Authorization', 'X-Namespace'],
  });
  app.addHook('onRequest', async (req, reply) => {
    if (req.method === 'OPTIONS' || req.url === '/healthz') return;
    if (!authenticate(req)) {
      void reply.header('WWW-Authenticate', 'Basic realm="brokerflow codec"');
      return reply.code(401).send({ message: 'authentication required' });
    }
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  for (const op of ['encode', 'decode'] as const) {
    app.post<{ Body: { payloads: JsonPayload[] } }>(`/${op}`, { schema: { body: payloadsBody } }, async (req, reply) => {
      try {
        const out = await opts.codec[op](req.body.payloads.map(fromJson));
        return { payloads: out.map(toJson) };
      } catch (err) {
        // Never echo payload contents; the message names the key problem only.
        return reply.code(400).send({ message: (err as Error).message });
      }
    });
  }
  return app;
}
