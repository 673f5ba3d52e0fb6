// Settings come from the environment (a `.env` file may fill it), are parsed by one schema at start,
// and a bad or missing value stops the start with one line naming it.
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { Type, type Static, type TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { RATE_PATTERN, parseSubnetList, trustProxyOption } from './net/client-address.js';

const Int = (def: number, min: number, max: number) => Type.Integer({ default: def, minimum: min, maximum: max });

const Rate = (def: string) => Type.String({ default: def, pattern: RATE_PATTERN });
const RateOrOff = (def: string) => Type.String({ default: def, pattern: `^off$|${RATE_PATTERN}` });

const Url = (protocols: string[]) => Type.String({ minLength: 1, pattern: `^(${protocols.join('|')})://` });

export const ConfigSchema = Type.Object({
  PORT: Int(3000, 0, 65535),
  /** A workers-only process serves /health, /healthz/* and /api/metrics on this port when it is set. */
  METRICS_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  /**
   * Unset: /api/metrics is open. Set: it needs `Authorization: Bearer <token>` on every port that serves it
   * (the probes stay open). 32+ characters of a bearer token's alphabet, e.g. `openssl rand -hex 32`.
   */
  METRICS_TOKEN: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._~+/-]{32,512}=*$' })),
  HOST: Type.String({ default: '127.0.0.1', minLength: 1 }),
  /** Unset: the embedded default starts a local PostgreSQL under DATA_DIR. */
  DATABASE_URL: Type.Optional(Url(['postgres', 'postgresql'])),
  /** Unset: the embedded default starts a local Redis under DATA_DIR. */
  REDIS_URL: Type.Optional(Url(['redis', 'rediss'])),
  /**
   * A Redis Cluster instead: comma-separated host:port seed nodes (any few of its nodes; the rest are
   * discovered). Wins over REDIS_URL.
   */
  REDIS_CLUSTER_NODES: Type.Optional(
    Type.String({ pattern: '^\\s*[^\\s,:]+:\\d{1,5}\\s*(,\\s*[^\\s,:]+:\\d{1,5}\\s*)*$' }),
  ),
  /** The cluster's password (requirepass), when it has one. */
  REDIS_PASSWORD: Type.Optional(Type.String({ minLength: 1 })),
  BUNKER_RELAYS: Type.String({ default: '' }),
  /**
   * Shards: the unit the workers divide among themselves, and the batching domain (a job carries the
   * requests of one shard). More shards than workers processes only shrinks the batches. Recorded in Redis
   * by the farm's first process (shared/farm/shard-count.ts).
   */
  SHARD_COUNT: Int(2, 1, 1024),
  DATA_DIR: Type.String({ default: '.data', minLength: 1 }),
  MASTER_KEY_PATH: Type.Optional(Type.String({ minLength: 1 })),
  GCP_KMS_KEY: Type.Optional(
    Type.String({ pattern: '^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$' }),
  ),
  /** host:port of a KMS endpoint other than Google's (tests, emulators). */
  GCP_KMS_ENDPOINT: Type.Optional(Type.String({ minLength: 1 })),
  PUBLIC_URL: Type.Optional(Url(['http', 'https'])),
  ADMIN_PASSWORD: Type.Optional(Type.String({ minLength: 8 })),
  /** Bull Board at /admin/queues shows the shard queues but refuses every action (retry, clean, pause...). */
  ADMIN_QUEUES_READ_ONLY: Type.Boolean({ default: true }),
  ALLOWED_ORIGINS: Type.String({ default: '' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  /** Redis key prefix of everything Keyfarm stores; lets several farms (or test files) share one Redis. */
  KEY_PREFIX: Type.String({ default: 'kf', pattern: '^[A-Za-z0-9_-]+$' }),
  QUEUE_LIMIT: Int(4096, 1, 1_000_000),
  RPC_TIMEOUT_MS: Int(10_000, 100, 300_000),
  CACHE_MAX_BYTES: Int(64 * 1024 * 1024, 1024, 16 * 1024 * 1024 * 1024),
  CRYPTO_THREADS: Int(Math.max(1, cpus().length), 1, 256),
  /**
   * With the native backend, threads that run the curve work (sign, verify, ECDH) of the ops the event loop
   * runs, sent as binary records one message per job (workers/crypto/lane.ts); 0 runs it on the event loop.
   * Unset: 1 in a process that also serves HTTP or relays, 0 in a workers-only one (bin/roles.ts).
   */
  CRYPTO_LANE_THREADS: Type.Optional(Type.Integer({ minimum: 0, maximum: 16 })),
  /**
   * Curve arithmetic: `auto` uses the system's libsecp256k1 (package libsecp256k1-1) and falls back to its
   * WASM build, saying so at start; `native` refuses to start without the library; `wasm` forces the fallback.
   */
  CRYPTO_BACKEND: Type.Union([Type.Literal('auto'), Type.Literal('native'), Type.Literal('wasm')], { default: 'auto' }),
  /**
   * Jobs of one shard a worker runs at once. Each api and relay-ingest process keeps at most one job per
   * shard in flight (the next batch gathers meanwhile), so this needs to be about their number; more
   * costs Redis nothing (one blocking read per shard, for as many jobs as there are free slots).
   */
  JOB_CONCURRENCY: Int(2, 1, 256),
  LEASE_TTL_MS: Int(3000, 500, 600_000),
  /** Shard queue job lock: a job idle this long in a dead worker's hands is claimed and run again (docs/QUEUE.md). */
  JOB_LOCK_MS: Int(5000, 1000, 600_000),
  DB_POOL_SIZE: Int(10, 1, 1000),

  // Overload and stalls (docs/RUNBOOK.md, "Overload and stalls").
  /** How long a request waits for a pooled PostgreSQL connection before it fails (503). */
  DB_ACQUIRE_TIMEOUT_MS: Int(2000, 100, 600_000),
  /** PostgreSQL's statement_timeout for every statement of the process; this side gives up a second later. */
  DB_STATEMENT_TIMEOUT_MS: Int(5000, 100, 3_600_000),
  /** The longest an RPC request waits for its token's lookup; past it a cached entry is served, else 503. */
  DB_LOOKUP_TIMEOUT_MS: Int(1500, 50, 600_000),
  /**
   * How long the api serves an access token's lookup from memory (revocation evicts it at once by
   * broadcast); in the last sixth of it a request refreshes the entry in the background.
   */
  TOKEN_CACHE_TTL_MS: Int(30_000, 500, 600_000),
  /**
   * Signing activity waits in a Redis stream until a workers process has written it to PostgreSQL; an
   * entry read by a process that died is taken over by another after this long unacknowledged.
   */
  ACTIVITY_CLAIM_IDLE_MS: Int(30_000, 500, 3_600_000),
  /**
   * Admission by deadline: a shard takes no more requests than it drains, at its measured rate, within
   * this long, so what is accepted is answered well within RPC_TIMEOUT_MS; the rest get a fast 503.
   * Unset: half of RPC_TIMEOUT_MS. 0: QUEUE_LIMIT only. Must be below RPC_TIMEOUT_MS.
   */
  ADMISSION_MAX_WAIT_MS: Type.Optional(Type.Integer({ minimum: 0, maximum: 300_000 })),
  /** On SIGTERM, how long the api keeps serving with /healthz/ready at 503 so load balancers stop sending. */
  SHUTDOWN_DELAY_MS: Int(0, 0, 120_000),
  /** On SIGTERM, how long in-flight HTTP requests may take before their connections are closed. */
  SHUTDOWN_HTTP_TIMEOUT_MS: Int(15_000, 0, 600_000),
  /** On SIGTERM, how long running jobs may take; past it they are left to the stalled-job check elsewhere. */
  SHUTDOWN_JOBS_TIMEOUT_MS: Int(10_000, 0, 600_000),
  /** User relays (bunker links, nostrconnect://): relays besides BUNKER_RELAYS one authorization may name. */
  USER_RELAYS_PER_AUTHORIZATION: Int(3, 0, 20),
  /** Distinct user relays across one user's live authorizations. */
  USER_RELAYS_PER_USER: Int(8, 0, 1000),
  /** Distinct user relays across the farm's live authorizations: the extra relays relay-ingest connects to. */
  USER_RELAYS_TOTAL: Int(64, 0, 100_000),
  /** ws:// user relays as well as wss:// (development and tests only). */
  USER_RELAYS_ALLOW_WS: Type.Boolean({ default: false }),
  /** User relays on loopback, private and other non-public addresses (tests only: it opens the door to SSRF). */
  USER_RELAYS_ALLOW_PRIVATE: Type.Boolean({ default: false }),
  /** Comma-separated hosts user relays must be on; empty: any public host. */
  USER_RELAYS_ALLOWLIST: Type.String({ default: '' }),
  /** Live (unrevoked, unexpired) authorizations one user may hold. */
  MAX_AUTHORIZATIONS_PER_USER: Int(50, 1, 100_000),
  /** Custom policies one user may own (docs/RUNBOOK.md, "Custom policies"). */
  MAX_POLICIES_PER_USER: Int(20, 1, 1000),

  // Throttling (docs/RUNBOOK.md, "Throttling"). Rates read `<count>/<window>`: 10/1h, 5/15m, 30/m.
  /** Proxies allowed to name the client in X-Forwarded-For: a hop count, or addresses/CIDRs; empty trusts none. */
  TRUST_PROXY: Type.String({ default: '', pattern: '^[0-9A-Fa-f:./, ]*$' }),
  /** Failed password checks per account from one client address before it waits. */
  LOGIN_LIMIT_ACCOUNT_IP: Rate('5/15m'),
  /** Failed password checks per client address, over all accounts. */
  LOGIN_LIMIT_IP: Rate('20/15m'),
  /** Failed password checks per account from addresses its owner has not logged in from. */
  LOGIN_LIMIT_ACCOUNT: Rate('20/1h'),
  /** How long an address of a successful login counts as the owner's (exempt from LOGIN_LIMIT_ACCOUNT). */
  LOGIN_KNOWN_ADDRESS_DAYS: Int(30, 1, 365),
  /** Request limits per client address (per user on session routes); `off` turns one off. */
  RATE_LIMIT_REGISTER: RateOrOff('10/1h'),
  RATE_LIMIT_LOGIN: RateOrOff('30/1m'),
  RATE_LIMIT_OAUTH_TOKEN: RateOrOff('60/1m'),
  /** GET /api/oauth/poll (apps polling for their code every few seconds). */
  RATE_LIMIT_OAUTH_POLL: RateOrOff('60/1m'),
  RATE_LIMIT_BUNKER_CREATE: RateOrOff('30/1h'),
  RATE_LIMIT_NOSTRCONNECT: RateOrOff('30/1h'),
  /** Clients (addresses/CIDRs) exempt from the request limits; never from the login-failure limits. */
  RATE_LIMIT_ALLOWLIST: Type.String({ default: '' }),

  // Email (docs/RUNBOOK.md, "Email"): verification and password reset links, built on PUBLIC_URL.
  /**
   * smtp:// (STARTTLS when the server offers it; `?requireTLS=true` insists) or smtps://, user and password
   * in the URL. Unset: each message is written to <DATA_DIR>/outbox/ (files 0600) instead of being sent.
   */
  SMTP_URL: Type.Optional(Url(['smtp', 'smtps'])),
  /** The From of every message, `Name <address>` or an address; unset: `Keyfarm <keyfarm@<PUBLIC_URL's host>>`. */
  SMTP_FROM: Type.Optional(Type.String({ maxLength: 320, pattern: '^[^\\r\\n]*[^\\s@]@[^\\s@]+[^\\r\\n]*$' })),
  /** How long a verification link works. A password reset link works one hour. */
  EMAIL_VERIFICATION_TTL_HOURS: Int(24, 1, 720),
  /** Mails one address receives per window (any kind); past it requests get the same answer but no mail. */
  EMAIL_LIMIT_PER_ADDRESS: Rate('5/1h'),
  /** Requests that send mail (forgot password, resend verification, email change) per client address or user. */
  RATE_LIMIT_EMAIL: RateOrOff('10/1h'),

  // Teams (docs/RUNBOOK.md, "Teams"): shared keys. Each limit is checked under the team's row lock.
  /** Teams one user may belong to (created or joined). */
  TEAMS_MAX_PER_USER: Int(20, 1, 10_000),
  /** Members of one team, counting invites not yet accepted. */
  TEAM_MAX_MEMBERS: Int(50, 1, 100_000),
  /** Keys one team holds. */
  TEAM_MAX_KEYS: Int(20, 1, 10_000),
  /** How long a mailed team invite works. */
  TEAM_INVITE_TTL_HOURS: Int(72, 1, 720),
  /** Custom policies one team may own (docs/RUNBOOK.md, "Teams"). */
  TEAM_MAX_POLICIES: Int(20, 1, 1000),

  /**
   * NIP-46 requests per minute that one client key other than a bunker's bound client (a stranger, or a
   * client before its connect) may send to that bunker; past it they are dropped before any queue.
   */
  NIP46_UNBOUND_CLIENT_PER_MINUTE: Int(10, 1, 100_000),
  /** NIP-46 requests per minute one bunker takes from all client keys other than its bound client. */
  NIP46_UNBOUND_BUNKER_PER_MINUTE: Int(60, 1, 1_000_000),
  /**
   * How long the api waits, before it hands out a new bunker URL, for a relay-ingest to listen for the
   * bunker on a relay (NIP-46 requests are not stored: one sent earlier is lost). Past it the URL is
   * answered anyway; no wait when no relay-ingest is connected to a relay. 0: never wait.
   */
  BUNKER_LISTEN_WAIT_MS: Int(3000, 0, 30_000),

  // Approval per request (docs/RUNBOOK.md, "Approvals"): a policy with `ask` sends what it does not allow
  // to its user for approval, at PUBLIC_URL/approve/<id>.
  /** How long a request waits for the user's decision; an approved HTTP request may be sent again this long. */
  APPROVAL_TTL_SECONDS: Int(600, 10, 86_400),
  /** Requests waiting for approval per authorization; past it the request is refused. */
  APPROVAL_MAX_PENDING: Int(20, 1, 1000),
  /** Requests waiting for approval per user, over all their authorizations. */
  APPROVAL_MAX_PENDING_PER_USER: Int(100, 1, 10_000),
  /** Largest request (NIP-46 event, or HTTP call as JSON) that may wait for approval, in bytes. */
  APPROVAL_MAX_REQUEST_BYTES: Int(65_536, 1024, 1_048_576),
  /** Longest an HTTP RPC request that asked to wait (`Prefer: wait=N`) is held for the decision. */
  APPROVAL_WAIT_MAX_SECONDS: Int(60, 0, 600),

  // Cold keys (docs/RUNBOOK.md, "Cold keys and prefetch").
  /**
   * When a session starts (a token issued or first seen by an api process, a bunker created), the worker
   * owning the user's shard loads the keys before the first request; at most this many such loads run at
   * once per workers process, further hints are dropped. 0: no prefetch (no hints sent, none heeded).
   */
  KEY_PREFETCH_MAX_INFLIGHT: Int(4, 0, 256),
});

export type RawConfig = Static<typeof ConfigSchema>;

export interface Config
  extends Omit<
    RawConfig,
    'BUNKER_RELAYS' | 'ALLOWED_ORIGINS' | 'USER_RELAYS_ALLOWLIST' | 'SMTP_FROM' | 'ADMISSION_MAX_WAIT_MS'
  > {
  /** Resolved: half of RPC_TIMEOUT_MS when unset. */
  ADMISSION_MAX_WAIT_MS: number;
  BUNKER_RELAYS: string[];
  /** Lower-case hosts, brackets and trailing dots removed. */
  USER_RELAYS_ALLOWLIST: string[];
  ALLOWED_ORIGINS: string[];
  MASTER_KEY_PATH: string;
  PUBLIC_URL: string;
  SMTP_FROM: string;
}

export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    reason: string,
  ) {
    super(`invalid setting ${setting}: ${reason}`);
    this.name = 'ConfigError';
  }
}

/** The JSON Schema keywords a setting's schema may carry, as describe reads them. */
interface SettingKeywords {
  pattern?: string;
  type?: string;
  minimum?: number;
  maximum?: number;
  anyOf?: { const?: unknown }[];
  minLength?: number;
}

function describe(setting: TSchema): string {
  const schema = setting as SettingKeywords;
  if (schema.pattern) return `must match ${schema.pattern}`;
  if (schema.type === 'integer') return `must be an integer from ${schema.minimum} to ${schema.maximum}`;
  if (schema.type === 'boolean') return 'must be true or false';
  if (schema.anyOf) return `must be one of ${schema.anyOf.map((s) => s.const).join(', ')}`;
  if (schema.minLength) return `must be at least ${schema.minLength} characters`;
  return 'has a bad value';
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function checkSetting(setting: string, parse: () => unknown): void {
  try {
    parse();
  } catch (err) {
    throw new ConfigError(setting, (err as Error).message);
  }
}

/** Reads `.env` (if any) under the environment: variables already set win. */
export function loadEnv(env: NodeJS.ProcessEnv = process.env, dotenvPath = '.env'): Record<string, string | undefined> {
  const fromFile = existsSync(dotenvPath) ? parseDotenv(readFileSync(dotenvPath)) : {};
  return { ...fromFile, ...env };
}

export function parseConfig(env: Record<string, string | undefined>): Config {
  const raw: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(ConfigSchema.properties as Record<string, TSchema>)) {
    const value = env[key];
    if (value === undefined || value === '') continue;
    // Value.Convert would make "1.5" or "2e3" an integer: only digits are one.
    if ((schema as SettingKeywords).type === 'integer' && !/^-?[0-9]+$/.test(value.trim()))
      throw new ConfigError(key, describe(schema));
    raw[key] = value;
  }
  const converted = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, raw)) as Record<string, unknown>;
  const [first] = Value.Errors(ConfigSchema, converted);
  if (first) {
    const setting = first.instancePath.replace(/^\//, '') || 'environment';
    const schema = (ConfigSchema.properties as Record<string, TSchema>)[setting];
    throw new ConfigError(setting, schema ? describe(schema) : first.message);
  }
  const cfg = converted as RawConfig;
  const relays = list(cfg.BUNKER_RELAYS);
  const badRelay = relays.find((r) => !/^wss?:\/\/[^\s/]+/.test(r));
  if (badRelay !== undefined) throw new ConfigError('BUNKER_RELAYS', `not a ws:// or wss:// URL: ${badRelay}`);
  const origins = list(cfg.ALLOWED_ORIGINS);
  const badOrigin = origins.find((o) => !/^https?:\/\/[^\s/]+$/.test(o));
  if (badOrigin !== undefined) throw new ConfigError('ALLOWED_ORIGINS', `not an origin: ${badOrigin}`);
  const relayHosts = list(cfg.USER_RELAYS_ALLOWLIST).map((h) =>
    h
      .toLowerCase()
      .replace(/^\[(.*)\]$/, '$1')
      .replace(/\.$/, ''),
  );
  const badHost = relayHosts.find((h) => !/^[a-z0-9.:-]+$/.test(h));
  if (badHost !== undefined) throw new ConfigError('USER_RELAYS_ALLOWLIST', `not a host name: ${badHost}`);
  checkSetting('TRUST_PROXY', () => trustProxyOption(cfg.TRUST_PROXY));
  checkSetting('RATE_LIMIT_ALLOWLIST', () => parseSubnetList(cfg.RATE_LIMIT_ALLOWLIST));
  checkSetting('SMTP_URL', () => {
    if (cfg.SMTP_URL !== undefined && !new URL(cfg.SMTP_URL).hostname) throw new Error('names no host');
  });
  const admissionMaxWait = cfg.ADMISSION_MAX_WAIT_MS ?? Math.floor(cfg.RPC_TIMEOUT_MS / 2);
  if (admissionMaxWait >= cfg.RPC_TIMEOUT_MS)
    throw new ConfigError('ADMISSION_MAX_WAIT_MS', `must be below RPC_TIMEOUT_MS (${cfg.RPC_TIMEOUT_MS})`);
  const publicUrl = (cfg.PUBLIC_URL ?? `http://${cfg.HOST}:${cfg.PORT}`).replace(/\/+$/, '');
  return {
    ...cfg,
    BUNKER_RELAYS: relays,
    ALLOWED_ORIGINS: origins,
    USER_RELAYS_ALLOWLIST: relayHosts,
    ADMISSION_MAX_WAIT_MS: admissionMaxWait,
    MASTER_KEY_PATH: cfg.MASTER_KEY_PATH ?? path.join(cfg.DATA_DIR, 'master.key'),
    PUBLIC_URL: publicUrl,
    SMTP_FROM:
      cfg.SMTP_FROM ?? `Keyfarm <keyfarm@${new URL(publicUrl).hostname.replace(/^\[|\]$/g, '') || 'localhost'}>`,
  };
}
