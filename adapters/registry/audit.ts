// The audit trail of an instance: one stored object per instance ID (kind RegistryAudit), holding the last
// MAX_AUDIT_RECORDS operations on the instance and on its bindings. It is kept apart from the entry so that it
// outlives the bindings it tells about and the instance itself (a tombstone says an instance is gone; its trail
// says who removed it), and so that concurrent binding operations contend on it only briefly
// (docs/design/contracts/registry.md#audit-trail).
import { ConflictError } from '../errors';
import type { ObjectStore, PersistedObject } from '../persistence';
import { MAX_AUDIT_RECORDS, withOutcome, withRecord, type AppliedState, type AuditRecord } from '../../domain/audit';
import { REGISTRY_API_VERSION, RegistryKind, registryKey, type Entry } from './entry';
import { BrokerflowKey, RegistryKey, entryName } from './keys';

/** The stored form of an instance's trail. */
interface StoredTrail extends PersistedObject {
  instanceId: string;
  records: AuditRecord[];
}

/** Rounds of read-change-write before a write that keeps losing to other writers gives up (each lost round is progress). */
const MAX_ROUNDS = 50;

/** The audit trails of instances, in the registry's store and namespace. */
export class AuditTrails {
  constructor(
    private readonly store: ObjectStore,
    private readonly namespace: string | undefined,
  ) {}

  /** The instance's records, oldest first; undefined when nothing was ever recorded for it. */
  async read(instanceId: string): Promise<AuditRecord[] | undefined> {
    return (await this.load(instanceId))?.records;
  }

  /** Adds the record of an accepted operation (nothing when its operation is recorded already). */
  async append(instanceId: string, record: AuditRecord): Promise<void> {
    await this.change(instanceId, (records) => withRecord(records, record, MAX_AUDIT_RECORDS));
  }

  /** Records how an operation ended (nothing when it is not in the trail, or its end is recorded already). */
  async complete(instanceId: string, operationId: string, end: { error?: string; note?: string; completedAt?: Date }): Promise<void> {
    await this.change(instanceId, (records) => withOutcome(records, operationId, { ...end, completedAt: end.completedAt ?? new Date() }));
  }

  private key(instanceId: string) {
    return registryKey(RegistryKind.Audit, entryName('service-instance', instanceId), this.namespace);
  }

  private async load(instanceId: string): Promise<StoredTrail | undefined> {
    return (await this.store.get(this.key(instanceId))) as StoredTrail | undefined;
  }

  /** Read, change, write with optimistic concurrency; a lost race reads again. */
  private async change(instanceId: string, next: (records: AuditRecord[]) => AuditRecord[] | undefined): Promise<void> {
    for (let round = 1; ; round++) {
      const stored = await this.load(instanceId);
      const records = next(stored?.records ?? []);
      if (!records) return;
      const name = entryName('service-instance', instanceId);
      const trail: StoredTrail = {
        apiVersion: REGISTRY_API_VERSION,
        kind: RegistryKind.Audit,
        metadata: this.namespace !== undefined ? { name, namespace: this.namespace } : { name },
        instanceId,
        records,
      };
      try {
        await this.store.put(trail, stored?.metadata.resourceVersion !== undefined ? { ifMatch: stored.metadata.resourceVersion } : { ifNoneMatch: '*' });
        return;
      } catch (err) {
        if (!(err instanceof ConflictError) || round >= MAX_ROUNDS) throw err;
      }
    }
  }
}

/** What an instance entry has applied, as the audit trail compares an update with it. */
export function appliedState(instance: Entry | undefined): AppliedState {
  if (!instance?.exists()) return {};
  const planId = instance.get<string>(RegistryKey.PlanID);
  const maintenanceVersion = instance.get<string>(BrokerflowKey.MaintenanceVersion);
  return {
    ...(planId ? { planId } : {}),
    ...(maintenanceVersion ? { maintenanceVersion } : {}),
    parameters: instance.get<Record<string, unknown>>(RegistryKey.Parameters) ?? {},
  };
}
