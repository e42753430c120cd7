// Runs a resource driver through one reconciliation without Temporal, in the reconcile workflow's order, with
// every state passed through JSON the way workflow history carries it between steps.
import type { Patch } from '../../domain/reconcile';
import type { DriverContext, ResourceDriver } from '../../adapters/resources/types';

/** States travel through workflow history as JSON between steps. */
export const viaHistory = <T>(v: T): T => (v === null || v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));

/** One update reconciliation: current, desired, patch, then create, delete, update. */
export async function reconcile(driver: ResourceDriver, spec: Record<string, unknown>, ctx: DriverContext): Promise<Patch> {
  const current = viaHistory(await driver.getCurrentState(spec, ctx));
  const desired = viaHistory(await driver.getDesiredState(spec, ctx));
  const patch = viaHistory(driver.newUpdatePatch(current, desired));
  if (patch.create) await driver.applyCreateChange(patch.create, ctx);
  if (patch.delete) await driver.applyDeleteChange(patch.delete, ctx);
  if (patch.update) await driver.applyUpdateChange(patch.update, ctx);
  return patch;
}

/** One deletion reconciliation. */
export async function remove(driver: ResourceDriver, spec: Record<string, unknown>, ctx: DriverContext): Promise<Patch> {
  const current = viaHistory(await driver.getCurrentState(spec, ctx));
  const desired = viaHistory(await driver.getDesiredState(spec, ctx));
  const patch = viaHistory(driver.newDeletePatch(current, desired));
  if (patch.delete) await driver.applyDeleteChange(patch.delete, ctx);
  return patch;
}
