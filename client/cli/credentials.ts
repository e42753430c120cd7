// Where a binding's credentials are and when they expire, for `bind`, `rotate` and `status --binding`: the names of
// the credential fields, never their values unless the operator asks for them (`--show-credentials`); the values live
// encrypted in the registry entry and a platform fetches them with GET .../service_bindings/<id>.
import { BrokerflowKey, RegistryKey, entryName } from '../../adapters/registry';
import type { CliContext } from './context';

/** What the CLI says about a binding's credentials. */
export interface CredentialsSummary {
  /** The registry entry that holds them (encrypted at rest) and the registry backend. */
  location: string;
  /** How a platform fetches them. */
  fetch: string;
  /** The names of the credential fields (the values only in `values`, with --show-credentials). */
  fields: string[];
  expiresAt?: string;
  renewBefore?: string;
  /** When they expired and were revoked: the fields are gone then. */
  expiredAt?: string;
  /** The binding this one rotated. */
  predecessorBindingId?: string;
  values?: Record<string, unknown>;
}

/** The summary of a binding's credentials, or undefined when the binding does not exist under the instance. */
export async function credentialsSummary(ctx: CliContext, ref: { instanceId: string; bindingId: string }, show: boolean): Promise<CredentialsSummary | undefined> {
  const entry = await ctx.registry.open('service-binding', ref.bindingId, { instanceId: ref.instanceId });
  if (!entry.exists() || entry.get<string>(RegistryKey.InstanceID) !== ref.instanceId) return undefined;
  const credentials = entry.get<Record<string, unknown>>(RegistryKey.Credentials) ?? {};
  const opt = (key: string, value: string | undefined) => (value !== undefined ? { [key]: value } : {});
  return {
    location: `registry entry ${entryName('service-binding', ref.bindingId)} (${ctx.config.registry?.backend ?? 'file'} backend, encrypted)`,
    fetch: `GET /v2/service_instances/${ref.instanceId}/service_bindings/${ref.bindingId}`,
    fields: Object.keys(credentials).sort(),
    ...opt('expiresAt', entry.get<string>(BrokerflowKey.ExpiresAt)),
    ...opt('renewBefore', entry.get<string>(BrokerflowKey.RenewBefore)),
    ...opt('expiredAt', entry.get<string>(BrokerflowKey.ExpiredAt)),
    ...opt('predecessorBindingId', entry.get<string>(BrokerflowKey.PredecessorBindingID)),
    ...(show ? { values: credentials } : {}),
  };
}

/** The summary as lines for people. */
export function formatCredentials(c: CredentialsSummary): string {
  const lines = [`  credentials: ${c.location}; a platform fetches them with ${c.fetch}`];
  if (c.expiredAt) lines.push(`  expired at ${c.expiredAt}: the credentials were revoked`);
  else {
    lines.push(`  fields: ${c.fields.length ? c.fields.join(', ') : '(none)'}${c.values ? '' : ' (values hidden; --show-credentials prints them)'}`);
    lines.push(c.expiresAt ? `  expires at ${c.expiresAt}${c.renewBefore ? `; rotate from ${c.renewBefore} (brokerflow rotate)` : ''}` : '  never expires');
  }
  if (c.predecessorBindingId) lines.push(`  rotated from binding ${c.predecessorBindingId}`);
  if (c.values) lines.push(...Object.entries(c.values).map(([k, v]) => `  ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`));
  return lines.join('\n');
}
