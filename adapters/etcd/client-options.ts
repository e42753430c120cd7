// How brokerflow builds an etcd3 client: a deadline on every call, quick reconnects, and fault handling that
// runs each call once, because retrying is the caller's policy (docs/design/architecture.md#design-rules:
// retries are policy). The datastore and the tenant etcd drivers both connect this way.
import type { IOptions } from 'etcd3';

/** PEM material for `https://` endpoints. */
export interface EtcdTls {
  caCert: string | Buffer;
  clientCert?: string | Buffer;
  clientKey?: string | Buffer;
}

/** What a connection to an etcd cluster needs, already validated by the caller. */
export interface EtcdConnection {
  /** Client URLs, e.g. `http://127.0.0.1:2379`. */
  endpoints: string[];
  auth?: { username: string; password: string };
  tls?: EtcdTls;
  /** Deadline of each call in ms, connecting included (etcd3 1.1.2 ignores its own dialTimeout). Watches have none. */
  timeoutMs: number;
  /** grpc channel options on top of the reconnect backoff. */
  grpcOptions?: IOptions['grpcOptions'];
}

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/**
 * A policy that runs the call once. etcd3's default per-host circuit breaker holds every call back for 5 s after
 * three failures, which only delays recovery after an etcd restart; failures surface at once and retrying is the
 * caller's policy.
 */
function runOnce(): Policy {
  const noEvent = () => ({ dispose: () => undefined });
  const policy = {
    onSuccess: noEvent,
    onFailure: noEvent,
    execute: <T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> =>
      Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal })),
  };
  return policy as unknown as Policy;
}

/** True for a non-empty list of `http(s)://host:port` URLs. */
export function isEtcdEndpointList(endpoints: unknown): endpoints is string[] {
  return (
    Array.isArray(endpoints) &&
    endpoints.length > 0 &&
    endpoints.every((e) => typeof e === 'string' && /^https?:\/\/[^/\s]+$/.test(e))
  );
}

/** The etcd3 client options for a connection. */
export function etcdClientOptions(c: EtcdConnection): IOptions {
  const options: IOptions = {
    hosts: c.endpoints,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + c.timeoutMs }),
    grpcOptions: {
      ...c.grpcOptions,
      // Reconnect quickly once etcd is back instead of backing off for up to two minutes.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 2_000,
    },
    faultHandling: {
      host: () => runOnce(),
      // With several endpoints keep etcd3's default (retry recoverable errors up to 3 times): that is how it
      // fails over to another member. With one there is nothing to fail over to.
      ...(c.endpoints.length === 1 ? { global: runOnce() } : {}),
    },
  };
  if (c.auth) options.auth = { username: c.auth.username, password: c.auth.password };
  if (c.tls) {
    options.credentials = {
      rootCertificate: Buffer.from(c.tls.caCert),
      ...(c.tls.clientKey ? { privateKey: Buffer.from(c.tls.clientKey) } : {}),
      ...(c.tls.clientCert ? { certChain: Buffer.from(c.tls.clientCert) } : {}),
    };
  }
  return options;
}

/**
 * Whether etcd refused a call because users or roles changed between authorising it and applying it
 * ("revision of auth store is old", sent as InvalidArgument). etcd refuses such a call as a whole, unapplied.
 */
export function isAuthRevisionRace(err: unknown): boolean {
  return err instanceof Error && /revision of auth store is old/.test(err.message);
}

/** How often {@link repeatingAuthRaces} runs a call that keeps losing that race. */
export const AUTH_RACE_ATTEMPTS = 5;

/**
 * Runs an etcd call, repeating it at once while etcd refuses it because the auth store changed meanwhile, as
 * etcd's own Go client does. This is no retry of a failure (retries stay the caller's policy): nothing was
 * applied and etcd is answering; on a cluster where binds create users and roles it happens to a good share of
 * the writes made meanwhile, and leaving each to an activity's backoff cost seconds per operation. A call that
 * loses the race every time is passed on as it is.
 */
export async function repeatingAuthRaces<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= AUTH_RACE_ATTEMPTS || !isAuthRevisionRace(err)) throw err;
    }
  }
}
