// An HTTP proxy in front of moto that throttles the way AWS APIs do: a token bucket per proxy (burst `burst`,
// refilled at `perSecond`), and a request that finds it empty is answered 400 ThrottlingException in the AWS
// JSON protocol instead of being forwarded. moto itself never throttles, so without this a test of a client-side
// rate budget could not fail.
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ThrottlingProxy {
  endpoint: string;
  /** Requests forwarded to moto. */
  forwarded: number;
  /** Requests answered with ThrottlingException. */
  throttled: number;
  close(): Promise<void>;
}

export async function startThrottlingProxy(target: string, opts: { perSecond: number; burst: number }): Promise<ThrottlingProxy> {
  const upstream = new URL(target);
  let tokens = opts.burst;
  let last = performance.now();
  const take = (): boolean => {
    const now = performance.now();
    tokens = Math.min(opts.burst, tokens + ((now - last) / 1000) * opts.perSecond);
    last = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
  const state = { forwarded: 0, throttled: 0 };
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (!take()) {
        state.throttled++;
        const body = JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' });
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': 'ThrottlingException' });
        res.end(body);
        return;
      }
      state.forwarded++;
      const out = httpRequest(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      out.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      out.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get forwarded() {
      return state.forwarded;
    },
    get throttled() {
      return state.throttled;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
