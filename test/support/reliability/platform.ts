// A platform as the reliability scenarios play it: sends OSB requests (in process through fastify's inject, or over
// loopback HTTP), polls last_operation and repeats a request until it is answered for good — what Cloud Foundry or
// the Kubernetes service catalog do after a timeout or an error.
import type { FastifyInstance } from 'fastify';
import { basicAuth } from '../config';
import { waitFor } from './inspect';

/** An OSB answer, or the lack of one (the connection died). */
export type Answer = { status: number; body: Record<string, unknown> } | { status: 'no answer'; error: string };
/** Sends one authenticated OSB request. */
export type Send = (method: 'GET' | 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown) => Promise<Answer>;

const headers = (body: unknown): Record<string, string> => ({
  authorization: basicAuth(),
  'x-broker-api-version': '2.17',
  ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
});

const parse = (text: string): Record<string, unknown> => {
  try {
    return text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    return { unparsable: text.slice(0, 200) };
  }
};

/** Sends through fastify's inject (no sockets). */
export function injectSender(app: FastifyInstance): Send {
  return async (method, url, body) => {
    const res = await app.inject({ method, url, headers: headers(body), ...(body !== undefined ? { payload: JSON.stringify(body) } : {}) });
    return { status: res.statusCode, body: parse(res.body) };
  };
}

/** Sends over HTTP to a broker listening at `base` (e.g. `http://127.0.0.1:8080`). */
export function httpSender(base: string, timeoutMs = 60_000): Send {
  return async (method, url, body) => {
    try {
      const res = await fetch(`${base}${url}`, {
        method,
        headers: headers(body),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
      return { status: res.status, body: parse(await res.text()) };
    } catch (err) {
      return { status: 'no answer', error: (err as Error).message };
    }
  };
}

/**
 * The state last_operation gives for an operation: its `state` (`failed: <description>` for a failure), `gone` for
 * 410, or `HTTP <code>`.
 */
export async function operationState(send: Send, path: string, operation?: string): Promise<string | undefined> {
  const r = await send('GET', `${path}/last_operation${operation ? `?operation=${encodeURIComponent(operation)}` : ''}`);
  if (r.status === 'no answer') return undefined;
  if (r.status === 410) return 'gone';
  if (r.status !== 200) return `HTTP ${r.status}`;
  return r.body.state === 'failed' ? `failed: ${String(r.body.description ?? '')}` : String(r.body.state);
}

/** Whether a final state from {@link settle} or {@link repeatUntilDone} is a failure. */
export const isFailure = (final: string): boolean => final.startsWith('failed');

/** Polls last_operation until the operation (or, without one, the latest) is no longer in progress. */
export async function settle(send: Send, path: string, operation?: string, timeoutMs = 120_000): Promise<string> {
  return waitFor(
    `last_operation of ${path}${operation ? ` (${operation})` : ''} to leave "in progress"`,
    async () => {
      const state = await operationState(send, path, operation);
      return state === undefined || state === 'in progress' ? undefined : state;
    },
    timeoutMs,
    300,
  );
}

/**
 * Repeats a request as a platform does until it is accepted (then polls it to its end) or answered as done.
 * Final: `succeeded` / `failed: …` / `gone` for accepted ones, `done` for 200/201, `gone` for 410.
 */
export async function repeatUntilDone(
  send: Send,
  req: { method: 'PUT' | 'PATCH' | 'DELETE'; url: string; path: string; body?: unknown },
): Promise<{ answers: string[]; final: string }> {
  const answers: string[] = [];
  for (let attempt = 0; attempt < 30; attempt++) {
    const res = await send(req.method, req.url, req.body);
    answers.push(String(res.status));
    if (res.status === 202) return { answers, final: await settle(send, req.path, String(res.body.operation)) };
    if (res.status === 200 || res.status === 201) return { answers, final: 'done' };
    if (res.status === 410) return { answers, final: 'gone' };
    if (res.status === 'no answer' || (res.status === 422 && res.body.error === 'ConcurrencyError')) {
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    return { answers, final: `HTTP ${res.status}: ${JSON.stringify(res.body).slice(0, 200)}` };
  }
  return { answers, final: 'gave up' };
}
