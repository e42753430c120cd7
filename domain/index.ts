// The domain: plain data and rules every layer shares (workflows, activities, adapters, client), with no I/O,
// no Temporal and no Node built-ins, so the workflow sandbox may import it (docs/design/architecture.md#folders).
export * from './reconcile';
export * from './errors';
export * from './operations';
export * from './endpoints';
export * from './audit';
