// The OSB operations and the states an operation can be in, named once for the workflows, the registry, the
// broker's schemas, the CLI and the search attributes (docs/design/osb-semantics.md).

/** The OSB operations, each a workflow type. */
export const OPERATION_TYPES = ['provision', 'update', 'deprovision', 'bind', 'unbind'] as const;
export type OperationType = (typeof OPERATION_TYPES)[number];

/** The states of an operation, as last_operation reports them and the registry records them. */
export const OPERATION_STATES = ['in progress', 'succeeded', 'failed'] as const;
export type OperationState = (typeof OPERATION_STATES)[number];
