// Cloud Map's rate limits: N services × 10 endpoints registered through the Broker into AWS Cloud Map (moto behind
// a proxy that throttles as AWS does: a token bucket of 60 calls, refilled at 60 a second, answering
// ThrottlingException beyond it), 8 services at once as the endpoint workflows would. brokerflow runs with its
// default client-side budget (50 calls a second); the baseline is the same client with the budget off. Figures:
// throttling answers, endpoints not registered, and the time to register everything that was. Sizes: 10 services
// quick, 40 full, times --scale.
import { randomBytes } from 'node:crypto';
import {
  CloudMapServiceRegistry,
  cloudMapDefaultCallsPerSecond,
  ServiceRegistryBroker,
  type CallObserver,
  type Endpoint,
} from '../adapters/service-registries';
import { startThrottlingProxy } from '../test/support/aws-throttling-proxy';
import { mapLimited } from '../adapters/service-registries/concurrency';
import { row, type BenchContext, type BenchRow, type Benchmark } from './harness';

/** The API limit the proxy keeps, a little above the default budget as a real account's would be. */
export const API_CALLS_PER_SECOND = 60;
export const CASE = `register N services × 10 endpoints, API limit ${API_CALLS_PER_SECOND} calls/s`;

async function registerAll(motoEndpoint: string, services: number, callsPerSecond: number): Promise<{ throttled: number; failed: number; seconds: number; calls: number }> {
  const proxy = await startThrottlingProxy(motoEndpoint, { perSecond: API_CALLS_PER_SECOND, burst: API_CALLS_PER_SECOND });
  const counts = { calls: 0, throttled: 0 };
  const observer: CallObserver = { called: () => void counts.calls++, throttled: () => void counts.throttled++ };
  const clientConfig = { endpoint: proxy.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };
  // Namespaces and services are set up directly (not through the proxy): the figure is about endpoints.
  const setup = new CloudMapServiceRegistry({ clientConfig: { ...clientConfig, endpoint: motoEndpoint }, pollIntervalMs: 50, callsPerSecond: 10_000 });
  const reg = new CloudMapServiceRegistry({ clientConfig, pollIntervalMs: 50, callsPerSecond, observer });
  const ns = `bench-cm-${randomBytes(4).toString('hex')}`;
  const names = Array.from({ length: services }, (_, i) => `svc-${i}`);
  let failed = 0;
  try {
    const setupBroker = new ServiceRegistryBroker(setup);
    await setupBroker.manageNs({ name: ns, metadata: {} });
    await mapLimited(names, 8, async (s) => void (await setupBroker.manageServ({ name: s, namespace: ns, metadata: {} })));
    const broker = new ServiceRegistryBroker(reg);
    const t0 = performance.now();
    await mapLimited(names, 8, async (s) => {
      const endpoints: Endpoint[] = Array.from({ length: 10 }, (_, k) => ({ name: `e${k}`, namespace: ns, service: s, address: `10.1.${names.indexOf(s)}.${k + 1}`, port: 8080, metadata: {} }));
      // Awaited first, then added: `failed += await ...` would read `failed` before the await and lose updates.
      const errors = await broker.manageServEndps(ns, s, endpoints).then(
        (errs) => errs.size,
        () => endpoints.length, // the listing itself was refused: nothing of this service was registered
      );
      failed += errors;
    });
    const seconds = (performance.now() - t0) / 1000;
    if (proxy.throttled !== counts.throttled) throw new Error(`the proxy throttled ${proxy.throttled} calls, the client counted ${counts.throttled}`);
    return { throttled: counts.throttled, failed, seconds, calls: counts.calls };
  } finally {
    await new ServiceRegistryBroker(setup).removeNs(ns, true).catch(() => undefined);
    await Promise.all([reg.close(), setup.close(), proxy.close()]);
  }
}

export const benchmark: Benchmark = {
  name: 'cloudmap-budget',
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const services = Math.max(1, Math.round((ctx.quick ? 10 : 40) * ctx.scale));
    const kase = CASE.replace('N', String(services));
    const samples = { brokerflow: [] as Array<Awaited<ReturnType<typeof registerAll>>>, baseline: [] as Array<Awaited<ReturnType<typeof registerAll>>> };
    for (let r = 0; r < ctx.runs; r++) {
      // Alternate the order so neither always meets a warmer moto.
      const order = r % 2 ? (['baseline', 'brokerflow'] as const) : (['brokerflow', 'baseline'] as const);
      for (const subject of order) samples[subject].push(await registerAll(ctx.motoEndpoint, services, subject === 'brokerflow' ? cloudMapDefaultCallsPerSecond : 10_000));
    }
    return (['brokerflow', 'baseline'] as const).flatMap((subject) => [
      row({ benchmark: 'cloudmap-budget', case: kase, subject, metric: 'throttling answers', unit: 'count' }, samples[subject].map((s) => s.throttled)),
      row({ benchmark: 'cloudmap-budget', case: kase, subject, metric: 'endpoints not registered', unit: 'count' }, samples[subject].map((s) => s.failed)),
      row({ benchmark: 'cloudmap-budget', case: kase, subject, metric: 'API calls', unit: 'count' }, samples[subject].map((s) => s.calls)),
      row({ benchmark: 'cloudmap-budget', case: kase, subject, metric: 'time to register', unit: 's' }, samples[subject].map((s) => s.seconds)),
    ]);
  },
};
