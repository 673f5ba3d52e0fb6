// One pino logger per process. Secrets are kept out by configuration (redaction paths), so a field
// named like a secret is censored wherever it appears, whoever logs it.
import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

const SECRET_FIELDS = [
  'password', 'new_password', 'current_password', 'nsec', 'secret', 'secretKey', 'secret_key', 'sk',
  'token', 'access_token', 'refresh_token', 'code', 'code_verifier', 'authorization', 'cookie',
  'dek', 'kek', 'plaintext', 'passphrase', 'ncryptsec',
];

export const REDACT_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
];

export interface LoggerOptions {
  level?: string;
  role?: string;
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
      base: { pid: process.pid, role: opts.role },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? pino.destination({ sync: false }),
  );
}
