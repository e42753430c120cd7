// The instances of one plan as a fleet upgrade reads them (docs/design/osb-semantics.md#fleet-upgrades): the fleet
// workflow's listing activity and the CLI's dry run read exactly this.
import type { FleetMember } from '../../domain/fleet';
import { BrokerflowKey, RegistryKey } from './keys';
import type { Registry } from './registry';

/** Every instance entry of the plan, with its applied maintenance version and whether a provision succeeded on it. */
export async function planInstances(registry: Registry, ref: { serviceId: string; planId: string }): Promise<FleetMember[]> {
  const entries = await registry.list('service-instance');
  return entries
    .filter((e) => e.values[RegistryKey.PlanID] === ref.planId && e.values[RegistryKey.ServiceID] === ref.serviceId)
    .map((e) => {
      const op = e.operation;
      const provisioned = e.values[BrokerflowKey.ProvisionPending] !== true && !!op && !(op.operation === 'provision' && op.state !== 'succeeded');
      const version = e.values[BrokerflowKey.MaintenanceVersion];
      return { instanceId: e.id, provisioned, ...(typeof version === 'string' ? { maintenanceVersion: version } : {}) };
    });
}
