// `brokerflow list`: instances and bindings from the registry, operations from Temporal visibility (queried
// through the search attributes, so the Web UI and the CLI filter the same way).
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { codecFromConfig } from '../../platform/codec';
import type { CliContext } from './context';

/** One listed row. */
export type ListRow = Record<string, string | undefined>;

function quote(v: string): string {
  return `'${v.replace(/'/g, "\\'")}'`;
}

export async function listEntries(
  ctx: CliContext,
  opts: { kind: 'instances' | 'bindings' | 'operations'; state?: string; serviceId?: string; planId?: string; limit: number },
): Promise<ListRow[]> {
  if (opts.kind === 'operations') {
    const clauses = ["OperationType IS NOT NULL"];
    if (opts.state) clauses.push(`OperationState = ${quote(opts.state)}`);
    if (opts.serviceId) clauses.push(`ServiceId = ${quote(opts.serviceId)}`);
    if (opts.planId) clauses.push(`PlanId = ${quote(opts.planId)}`);
    return listOperations(ctx, clauses.join(' AND '), opts.limit);
  }
  const type = opts.kind === 'instances' ? 'service-instance' : 'service-binding';
  const entries = await ctx.registry.list(type);
  return entries
    .filter((e) => !opts.serviceId || e.values['service-id'] === opts.serviceId)
    .filter((e) => !opts.planId || e.values['plan-id'] === opts.planId)
    .filter((e) => !opts.state || e.operation?.state === opts.state)
    .map((e) => ({
      id: e.id,
      ...(type === 'service-binding' ? { instanceId: e.values['instance-id'] as string | undefined } : {}),
      serviceId: e.values['service-id'] as string | undefined,
      planId: e.values['plan-id'] as string | undefined,
      operation: e.operation?.operation,
      state: e.operation?.state,
      operationId: e.operation?.operationId,
    }));
}

/**
 * Operations from visibility, page by page. Each run's memo (where the operation ID is) is decoded on its own: a
 * run whose memo this configuration cannot decrypt (written with a key it no longer or never had, or by another
 * deployment in the namespace) is listed without its operation ID and marked, instead of failing the whole list
 * as the SDK's iterator does.
 */
async function listOperations(ctx: CliContext, query: string, limit: number): Promise<ListRow[]> {
  const codec = codecFromConfig(ctx.config);
  const operationIdOf = async (payload: Payload | undefined): Promise<{ operationId?: string; unreadable?: boolean }> => {
    if (!payload) return {};
    try {
      const [decoded] = codec ? await codec.decode([payload]) : [payload];
      const value: unknown = defaultPayloadConverter.fromPayload(decoded!);
      return typeof value === 'string' ? { operationId: value } : {};
    } catch {
      return { unreadable: true };
    }
  };
  const keyword = (fields: Record<string, Payload>, name: string): string | undefined => {
    const p = fields[name];
    if (!p) return undefined;
    const value: unknown = defaultPayloadConverter.fromPayload(p);
    const first: unknown = Array.isArray(value) ? value[0] : value;
    return typeof first === 'string' ? first : undefined;
  };
  const rows: ListRow[] = [];
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await ctx.client.workflowService.listWorkflowExecutions({
      namespace: ctx.client.options.namespace,
      query,
      pageSize: Math.min(limit, 1000),
      ...(nextPageToken ? { nextPageToken } : {}),
    });
    for (const raw of page.executions ?? []) {
      const sa = (raw.searchAttributes?.indexedFields ?? {}) as Record<string, Payload>;
      const memo = await operationIdOf((raw.memo?.fields as Record<string, Payload> | undefined)?.operationId ?? undefined);
      rows.push({
        operationId: memo.operationId,
        operation: keyword(sa, 'OperationType'),
        state: keyword(sa, 'OperationState'),
        instanceId: keyword(sa, 'InstanceId'),
        bindingId: keyword(sa, 'BindingId'),
        serviceId: keyword(sa, 'ServiceId'),
        planId: keyword(sa, 'PlanId'),
        startedAt: new Date(timestampMs(raw.startTime)).toISOString(),
        ...(memo.unreadable ? { memo: 'not readable with this configuration\'s encryption keys' } : {}),
      });
      if (rows.length >= limit) return rows;
    }
    nextPageToken = page.nextPageToken && page.nextPageToken.length > 0 ? page.nextPageToken : undefined;
  } while (nextPageToken);
  return rows;
}

/** A protobuf timestamp (seconds as a number or a Long) in epoch milliseconds. */
function timestampMs(ts: { seconds?: number | { toNumber(): number } | null; nanos?: number | null } | null | undefined): number {
  const s = ts?.seconds;
  const seconds = typeof s === 'number' ? s : s ? s.toNumber() : 0;
  return seconds * 1000 + Math.floor((ts?.nanos ?? 0) / 1e6);
}
