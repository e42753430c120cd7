// The registry directory: where each service instance's entries live. The namespace is only known from the
// context of the provision request, yet every later request must find the entry, so it is recorded here, in
// the store's default location, one small record per instance (no shared record to contend on).
import { NotFoundError } from '../errors';
import { validateNamespace, type ObjectStore } from '../persistence';
import { REGISTRY_API_VERSION, RegistryKind, registryKey } from './entry';
import { validateId } from './keys';

/** What the directory keeps about a service instance. */
export interface DirectoryEntry {
  /** The namespace the instance's registry entries (and the resources they own) live in. */
  namespace: string;
}

function recordName(instanceId: string): string {
  return `registry-directory-${validateId(instanceId, 'instanceId')}`;
}

/** Instance ID -> DirectoryEntry. */
export class Directory {
  constructor(private readonly store: ObjectStore) {}

  /** Records (or re-records, idempotently) where an instance lives. Set when the instance is created. */
  async add(instanceId: string, entry: DirectoryEntry): Promise<void> {
    const name = recordName(instanceId);
    const namespace = validateNamespace(entry?.namespace, 'namespace');
    await this.store.put({ apiVersion: REGISTRY_API_VERSION, kind: RegistryKind.DirectoryEntry, metadata: { name }, namespace });
  }

  /** Where an instance lives; NotFoundError for an instance never added (the broker then uses its own namespace). */
  async lookup(instanceId: string): Promise<DirectoryEntry> {
    const name = recordName(instanceId);
    const stored = await this.store.get(registryKey(RegistryKind.DirectoryEntry, name, undefined));
    if (!stored || typeof stored.namespace !== 'string') {
      throw new NotFoundError(`no directory entry for service instance ${instanceId}`);
    }
    return { namespace: stored.namespace };
  }

  /** Forgets an instance; removing an unknown one succeeds. */
  async remove(instanceId: string): Promise<void> {
    await this.store.delete(registryKey(RegistryKind.DirectoryEntry, recordName(instanceId), undefined));
  }
}
