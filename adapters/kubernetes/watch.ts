// Which namespaces are watched: the label `<prefix>/watch` set to `enabled` or `disabled` overrides the
// configured default; any other value (or none) leaves the default.
import { ValidationError } from '../errors';
import type { KubeNamespace } from './types';

/** The label prefix used when none is configured. */
export const defaultWatchLabelPrefix = 'brokerflow.io';

/** The watch policy: label prefix and what an unlabelled namespace gets. */
export interface NamespaceWatchPolicy {
  /** Default `brokerflow.io`, giving the label `brokerflow.io/watch`. */
  labelPrefix?: string;
  /** Whether a namespace without an `enabled`/`disabled` label is watched. */
  watchByDefault: boolean;
}

const dnsSubdomain = /^(?=.{1,253}$)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;

/** The label key, e.g. `brokerflow.io/watch`; a prefix that is not a DNS subdomain is a ValidationError. */
export function watchLabelKey(labelPrefix: string = defaultWatchLabelPrefix): string {
  if (!dnsSubdomain.test(labelPrefix)) {
    throw new ValidationError(`watch label prefix ${JSON.stringify(labelPrefix)} is not a DNS subdomain`, 'labelPrefix');
  }
  return `${labelPrefix}/watch`;
}

/** Whether the namespace's services are mirrored into the registry. */
export function isNamespaceWatched(ns: KubeNamespace, policy: NamespaceWatchPolicy): boolean {
  const value = ns.metadata?.labels?.[watchLabelKey(policy.labelPrefix)];
  if (value === 'enabled') return true;
  if (value === 'disabled') return false;
  return policy.watchByDefault;
}
