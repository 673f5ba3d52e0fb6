// One pino logger per process, JSON lines. Secrets are kept out by configuration: a field named like a
// secret (SECRET_FIELDS) is censored wherever it appears in what is logged, at any depth, whoever logs it.
import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Field names whose values are secret, whatever their type (strings, buffers, objects). */
export const SECRET_FIELDS = [
  // account credentials
  'password',
  'new_password',
  'current_password',
  'old_password',
  'passphrase',
  'ADMIN_PASSWORD',
  // Nostr secret keys and what derives from them
  'nsec',
  'ncryptsec',
  'secret',
  'secretKey',
  'secret_key',
  'sk',
  'privateKey',
  'private_key',
  'seckey',
  'convKey',
  'conversationKey',
  'conversation_key',
  'sharedSecret',
  'shared_secret',
  // tokens and OAuth
  'token',
  'access_token',
  'accessToken',
  'refresh_token',
  'refreshToken',
  'id_token',
  'session_token',
  'sessionToken',
  'code',
  'code_verifier',
  'codeVerifier',
  'client_secret',
  'clientSecret',
  'authorization_handle',
  'authorizationHandle',
  // a bunker URL carries its connect secret
  'bunker_url',
  'bunkerUrl',
  // HTTP credentials
  'authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'METRICS_TOKEN',
  'metricsToken',
  // envelope encryption: data keys, key-encryption keys, plaintexts
  'dek',
  'kek',
  'masterKey',
  'master_key',
  'plaintext',
  // connection strings may hold a password (the embedded servers' always do)
  'DATABASE_URL',
  'databaseUrl',
  'connectionString',
  'REDIS_URL',
  'redisUrl',
  'REDIS_PASSWORD',
  'SMTP_URL',
  'smtpUrl',
  // an emailed verification or password reset link carries its token
  'link',
] as const;

export const REDACTED = '[redacted]';

const SECRET = new Set<string>(SECRET_FIELDS);
/** Deeper than anything Keyfarm logs; also ends cycles. */
const MAX_DEPTH = 8;

function isBinary(value: object): boolean {
  return ArrayBuffer.isView(value) || value instanceof ArrayBuffer;
}

/**
 * `value` with every property named in SECRET_FIELDS replaced by [redacted], at any depth. Copies only
 * what it changes (the caller's objects are never modified); an Error stays an Error.
 * pino's own `redact` (fast-redact) was not used: its wildcard paths cost 40-200 µs per line.
 */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH || isBinary(value)) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const r = redactSecrets(v, depth + 1);
      if (r !== v) (copy ??= value.slice())[i] = r;
    }
    return copy ?? value;
  }
  const source = value as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const k of Object.keys(source)) {
    const v = source[k];
    const r = SECRET.has(k) ? (v === undefined ? v : REDACTED) : redactSecrets(v, depth + 1);
    if (r !== v) (copy ??= copyOf(source))[k] = r;
  }
  return copy ?? value;
}

function copyOf(source: Record<string, unknown>): Record<string, unknown> {
  if (!(source instanceof Error)) return { ...source };
  const err = Object.assign(Object.create(Object.getPrototypeOf(source) as object) as Error, source);
  err.message = source.message;
  err.stack = source.stack;
  return err as unknown as Record<string, unknown>;
}

const redactObject = (o: Record<string, unknown>) => redactSecrets(o) as Record<string, unknown>;

/**
 * pino's redact on top-level names only (cheap, unlike its wildcards): it covers the bindings of child
 * loggers, which pino's formatters do not see.
 */
const TOP_LEVEL_PATHS = SECRET_FIELDS.map((f) => (/^[A-Za-z_$][\w$]*$/.test(f) ? f : `["${f}"]`));

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
      formatters: { log: redactObject, bindings: redactObject },
      redact: { paths: TOP_LEVEL_PATHS, censor: REDACTED },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? pino.destination({ sync: false }),
  );
}
