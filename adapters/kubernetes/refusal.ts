// Whether a refusal from the Kubernetes API server (HTTP 401 or 403) is final. Normally it is: RBAC or the
// credentials must change before the call can succeed, so callers report a PermissionError and nothing retries
// it. Except while kube-apiserver starts: it serves requests before its authorizer and token authenticator have
// filled their caches, and for that moment refuses what it allows a moment later (a ServiceAccount gets
// "forbidden: cannot list resource" right after a restart). The server is not ready (`/readyz`) until those
// caches are synced, so a refusal is final only when the server says it is ready; otherwise it is transient.
// docs/design/contracts/endpoint-reconciliation.md#refusals-from-a-starting-api-server
import type { KubeConfig } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };

// @kubernetes/client-node is ESM-only and this package is CommonJS: its values are loaded once with import().
type K8s = typeof import('@kubernetes/client-node', { with: { 'resolution-mode': 'import' } });
let k8sModule: Promise<K8s> | undefined;

/** How long the readiness question may take before the refusal counts as transient. */
const READYZ_TIMEOUT_MS = 5_000;

/** Whether an HTTP status is a refusal: the credentials are not accepted (401) or not allowed the call (403). */
export function isRefusal(status: number | undefined): boolean {
  return status === 401 || status === 403;
}

/**
 * Whether a refusal from the API server of `kubeConfig` is final: that server answers `GET /readyz` with 200, with
 * the same credentials. A server that answers otherwise, or not at all, is starting (or stopping), and its refusal
 * says nothing yet about RBAC.
 */
export async function refusalIsFinal(kubeConfig: KubeConfig): Promise<boolean> {
  const k8s = await (k8sModule ??= import('@kubernetes/client-node'));
  try {
    return await new k8s.Health(kubeConfig).readyz({ signal: AbortSignal.timeout(READYZ_TIMEOUT_MS) });
  } catch {
    return false;
  }
}
