// Workflows: deterministic orchestration only, bundled for the Worker sandbox. This file is the bundle's entry:
// every workflow the worker runs is exported here. No Node built-ins, no adapters, no I/O.
export { probeWorkflow } from './probe';
export { reconcileWorkflow } from './reconcile';
export { provision, update, deprovision, bind, unbind, bindingExpiry } from './operations';
export { kubeServiceWorkflow, endpointWatcherWorkflow, endpointResyncWorkflow } from './endpoints';
export { fleetUpgrade } from './fleet';
