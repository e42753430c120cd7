// The embedded default backend: one JSON file per object under a directory per replica (a local disk, an NFS
// mount). Writes are atomic and durable: temp file + fsync + rename + directory fsync, under a per-object lock
// file so compare-and-write holds across processes. A crash at any point leaves the old or the new file.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { BrokerflowError, ConflictError, UnavailableError, ValidationError } from '../errors';
import { acquireLock, type HeldLock } from './file-lock';
import { syncDirectory } from './fsync';
import { listedIdentity, NO_NAMESPACE, PersistenceBackend, type GroupKind } from './backend';
import type { MachineId } from './machine-id';
import { formatKey, parseStored, resourceOf, type ObjectIdentity } from './object-key';
import type { ReplicaState } from './replicas';
import type { ObjectKey, PersistedObject, PutResult, WritePrecondition } from './types';

/** Configuration of the file backend: one replica per directory. */
export interface FilePersistenceOptions {
  directories: string[];
  /** Longest wait for another process's lock on the same object; default 10 s. */
  lockTimeoutMs?: number;
  /** Age after which a lock or temp file from a holder that cannot be checked counts as abandoned; default 30 s. */
  staleMs?: number;
}

interface FileReplica {
  root: string;
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return codes.includes((err as NodeJS.ErrnoException)?.code ?? '');
}

/** Disk trouble (full, read-only, I/O error, missing mount) makes the replica unavailable, not the input bad. */
function diskError(what: string, err: unknown): BrokerflowError {
  if (err instanceof BrokerflowError) return err;
  const code = (err as NodeJS.ErrnoException)?.code ?? 'unknown';
  return new UnavailableError(`file persistence: ${what} failed (${code})`, err);
}

/** Persists objects as files; see the file comment for the durability argument. */
export class FilePersistenceProvider extends PersistenceBackend<FileReplica> {
  private machineId = '';
  private readonly lockTimeoutMs: number;
  private readonly staleMs: number;

  constructor(opts: FilePersistenceOptions) {
    if (!Array.isArray(opts.directories)) throw new ValidationError('directories must be a list of paths', 'directories');
    super(
      'file',
      opts.directories.map((dir) => {
        if (typeof dir !== 'string' || dir.length === 0 || dir.includes('\0')) {
          throw new ValidationError('a file persistence directory must be a non-empty path', 'directories');
        }
        const root = resolve(dir);
        return { config: { root }, identity: { directory: root } };
      }),
    );
    this.lockTimeoutMs = opts.lockTimeoutMs ?? 10_000;
    this.staleMs = opts.staleMs ?? 30_000;
  }

  protected async connect({ config }: ReplicaState<FileReplica>, machineId: MachineId): Promise<void> {
    this.machineId = machineId.value;
    try {
      await mkdir(config.root, { recursive: true });
      // Prove the directory takes a durable write now rather than at the first put.
      const probe = join(config.root, `.probe-${randomBytes(6).toString('hex')}`);
      const fh = await open(probe, 'wx', 0o600);
      await fh.sync().finally(() => fh.close());
      await unlink(probe);
      await this.removeAbandonedTempFiles(config.root);
    } catch (err) {
      throw diskError(`opening the data directory`, err);
    }
  }

  protected async write(state: ReplicaState<FileReplica>, id: ObjectIdentity, stored: PersistedObject, precondition: WritePrecondition): Promise<PutResult> {
    const dir = await this.ensureDir(state, id);
    const file = join(dir, `${id.name}.json`);
    const lock = await this.lock(dir, id);
    try {
      const current = await this.readFileObject(file, formatKey(id));
      checkPrecondition(formatKey(id), current, precondition);
      const resourceVersion = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
      stored.metadata.resourceVersion = resourceVersion;
      const tmp = join(dir, `.${id.name}.json.${randomBytes(6).toString('hex')}.tmp`);
      try {
        const fh = await open(tmp, 'wx', 0o600);
        try {
          await fh.writeFile(JSON.stringify(stored));
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, file);
      } catch (err) {
        await unlink(tmp).catch(() => undefined);
        throw diskError('writing an object', err);
      }
      await syncDirectory(dir).catch((err: unknown) => {
        throw diskError('syncing a directory', err);
      });
      return { key: formatKey(id), resourceVersion };
    } finally {
      await lock.release();
    }
  }

  protected read(state: ReplicaState<FileReplica>, id: ObjectIdentity): Promise<PersistedObject | undefined> {
    return this.readFileObject(this.pathOf(state, id), formatKey(id));
  }

  protected async remove(state: ReplicaState<FileReplica>, id: ObjectIdentity, precondition: Pick<WritePrecondition, 'ifMatch'>): Promise<void> {
    const file = this.pathOf(state, id);
    const dir = dirname(file);
    if (!(await exists(dir))) {
      checkPrecondition(formatKey(id), undefined, precondition);
      return;
    }
    const lock = await this.lock(dir, id);
    try {
      const current = await this.readFileObject(file, formatKey(id));
      checkPrecondition(formatKey(id), current, precondition);
      if (!current) return;
      await unlink(file).catch((err: unknown) => {
        if (!isErrno(err, 'ENOENT')) throw diskError('deleting an object', err);
      });
      await syncDirectory(dir).catch((err: unknown) => {
        throw diskError('syncing a directory', err);
      });
    } finally {
      await lock.release();
    }
  }

  protected async list(state: ReplicaState<FileReplica>, gk: GroupKind): Promise<PersistedObject[]> {
    const kindDir = join(state.config.root, resourceOf(gk));
    const namespaces = await listDir(kindDir, 'ENOENT');
    const out: PersistedObject[] = [];
    for (const ns of namespaces.sort()) {
      if (ns !== NO_NAMESPACE && ns.startsWith('.')) continue;
      const files = await listDir(join(kindDir, ns), 'ENOENT');
      for (const f of files.sort()) {
        if (f.startsWith('.') || !f.endsWith('.json')) continue;
        const id = listedIdentity(gk, ns, f.slice(0, -'.json'.length));
        if (!id) continue;
        const obj = await this.readFileObject(join(kindDir, ns, f), formatKey(id));
        if (obj) out.push(obj);
      }
    }
    return out;
  }

  protected async disconnect(): Promise<void> {}

  /** The per-object lock that makes compare-and-write atomic across processes. */
  private lock(dir: string, id: ObjectIdentity): Promise<HeldLock> {
    return acquireLock(join(dir, `.${id.name}.json.lock`), {
      machineId: this.machineId,
      timeoutMs: this.lockTimeoutMs,
      staleMs: this.staleMs,
    });
  }

  private pathOf(state: ReplicaState<FileReplica>, id: ObjectIdentity): string {
    return join(state.config.root, resourceOf(id), id.namespace ?? NO_NAMESPACE, `${id.name}.json`);
  }

  /** The object's folder, created durably (each new folder is synced into its parent) if missing. */
  private async ensureDir(state: ReplicaState<FileReplica>, id: ObjectIdentity): Promise<string> {
    const kindDir = join(state.config.root, resourceOf(id));
    const dir = join(kindDir, id.namespace ?? NO_NAMESPACE);
    try {
      const created = await mkdir(dir, { recursive: true });
      if (created !== undefined) {
        await syncDirectory(state.config.root);
        await syncDirectory(kindDir);
      }
    } catch (err) {
      throw diskError('creating a folder', err);
    }
    return dir;
  }

  private async readFileObject(file: string, key: ObjectKey): Promise<PersistedObject | undefined> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw diskError('reading an object', err);
    }
    return parseStored(text, key);
  }

  private async removeAbandonedTempFiles(root: string): Promise<void> {
    for (const kind of await listDir(root)) {
      for (const ns of await listDir(join(root, kind))) {
        const dir = join(root, kind, ns);
        for (const f of await listDir(dir)) {
          if (!f.startsWith('.') || !f.endsWith('.tmp')) continue;
          const st = await stat(join(dir, f)).catch(() => undefined);
          if (st && Date.now() - st.mtimeMs > this.staleMs) await unlink(join(dir, f)).catch(() => undefined);
        }
      }
    }
  }
}

function checkPrecondition(key: ObjectKey, current: PersistedObject | undefined, pre: WritePrecondition): void {
  if (pre.ifNoneMatch === '*' && current) throw new ConflictError(`${key} already exists`);
  if (pre.ifMatch !== undefined) {
    if (!current) throw new ConflictError(`${key} no longer exists`);
    if (current.metadata.resourceVersion !== pre.ifMatch) throw new ConflictError(`${key} was changed by another writer`);
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Folder entries; a folder that is missing (or, when tolerated, a plain file) lists as empty. */
async function listDir(dir: string, ...tolerated: string[]): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isErrno(err, ...(tolerated.length ? tolerated : ['ENOENT', 'ENOTDIR']))) return [];
    throw diskError('listing a folder', err);
  }
}
