// Reading back what brokerflow did, from the systems themselves: the keys and users in a tenant etcd, the
// workflow runs Temporal holds for a task queue, the activity attempts in their histories, and when each
// registry entry reached its final state. Scenarios assert on these, never on what the code says it did.
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { Etcd3 } from 'etcd3';
import type { Registry } from '../../../adapters/registry';
import { ETCD_MANAGED_NAME_PREFIX, ETCD_OWNERS_PREFIX, etcdOwnerKey } from '../../../adapters/resources/etcd';
import { onAuthRace } from '../osb';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns something other than undefined; fails after `timeoutMs` naming `what`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 250): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(intervalMs);
  }
}

/** What the etcd-prefix driver left in a tenant etcd for instances whose IDs start with `idPrefix`. */
export interface PrefixInventory {
  /** Instance ID -> the owner marks found for `/tenants/<id>` (exactly one, equal to the ID, when all is well). */
  owners: Map<string, string[]>;
  /** Keys inside the instances' ranges (`/tenants/<id>/…`): tenant data, which brokerflow itself never writes. */
  otherKeys: string[];
}

/**
 * Scans the owner marks of `/tenants/<idPrefix>*` (the example resource sets' prefix template) and the keys inside
 * those prefixes. Owner marks live outside the tenant ranges, under `/brokerflow-owners/etcd-prefix<prefix>`.
 */
export async function prefixInventory(etcd: Etcd3, idPrefix: string): Promise<PrefixInventory> {
  return onAuthRace(() => prefixInventoryOnce(etcd, idPrefix));
}

async function prefixInventoryOnce(etcd: Etcd3, idPrefix: string): Promise<PrefixInventory> {
  const marks = await etcd.getAll().prefix(etcdOwnerKey(`/tenants/${idPrefix}`)).strings();
  const owners = new Map<string, string[]>();
  for (const [key, value] of Object.entries(marks)) {
    const m = /^\/tenants\/([^/]+)$/.exec(key.slice(ETCD_OWNERS_PREFIX.length));
    if (!m) continue;
    owners.set(m[1]!, [...(owners.get(m[1]!) ?? []), value]);
  }
  const otherKeys = (await etcd.getAll().prefix(`/tenants/${idPrefix}`).keys()).filter((k) => /^\/tenants\/[^/]+\//.test(k));
  return { owners, otherKeys };
}

/** The owner mark of one instance's keyspace (`/tenants/<id>`), and the keys inside it. */
export async function keyspaceOf(etcd: Etcd3, id: string): Promise<{ owner?: string; keys: string[] }> {
  return onAuthRace(async () => {
    const owner = await etcd.get(etcdOwnerKey(`/tenants/${id}`)).string();
    const keys = await etcd.getAll().prefix(`/tenants/${id}/`).keys();
    return { ...(owner !== null ? { owner } : {}), keys };
  });
}

/** Deletes what a scenario left under `/tenants/<idPrefix>` and its owner marks (cleanup, as root). */
export async function deleteTenantKeys(etcd: Etcd3, idPrefix: string): Promise<void> {
  await onAuthRace(() => etcd.delete().prefix(`/tenants/${idPrefix}`).exec());
  await onAuthRace(() => etcd.delete().prefix(`${ETCD_OWNERS_PREFIX}/tenants/${idPrefix}`).exec());
}

/** An etcd user the etcd-user driver manages, with its roles and their permissions. */
export interface ManagedUser {
  name: string;
  roles: string[];
  /** Permissions of the role named like the user. */
  permissions: Array<{ permission: string; key: string; rangeEnd: string }>;
}

/** Every `bf-` user of a tenant etcd, or only those named in `names`. */
export async function managedUsers(etcd: Etcd3, names?: Set<string>): Promise<ManagedUser[]> {
  return onAuthRace(() => managedUsersOnce(etcd, names));
}

async function managedUsersOnce(etcd: Etcd3, names?: Set<string>): Promise<ManagedUser[]> {
  const users = (await etcd.getUsers()).map((u) => u.name).filter((n) => n.startsWith(ETCD_MANAGED_NAME_PREFIX) && (!names || names.has(n)));
  return Promise.all(
    users.map(async (name) => {
      const roles = (await etcd.user(name).roles()).map((r) => r.name);
      const perms = await etcd
        .role(name)
        .permissions()
        .catch(() => []);
      return {
        name,
        roles,
        permissions: perms.map((p) => ({ permission: String(p.permission), key: p.range.start.toString(), rangeEnd: p.range.end.toString() })),
      };
    }),
  );
}

/** Every `bf-` role of a tenant etcd (a role whose user is gone would be an orphan). */
export async function managedRoles(etcd: Etcd3): Promise<string[]> {
  return (await onAuthRace(() => etcd.getRoles())).map((r) => r.name).filter((n) => n.startsWith(ETCD_MANAGED_NAME_PREFIX));
}

/** One workflow run as visibility lists it. */
export interface RunInfo {
  workflowId: string;
  runId: string;
  type: string;
  status: string;
}

/** Every workflow run on a task queue (visibility is eventually consistent: see {@link settledRuns}). */
export async function workflowRuns(client: Client, taskQueue: string): Promise<RunInfo[]> {
  const out: RunInfo[] = [];
  for await (const w of client.workflow.list({ query: `TaskQueue = '${taskQueue}'` })) {
    out.push({ workflowId: w.workflowId, runId: w.runId, type: w.type, status: w.status.name });
  }
  return out;
}

/** The runs of a task queue once visibility has caught up: at least `atLeast` closed runs and no change for a second. */
export async function settledRuns(client: Client, taskQueue: string, atLeast: number, timeoutMs = 30_000): Promise<RunInfo[]> {
  let previous = -1;
  return waitFor(
    `visibility to list ${atLeast} closed runs on ${taskQueue}`,
    async () => {
      const runs = await workflowRuns(client, taskQueue);
      const closed = runs.filter((r) => r.status !== 'RUNNING').length;
      const stable = runs.length === previous;
      previous = runs.length;
      return closed >= atLeast && stable ? runs : undefined;
    },
    timeoutMs,
    1000,
  );
}

/** Workflow IDs with more runs of `type` than one (a duplicated operation). */
export function duplicatedRuns(runs: RunInfo[], type: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of runs) if (r.type === type) counts.set(r.workflowId, (counts.get(r.workflowId) ?? 0) + 1);
  return new Map([...counts].filter(([, n]) => n > 1));
}

/** One activity of a history: its type, the attempt that ended it, and when it was scheduled and ended. */
export interface ActivityAttempt {
  type: string;
  attempt: number;
  /** Milliseconds from scheduled to the start of the last attempt (time spent retrying with backoff). */
  retryingMs: number;
  lastFailure?: string;
}

const millis = (t: { seconds?: unknown; nanos?: number | null } | null | undefined): number =>
  t ? Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : 0;

/** The activities of one run with the attempt each ended on (history records only the last attempt). */
export async function activityAttempts(handle: WorkflowHandle): Promise<ActivityAttempt[]> {
  const history = await handle.fetchHistory();
  const scheduled = new Map<string, { type: string; at: number }>();
  const out: ActivityAttempt[] = [];
  for (const e of history.events ?? []) {
    if (e.activityTaskScheduledEventAttributes) {
      scheduled.set(String(e.eventId), { type: e.activityTaskScheduledEventAttributes.activityType?.name ?? '', at: millis(e.eventTime) });
    }
    const started = e.activityTaskStartedEventAttributes;
    if (started) {
      const s = scheduled.get(String(started.scheduledEventId));
      out.push({
        type: s?.type ?? '',
        attempt: started.attempt ?? 1,
        retryingMs: s ? millis(e.eventTime) - s.at : 0,
        ...(started.lastFailure?.message ? { lastFailure: started.lastFailure.message } : {}),
      });
    }
  }
  return out;
}

/** Records when each watched registry entry first reached a final state, by polling the registry. */
export class CompletionWatch {
  /** Entry ID -> epoch ms at which it was first seen final, and the state. */
  readonly finished = new Map<string, { at: number; state: string }>();
  /** Entry ID -> state at the last poll. */
  readonly last = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;

  constructor(
    private readonly registry: Registry,
    private readonly ids: Set<string>,
    private readonly operation: string,
  ) {}

  /** Polls every `intervalMs` until stopped. */
  start(intervalMs = 1000): void {
    const tick = () => {
      this.polling = this.poll().finally(() => {
        if (this.timer !== undefined) this.timer = setTimeout(tick, intervalMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.polling;
  }

  async poll(): Promise<void> {
    const now = Date.now();
    const entries = await this.registry.list('service-instance').catch(() => undefined);
    if (!entries) return;
    for (const e of entries) {
      if (!this.ids.has(e.id) || !e.operation) continue;
      const state = e.operation.operation === this.operation ? e.operation.state : `${e.operation.operation} ${e.operation.state}`;
      this.last.set(e.id, state);
      if (e.operation.operation === this.operation && e.operation.state !== 'in progress' && !this.finished.has(e.id)) {
        this.finished.set(e.id, { at: now, state: e.operation.state });
      }
    }
  }

  /** IDs the registry shows with this operation begun but not finished. */
  inProgress(): string[] {
    return [...this.ids].filter((id) => this.last.get(id) === 'in progress');
  }
}
