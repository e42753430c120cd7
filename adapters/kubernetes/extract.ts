// From a Kubernetes Service to what the service registry should hold (the original ExtractData;
// docs/design/contracts/endpoint-reconciliation.md#extraction), as pure functions: one endpoint per (IP × port),
// the IPs being the service's external IPs followed by its load-balancer ingress IPs; a service with no allowed
// annotation or no endpoint is to be removed.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { ValidationError } from '../errors';
import { NoEndpointsError, ServiceNoMetadataError } from '../service-registries/errors';
import type { Endpoint, Namespace, Service } from '../service-registries/types';
import { validateName } from '../service-registries/validation';
import { AnnotationAllowlist } from './annotations';
import type { KubeNamespace, KubeService } from './types';

/** What to do with a Kubernetes service in the registry. */
export type ServiceExtraction =
  | { action: 'register'; namespace: Namespace; service: Service; endpoints: Endpoint[] }
  | { action: 'remove'; namespace: string; service: string; reason: ServiceNoMetadataError | NoEndpointsError };

/** `<service>-<first 10 hex digits of sha256("<ip>-<port>")>`: stable, and new when the IP or port changes. */
export function endpointName(serviceName: string, ip: string, port: number): string {
  const hash = createHash('sha256').update(`${ip}-${port}`).digest('hex');
  return `${serviceName}-${hash.slice(0, 10)}`;
}

/** The service's IPs: external IPs, then load-balancer ingress IPs; duplicates and non-IPs dropped. */
export function serviceIPs(svc: KubeService): string[] {
  // Ingress entries with only a hostname are skipped: resolving names is I/O, not extraction.
  const candidates = [...(svc.spec?.externalIPs ?? []), ...(svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '')];
  return [...new Set(candidates.filter((ip) => isIP(ip) !== 0))];
}

/**
 * Extracts the namespace, service and endpoints to register for `svc`, or says it must be removed.
 * Service and namespace metadata are their annotations filtered by the allowlist; endpoints carry no
 * metadata of their own (the Broker adds the owner pair). Ports are the outer loop, IPs the inner one.
 */
export function extractServiceData(
  ns: KubeNamespace,
  svc: KubeService,
  opts: { allowedAnnotations: AnnotationAllowlist | readonly string[] },
): ServiceExtraction {
  const allowlist = opts.allowedAnnotations instanceof AnnotationAllowlist ? opts.allowedAnnotations : new AnnotationAllowlist(opts.allowedAnnotations);
  const nsName = validateName('namespace', ns.metadata?.name);
  const servName = validateName('service', svc.metadata?.name);
  if (svc.metadata?.namespace !== undefined && svc.metadata.namespace !== nsName) {
    throw new ValidationError(`service ${servName} is in namespace ${svc.metadata.namespace}, not ${nsName}`, 'service.namespace');
  }
  const path = `${nsName}/${servName}`;

  const metadata = allowlist.filter(svc.metadata?.annotations);
  if (Object.keys(metadata).length === 0) {
    return { action: 'remove', namespace: nsName, service: servName, reason: new ServiceNoMetadataError(path) };
  }

  const ips = serviceIPs(svc);
  const ports = [...new Set((svc.spec?.ports ?? []).map((p) => p.port).filter((p) => Number.isInteger(p) && p >= 1 && p <= 65535))];
  const endpoints: Endpoint[] = [];
  for (const port of ports) {
    for (const address of ips) {
      endpoints.push({ name: endpointName(servName, address, port), namespace: nsName, service: servName, address, port, metadata: {} });
    }
  }
  if (endpoints.length === 0) {
    return { action: 'remove', namespace: nsName, service: servName, reason: new NoEndpointsError(path) };
  }
  return {
    action: 'register',
    namespace: { name: nsName, metadata: allowlist.filter(ns.metadata?.annotations) },
    service: { name: servName, namespace: nsName, metadata },
    endpoints,
  };
}
