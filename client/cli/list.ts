// `brokerflow list`: instances and bindings from the registry, operations from Temporal visibility (queried
// through the search attributes, so the Web UI and the CLI filter the same way).
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
    const rows: ListRow[] = [];
    for await (const wf of ctx.client.workflow.list({ query: clauses.join(' AND '), pageSize: Math.min(opts.limit, 1000) })) {
      const sa = wf.searchAttributes as Record<string, unknown[] | undefined>;
      const memo = (wf.memo ?? {}) as Record<string, unknown>;
      rows.push({
        operationId: typeof memo.operationId === 'string' ? memo.operationId : undefined,
        operation: sa.OperationType?.[0] as string | undefined,
        state: sa.OperationState?.[0] as string | undefined,
        instanceId: sa.InstanceId?.[0] as string | undefined,
        bindingId: sa.BindingId?.[0] as string | undefined,
        serviceId: sa.ServiceId?.[0] as string | undefined,
        planId: sa.PlanId?.[0] as string | undefined,
        startedAt: wf.startTime.toISOString(),
      });
      if (rows.length >= opts.limit) break;
    }
    return rows;
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
