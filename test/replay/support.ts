// What the replay test and the capture script (scripts/capture-histories.ts) share: where the histories live,
// the payload encryption they were captured with, and how to read a history's workflow type.
//
// Why a fixed key: the worker encrypts every payload (workflow inputs, activity inputs and results, memos,
// activity summaries) with the AES-256-GCM codec of platform/codec.ts, and replay must decode them, since the
// workflows branch on activity results (`refused`, `alreadySucceeded`, the bindings a deprovision lists). Capturing
// with the codec off would commit plaintext payloads and replay through a data converter production never uses;
// capturing with the random per-run test key would make the histories undecodable. So capture and replay both
// use the production converter (`dataConverter(config)` from platform/temporal.ts) configured with the key below.
//
// TEST-ONLY KEY. It is public (committed) and protects nothing: it only keeps the committed histories free of
// plaintext payloads and lets the replay test decode them. Never configure it anywhere else. The captured runs
// use throwaway servers and test values only; binding credentials never enter history at all (they go straight
// from an activity to the registry's secret store).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';
import type { History } from '@temporalio/common/lib/proto-utils';
import type { RuntimeConfigFile } from '../../config/runtime';

/** The committed histories, one `<name>.json` per captured run (`temporal workflow show --output json` format). */
export const historiesDir = join(__dirname, 'histories');

/** The ID of the test-only key; it is written into every encrypted payload's metadata. */
export const replayTestKeyId = 'replay-test-only';

/** The `encryption` block the histories were captured with and are replayed with. TEST-ONLY, see above. */
export const replayTestEncryption: NonNullable<RuntimeConfigFile['encryption']> = {
  currentKeyId: replayTestKeyId,
  keys: [{ id: replayTestKeyId, key: '9WEmQyA6JZprFqVhxDW8ffSjHxNN+sqEfMe4nxPrPsY=' }],
};

// The history JSON format (`temporal workflow show --output json`, the Web UI's download) is ProtoJSON. The SDK's
// own helpers (`historyToJSON` / `historyFromJSON` of @temporalio/common/lib/proto-utils, also what
// `Worker.runReplayHistory` calls on a JSON history) throw "type must be a Type" in this install: npm nests a
// separate copy of protobufjs 8 under @temporalio/common, @temporalio/proto and @temporalio/worker (the top-level
// protobufjs is 7.x, for @grpc/proto-loader and google-gax), and protojson's `instanceof Type` check fails across
// copies. These two do what the SDK's do, with the protojson of the copy that @temporalio/proto's types belong
// to, so they also work once the copies are deduplicated.
interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }): unknown;
}
const protojson = createRequire(require.resolve('@temporalio/proto'))('protobufjs/ext/protojson') as ProtoJson;
const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType('temporal.api.history.v1.History');

/**
 * A history as ProtoJSON text (what `historyToJSON` returns), scrubbed of what replay never reads and a committed
 * file must not hold: failures' stack traces (they name the capturing machine's paths) and worker identities
 * (process ID and host name).
 */
export function historyToJson(history: History): string {
  return JSON.stringify(scrub(protojson.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history))), null, 2);
}

function scrub(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(scrub);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, k === 'stackTrace' && typeof v === 'string' ? '' : k === 'identity' && typeof v === 'string' && /@/.test(v) ? 'history-capture' : scrub(v)]),
  );
}

/** A history from parsed ProtoJSON (what `historyFromJSON` returns); unknown fields of newer servers are ignored. */
export function historyFromJson(json: unknown): History {
  return protojson.fromJson(historyType, json, { ignoreUnknownFields: true }) as History;
}

/** A committed history as JSON, with the name of its file (without `.json`). */
export interface StoredHistory {
  name: string;
  /** The proto-JSON history (`historyToJSON` of @temporalio/common/lib/proto-utils). */
  history: { events: Array<Record<string, unknown>> };
}

/**
 * Histories kept from before a patched() change (`histories/kept/<name>.<patch-id>.json`): the capture script
 * never touches them, so the old path of every patch stays replayed until the patch is deprecated.
 */
export const keptDir = join(historiesDir, 'kept');

/** Every history under {@link historiesDir} and {@link keptDir}, sorted by name (kept ones as `kept/<name>`). */
export function loadHistories(dir = historiesDir): StoredHistory[] {
  const read = (d: string, prefix: string) =>
    existsSync(d)
      ? readdirSync(d)
          .filter((f) => f.endsWith('.json'))
          .sort()
          .map((f) => ({ name: `${prefix}${f.slice(0, -'.json'.length)}`, history: JSON.parse(readFileSync(join(d, f), 'utf8')) as StoredHistory['history'] }))
      : [];
  return [...read(dir, ''), ...(dir === historiesDir ? read(keptDir, 'kept/') : [])];
}

/** The workflow type a history ran (its first event, WorkflowExecutionStarted, names it). */
export function historyWorkflowType(history: StoredHistory['history']): string {
  const started = history.events[0]?.workflowExecutionStartedEventAttributes as { workflowType?: { name?: string } } | undefined;
  const name = started?.workflowType?.name;
  if (!name) throw new Error('the history does not begin with WorkflowExecutionStarted');
  return name;
}

const encryptedEncoding = Buffer.from('binary/encrypted').toString('base64');

/**
 * Paths (`events[3].activityTaskScheduledEventAttributes.input.payloads[0]`) of payloads that are not encrypted.
 * Exempt are what the SDK writes itself and no codec ever sees: search attributes (Temporal indexes them; they
 * hold no secrets by design) and the `data` of a local activity's marker (Core's bookkeeping: sequence, attempt,
 * activity type, times; the activity's result next to it, `result`, is encrypted) and the `patch-data` of a
 * patch marker (the patch ID that `patched()` records, and whether it is deprecated).
 */
export function unencryptedPayloads(value: unknown, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => unencryptedPayloads(v, `${path}[${i}]`));
  if (!value || typeof value !== 'object') return [];
  const obj = value as Record<string, unknown>;
  const meta = obj.metadata as Record<string, unknown> | undefined;
  if (meta && typeof meta === 'object' && typeof meta.encoding === 'string') {
    return meta.encoding === encryptedEncoding ? [] : [path];
  }
  return Object.entries(obj).flatMap(([k, v]) => {
    const at = path ? `${path}.${k}` : k;
    if (k === 'searchAttributes' || at.endsWith('markerRecordedEventAttributes.details.data') || at.endsWith('markerRecordedEventAttributes.details.patch-data')) return [];
    return unencryptedPayloads(v, at);
  });
}
