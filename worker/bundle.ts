// The workflow bundle, built once in a separate process and cached on disk by a hash of the workflow sources:
// webpack needs ~100 MB while bundling that a worker would otherwise keep for its whole life.
//
// A cached bundle is code the worker runs, so the cache is trusted only when nobody else could have written it:
// a private directory (created 0700) whose every ancestor and the files themselves belong to the current user or
// root and are writable by no group and no other user (an ancestor with the sticky bit, like /tmp, is allowed:
// others cannot rename or remove what is not theirs in it). The bundle must also match the SHA-256 recorded
// beside it when it was written. Anything else is ignored with a warning that says why, and the bundle is built
// into a fresh private temporary directory instead. See docs/DEPLOY.md#workflow-bundle-cache.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { packageRoot } from '../config/location';
import { workflowsEntry } from './workflows-entry';

/** The tree this module belongs to: the checkout when it runs from the sources, dist/ when compiled. */
const codeRoot = resolve(__dirname, '..');
/** Running from the sources (through tsx) rather than from the compiled build. */
const fromSources = __filename.endsWith('.ts');

function sourcesHash(): string {
  const h = createHash('sha256');
  const entry = workflowsEntry();
  // The code the bundle is made of: the .ts sources, or the compiled .js when running from dist/.
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (name.endsWith('.ts') || name.endsWith('.js')) h.update(name).update(readFileSync(p));
      else if (!name.includes('.')) walk(p);
    }
  };
  walk(join(codeRoot, 'workflows'));
  // Workflows import values from domain/ (the non-retryable error codes), so it is part of the bundle.
  walk(join(codeRoot, 'domain'));
  // An upgrade test's build (worker/workflows-entry.ts) is cached under a name of its own: its entry and the
  // folder it lives in are part of the hash.
  if (entry.upgradeTest) {
    h.update(`upgrade-test:${relative(packageRoot(), entry.path)}`);
    walk(dirname(entry.path));
  }
  h.update(readFileSync(join(packageRoot(), 'package-lock.json')));
  return h.digest('hex').slice(0, 16);
}

/** The cache file name of a bundle of the current workflow sources. */
export const bundleFileName = (): string => `workflows-${sourcesHash()}.js`;

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

/** The default cache: `$BROKERFLOW_BUNDLE_DIR`, else `$XDG_CACHE_HOME/brokerflow/workflow-bundles`, else under `~/.cache`. */
export function defaultBundleCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BROKERFLOW_BUNDLE_DIR) return resolve(env.BROKERFLOW_BUNDLE_DIR);
  const xdg = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.startsWith('/') ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(xdg, 'brokerflow', 'workflow-bundles');
}

/** Who the cache must belong to: the current user (root is always accepted too). */
interface Owner {
  uid: number | undefined;
}

function modeProblem(path: string, st: Stats, owner: Owner, what: 'directory' | 'file' | 'ancestor'): string | undefined {
  if (owner.uid !== undefined && st.uid !== owner.uid && st.uid !== 0) return `${what} ${path} belongs to uid ${st.uid}, not to this user (uid ${owner.uid}) or root`;
  const writableByOthers = (st.mode & 0o022) !== 0;
  const sticky = (st.mode & 0o1000) !== 0;
  if (writableByOthers && !(what === 'ancestor' && sticky)) {
    return `${what} ${path} is writable by its group or by others (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`;
  }
  return undefined;
}

/**
 * Why `dir` cannot be trusted to hold code this process runs, or undefined when it can: it must be a real
 * directory, and it and every ancestor must belong to this user or root and be writable by nobody else (a sticky
 * ancestor such as /tmp excepted). On a platform without user IDs (Windows) only the directory type is checked.
 */
export function untrustedDirectoryReason(dir: string, owner: Owner = { uid: process.getuid?.() }): string | undefined {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (err) {
    return `directory ${dir} cannot be resolved (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  const st = lstatSync(real);
  if (!st.isDirectory()) return `${dir} is not a directory`;
  if (owner.uid === undefined) return undefined;
  const own = modeProblem(real, st, owner, 'directory');
  if (own) return own;
  for (let p = dirname(real); ; p = dirname(p)) {
    const problem = modeProblem(p, lstatSync(p), owner, 'ancestor');
    if (problem) return problem;
    if (dirname(p) === p) return undefined;
  }
}

/** Why the cached `file` cannot be trusted, or undefined when it can: a regular file (no symlink) of this user or root, writable by nobody else. */
export function untrustedFileReason(file: string, owner: Owner = { uid: process.getuid?.() }): string | undefined {
  const st = lstatSync(file);
  if (!st.isFile()) return `${file} is not a regular file`;
  return owner.uid === undefined ? undefined : modeProblem(file, st, owner, 'file');
}

/** Where to report why a cache was not used. */
export interface BundleLog {
  warn(obj: object, msg: string): void;
}

/** Options for {@link prebuiltWorkflowBundle}. */
export interface PrebuiltBundleOptions {
  /** The cache directory; default {@link defaultBundleCacheDir}. */
  cacheDir?: string;
  log?: BundleLog;
  /** The user the cache must belong to (tests pretend to be someone else); default the process's. */
  owner?: Owner;
}

/** A workflow bundle the worker may run, and where it came from. */
export interface TrustedWorkflowBundle {
  /** The bundle's code, read once and checked, so what runs is exactly what was checked. */
  code: string;
  /** `cache`: read from the cache; `built`: built now (and written to the cache when it is trusted). */
  from: 'cache' | 'built';
  /** The cache file, when the cache holds this bundle now. */
  cacheFile?: string;
}

function buildInChild(out: string): void {
  const args = [...(fromSources ? ['--import', 'tsx'] : []), __filename, out];
  const res = spawnSync(process.execPath, args, { cwd: packageRoot(), stdio: ['ignore', 'inherit', 'inherit'] });
  if (res.status !== 0) throw new Error(`bundling the workflows failed (exit ${res.status}); run \`node ${args.slice(0, -1).map((a) => relative(packageRoot(), a) || a).join(' ')} out.js\` to see why`);
}

/** Builds the bundle into a fresh private temporary directory (mkdtemp creates it 0700) and reads it back. */
function buildUncached(): string {
  const dir = mkdtempSync(join(tmpdir(), 'brokerflow-bundle-'));
  try {
    const file = join(dir, 'workflows.js');
    buildInChild(file);
    return readFileSync(file, 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * An up-to-date workflow bundle: from the cache when the cache is private and the file matches its recorded
 * hash, else built in a child process (and cached when the cache directory is trusted and writable).
 */
export function prebuiltWorkflowBundle(opts: PrebuiltBundleOptions = {}): TrustedWorkflowBundle {
  const cacheDir = opts.cacheDir ?? defaultBundleCacheDir();
  const owner = opts.owner ?? { uid: process.getuid?.() };
  const warn = (reason: string, msg: string): void => opts.log?.warn({ cacheDir, reason }, msg);
  try {
    mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    warn((err as Error).message, 'workflow bundle cache cannot be created; building the bundle without it');
    return { code: buildUncached(), from: 'built' };
  }
  const dirProblem = untrustedDirectoryReason(cacheDir, owner);
  if (dirProblem) {
    warn(dirProblem, 'workflow bundle cache ignored: it is not private to this user; building the bundle without it');
    return { code: buildUncached(), from: 'built' };
  }
  const file = join(cacheDir, bundleFileName());
  const hashFile = `${file}.sha256`;
  const cached = readCached(file, hashFile, owner, warn);
  if (cached !== undefined) return { code: cached, from: 'cache', cacheFile: file };

  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, '', { mode: 0o644 });
  } catch (err) {
    warn((err as Error).message, 'workflow bundle cache is not writable; building the bundle without it');
    return { code: buildUncached(), from: 'built' };
  }
  try {
    buildInChild(tmp);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  const code = readFileSync(tmp, 'utf8');
  try {
    // The hash first: a bundle without its hash is rebuilt, never trusted.
    writeFileSync(`${hashFile}.${process.pid}.tmp`, `${sha256(code)}\n`, { mode: 0o644 });
    renameSync(`${hashFile}.${process.pid}.tmp`, hashFile);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    rmSync(`${hashFile}.${process.pid}.tmp`, { force: true });
    warn((err as Error).message, 'workflow bundle could not be cached');
    return { code, from: 'built' };
  }
  return { code, from: 'built', cacheFile: file };
}

/** The cached bundle's code when the file and its recorded hash are trustworthy and agree; else undefined (with a warning when something is wrong, not merely absent). */
function readCached(file: string, hashFile: string, owner: Owner, warn: (reason: string, msg: string) => void): string | undefined {
  let fileProblem: string | undefined;
  try {
    fileProblem = untrustedFileReason(file, owner) ?? untrustedFileReason(hashFile, owner);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (fileProblem) {
    warn(fileProblem, 'cached workflow bundle ignored: the file is not private to this user; building it again');
    return undefined;
  }
  const code = readFileSync(file);
  const recorded = readFileSync(hashFile, 'utf8').trim();
  if (sha256(code) !== recorded) {
    warn(`SHA-256 of ${file} differs from the one recorded when it was written`, 'cached workflow bundle ignored: its content changed; building it again');
    return undefined;
  }
  return code.toString('utf8');
}

if (require.main === module) {
  const out = process.argv[2];
  if (!out) {
    process.stderr.write('usage: node --import tsx worker/bundle.ts <out.js> | --cache   (compiled: node dist/worker/bundle.js ...)\n');
    process.exit(2);
  }
  if (out === '--cache') {
    // Fills the cache (the image build does this once); fails when the cache cannot be used.
    const bundle = prebuiltWorkflowBundle({ log: { warn: (obj, msg) => process.stderr.write(`${msg}: ${JSON.stringify(obj)}\n`) } });
    if (!bundle.cacheFile) process.exit(1);
    process.stdout.write(`${bundle.cacheFile}\n`);
  } else {
    void (async () => {
      const { bundleWorkflows } = require('./worker') as typeof import('./worker');
      writeFileSync(out, (await bundleWorkflows()).code, { mode: 0o644 });
    })().catch((err: Error) => {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    });
  }
}
