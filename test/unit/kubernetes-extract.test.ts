// Extraction of registry data from Kubernetes objects: endpoints per (IP × port), their names, when a
// service is to be removed, the annotation allowlist and the namespace watch label. Pure functions: no server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Namespace, V1Service } from '@kubernetes/client-node';
import { ValidationError } from '../../adapters/errors';
import {
  AnnotationAllowlist,
  endpointName,
  extractServiceData,
  isNamespaceWatched,
  serviceIPs,
  watchLabelKey,
  type KubeNamespace,
  type KubeService,
} from '../../adapters/kubernetes';
import { NoEndpointsError, ServiceNoMetadataError } from '../../adapters/service-registries';

const shop: KubeNamespace = { metadata: { name: 'shop', annotations: { 'example.com/team': 'payments', 'kubectl.kubernetes.io/x': 'y' } } };

function service(overrides: Partial<{ annotations: Record<string, string>; externalIPs: string[]; ingress: Array<{ ip?: string; hostname?: string }>; ports: number[] }> = {}): KubeService {
  return {
    metadata: { name: 'web', namespace: 'shop', annotations: overrides.annotations ?? { 'example.com/tier': 'front', 'other.io/x': '1' } },
    spec: { externalIPs: overrides.externalIPs ?? ['203.0.113.10'], ports: (overrides.ports ?? [80, 443]).map((port) => ({ port, protocol: 'TCP' })) },
    status: { loadBalancer: { ingress: overrides.ingress ?? [{ ip: '198.51.100.7' }] } },
  };
}

test('a V1Service and a V1Namespace of the Kubernetes client are accepted as they are', () => {
  const svc: V1Service = { metadata: { name: 'web', namespace: 'shop', annotations: { 'example.com/a': 'b' } }, spec: { ports: [{ port: 80 }], externalIPs: ['10.0.0.1'] } };
  const ns: V1Namespace = { metadata: { name: 'shop' } };
  assert.equal(extractServiceData(ns, svc, { allowedAnnotations: ['*/*'] }).action, 'register');
});

test('an endpoint is named <service>-<first 10 hex of sha256("<ip>-<port>")>', () => {
  assert.equal(endpointName('web', '203.0.113.10', 80), 'web-8294c174cf');
  assert.equal(endpointName('web', '203.0.113.10', 443), 'web-3c7649d50c');
  assert.equal(endpointName('web', '198.51.100.7', 80), 'web-92b7cdd0c3');
});

test('one endpoint per IP and port: external IPs first, then load-balancer ingress IPs', () => {
  const got = extractServiceData(shop, service(), { allowedAnnotations: ['example.com/*'] });
  assert.equal(got.action, 'register');
  if (got.action !== 'register') return;
  assert.deepEqual(got.namespace, { name: 'shop', metadata: { 'example.com/team': 'payments' } });
  assert.deepEqual(got.service, { name: 'web', namespace: 'shop', metadata: { 'example.com/tier': 'front' } });
  assert.deepEqual(
    got.endpoints.map((e) => [e.name, e.address, e.port]),
    [
      ['web-8294c174cf', '203.0.113.10', 80],
      ['web-92b7cdd0c3', '198.51.100.7', 80],
      ['web-3c7649d50c', '203.0.113.10', 443],
      [endpointName('web', '198.51.100.7', 443), '198.51.100.7', 443],
    ],
  );
  for (const e of got.endpoints) {
    assert.equal(e.namespace, 'shop');
    assert.equal(e.service, 'web');
    assert.deepEqual(e.metadata, {});
  }
});

test('an IP listed twice, a port exposed over two protocols and hostname-only ingresses give no duplicate endpoints', () => {
  const svc = service({ externalIPs: ['203.0.113.10', '203.0.113.10'], ingress: [{ ip: '203.0.113.10' }, { hostname: 'lb.example.com' }], ports: [80, 80] });
  assert.deepEqual(serviceIPs(svc), ['203.0.113.10']);
  const got = extractServiceData(shop, svc, { allowedAnnotations: ['*/*'] });
  assert.equal(got.action === 'register' && got.endpoints.length, 1);
});

test('a service with no IP or no port is to be removed from the registry: no endpoints', () => {
  for (const svc of [service({ externalIPs: [], ingress: [] }), service({ ports: [] }), service({ externalIPs: [], ingress: [{ hostname: 'lb.example.com' }] })]) {
    const got = extractServiceData(shop, svc, { allowedAnnotations: ['*/*'] });
    assert.equal(got.action, 'remove');
    assert.ok(got.action === 'remove' && got.reason instanceof NoEndpointsError);
    assert.deepEqual(got.action === 'remove' && [got.namespace, got.service], ['shop', 'web']);
  }
});

test('a service with no allowed annotation is to be removed from the registry: no metadata', () => {
  for (const allowed of [[], ['example.com/team'], ['nothing.io/*']]) {
    const got = extractServiceData(shop, service(), { allowedAnnotations: allowed });
    assert.ok(got.action === 'remove' && got.reason instanceof ServiceNoMetadataError, JSON.stringify(allowed));
  }
  const bare = extractServiceData(shop, service({ annotations: {} }), { allowedAnnotations: ['*/*'] });
  assert.ok(bare.action === 'remove' && bare.reason instanceof ServiceNoMetadataError);
});

test('the annotation allowlist supports */*, exact keys, prefix/* and */name', () => {
  const annotations = { 'example.com/tier': 'a', 'example.com/team': 'b', 'other.io/tier': 'c', 'other.io/x': 'd', plain: 'e', 'a.io/b.io/c': 'f' };
  const pick = (entries: string[]) => Object.keys(new AnnotationAllowlist(entries).filter(annotations)).sort();
  assert.deepEqual(pick(['*/*']), Object.keys(annotations).sort());
  assert.deepEqual(pick(['example.com/team', 'plain']), ['example.com/team', 'plain']);
  assert.deepEqual(pick(['example.com/*']), ['example.com/team', 'example.com/tier']);
  assert.deepEqual(pick(['*/tier']), ['example.com/tier', 'other.io/tier']);
  assert.deepEqual(pick(['*/tier', 'other.io/*']), ['example.com/tier', 'other.io/tier', 'other.io/x']);
  assert.deepEqual(pick(['*/plain', 'plain/*']), [], 'wildcards only match prefix/name keys');
  assert.deepEqual(pick([]), []);
});

test('a malformed allowlist entry is a validation error naming it', () => {
  for (const bad of ['*', '', 'a/b/c', '**/x', 'a*/b', '*/*/x', ' a/b', 'a/b\n']) {
    assert.throws(() => new AnnotationAllowlist([bad]), (e: unknown) => e instanceof ValidationError && e.message.includes(JSON.stringify(bad)), JSON.stringify(bad));
  }
});

test('names that are not safe registry names are rejected before extraction', () => {
  assert.throws(() => extractServiceData({ metadata: { name: '../etc' } }, service(), { allowedAnnotations: ['*/*'] }), ValidationError);
  assert.throws(() => extractServiceData(shop, { ...service(), metadata: { name: 'a/b', namespace: 'shop' } }, { allowedAnnotations: ['*/*'] }), ValidationError);
  assert.throws(() => extractServiceData({ metadata: { name: 'other' } }, service(), { allowedAnnotations: ['*/*'] }), ValidationError, 'service from another namespace');
});

test('the namespace label <prefix>/watch=enabled|disabled overrides the default', () => {
  const ns = (value?: string): KubeNamespace => ({ metadata: { name: 'shop', labels: value === undefined ? {} : { 'brokerflow.io/watch': value } } });
  for (const watchByDefault of [true, false]) {
    assert.equal(isNamespaceWatched(ns('enabled'), { watchByDefault }), true);
    assert.equal(isNamespaceWatched(ns('disabled'), { watchByDefault }), false);
    assert.equal(isNamespaceWatched(ns(), { watchByDefault }), watchByDefault);
    assert.equal(isNamespaceWatched(ns('yes'), { watchByDefault }), watchByDefault, 'other values leave the default');
  }
  const custom = { metadata: { name: 'shop', labels: { 'operator.example.com/watch': 'disabled', 'brokerflow.io/watch': 'enabled' } } };
  assert.equal(isNamespaceWatched(custom, { labelPrefix: 'operator.example.com', watchByDefault: true }), false);
  assert.equal(watchLabelKey('operator.example.com'), 'operator.example.com/watch');
  assert.throws(() => watchLabelKey('Bad_Prefix/'), ValidationError);
});
