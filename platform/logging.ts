// Structured JSON logs (pino) for every process, with the places secrets could hide redacted.
import pino, { type Logger } from 'pino';

/** Paths that may hold a secret in anything we log; their values are replaced before writing. */
export const redactPaths = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'password',
  '*.password',
  'credentials',
  '*.credentials',
  'token',
  '*.token',
  'apiKey',
  '*.apiKey',
];

/** Key names whose values are secrets wherever they appear: in logged objects, dry-run states and error texts. */
export const secretKeyName = /password|passwd|passphrase|secret|token|credential|private[-_]?key|api[-_]?key/i;

/** What a redacted value in a text is written as. */
export const redactedText = '***';

const urlUserinfo = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s:@/]+):([^\s@/]+)@/gi;
const authScheme = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g;
const keyValue = new RegExp(
  `(["']?)([\\w.-]*(?:${secretKeyName.source})[\\w.-]*)\\1(\\s*[:=]\\s*)("(?:[^"\\\\]|\\\\.)*"|'[^']*'|[^\\s,;&)}\\]]+)`,
  'gi',
);

/**
 * An error text with the places a secret could hide replaced by `***`: the password of a URL's user information,
 * the credential after `Bearer` or `Basic`, and the value after a key named like a secret (`password=...`,
 * `"token": "..."`). Messages are written without secrets where they are made (activities/failures.ts); this is
 * the second line, for texts brokerflow shows that come from elsewhere (a driver's or a library's error).
 */
export function redactSecretsInText(text: string): string {
  return text
    .replace(urlUserinfo, (_m, scheme: string, user: string) => `${scheme}${user}:${redactedText}@`)
    .replace(authScheme, (_m, scheme: string) => `${scheme} ${redactedText}`)
    .replace(keyValue, (_m, quote: string, key: string, sep: string) => `${quote}${key}${quote}${sep}${redactedText}`);
}

/** A logger for one process; level from BROKERFLOW_LOG_LEVEL (default info). */
export function createLogger(component: string, opts: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env.BROKERFLOW_LOG_LEVEL ?? 'info',
      base: { component },
      redact: { paths: redactPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination,
  );
}
