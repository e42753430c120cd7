// Fleet upgrades (`brokerflow upgrade --plan <id>`): the maintenance window an upgrade may start updates in, and
// which instances of a plan an upgrade changes. Pure rules shared by the fleet workflow (which waits for the window
// on a durable timer), its listing activity and the CLI (which parses the window and prints dry runs)
// (docs/design/osb-semantics.md#fleet-upgrades).

/** When a fleet upgrade may start updates: on these UTC week days, from start to end (minutes after midnight). */
export interface MaintenanceWindow {
  /** UTC days of the week the window opens on, 0 = Sunday … 6 = Saturday, ascending, no repeats. */
  days: number[];
  /** Minutes after midnight UTC the window opens. */
  startMinute: number;
  /** Minutes after midnight UTC the window closes; not after `startMinute`: it closes the next day. */
  endMinute: number;
}

/** A window text that cannot be read; the message says what is wrong and what is expected. */
export class InvalidWindowError extends Error {
  readonly code = 'Invalid';
  readonly retryable = false;
  constructor(text: string, problem: string) {
    super(`--window "${text}": ${problem} (expected "<days> HH:MM-HH:MM UTC", e.g. "Mon-Fri 22:00-04:00 UTC", "Sat,Sun 01:00-05:00 UTC" or "daily 02:00-03:00 UTC")`);
    this.name = 'InvalidWindowError';
  }
}

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const DAY_LABELS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MINUTES_PER_DAY = 24 * 60;
const MS_PER_MINUTE = 60_000;

function dayIndex(text: string, token: string): number {
  const i = DAY_NAMES.indexOf(token.slice(0, 3).toLowerCase() as (typeof DAY_NAMES)[number]);
  const full = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'][i];
  if (i < 0 || !(token.length === 3 || token.toLowerCase() === full)) throw new InvalidWindowError(text, `"${token}" is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)`);
  return i;
}

function parseDays(text: string, spec: string): number[] {
  if (/^(daily|\*|every-?day)$/i.test(spec)) return [0, 1, 2, 3, 4, 5, 6];
  const days = new Set<number>();
  for (const part of spec.split(',')) {
    if (part === '') throw new InvalidWindowError(text, 'an empty day in the list of days');
    const range = part.split('-');
    if (range.length > 2) throw new InvalidWindowError(text, `"${part}" is not a day or a range of days`);
    const from = dayIndex(text, range[0]!);
    const to = range.length === 2 ? dayIndex(text, range[1]!) : from;
    // A range wraps over the weekend: Fri-Mon is Fri, Sat, Sun, Mon.
    for (let d = from; ; d = (d + 1) % 7) {
      days.add(d);
      if (d === to) break;
    }
  }
  return [...days].sort((a, b) => a - b);
}

function parseTime(text: string, hhmm: string): number {
  const m = /^(\d{1,2}):(\d{2})$/.exec(hhmm);
  if (!m) throw new InvalidWindowError(text, `"${hhmm}" is not a time HH:MM`);
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (h > 24 || min > 59 || (h === 24 && min !== 0)) throw new InvalidWindowError(text, `"${hhmm}" is not a time of day (00:00 to 24:00)`);
  return h * 60 + min;
}

/**
 * Reads `"<days> HH:MM-HH:MM UTC"`: days as `Mon-Fri`, `Sat,Sun`, `Mon,Wed-Fri` or `daily`; the times in UTC (the
 * zone must be written, so nobody reads a local time into it). An end not after the start closes the next day
 * (`Fri 22:00-02:00 UTC` runs into Saturday); `00:00-24:00` is the whole day.
 */
export function parseMaintenanceWindow(text: string): MaintenanceWindow {
  const parts = text.trim().split(/\s+/);
  if (parts.length === 1 && parts[0] === '') throw new InvalidWindowError(text, 'the window is empty');
  if (parts.length !== 3) throw new InvalidWindowError(text, `${parts.length} part${parts.length === 1 ? '' : 's'} where three are expected: days, times and the zone`);
  const [days, times, zone] = parts as [string, string, string];
  if (zone.toUpperCase() !== 'UTC') throw new InvalidWindowError(text, `the zone is "${zone}": windows are written in UTC`);
  const range = times.split('-');
  if (range.length !== 2) throw new InvalidWindowError(text, `"${times}" is not a time range HH:MM-HH:MM`);
  const startMinute = parseTime(text, range[0]!);
  const endMinute = parseTime(text, range[1]!);
  if (startMinute === endMinute) throw new InvalidWindowError(text, 'the window opens and closes at the same time');
  if (startMinute === MINUTES_PER_DAY) throw new InvalidWindowError(text, 'a window cannot open at 24:00 (write 00:00 of the next day)');
  return { days: parseDays(text, days), startMinute, endMinute };
}

const hhmm = (minutes: number) => `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;

/** The window as `parseMaintenanceWindow` reads it back: `Mon,Tue,Fri 22:00-04:00 UTC`. */
export function formatMaintenanceWindow(w: MaintenanceWindow): string {
  const days = w.days.length === 7 ? 'daily' : w.days.map((d) => DAY_LABELS[d]).join(',');
  return `${days} ${hhmm(w.startMinute)}-${hhmm(w.endMinute)} UTC`;
}

/** How long the window lasts once open, in minutes. */
function lengthMinutes(w: MaintenanceWindow): number {
  return w.endMinute > w.startMinute ? w.endMinute - w.startMinute : MINUTES_PER_DAY - w.startMinute + w.endMinute;
}

/**
 * Milliseconds from `nowMs` (epoch, UTC) until the window is next open: 0 while it is open. The workflow sleeps
 * this long on a durable timer before it starts updates again.
 */
export function msUntilWindowOpens(w: MaintenanceWindow, nowMs: number): number {
  const dayMs = MINUTES_PER_DAY * MS_PER_MINUTE;
  const midnight = Math.floor(nowMs / dayMs) * dayMs;
  const weekday = new Date(midnight).getUTCDay();
  const length = lengthMinutes(w) * MS_PER_MINUTE;
  let best = Infinity;
  // Yesterday's opening may still be open (a window past midnight); then the next eight days' openings.
  for (let offset = -1; offset <= 7; offset++) {
    const day = (((weekday + offset) % 7) + 7) % 7;
    if (!w.days.includes(day)) continue;
    const opens = midnight + offset * dayMs + w.startMinute * MS_PER_MINUTE;
    if (nowMs >= opens && nowMs < opens + length) return 0;
    if (opens > nowMs) best = Math.min(best, opens - nowMs);
  }
  return best;
}

/** Milliseconds until the open window closes (0 when it is not open). */
export function msUntilWindowCloses(w: MaintenanceWindow, nowMs: number): number {
  if (msUntilWindowOpens(w, nowMs) !== 0) return 0;
  const dayMs = MINUTES_PER_DAY * MS_PER_MINUTE;
  const midnight = Math.floor(nowMs / dayMs) * dayMs;
  const length = lengthMinutes(w) * MS_PER_MINUTE;
  for (const offset of [0, -1]) {
    const opens = midnight + offset * dayMs + w.startMinute * MS_PER_MINUTE;
    if (nowMs >= opens && nowMs < opens + length) return opens + length - nowMs;
  }
  return 0;
}

/** An instance of a plan as the fleet upgrade reads it from the registry. */
export interface FleetMember {
  instanceId: string;
  /** The maintenance version applied to it (absent: none recorded). */
  maintenanceVersion?: string;
  /** A provision succeeded on it (only provisioned instances can be updated). */
  provisioned: boolean;
}

/** One instance a fleet upgrade changes: from its applied maintenance version to the target. */
export interface FleetChange {
  instanceId: string;
  from?: string;
  to: string;
}

/** What a fleet upgrade would do to a plan's instances: which change, which are already at the target, which it leaves. */
export interface FleetPlan {
  targetVersion: string;
  changes: FleetChange[];
  current: string[];
  /** Instances it does not update, with why (never skipped silently). */
  skipped: Array<{ instanceId: string; reason: string }>;
}

/** Decides, for each instance of the plan, whether the upgrade updates it (in instance ID order). */
export function planFleetUpgrade(members: FleetMember[], targetVersion: string): FleetPlan {
  const plan: FleetPlan = { targetVersion, changes: [], current: [], skipped: [] };
  for (const m of [...members].sort((a, b) => (a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0))) {
    if (!m.provisioned) plan.skipped.push({ instanceId: m.instanceId, reason: 'not provisioned (its provision failed or runs)' });
    else if (m.maintenanceVersion === targetVersion) plan.current.push(m.instanceId);
    else plan.changes.push({ instanceId: m.instanceId, ...(m.maintenanceVersion !== undefined ? { from: m.maintenanceVersion } : {}), to: targetVersion });
  }
  return plan;
}
