// Registry names and keys (docs/design/contracts/registry.md): entry names, the typed system keys, the user
// access policy and the validation of IDs before they become object names.
import { ValidationError } from '../errors';
import { validateName } from '../persistence/object-key';

/** What a registry entry describes. */
export type EntryType = 'service-instance' | 'service-binding';
export const ENTRY_TYPES: readonly EntryType[] = ['service-instance', 'service-binding'];

/** The asynchronous operations recorded on entries. */
export type OperationType = 'provision' | 'update' | 'deprovision' | 'bind' | 'unbind';
/** Which operations each entry type records. */
export const OPERATIONS_BY_TYPE: Record<EntryType, readonly OperationType[]> = {
  'service-instance': ['provision', 'update', 'deprovision'],
  'service-binding': ['bind', 'unbind'],
};

/** The typed system keys of an entry (the original Key constants; docs/design/contracts/registry.md#system-keys). */
export const RegistryKey = {
  Namespace: 'namespace',
  InstanceID: 'instance-id',
  BindingID: 'binding-id',
  ServiceID: 'service-id',
  PlanID: 'plan-id',
  Context: 'context',
  Parameters: 'parameters',
  Operation: 'operation',
  OperationID: 'operation-id',
  OperationStatus: 'operation-status',
  DashboardURL: 'dashboard-url',
  Credentials: 'credentials',
} as const;
/** One of the system keys. */
export type RegistryKey = (typeof RegistryKey)[keyof typeof RegistryKey];

/** The keys brokerflow adds to the system keys: what the OSB rules compare and the instance's lock shares. */
export const BrokerflowKey = {
  /** Digest of the applied request attributes (identical re-requests have the same one). */
  Fingerprint: 'fingerprint',
  /** The applied maintenance_info.version. */
  MaintenanceVersion: 'maintenance-version',
  /** A binding's app GUID / bind resource. */
  BindResource: 'bind-resource',
  /** An update's target (plan, parameters, fingerprint, maintenance version), applied only when it succeeds. */
  PendingUpdate: 'pending-update',
  /** On an instance: binding ID -> operation ID of every binding operation that runs (the instance lock's shares). */
  BindingOperations: 'binding-operations',
  /**
   * On an instance whose provision has begun and not (yet) succeeded: nothing is applied. Removed when a provision
   * succeeds; an entry without it (written before this key existed) counts as provisioned.
   */
  ProvisionPending: 'provision-pending',
  /** On a binding created by a rotation: the binding it rotated (docs/design/osb-semantics.md#binding-rotation). */
  PredecessorBindingID: 'predecessor-binding-id',
  /** On a binding whose plan has a credential policy: when its credentials expire (ISO 8601, OSB `expires_at`). */
  ExpiresAt: 'expires-at',
  /** With `expires-at`: from when the platform should rotate (ISO 8601, OSB `renew_before`). */
  RenewBefore: 'renew-before',
  /** The Temporal workflow ID of the binding's expiry timer (unbind cancels it). */
  ExpiryWorkflowID: 'expiry-workflow-id',
  /** When the binding's credentials were revoked at their expiry (ISO 8601); absent while they are valid. */
  ExpiredAt: 'expired-at',
} as const;

/** Keys templates may read but not write. */
export const USER_READ_ONLY_KEYS: ReadonlySet<string> = new Set(['namespace', 'instance-id', 'service-id', 'plan-id']);
/** Keys that never pass into a binding through inherit (the instance's operation and lock are not the binding's). */
export const OPERATION_KEYS: ReadonlySet<string> = new Set([
  'operation',
  'operation-id',
  'operation-status',
  BrokerflowKey.PendingUpdate,
  BrokerflowKey.BindingOperations,
  BrokerflowKey.ProvisionPending,
]);
/** Keys templates may neither read nor write: the request's context and parameters, and every operation key. */
export const USER_HIDDEN_KEYS: ReadonlySet<string> = new Set(['context', 'parameters', ...OPERATION_KEYS]);

const KEY = /^[A-Za-z0-9._-]{1,253}$/;
/** Longest instance or binding ID accepted (the entry name must stay a valid object name). */
export const MAX_ID_LENGTH = 200;
/** Longest operation ID (the OSB `operation` field is at most 10,000 characters). */
export const MAX_OPERATION_ID_LENGTH = 10_000;

/** Checks an instance or binding ID before it becomes part of an object name. */
export function validateId(id: unknown, field = 'id'): string {
  if (typeof id === 'string' && id.length > MAX_ID_LENGTH) {
    throw new ValidationError(`${field} is longer than ${MAX_ID_LENGTH} characters`, field);
  }
  return validateName(id, field);
}

export function validateEntryType(type: unknown): EntryType {
  if (!ENTRY_TYPES.includes(type as EntryType)) {
    throw new ValidationError(`entry type must be one of ${ENTRY_TYPES.join(', ')}`, 'type');
  }
  return type as EntryType;
}

/** `registry-<type>-<id>`, the original Name(type, name) (docs/design/contracts/registry.md#entry-names). */
export function entryName(type: EntryType, id: string): string {
  return `registry-${validateEntryType(type)}-${validateId(id)}`;
}

/** Checks a key of the entry map (system or user): the characters a ConfigMap data key allows. */
export function validateKey(key: unknown): string {
  if (typeof key !== 'string' || !KEY.test(key)) {
    throw new ValidationError('a registry key is 1-253 letters, digits, ".", "_" or "-"', 'key');
  }
  return key;
}

const CONTROL = /[\u0000-\u001f\u007f]/;

/** Checks an operation ID: non-empty, bounded, printable. */
export function validateOperationId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_OPERATION_ID_LENGTH || CONTROL.test(id)) {
    throw new ValidationError(`operationId must be 1-${MAX_OPERATION_ID_LENGTH} printable characters`, 'operationId');
  }
  return id;
}
