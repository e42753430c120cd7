// `brokerflow`: the command-line client. It starts operations through the same OsbService as the HTTP API
// (same checks, same answers), reads state from the registry and Temporal, and watches progress live.
// Every command takes --json; exit codes are stable for scripts (see EXIT below and the README).
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { configPathFromArgs, loadRuntimeConfig, type RuntimeConfig } from '../../config';
import { publicCatalog } from '../../config/catalog';
import { BrokerflowError, NotFoundError } from '../../adapters/errors';
import { OsbError } from '../broker/errors';
import type { RequestPreview } from '../broker/service';
import type { OperationType } from '../../domain/operations';
import { previewReconciliation } from './dry-run';
import { formatResources } from './plan-diff';
import { connectClient, TemporalUnreachableError } from '../../platform/temporal';
import { createCliContext, type CliContext } from './context';
import { watchStatus, currentStatus } from './status';
import { listEntries } from './list';
import { formatHistory, readHistory } from './history';
import { createRegistry } from '../../adapters/factory';
import type { RequestOrigin } from '../../domain/audit';
import { CancelRefused, cancelOperation } from './cancel';
import { UpgradeRefused, runUpgrade, type UpgradeOptions } from './upgrade';
import { OPERATION_STATES } from '../../domain/operations';
import { credentialsSummary, formatCredentials } from './credentials';

/** Exit codes scripts can rely on. */
export const EXIT = {
  ok: 0,
  /** The operation ran and failed, or an unexpected error. */
  failed: 1,
  /** Bad usage or invalid input (HTTP 400 / 412 equivalents). */
  usage: 2,
  /** The instance, binding or operation does not exist (404 / 410). */
  notFound: 3,
  /** Another operation runs, or the request conflicts with what exists (409 / 422). */
  conflict: 4,
  /** Temporal or the registry cannot be reached. */
  unreachable: 5,
} as const;

interface GlobalOpts {
  config?: string;
  json?: boolean;
}

function parseJsonArg(value: string | undefined, what: string): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  const text = value.startsWith('@') ? readFileSync(value.slice(1), 'utf8') : value;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${what} is not valid JSON: ${(err as Error).message}`, EXIT.usage);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new CliError(`${what} must be a JSON object`, EXIT.usage);
  return parsed as Record<string, unknown>;
}

/**
 * Who the audit trail names for operations the CLI starts: platform `brokerflow-cli` and the operating-system user
 * running it (docs/design/contracts/cli.md).
 */
function cliOrigin(): RequestOrigin {
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    user = process.env.USER ?? process.env.USERNAME;
  }
  const clean = (user ?? '').replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 256);
  return { platform: 'brokerflow-cli', user: clean || 'unknown' };
}

/** An error with the exit code it maps to. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

function exitCodeForStatus(status: number): number {
  if (status < 300) return EXIT.ok;
  if (status === 404 || status === 410) return EXIT.notFound;
  if (status === 409 || status === 422) return EXIT.conflict;
  if (status >= 400 && status < 500) return EXIT.usage;
  return EXIT.failed;
}

/** Prints a result as JSON (`--json`) or as readable lines. */
function emit(json: boolean | undefined, value: Record<string, unknown>, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human()}\n`);
}

function resolveIds(cfg: RuntimeConfig, service: string, plan: string | undefined): { serviceId: string; planId?: string } {
  const svc = cfg.catalogData.services.find((s) => s.id === service || s.name === service);
  if (!svc) throw new CliError(`no service "${service}" in the catalog (try \`brokerflow catalog\`)`, EXIT.usage);
  if (plan === undefined) return { serviceId: svc.id };
  const p = svc.plans.find((x) => x.id === plan || x.name === plan);
  if (!p) throw new CliError(`no plan "${plan}" in service "${svc.name}" (plans: ${svc.plans.map((x) => x.name).join(', ')})`, EXIT.usage);
  return { serviceId: svc.id, planId: p.id };
}

async function withContext<T>(g: GlobalOpts, body: (ctx: CliContext) => Promise<T>): Promise<T> {
  const cfg = loadRuntimeConfig(g.config ?? configPathFromArgs([]));
  const ctx = await createCliContext(cfg, () => connectClient(cfg, { connectTimeoutMs: 5000 }));
  try {
    return await body(ctx);
  } finally {
    await ctx.close();
  }
}

/** Runs an OSB request through the service and prints the answer; waits and watches when asked. */
async function runOperation(
  g: GlobalOpts,
  ctx: CliContext,
  ref: { instanceId: string; bindingId?: string },
  call: () => Promise<{ status: number; body: Record<string, unknown> }>,
  wait: boolean,
  /** A bind or rotation: once the binding exists, say where its credentials are (their values only when `show`). */
  credentials?: { show: boolean },
): Promise<number> {
  let answer: { status: number; body: Record<string, unknown> };
  try {
    answer = await call();
  } catch (err) {
    if (err instanceof OsbError) {
      emit(g.json, { status: err.statusCode, ...err.body() }, () => `error (${err.statusCode}${err.osbCode ? ` ${err.osbCode}` : ''}): ${err.message}`);
      return exitCodeForStatus(err.statusCode);
    }
    throw err;
  }
  const operation = typeof answer.body.operation === 'string' ? answer.body.operation : undefined;
  const binding = credentials && ref.bindingId ? { instanceId: ref.instanceId, bindingId: ref.bindingId } : undefined;
  if (!wait || !operation) {
    // A synchronous bind answers with the credentials: printed only when asked for, like everywhere else.
    const { credentials: _secret, metadata: _metadata, ...body } = answer.body;
    const summary = binding && !operation && answer.status < 300 ? await credentialsSummary(ctx, binding, credentials!.show) : undefined;
    emit(g.json, { status: answer.status, ...(binding ? body : answer.body), ...(summary ? { credentials: summary } : {}) }, () =>
      operation
        ? `accepted: operation ${operation}\n  follow it with: brokerflow status ${ref.instanceId}${ref.bindingId ? ` --binding ${ref.bindingId}` : ''} --operation ${operation} --watch`
        : `done (${answer.status})${summary ? `\n${formatCredentials(summary)}` : ''}`,
    );
    return exitCodeForStatus(answer.status);
  }
  const final = await watchStatus(ctx, { ...ref, operationId: operation }, { json: g.json === true });
  if (final?.state === 'succeeded' && binding) {
    // The last line stays the operation's final state, now with where the credentials are.
    const summary = await credentialsSummary(ctx, binding, credentials!.show);
    if (summary) emit(g.json, { ...final, credentials: summary }, () => formatCredentials(summary));
  }
  return final?.state === 'succeeded' ? EXIT.ok : final ? EXIT.failed : EXIT.notFound;
}

/**
 * Prints what a request would do without doing it (`--dry-run`): the same checks and decision as the request,
 * then, when it would start an operation, the patch reconciliation would apply to each resource against the
 * current state. Nothing is written anywhere and no workflow starts.
 */
async function runDryRun(
  g: GlobalOpts,
  ctx: CliContext,
  ref: { operation: OperationType; instanceId: string; bindingId?: string },
  call: () => Promise<RequestPreview>,
): Promise<number> {
  let p: RequestPreview;
  try {
    p = await call();
  } catch (err) {
    if (err instanceof OsbError) {
      emit(g.json, { dryRun: true, status: err.statusCode, ...err.body() }, () => `dry run: refused (${err.statusCode}${err.osbCode ? ` ${err.osbCode}` : ''}): ${err.message}`);
      return exitCodeForStatus(err.statusCode);
    }
    throw err;
  }
  const what = `${ref.operation} of ${ref.bindingId ? `binding ${ref.bindingId} of ` : ''}instance ${ref.instanceId}`;
  const head = { dryRun: true, operation: ref.operation, instanceId: ref.instanceId, ...(ref.bindingId ? { bindingId: ref.bindingId } : {}) };
  if (p.kind !== 'start') {
    const description =
      p.kind === 'answer'
        ? `an identical ${ref.operation} already succeeded: the request would be answered ${p.status} and nothing would run`
        : `an identical ${ref.operation} is in progress (operation ${p.operationId}): the request would join it`;
    const status = p.kind === 'answer' ? p.status : 202;
    emit(g.json, { ...head, status, ...(p.kind === 'join' ? { operationId: p.operationId } : {}), resources: [], description }, () => `dry run: ${what}: ${description}; nothing was changed`);
    return EXIT.ok;
  }
  const preview = await previewReconciliation(
    { catalog: ctx.config.catalogData, resourceSets: ctx.config.resourceSetData, registry: ctx.registry, drivers: await ctx.drivers() },
    p.input,
  );
  const result = {
    ...head,
    status: 202,
    operationId: p.input.operationId,
    serviceId: p.input.serviceId,
    planId: p.input.planId,
    resources: preview.resources,
    ...(preview.skipped ? { skipped: preview.skipped } : {}),
    ...(preview.stoppedAt ? { stoppedAt: preview.stoppedAt } : {}),
  };
  emit(g.json, result, () => {
    const counts = (['create', 'update', 'delete', 'unchanged', 'canceled'] as const)
      .map((a) => [a, preview.resources.filter((r) => r.action === a).length] as const)
      .filter(([, n]) => n > 0)
      .map(([a, n]) => `${n} ${a}`);
    const lines = [`dry run: ${what} (operation ${p.input.operationId}): ${counts.length ? counts.join(', ') : 'no resources'}; nothing was changed`];
    if (preview.skipped) lines.push(`  no resources to reconcile: ${preview.skipped}`);
    lines.push(...formatResources(preview.resources));
    if (preview.stoppedAt) lines.push(`  reconciliation would stop at ${preview.stoppedAt.resource}: ${preview.stoppedAt.reason}`);
    return lines.join('\n');
  });
  return EXIT.ok;
}

export function buildProgram(): Command {
  const program = new Command('brokerflow')
    .description('Start and follow brokerflow operations (OSB v2.17 on Temporal).')
    .option('--config <file>', 'runtime configuration file (default: $BROKERFLOW_CONFIG or config/brokerflow.example.yaml)')
    .option('--json', 'machine-readable JSON output')
    .showHelpAfterError()
    .exitOverride();
  const g = () => program.opts<GlobalOpts>();
  const paramsOpt = new Option('--params <json>', 'parameters as JSON, or @file');
  const waitOpt = new Option('--wait', 'wait for the operation to finish, showing progress');
  const showCredentialsOpt = () => new Option('--show-credentials', "print the binding's credentials themselves (by default only where they are and when they expire)");
  const dryRunOpt = () =>
    new Option('--dry-run', 'show what the operation would change, per resource against the current state, and change nothing').conflicts('wait');

  program
    .command('catalog')
    .description('list services and plans')
    .action(async () => {
      const cfg = loadRuntimeConfig(g().config ?? configPathFromArgs([]));
      const catalog = publicCatalog(cfg.catalogData);
      emit(g().json, catalog as unknown as Record<string, unknown>, () =>
        catalog.services
          .map((s) => `${s.name} (${s.id})\n${s.plans.map((p) => `  ${p.name} (${p.id})${p.maintenance_info ? ` v${p.maintenance_info.version}` : ''}: ${p.description}`).join('\n')}`)
          .join('\n'),
      );
    });

  program
    .command('provision <instance>')
    .description('provision a service instance')
    .requiredOption('--service <id|name>', 'service')
    .requiredOption('--plan <id|name>', 'plan')
    .addOption(paramsOpt)
    .option('--context <json>', 'OSB context as JSON')
    .option('--org <guid>', 'the organization_guid the instance belongs to', 'brokerflow-cli')
    .option('--space <guid>', 'the space_guid the instance belongs to', 'brokerflow-cli')
    .addOption(waitOpt)
    .addOption(dryRunOpt())
    .action(async (instance: string, o: { service: string; plan: string; params?: string; context?: string; org: string; space: string; wait?: boolean; dryRun?: boolean }) => {
      process.exitCode = await withContext(g(), async (ctx) => {
        const ids = resolveIds(ctx.config, o.service, o.plan);
        const parameters = parseJsonArg(o.params, '--params');
        const context = parseJsonArg(o.context, '--context');
        const request = { service_id: ids.serviceId, plan_id: ids.planId!, organization_guid: o.org, space_guid: o.space, ...(parameters ? { parameters } : {}), ...(context ? { context } : {}) };
        if (o.dryRun) return runDryRun(g(), ctx, { operation: 'provision', instanceId: instance }, () => ctx.osb.previewProvision(instance, request));
        return runOperation(g(), ctx, { instanceId: instance }, () => ctx.osb.provision(instance, request, true, cliOrigin()), o.wait === true);
      });
    });

  program
    .command('update <instance>')
    .description('update a service instance (plan and/or parameters)')
    .option('--plan <id|name>', 'new plan')
    .addOption(paramsOpt)
    .addOption(waitOpt)
    .addOption(dryRunOpt())
    .action(async (instance: string, o: { plan?: string; params?: string; wait?: boolean; dryRun?: boolean }) => {
      process.exitCode = await withContext(g(), async (ctx) => {
        const entry = await ctx.registry.open('service-instance', instance);
        if (!entry.exists()) throw new CliError(`instance ${instance} does not exist`, EXIT.notFound);
        const ids = resolveIds(ctx.config, entry.get<string>('service-id')!, o.plan);
        const parameters = parseJsonArg(o.params, '--params');
        const request = { service_id: ids.serviceId, ...(ids.planId ? { plan_id: ids.planId } : {}), ...(parameters ? { parameters } : {}) };
        if (o.dryRun) return runDryRun(g(), ctx, { operation: 'update', instanceId: instance }, () => ctx.osb.previewUpdate(instance, request));
        return runOperation(g(), ctx, { instanceId: instance }, () => ctx.osb.update(instance, request, true, cliOrigin()), o.wait === true);
      });
    });

  program
    .command('deprovision <instance>')
    .description('deprovision a service instance')
    .addOption(waitOpt)
    .action(async (instance: string, o: { wait?: boolean }) => {
      process.exitCode = await withContext(g(), async (ctx) => {
        const entry = await ctx.registry.open('service-instance', instance);
        const running = await ctx.operations.running({ instanceId: instance });
        if (!entry.exists() && !running) throw new CliError(`instance ${instance} does not exist`, EXIT.notFound);
        const serviceId = entry.get<string>('service-id') ?? '';
        const planId = entry.get<string>('plan-id') ?? '';
        return runOperation(g(), ctx, { instanceId: instance }, () => ctx.osb.deprovision(instance, { service_id: serviceId, plan_id: planId }, true, cliOrigin()), o.wait === true);
      });
    });

  program
    .command('bind <instance> <binding>')
    .description('create a binding (fetch its credentials through the broker: GET .../service_bindings/<binding>)')
    .addOption(paramsOpt)
    .option('--app-guid <guid>', 'the application to bind')
    .addOption(waitOpt)
    .addOption(showCredentialsOpt())
    .addOption(dryRunOpt())
    .action(async (instance: string, binding: string, o: { params?: string; appGuid?: string; wait?: boolean; dryRun?: boolean; showCredentials?: boolean }) => {
      process.exitCode = await withContext(g(), async (ctx) => {
        const entry = await ctx.registry.open('service-instance', instance);
        if (!entry.exists()) throw new CliError(`instance ${instance} does not exist`, EXIT.notFound);
        const parameters = parseJsonArg(o.params, '--params');
        const request = {
          service_id: entry.get<string>('service-id')!,
          plan_id: entry.get<string>('plan-id')!,
          ...(parameters ? { parameters } : {}),
          ...(o.appGuid ? { bind_resource: { app_guid: o.appGuid } } : {}),
        };
        if (o.dryRun) return runDryRun(g(), ctx, { operation: 'bind', instanceId: instance, bindingId: binding }, () => ctx.osb.previewBind(instance, binding, request));
        return runOperation(g(), ctx, { instanceId: instance, bindingId: binding }, () => ctx.osb.bind(instance, binding, request, true, cliOrigin()), o.wait === true, {
          show: o.showCredentials === true,
        });
      });
    });

  program
    .command('rotate <instance> <binding> <new-binding>')
    .description('rotate a binding (OSB binding rotation): create <new-binding> with new credentials and the parameters of <binding>; both stay valid until they expire or are deleted')
    .addOption(waitOpt)
    .addOption(showCredentialsOpt())
    .action(async (instance: string, binding: string, newBinding: string, o: { wait?: boolean; showCredentials?: boolean }) => {
      process.exitCode = await withContext(g(), async (ctx) => {
        const instanceEntry = await ctx.registry.open('service-instance', instance);
        if (!instanceEntry.exists()) throw new CliError(`instance ${instance} does not exist`, EXIT.notFound);
        // The predecessor's checks (exists, this instance's, not expired; the plan rotatable) are the broker's, so the
        // CLI answers exactly what a platform gets.
        const request = { service_id: instanceEntry.get<string>('service-id')!, plan_id: instanceEntry.get<string>('plan-id')!, predecessor_binding_id: binding };
        return runOperation(g(), ctx, { instanceId: instance, bindingId: newBinding }, () => ctx.osb.bind(instance, newBinding, request, true, cliOrigin()), o.wait === true, {
          show: o.showCredentials === true,
        });
      });
    });

  program
    .command('unbind <instance> <binding>')
    .description('delete a binding')
    .addOption(waitOpt)
    .action(async (instance: string, binding: string, o: { wait?: boolean }) => {
      process.exitCode = await withContext(g(), async (ctx) => {
        const entry = await ctx.registry.open('service-binding', binding, { instanceId: instance });
        if (!entry.exists()) throw new CliError(`binding ${binding} does not exist`, EXIT.notFound);
        return runOperation(g(), ctx, { instanceId: instance, bindingId: binding }, () =>
          ctx.osb.unbind(instance, binding, { service_id: entry.get<string>('service-id')!, plan_id: entry.get<string>('plan-id')! }, true, cliOrigin()),
        o.wait === true);
      });
    });

  program
    .command('cancel <instance>')
    .description('stop the provision, update or bind running on an instance or binding and undo its work')
    .option('--binding <id>', 'a binding of the instance')
    .addOption(new Option('--wait', 'wait until the operation has stopped and its work is undone, showing progress'))
    .action(async (instance: string, o: { binding?: string; wait?: boolean }) => {
      process.exitCode = await withContext(g(), async (ctx) => {
        try {
          return await cancelOperation(ctx, { instanceId: instance, ...(o.binding ? { bindingId: o.binding } : {}) }, { json: g().json === true, wait: o.wait === true }, EXIT);
        } catch (err) {
          throw err instanceof CancelRefused ? new CliError(err.message, err.exitCode) : err;
        }
      });
    });

  program
    .command('upgrade [action]')
    .description(
      'fleet upgrade: update every instance of a plan to the catalog\'s maintenance version, as one durable operation; ' +
        'action: start (default), status, pause, resume or abort',
    )
    .requiredOption('--plan <id|name>', 'the plan whose instances to upgrade')
    .option('--service <id|name>', 'the service, when the plan is named and several services have a plan of that name')
    .option('--max-in-flight <n>', 'how many instance updates run at a time (start)', '1')
    .option('--stop-after-failures <k>', 'stop starting updates once this many failed (start; default: never)')
    .option('--window <window>', 'start updates only in this window, "<days> HH:MM-HH:MM UTC", e.g. "Mon-Fri 22:00-04:00 UTC" (start)')
    .option('--busy-retry-seconds <s>', 'how long to wait before asking again for an instance busy with another operation (start; default 30)')
    .addOption(new Option('--dry-run', 'list the instances that would change (current -> target maintenance version) and change nothing (start)').conflicts('watch'))
    .option('--watch', 'follow the upgrade, one line whenever its progress changes, until it ends')
    .action(async (action: string | undefined, o: Omit<UpgradeOptions, 'json'>) => {
      process.exitCode = await withContext(g(), async (ctx) => {
        try {
          return await runUpgrade(ctx, action ?? 'start', { ...o, json: g().json === true }, EXIT);
        } catch (err) {
          throw err instanceof UpgradeRefused ? new CliError(err.message, err.exitCode) : err;
        }
      });
    });

  program
    .command('status <instance>')
    .description('the state of the latest (or a given) operation on an instance or binding')
    .option('--binding <id>', 'a binding of the instance')
    .option('--operation <id>', 'a specific operation')
    .option('--watch', 'follow live progress until the operation ends')
    .addOption(showCredentialsOpt())
    .action(async (instance: string, o: { binding?: string; operation?: string; watch?: boolean; showCredentials?: boolean }) => {
      process.exitCode = await withContext(g(), async (ctx) => {
        const ref = { instanceId: instance, ...(o.binding ? { bindingId: o.binding } : {}), ...(o.operation ? { operationId: o.operation } : {}) };
        // A binding's status also says where its credentials are and when they expire (or expired).
        const binding = o.binding;
        const credentials = binding ? async () => credentialsSummary(ctx, { instanceId: instance, bindingId: binding }, o.showCredentials === true) : undefined;
        const extra = credentials
          ? async () => {
              const summary = await credentials();
              return summary ? { json: { credentials: summary }, text: formatCredentials(summary) } : undefined;
            }
          : undefined;
        const s = o.watch ? await watchStatus(ctx, ref, { json: g().json === true }) : await currentStatus(ctx, ref, { json: g().json === true, ...(extra ? { extra } : {}) });
        if (!s) throw new CliError(`no operation known for ${o.binding ? `binding ${o.binding} of ` : ''}instance ${instance}`, EXIT.notFound);
        if (o.watch && credentials) {
          const summary = await credentials();
          if (summary) emit(g().json, { ...s, credentials: summary }, () => formatCredentials(summary));
        }
        return s.state === 'failed' ? EXIT.failed : EXIT.ok;
      });
    });

  program
    .command('history <instance>')
    .description('who asked for each operation on an instance (or one of its bindings), what it changed and how it ended')
    .option('--binding <id>', 'only this binding of the instance')
    .action(async (instance: string, o: { binding?: string }) => {
      // The trail is in the registry: this command needs no Temporal.
      const cfg = loadRuntimeConfig(g().config ?? configPathFromArgs([]));
      const bundle = await createRegistry(cfg);
      try {
        const items = await readHistory(bundle.registry, { instanceId: instance, ...(o.binding ? { bindingId: o.binding } : {}) });
        if (!items) throw new CliError(`no history known for ${o.binding ? `binding ${o.binding} of ` : ''}instance ${instance}`, EXIT.notFound);
        emit(g().json, { instanceId: instance, ...(o.binding ? { bindingId: o.binding } : {}), items }, () => formatHistory(items, cfg.catalogData));
        process.exitCode = EXIT.ok;
      } finally {
        await bundle.close();
      }
    });

  program
    .command('list')
    .description('list instances, bindings or operations')
    .addOption(new Option('--kind <kind>', 'what to list').choices(['instances', 'bindings', 'operations']).default('instances'))
    .addOption(new Option('--state <state>', 'operation state').choices(OPERATION_STATES))
    .option('--service <id|name>', 'only this service')
    .option('--plan <id|name>', 'only this plan')
    .option('--limit <n>', 'at most this many (operations)', '100')
    .action(async (o: { kind: 'instances' | 'bindings' | 'operations'; state?: string; service?: string; plan?: string; limit: string }) => {
      process.exitCode = await withContext(g(), async (ctx) => {
        const ids = o.service ? resolveIds(ctx.config, o.service, o.plan) : undefined;
        const rows = await listEntries(ctx, {
          kind: o.kind,
          ...(o.state ? { state: o.state } : {}),
          ...(ids?.serviceId ? { serviceId: ids.serviceId } : {}),
          ...(ids?.planId ? { planId: ids.planId } : {}),
          limit: Number(o.limit),
        });
        emit(g().json, { kind: o.kind, items: rows }, () =>
          rows.length === 0 ? `no ${o.kind}` : rows.map((r) => Object.values(r).map((v) => (v === undefined ? '-' : String(v))).join('  ')).join('\n'),
        );
        return EXIT.ok;
      });
    });

  program
    .command('doctor')
    .description('check Temporal, the registry and that a worker runs workflows (a probe workflow)')
    .option('--timeout <seconds>', 'how long to wait for a worker', '15')
    .action(async (o: { timeout: string }) => {
      process.exitCode = await withContext(g(), async (ctx) => {
        const checks = await ctx.doctor(Number(o.timeout) * 1000);
        emit(g().json, { checks }, () => checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.name}${c.detail ? `: ${c.detail}` : ''}`).join('\n'));
        return checks.every((c) => c.ok) ? EXIT.ok : EXIT.unreachable;
      });
    });

  return program;
}

/** Runs the CLI; returns the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    const json = argv.includes('--json');
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const code =
      err instanceof CliError
        ? err.exitCode
        : err instanceof TemporalUnreachableError
          ? EXIT.unreachable
          : err instanceof NotFoundError
            ? EXIT.notFound
            : err instanceof BrokerflowError && err.code === 'Invalid'
              ? EXIT.usage
              : err instanceof BrokerflowError && err.retryable
                ? EXIT.unreachable
                : EXIT.failed;
    const message = (err as Error).message;
    if (json) process.stdout.write(`${JSON.stringify({ error: message, exitCode: code })}\n`);
    else process.stderr.write(`brokerflow: ${message}\n`);
    return code;
  }
}

if (require.main === module) {
  void runCli(process.argv.slice(2)).then((code) => process.exit(code));
}
