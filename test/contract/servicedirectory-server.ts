// An in-memory Google Cloud Service Directory (v1 RegistrationService) for contract tests. No emulator of
// Service Directory exists, so tests run the REAL `@google-cloud/service-directory` client against this
// gRPC server, loaded from the very .proto files that client package ships. It implements what the API
// reference and the proto comments document:
// - resource names `projects/*/locations/*/namespaces/*/services/*/endpoints/*`, IDs per RFC 1035;
// - create: parent must exist (NOT_FOUND), ID must be free (ALREADY_EXISTS);
// - get/update/delete of a missing resource: NOT_FOUND; malformed names: INVALID_ARGUMENT;
// - update: `update_mask` is required and only the named fields change (unknown fields: INVALID_ARGUMENT);
// - DeleteNamespace / DeleteService also delete everything below them (documented on the RPCs);
// - labels (namespaces) and annotations (services, endpoints) validated as documented: label keys/values,
//   annotation key format, 2000 / 512 characters in total; endpoint address IPv4/IPv6 (≤ 45), port 0..65535;
// - list: ordered by name, `page_size` / `page_token` pagination; a missing parent is NOT_FOUND.
// Not implemented (UNIMPLEMENTED): list `filter` / `order_by`, the IAM methods, the LookupService.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';

/** A running contract server. */
export interface ServiceDirectoryContractServer {
  host: string;
  port: number;
  /** Delay added before every answer (to exercise client deadlines). */
  latencyMs: number;
  /** How many RPCs each method received. */
  calls: Map<string, number>;
  stop(): Promise<void>;
}

interface Stored {
  name: string;
  uid: string;
}
interface NsRec extends Stored {
  labels: Record<string, string>;
}
interface SvcRec extends Stored {
  annotations: Record<string, string>;
}
interface EpRec extends Stored {
  address: string;
  port: number;
  annotations: Record<string, string>;
  network: string;
}

class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

const idPattern = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const seg = '([a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)';
const locationRe = /^projects\/([^/]+)\/locations\/([^/]+)$/;
const nsRe = new RegExp(`^projects/[^/]+/locations/[^/]+/namespaces/${seg}$`);
const svcRe = new RegExp(`^(projects/[^/]+/locations/[^/]+/namespaces/${seg})/services/${seg}$`);
const epRe = new RegExp(`^(projects/[^/]+/locations/[^/]+/namespaces/${seg}/services/${seg})/endpoints/${seg}$`);
const labelKey = /^[a-z][a-z0-9_-]{0,62}$/;
const labelValue = /^[a-z0-9_-]{0,63}$/;
const annotationName = /^[a-zA-Z0-9](?:[-_.a-zA-Z0-9]{0,61}[a-zA-Z0-9])?$/;
const dnsSubdomain = /^(?=.{1,253}$)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;
const defaultPageSize = 100;
const maxPageSize = 1000;

function loadRegistrationService(): grpc.ServiceDefinition {
  const sdPackage = dirname(require.resolve('@google-cloud/service-directory/package.json'));
  const gaxPackage = dirname(require.resolve('google-gax/package.json', { paths: [sdPackage] }));
  const def = protoLoader.loadSync('google/cloud/servicedirectory/v1/registration_service.proto', {
    includeDirs: [join(sdPackage, 'build', 'protos'), join(gaxPackage, 'build', 'protos')],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(def) as unknown as {
    google: { cloud: { servicedirectory: { v1: { RegistrationService: grpc.ServiceClientConstructor } } } };
  };
  return loaded.google.cloud.servicedirectory.v1.RegistrationService.service;
}

/** Starts the contract server on a free loopback port. */
export async function startServiceDirectoryContractServer(): Promise<ServiceDirectoryContractServer> {
  const namespaces = new Map<string, NsRec>();
  const services = new Map<string, SvcRec>();
  const endpoints = new Map<string, EpRec>();
  const server = new grpc.Server();
  const state: ServiceDirectoryContractServer = {
    host: '127.0.0.1',
    port: 0,
    latencyMs: 0,
    calls: new Map(),
    stop: () =>
      new Promise<void>((res) => {
        server.tryShutdown(() => res());
      }),
  };

  type Req = Record<string, unknown>;
  const unary =
    (method: string, fn: (req: Req) => unknown) =>
    (call: grpc.ServerUnaryCall<Req, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      state.calls.set(method, (state.calls.get(method) ?? 0) + 1);
      const answer = () => {
        try {
          callback(null, fn(call.request));
        } catch (err) {
          if (err instanceof RpcError) callback({ code: err.code, details: err.message });
          else callback({ code: grpc.status.INTERNAL, details: String(err) });
        }
      };
      if (state.latencyMs > 0) setTimeout(answer, state.latencyMs);
      else answer();
    };

  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  const map = (v: unknown): Record<string, string> => ({ ...((v ?? {}) as Record<string, string>) });
  const must = (cond: boolean, message: string): void => {
    if (!cond) throw new RpcError(grpc.status.INVALID_ARGUMENT, message);
  };
  const notFound = (what: string, name: string): never => {
    throw new RpcError(grpc.status.NOT_FOUND, `${what} ${name} not found`);
  };

  const checkLabels = (labels: Record<string, string>): void => {
    must(Object.keys(labels).length <= 64, 'no more than 64 labels');
    for (const [k, v] of Object.entries(labels)) {
      must(labelKey.test(k), `invalid label key ${JSON.stringify(k)}`);
      must(labelValue.test(v), `invalid label value ${JSON.stringify(v)}`);
    }
  };
  const checkAnnotations = (ann: Record<string, string>, limit: number): void => {
    let size = 0;
    for (const [k, v] of Object.entries(ann)) {
      size += k.length + v.length;
      const slash = k.lastIndexOf('/');
      const prefix = slash >= 0 ? k.slice(0, slash) : undefined;
      const name = slash >= 0 ? k.slice(slash + 1) : k;
      must(annotationName.test(name), `invalid annotation key ${JSON.stringify(k)}`);
      must(prefix === undefined || dnsSubdomain.test(prefix), `invalid annotation key prefix ${JSON.stringify(k)}`);
    }
    must(size <= limit, `annotations may contain up to ${limit} characters`);
  };
  const checkEndpointFields = (address: string, port: number): void => {
    must(address === '' || (address.length <= 45 && isIP(address) !== 0), `invalid address ${JSON.stringify(address)}`);
    must(Number.isInteger(port) && port >= 0 && port <= 65535, `invalid port ${port}`);
  };
  const maskPaths = (req: Req, allowed: string[]): string[] => {
    const paths = ((req.update_mask as { paths?: string[] } | null)?.paths ?? []).map(String);
    must(paths.length > 0, 'update_mask is required');
    for (const p of paths) must(allowed.includes(p), `update_mask path ${JSON.stringify(p)} is not updatable`);
    return paths;
  };
  const list = <T extends Stored>(
    req: Req,
    all: Map<string, T>,
    parent: string,
    render: (r: T) => unknown,
  ): { items: unknown[]; next_page_token: string } => {
    if (str(req.filter) || str(req.order_by)) {
      throw new RpcError(grpc.status.UNIMPLEMENTED, 'filter and order_by are not implemented by the contract server');
    }
    const size = Number(req.page_size ?? 0);
    must(Number.isInteger(size) && size >= 0, 'page_size must not be negative');
    const pageSize = Math.min(size || defaultPageSize, maxPageSize);
    let after = '';
    if (str(req.page_token)) {
      after = Buffer.from(str(req.page_token), 'base64url').toString('utf8');
      must(after.startsWith(`${parent}/`), 'invalid page_token');
    }
    const names = [...all.keys()].filter((n) => n.startsWith(`${parent}/`) && n > after).sort();
    const page = names.slice(0, pageSize);
    const next = names.length > pageSize ? Buffer.from(page[page.length - 1]!, 'utf8').toString('base64url') : '';
    return { items: page.map((n) => render(all.get(n)!)), next_page_token: next };
  };
  const renderNs = (r: NsRec) => ({ name: r.name, labels: r.labels, uid: r.uid });
  const renderSvc = (r: SvcRec) => ({ name: r.name, annotations: r.annotations, endpoints: [], uid: r.uid });
  const renderEp = (r: EpRec) => ({
    name: r.name,
    address: r.address,
    port: r.port,
    annotations: r.annotations,
    network: r.network,
    uid: r.uid,
  });
  const nsName = (name: string): string => {
    must(nsRe.test(name), `invalid namespace name ${JSON.stringify(name)}`);
    return name;
  };
  const svcName = (name: string): string => {
    must(svcRe.test(name), `invalid service name ${JSON.stringify(name)}`);
    return name;
  };
  const epName = (name: string): string => {
    must(epRe.test(name), `invalid endpoint name ${JSON.stringify(name)}`);
    return name;
  };
  const dropUnder = <T>(all: Map<string, T>, prefix: string): void => {
    for (const k of [...all.keys()]) if (k.startsWith(`${prefix}/`)) all.delete(k);
  };

  server.addService(loadRegistrationService(), {
    CreateNamespace: unary('CreateNamespace', (req) => {
      const parent = str(req.parent);
      must(locationRe.test(parent), `invalid parent ${JSON.stringify(parent)}`);
      const id = str(req.namespace_id);
      must(idPattern.test(id), `invalid namespace_id ${JSON.stringify(id)}`);
      const labels = map((req.namespace as Req | null)?.labels);
      checkLabels(labels);
      const name = `${parent}/namespaces/${id}`;
      if (namespaces.has(name)) throw new RpcError(grpc.status.ALREADY_EXISTS, `namespace ${name} already exists`);
      const rec: NsRec = { name, labels, uid: randomUUID() };
      namespaces.set(name, rec);
      return renderNs(rec);
    }),
    ListNamespaces: unary('ListNamespaces', (req) => {
      const parent = str(req.parent);
      must(locationRe.test(parent), `invalid parent ${JSON.stringify(parent)}`);
      const { items, next_page_token } = list(req, namespaces, `${parent}/namespaces`, renderNs);
      return { namespaces: items, next_page_token };
    }),
    GetNamespace: unary('GetNamespace', (req) => {
      const name = nsName(str(req.name));
      return renderNs(namespaces.get(name) ?? notFound('namespace', name));
    }),
    UpdateNamespace: unary('UpdateNamespace', (req) => {
      const ns = (req.namespace ?? {}) as Req;
      const name = nsName(str(ns.name));
      const paths = maskPaths(req, ['labels']);
      const rec = namespaces.get(name) ?? notFound('namespace', name);
      if (paths.includes('labels')) {
        const labels = map(ns.labels);
        checkLabels(labels);
        rec.labels = labels;
      }
      return renderNs(rec);
    }),
    DeleteNamespace: unary('DeleteNamespace', (req) => {
      const name = nsName(str(req.name));
      if (!namespaces.delete(name)) notFound('namespace', name);
      dropUnder(services, name);
      dropUnder(endpoints, name);
      return {};
    }),

    CreateService: unary('CreateService', (req) => {
      const parent = nsName(str(req.parent));
      const id = str(req.service_id);
      must(idPattern.test(id), `invalid service_id ${JSON.stringify(id)}`);
      const annotations = map((req.service as Req | null)?.annotations);
      checkAnnotations(annotations, 2000);
      if (!namespaces.has(parent)) notFound('namespace', parent);
      const name = `${parent}/services/${id}`;
      if (services.has(name)) throw new RpcError(grpc.status.ALREADY_EXISTS, `service ${name} already exists`);
      const rec: SvcRec = { name, annotations, uid: randomUUID() };
      services.set(name, rec);
      return renderSvc(rec);
    }),
    ListServices: unary('ListServices', (req) => {
      const parent = nsName(str(req.parent));
      if (!namespaces.has(parent)) notFound('namespace', parent);
      const { items, next_page_token } = list(req, services, `${parent}/services`, renderSvc);
      return { services: items, next_page_token };
    }),
    GetService: unary('GetService', (req) => {
      const name = svcName(str(req.name));
      return renderSvc(services.get(name) ?? notFound('service', name));
    }),
    UpdateService: unary('UpdateService', (req) => {
      const svc = (req.service ?? {}) as Req;
      const name = svcName(str(svc.name));
      const paths = maskPaths(req, ['annotations']);
      const rec = services.get(name) ?? notFound('service', name);
      if (paths.includes('annotations')) {
        const annotations = map(svc.annotations);
        checkAnnotations(annotations, 2000);
        rec.annotations = annotations;
      }
      return renderSvc(rec);
    }),
    DeleteService: unary('DeleteService', (req) => {
      const name = svcName(str(req.name));
      if (!services.delete(name)) notFound('service', name);
      dropUnder(endpoints, name);
      return {};
    }),

    CreateEndpoint: unary('CreateEndpoint', (req) => {
      const parent = svcName(str(req.parent));
      const id = str(req.endpoint_id);
      must(idPattern.test(id), `invalid endpoint_id ${JSON.stringify(id)}`);
      const ep = (req.endpoint ?? {}) as Req;
      const address = str(ep.address);
      const port = Number(ep.port ?? 0);
      const annotations = map(ep.annotations);
      checkEndpointFields(address, port);
      checkAnnotations(annotations, 512);
      if (!services.has(parent)) notFound('service', parent);
      const name = `${parent}/endpoints/${id}`;
      if (endpoints.has(name)) throw new RpcError(grpc.status.ALREADY_EXISTS, `endpoint ${name} already exists`);
      const rec: EpRec = { name, address, port, annotations, network: str(ep.network), uid: randomUUID() };
      endpoints.set(name, rec);
      return renderEp(rec);
    }),
    ListEndpoints: unary('ListEndpoints', (req) => {
      const parent = svcName(str(req.parent));
      if (!services.has(parent)) notFound('service', parent);
      const { items, next_page_token } = list(req, endpoints, `${parent}/endpoints`, renderEp);
      return { endpoints: items, next_page_token };
    }),
    GetEndpoint: unary('GetEndpoint', (req) => {
      const name = epName(str(req.name));
      return renderEp(endpoints.get(name) ?? notFound('endpoint', name));
    }),
    UpdateEndpoint: unary('UpdateEndpoint', (req) => {
      const ep = (req.endpoint ?? {}) as Req;
      const name = epName(str(ep.name));
      const paths = maskPaths(req, ['address', 'port', 'annotations']);
      const rec = endpoints.get(name) ?? notFound('endpoint', name);
      const address = paths.includes('address') ? str(ep.address) : rec.address;
      const port = paths.includes('port') ? Number(ep.port ?? 0) : rec.port;
      const annotations = paths.includes('annotations') ? map(ep.annotations) : rec.annotations;
      checkEndpointFields(address, port);
      checkAnnotations(annotations, 512);
      Object.assign(rec, { address, port, annotations });
      return renderEp(rec);
    }),
    DeleteEndpoint: unary('DeleteEndpoint', (req) => {
      const name = epName(str(req.name));
      if (!endpoints.delete(name)) notFound('endpoint', name);
      return {};
    }),
  });

  state.port = await new Promise<number>((res, rej) =>
    server.bindAsync(`${state.host}:0`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? rej(err) : res(port))),
  );
  return state;
}
