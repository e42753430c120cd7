// The `brokerflow` CLI as a script runs it: `node bin/brokerflow.js --config <file> --json ...` in a child process,
// with its exit code, its output and its stdout parsed as one JSON value per line (the e2e CLI tests).
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

const bin = resolve(__dirname, '..', '..', 'bin', 'brokerflow.js');

/** The exit codes scripts rely on (client/cli/main.ts EXIT). */
export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3, conflict: 4, unreachable: 5 } as const;

export type Json = Record<string, unknown>;

/** A CLI run: its exit code, output, and stdout parsed as one JSON value per line. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  lines: Json[];
  /** The last JSON line (the answer of a one-shot command). */
  json: Json;
}

/** Options of one run: another config file than the default, and `json: false` for the human output. */
export interface CliOptions {
  config?: string;
  json?: boolean;
}

/** The environment of a CLI child: Temporal's own variables removed so the config file decides where to go. */
function cliEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TEMPORAL_')));
}

/**
 * Runs the CLI against `defaultConfig()` unless a run names another config. `startCli` gives the lines as they
 * arrive (`done` resolves when the CLI exits); `cli` waits for the end.
 */
export function cliRunner(defaultConfig: () => string) {
  function startCli(args: string[], opts: CliOptions = {}): { lines: string[]; done: Promise<CliRun>; kill(): void } {
    const argv = [bin, '--config', opts.config ?? defaultConfig(), ...(opts.json === false ? [] : ['--json']), ...args];
    const child = spawn(process.execPath, argv, { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const lines: string[] = [];
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      lines.splice(0, lines.length, ...stdout.split('\n').filter((l) => l.trim() !== ''));
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    const done = new Promise<CliRun>((res) =>
      child.on('close', (code) => {
        clearTimeout(timer);
        const parsed = opts.json === false ? [] : lines.map((l) => JSON.parse(l) as Json);
        res({ code, stdout, stderr, lines: parsed, json: parsed[parsed.length - 1] ?? {} });
      }),
    );
    return { lines, done, kill: () => child.kill('SIGKILL') };
  }
  const cli = (args: string[], opts: CliOptions = {}) => startCli(args, opts).done;
  return { startCli, cli };
}
