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
