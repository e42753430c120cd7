// The custom search attributes brokerflow sets on its workflows, defined once for workflows, the client,
// the dev server (`--search-attribute`) and idempotent registration at start-up.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const InstanceId = defineSearchAttributeKey('InstanceId', SearchAttributeType.KEYWORD);
export const BindingId = defineSearchAttributeKey('BindingId', SearchAttributeType.KEYWORD);
export const ServiceId = defineSearchAttributeKey('ServiceId', SearchAttributeType.KEYWORD);
export const PlanId = defineSearchAttributeKey('PlanId', SearchAttributeType.KEYWORD);
export const OperationType = defineSearchAttributeKey('OperationType', SearchAttributeType.KEYWORD);
export const OperationState = defineSearchAttributeKey('OperationState', SearchAttributeType.KEYWORD);
/** `<namespace>/<service>` of a Kubernetes service mirrored by endpoint reconciliation. */
export const KubeService = defineSearchAttributeKey('KubeService', SearchAttributeType.KEYWORD);

/** Every custom search attribute, with the type name the Temporal CLI's `--search-attribute` expects. */
export const searchAttributeDefinitions: ReadonlyArray<{ name: string; cliType: 'Keyword' }> = [
  InstanceId,
  BindingId,
  ServiceId,
  PlanId,
  OperationType,
  OperationState,
  KubeService,
].map((key) => ({ name: key.name, cliType: 'Keyword' as const }));
