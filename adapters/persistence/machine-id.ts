// The machine ID handed to providers at initialize: stable across restarts of the same host. It identifies
// the writer of a file lock (a lock from this machine whose process is gone can be broken safely).
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ValidationError } from '../errors';
import { syncDirectory } from './fsync';

const MACHINE_ID = /^[0-9a-f]{32}$/;
/** Where systemd and D-Bus keep the host's machine ID. */
export const SYSTEM_MACHINE_ID_PATHS = ['/etc/machine-id', '/var/lib/dbus/machine-id'];

/** A stable host identity: 32 lowercase hex characters. */
export class MachineId {
  readonly value: string;

  constructor(value: string) {
    if (!MACHINE_ID.test(value)) throw new ValidationError('a machine ID is 32 lowercase hex characters', 'machineId');
    this.value = value;
  }

  toString(): string {
    return this.value;
  }

  /**
   * The host's machine ID from /etc/machine-id (or D-Bus), else one generated once and kept in
   * `<dataDir>/machine-id` so it survives restarts (containers often have no /etc/machine-id).
   */
  static async load(opts: { dataDir: string; systemPaths?: string[] }): Promise<MachineId> {
    for (const path of opts.systemPaths ?? SYSTEM_MACHINE_ID_PATHS) {
      const id = (await readFile(path, 'utf8').catch(() => '')).trim().toLowerCase();
      if (MACHINE_ID.test(id)) return new MachineId(id);
    }
    const path = join(opts.dataDir, 'machine-id');
    const existing = (await readFile(path, 'utf8').catch(() => '')).trim();
    if (MACHINE_ID.test(existing)) return new MachineId(existing);
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(`${randomBytes(16).toString('hex')}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    // link() fails if the file exists, so two processes starting together keep the first ID and agree on it.
    try {
      await link(tmp, path);
      await syncDirectory(dirname(path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
    return new MachineId((await readFile(path, 'utf8')).trim());
  }
}
