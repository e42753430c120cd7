// The custom search attributes brokerflow sets on its workflows, defined once for workflows, the client,
// the dev server (`--search-attribute`) and idempotent registration at start-up.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const InstanceIdKey = defineSearchAttributeKey('InstanceId', SearchAttributeType.KEYWORD);
export const BindingIdKey = defineSearchAttributeKey('BindingId', SearchAttributeType.KEYWORD);
export const ServiceIdKey = defineSearchAttributeKey('ServiceId', SearchAttributeType.KEYWORD);
export const PlanIdKey = defineSearchAttributeKey('PlanId', SearchAttributeType.KEYWORD);
export const OperationTypeKey = defineSearchAttributeKey('OperationType', SearchAttributeType.KEYWORD);
export const OperationStateKey = defineSearchAttributeKey('OperationState', SearchAttributeType.KEYWORD);
/** `<platform>/<user>` who asked for an operation (X-Broker-API-Originating-Identity), or `unknown`. */
export const OriginatingUserKey = defineSearchAttributeKey('OriginatingUser', SearchAttributeType.KEYWORD);
/** `<namespace>/<service>` of a Kubernetes service mirrored by endpoint reconciliation. */
export const KubeServiceKey = defineSearchAttributeKey('KubeService', SearchAttributeType.KEYWORD);

/** Every custom search attribute, with the type name the Temporal CLI's `--search-attribute` expects. */
export const searchAttributeDefinitions: ReadonlyArray<{ name: string; cliType: 'Keyword' }> = [
  InstanceIdKey,
  BindingIdKey,
  ServiceIdKey,
  PlanIdKey,
  OperationTypeKey,
  OperationStateKey,
  OriginatingUserKey,
  KubeServiceKey,
].map((key) => ({ name: key.name, cliType: 'Keyword' as const }));
