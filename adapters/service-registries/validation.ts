// Checks every name, address and metadata map before it becomes an etcd key or a cloud resource name, so
// bad input fails with a ValidationError before any I/O (no `..`, no `/`, no control characters, bounded).
import { isIP } from 'node:net';
import { ValidationError } from '../errors';
import {
  EndpointNameNotProvidedError,
  EndpointNotProvidedError,
  NamespaceNameNotProvidedError,
  NamespaceNotProvidedError,
  ServiceNameNotProvidedError,
  ServiceNotProvidedError,
  type RegistryLevel,
} from './errors';
import type { Endpoint, Metadata, Namespace, Service } from './types';

/** Longest accepted name: a DNS name; every backend has its own, usually shorter, limit on top. */
export const maxNameLength = 253;
/** Longest accepted metadata key: a Kubernetes annotation key (253-char prefix, `/`, 63-char name). */
export const maxMetadataKeyLength = 317;
/** Longest accepted metadata value. */
export const maxMetadataValueLength = 64 * 1024;

// Letters, digits, `.`, `_`, `-`; starting and ending with a letter or digit, so `.`, `..` and `-x` are out.
const namePattern = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const controlChars = /[\u0000-\u001f\u007f]/;

const emptyNameErrors: Record<RegistryLevel, () => ValidationError> = {
  namespace: () => new NamespaceNameNotProvidedError(),
  service: () => new ServiceNameNotProvidedError(),
  endpoint: () => new EndpointNameNotProvidedError(),
};

/**
 * Throws the empty-name error of the error set (docs/design/contracts/service-registries.md#error-set) for an
 * empty name and a ValidationError for any unsafe one.
 */
export function validateName(level: RegistryLevel, name: unknown): string {
  if (name === undefined || name === null || name === '') throw emptyNameErrors[level]();
  if (typeof name !== 'string') throw new ValidationError(`${level} name must be a string`, `${level}.name`);
  if (name.length > maxNameLength) {
    throw new ValidationError(`${level} name is longer than ${maxNameLength} characters`, `${level}.name`);
  }
  if (!namePattern.test(name) || name.includes('..')) {
    throw new ValidationError(
      `${level} name ${JSON.stringify(name)} is not valid: use letters, digits, '.', '_' and '-', starting and ending with a letter or digit`,
      `${level}.name`,
    );
  }
  return name;
}

/** Throws a ValidationError unless metadata is a map of bounded strings with printable keys. */
export function validateMetadata(level: RegistryLevel, metadata: unknown): Metadata {
  if (metadata === undefined || metadata === null) return {};
  if (typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new ValidationError(`${level} metadata must be a map of strings`, `${level}.metadata`);
  }
  const out: Metadata = {};
  for (const [key, value] of Object.entries(metadata as Record<string, unknown>)) {
    if (key === '' || key.length > maxMetadataKeyLength || controlChars.test(key)) {
      throw new ValidationError(
        `${level} metadata key ${JSON.stringify(key.slice(0, 64))} is empty, too long or has control characters`,
        `${level}.metadata`,
      );
    }
    if (typeof value !== 'string' || value.length > maxMetadataValueLength || value.includes('\u0000')) {
      throw new ValidationError(`${level} metadata value of ${JSON.stringify(key)} must be a string without NUL, at most 64 KiB`, `${level}.metadata`);
    }
    out[key] = value;
  }
  return out;
}

/** Validates a namespace and returns a clean copy (metadata always present). */
export function validateNamespace(ns: Namespace | null | undefined): Namespace {
  if (!ns) throw new NamespaceNotProvidedError();
  return { name: validateName('namespace', ns.name), metadata: validateMetadata('namespace', ns.metadata) };
}

/** Validates a service and returns a clean copy. */
export function validateService(serv: Service | null | undefined): Service {
  if (!serv) throw new ServiceNotProvidedError();
  return {
    name: validateName('service', serv.name),
    namespace: validateName('namespace', serv.namespace),
    metadata: validateMetadata('service', serv.metadata),
  };
}

/** Throws a ValidationError unless address is an IPv4 or IPv6 address. */
export function validateAddress(address: unknown): string {
  if (typeof address !== 'string' || isIP(address) === 0) {
    throw new ValidationError(`endpoint address ${JSON.stringify(String(address).slice(0, 64))} is not an IPv4 or IPv6 address`, 'endpoint.address');
  }
  return address;
}

/** Throws a ValidationError unless port is an integer in 1..65535. */
export function validatePort(port: unknown): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ValidationError(`endpoint port ${String(port)} is not an integer in 1..65535`, 'endpoint.port');
  }
  return port;
}

/** Validates an endpoint and returns a clean copy. */
export function validateEndpoint(endp: Endpoint | null | undefined): Endpoint {
  if (!endp) throw new EndpointNotProvidedError();
  return {
    name: validateName('endpoint', endp.name),
    namespace: validateName('namespace', endp.namespace),
    service: validateName('service', endp.service),
    address: validateAddress(endp.address),
    port: validatePort(endp.port),
    metadata: validateMetadata('endpoint', endp.metadata),
  };
}

/** `ns`, `ns/serv` or `ns/serv/endp`: how errors name an object. */
export function pathOf(...names: string[]): string {
  return names.join('/');
}
