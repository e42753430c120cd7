// The parts of Kubernetes objects that extraction reads, as plain structural types: a V1Service or
// V1Namespace of @kubernetes/client-node fits them as is, and tests can build them without a server.

/** The metadata fields extraction reads. */
export interface KubeObjectMeta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A Kubernetes Service, reduced to what endpoint extraction needs. */
export interface KubeService {
  metadata?: KubeObjectMeta;
  spec?: {
    externalIPs?: string[];
    ports?: Array<{ port: number; name?: string; protocol?: string }>;
  };
  status?: {
    loadBalancer?: {
      ingress?: Array<{ ip?: string; hostname?: string }>;
    };
  };
}

/** A Kubernetes Namespace, reduced to its metadata. */
export interface KubeNamespace {
  metadata?: KubeObjectMeta;
}
