// Authentication of platform requests: HTTP Basic (users from config) and optional bearer tokens, compared in
// constant time so a wrong credential takes as long to refuse as a nearly right one.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';

/** Who a request authenticated as (never the secret itself). */
export interface Principal {
  kind: 'basic' | 'bearer';
  name: string;
}

/** Credentials the broker accepts, already resolved from their secret sources. */
export interface BrokerCredentials {
  basic: Array<{ username: string; password: string }>;
  bearerTokens: string[];
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time equality of two strings of any length (compares fixed-size digests). */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** Builds the authenticator; every configured credential is compared, so timing does not depend on which matched. */
export function createAuthenticator(creds: BrokerCredentials): (req: FastifyRequest) => Principal | undefined {
  const basic = creds.basic.map((c) => ({ username: c.username, expected: `${c.username}:${c.password}` }));
  return (req) => {
    const header = req.headers.authorization;
    if (typeof header !== 'string') return undefined;
    const space = header.indexOf(' ');
    const scheme = header.slice(0, space).toLowerCase();
    const value = header.slice(space + 1).trim();
    if (space <= 0 || !value) return undefined;
    let found: Principal | undefined;
    if (scheme === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      for (const c of basic) if (safeEqual(decoded, c.expected) && !found) found = { kind: 'basic', name: c.username };
    } else if (scheme === 'bearer') {
      creds.bearerTokens.forEach((t, i) => {
        if (safeEqual(value, t) && !found) found = { kind: 'bearer', name: `token-${i}` };
      });
    }
    return found;
  };
}
