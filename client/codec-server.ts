// The codec server for the Temporal Web UI and CLI (`/encode`, `/decode`): it holds the same AES-GCM keys as
// worker and broker, so whoever may call it reads every payload of every tenant. Hence it has credentials of its
// own (`codecServer.auth`), for the operators who may read payloads, distinct from the OSB platform credentials
// (`broker.auth`), and it answers only for the Temporal namespaces it is configured for (`X-Namespace`, which the
// Web UI and the CLI send). Every call but CORS preflight and `/healthz` needs one of those credentials.
// See docs/design/contracts/configuration.md#codec-server.
import { resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import cors from '@fastify/cors';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { ConfigError } from '../config/catalog';
import { resolveSecret, type RuntimeConfig, type SecretSource } from '../config/runtime';
import { temporalSettings } from '../platform/temporal';
import { createAuthenticator, safeEqual, type BrokerCredentials } from './broker/auth';

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

/** Who may call the codec server, and for which Temporal namespaces (the `X-Namespace` header). */
export interface CodecAccess {
  /** The codec server's own credentials (`codecServer.auth`); never the broker's. */
  credentials: BrokerCredentials;
  /** The namespaces whose payloads may be decoded or encoded here. */
  namespaces: string[];
}

/** A secret of `broker.auth`, with its field name, to tell whether a codec credential reuses it. */
function brokerSecrets(cfg: RuntimeConfig): Array<{ field: string; source: SecretSource }> {
  const auth = cfg.broker?.auth;
  return [
    ...(auth?.basic ?? []).map((b, i) => ({ field: `broker.auth.basic[${i}].password`, source: b.password })),
    ...(auth?.bearerTokens ?? []).map((t, i) => ({ field: `broker.auth.bearerTokens[${i}]`, source: t })),
  ];
}

const sameSource = (a: SecretSource, b: SecretSource, baseDir: string): boolean =>
  typeof a === 'object' && typeof b === 'object' && 'file' in a && 'file' in b ? resolve(baseDir, a.file) === resolve(baseDir, b.file) : isDeepStrictEqual(a, b);

/**
 * Resolves `codecServer.auth` and `codecServer.namespaces`. A codec server without credentials of its own refuses
 * to start, and so does one whose secret is also a broker secret (the same reference, or the same value where the
 * broker's secret is readable here): a platform that may call the OSB API must not read every payload. Errors
 * name the field, never a value.
 */
export function codecAccess(cfg: RuntimeConfig): CodecAccess {
  const auth = cfg.codecServer?.auth;
  const own = [
    ...(auth?.basic ?? []).map((b, i) => ({ field: `codecServer.auth.basic[${i}].password`, source: b.password })),
    ...(auth?.bearerTokens ?? []).map((t, i) => ({ field: `codecServer.auth.bearerTokens[${i}]`, source: t })),
  ];
  if (own.length === 0) {
    throw new ConfigError(
      'codecServer.auth: configure at least one basic user or bearer token of the codec server\'s own; it never runs unauthenticated and does not accept the broker\'s credentials',
      'codecServer.auth',
    );
  }
  const brokers = brokerSecrets(cfg);
  const reused = (o: { field: string }, b: { field: string }) =>
    new ConfigError(`${o.field}: the same secret as ${b.field}; the codec server needs credentials of its own, which OSB platforms do not hold`, o.field);
  for (const o of own) for (const b of brokers) if (sameSource(o.source, b.source, cfg.baseDir)) throw reused(o, b);
  const values = new Map(own.map((o) => [o.field, resolveSecret(o.source, o.field, cfg.baseDir)]));
  for (const b of brokers) {
    let brokerValue: string;
    try {
      brokerValue = resolveSecret(b.source, b.field, cfg.baseDir);
    } catch {
      continue; // not readable here (not mounted into the codec server): compared by reference above
    }
    for (const o of own) if (safeEqual(values.get(o.field)!, brokerValue)) throw reused(o, b);
  }
  return {
    credentials: {
      basic: (auth?.basic ?? []).map((b, i) => ({ username: b.username, password: values.get(`codecServer.auth.basic[${i}].password`)! })),
      bearerTokens: (auth?.bearerTokens ?? []).map((_, i) => values.get(`codecServer.auth.bearerTokens[${i}]`)!),
    },
    // By default the namespace brokerflow runs in (TEMPORAL_NAMESPACE overrides the file, as for worker and broker).
    namespaces: cfg.codecServer?.namespaces ?? [temporalSettings(cfg).namespace],
  };
}

/** What the codec server is built from. */
export interface CodecServerOptions extends CodecAccess {
  codec: PayloadCodec;
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
  const namespaces = new Set(opts.namespaces);
  app.addHook('onRequest', async (req, reply) => {
    if (req.method === 'OPTIONS' || req.url === '/healthz') return;
    if (!authenticate(req)) {
      void reply.header('WWW-Authenticate', 'Basic realm="brokerflow codec"');
      return reply.code(401).send({ message: 'authentication required' });
    }
  });
  // Payloads are served only for the namespaces configured; the Web UI and the CLI name theirs in X-Namespace.
  const namespaceServed = async (req: FastifyRequest, reply: FastifyReply) => {
    const namespace = req.headers['x-namespace'];
    if (typeof namespace !== 'string' || !namespaces.has(namespace)) {
      req.log.info({ principal: authenticate(req)?.name, namespace: typeof namespace === 'string' ? namespace.slice(0, 200) : undefined }, 'codec request refused: namespace not served');
      return reply.code(403).send({ message: 'this codec server does not serve the namespace named in X-Namespace' });
    }
  };
  app.get('/healthz', async () => ({ status: 'ok' }));
  for (const op of ['encode', 'decode'] as const) {
    app.post<{ Body: { payloads: JsonPayload[] } }>(`/${op}`, { schema: { body: payloadsBody }, onRequest: namespaceServed }, async (req, reply) => {
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
