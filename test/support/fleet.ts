// A plan of its own for the fleet upgrade tests (e2e and reliability): a catalog with one service and one plan under
// fresh IDs, so that the plan's fleet upgrade (`fleet-upgrade/<plan id>`) and its instances belong to one test file,
// at a maintenance version the test chooses; the plan reconciles the real tenant etcd keyspace of the example
// resource sets, in a set that handles versions 1.0.0 and 2.0.0. Writing the same plan at 2.0.0 is how a test
// "ships" a maintenance upgrade: the worker and the CLI started with that catalog see the plan's new version.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { parse, stringify } from 'yaml';

const config = resolve(__dirname, '..', '..', 'config');

/** The IDs of a fleet test's own service and plan. */
export interface FleetPlanIds {
  serviceId: string;
  planId: string;
  planName: string;
}

/** Fresh IDs for a fleet test's service and plan. */
export function newFleetPlan(tag: string): FleetPlanIds {
  return { serviceId: `svc-${randomUUID()}`, planId: `plan-${randomUUID()}`, planName: `fleet-${tag}` };
}

/**
 * Writes the catalog (the plan at `version`) and the resource sets into `dir`; returns both paths. `extraResources`
 * come before the keyspace in the plan's instance resources (a test driver the test controls from its worker).
 */
export function writeFleetCatalog(
  dir: string,
  ids: FleetPlanIds,
  version: string,
  extraResources: Array<Record<string, unknown>> = [],
): { catalog: string; resourceSets: string } {
  const example = parse(readFileSync(join(config, 'catalog.example.yaml'), 'utf8')) as { services: Array<Record<string, unknown> & { plans: Array<Record<string, unknown>> }> };
  const service = example.services.find((s) => s.name === 'etcd-keyspace')!;
  const standard = service.plans.find((p) => p.name === 'standard')!;
  const plan = {
    ...standard,
    id: ids.planId,
    name: ids.planName,
    maintenance_info: { version, description: `release ${version}` },
    brokerflow: { resourceSet: 'fleet-keyspace' },
  };
  const catalog = join(dir, `catalog-${version}.yaml`);
  writeFileSync(catalog, stringify({ services: [{ ...service, id: ids.serviceId, name: `etcd-keyspace-${ids.planName}`, plans: [plan] }] }));
  const resourceSets = join(dir, 'resource-sets.fleet.yaml');
  writeFileSync(
    resourceSets,
    stringify({
      resourceSets: [
        {
          name: 'fleet-keyspace',
          maintenanceVersions: ['1.0.0', '2.0.0'],
          instance: [...extraResources, { name: 'keyspace', driver: 'etcd-prefix', spec: { prefix: '/tenants/${instance.id}' } }],
          binding: [],
        },
      ],
    }),
  );
  return { catalog, resourceSets };
}
