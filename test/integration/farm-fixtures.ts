// Shared by the farm integration tests: a fake key loader and crypto runner, worker settings, Redis
// cleanup by prefix. Everything a test stores lives under its own KEY_PREFIX.
import { createHash, randomBytes } from 'node:crypto';
import { getPublicKey } from 'nostr-tools/pure';
import { createLogger, type Logger } from '../../shared/logger.js';
import type { RpcItem } from '../../shared/farm/jobs.js';
import { PayloadSealer } from '../../shared/farm/payload-seal.js';
import type { CryptoOp, CryptoResult, CryptoRunner } from '../../workers/crypto/types.js';
import type { KeyLoader } from '../../workers/key-loader.js';
import { createRedis, type RedisTarget } from '../../shared/redis.js';
import { parseEntry, type QueuedJob } from '../../shared/farm/shard-queue.js';
import type { ShardNames } from '../../shared/shard.js';
import { deleteKeys, suiteRedisTarget } from '../support/env.js';
import type { WorkersConfig } from '../../workers/index.js';

/** The suite's Redis: its single server, or its Redis Cluster in cluster mode. */
export const REDIS_TARGET: RedisTarget = suiteRedisTarget();

/** The jobs a shard's stream holds (waiting or running), oldest first. */
export async function queuedJobs(names: ShardNames, shard: number): Promise<QueuedJob[]> {
  const r = createRedis(REDIS_TARGET);
  try {
    const entries = (await r.xrange(names.jobs(shard), '-', '+')) as [string, string[]][];
    return entries.map(([id, fields]) => parseEntry(id, fields)).filter((j): j is QueuedJob => j !== undefined);
  } finally {
    r.disconnect();
  }
}

export function uniquePrefix(): string {
  return `kft_farm_${randomBytes(4).toString('hex')}`;
}

/** One payload key for every farm test process (api side and workers side must share it, as in a farm). */
export const testSealer = new PayloadSealer(createHash('sha256').update('keyfarm farm tests: payload key').digest());

export function quietLogger(): Logger {
  return createLogger({ level: process.env.FARM_TEST_LOG_LEVEL ?? 'silent' });
}

export function workersConfig(prefix: string, overrides: Partial<WorkersConfig> = {}): WorkersConfig {
  return {
    KEY_PREFIX: prefix,
    SHARD_COUNT: 4,
    QUEUE_LIMIT: 4096,
    CACHE_MAX_BYTES: 1 << 20,
    LEASE_TTL_MS: 1000,
    JOB_LOCK_MS: 1000,
    JOB_CONCURRENCY: 2,
    KEY_PREFETCH_MAX_INFLIGHT: 4,
    ...overrides,
  };
}

/** Key id `key-<n>` holds a deterministic secret (n + 1 in every byte); its pubkey is the real one. */
export function secretOf(keyId: string): Uint8Array {
  const n = Number(keyId.replace('key-', ''));
  return new Uint8Array(32).fill((n % 200) + 1);
}

export function pubkeyOf(keyId: string): string {
  return getPublicKey(secretOf(keyId));
}

export class FakeKeyLoader implements KeyLoader {
  loads = 0;
  async load(keyId: string): Promise<{ secretKey: Uint8Array; pubkey: string }> {
    this.loads++;
    return { secretKey: secretOf(keyId), pubkey: pubkeyOf(keyId) };
  }
}

/** Answers ops without real crypto after `delayMs` (to hold jobs in hand); counts runs. */
export class FakeCrypto implements CryptoRunner {
  runs = 0;
  constructor(private readonly delayMs = 0) {}
  async run(ops: CryptoOp[]): Promise<CryptoResult[]> {
    this.runs++;
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    return ops.map(
      (o): CryptoResult =>
        o.op === 'sign_event'
          ? { ok: true, value: { ...o.event, pubkey: o.pubkey, id: '0'.repeat(64), sig: '0'.repeat(128) } }
          : { ok: true, value: `${o.op}-done` },
    );
  }
  async close(): Promise<void> {}
}

let seq = 0;
export function signItem(keyId = 'key-1', content = 'hello'): RpcItem {
  const id = `item-${process.pid}-${++seq}`;
  return {
    id,
    traceId: `trace-${id}`,
    authorizationId: 'auth-1',
    keyId,
    pubkey: pubkeyOf(keyId),
    call: { method: 'sign_event', event: { kind: 1, content, tags: [], created_at: 1_700_000_000 } },
  };
}

export const noActivity = { record: () => {} };

export async function deleteByPrefix(prefix: string): Promise<void> {
  const r = createRedis(REDIS_TARGET);
  try {
    await deleteKeys(r, `${prefix}:*`);
  } finally {
    r.disconnect();
  }
}

export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
