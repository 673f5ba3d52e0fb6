// Backpressure per shard, counting items (requests), not jobs. An admission is recorded against the id of
// the job that will carry the items, in one Lua step with the count, so:
// - admit(n) admits as many of the n as fit, the first ones, and refuses the rest at once: the count never
//   passes the limit, and with a max wait the shard holds no more than it drains within it (the drain
//   rate is measured by the same script, from the releases: admission.lua);
// - release is idempotent: only a job still in the ledger gives its items back;
// - reconcile rebuilds the count exactly from the ledger and the state of the jobs it names, dropping
//   entries whose job finished without a release (a worker died after completing) or was never added
//   (an api died between admit and add).
import { readFileSync } from 'node:fs';
import type { RedisClient } from '../redis.js';
import type { ShardNames } from '../shard.js';
import { JOB_CREATED_FIELD, JOB_FINISHED_FIELD, jobKeyPrefix } from './bullmq-layout.js';

const LUA = readFileSync(new URL('./admission.lua', import.meta.url), 'utf8');
const COMMAND = 'keyfarmAdmission';

type AdmissionCommand = (
  countKey: string,
  ledgerKey: string,
  drainKey: string,
  ...args: (string | number)[]
) => Promise<unknown>;

/** The admission ledger of a shard: job id -> "<items>:<admitted at ms>" for every job holding items. */
export function admissionLedgerKey(names: ShardNames, shard: number): string {
  return `${names.items(shard)}:ledger`;
}

/** The drain meter of a shard: items released and time spent holding items, both decayed (admission.lua). */
export function drainMeterKey(names: ShardNames, shard: number): string {
  return `${names.items(shard)}:drain`;
}

/** The drain rate averages over about this much of a shard's busy time. */
export const DRAIN_WINDOW_MS = 5000;
/**
 * A shard holding fewer items than this takes more whatever its rate: a shard whose rate is not measured
 * yet, or fell to nothing in a stall, still takes some work and so measures again.
 */
export const ADMISSION_FLOOR = 64;

/** What admission said to a job's items. */
export interface Admitted {
  /** How many of the items, the first ones, the job may carry (0: none). */
  admitted: number;
  /** When refused (some or all): about when one more item should fit, ms. */
  retryAfterMs: number;
}

export interface AdmissionOptions {
  /** Items a shard may hold waiting or running (QUEUE_LIMIT). */
  limit: number;
  /** A ledger entry whose job never appeared is dropped by reconcile after this long. */
  orphanMs?: number;
  /**
   * The longest an admitted item should wait, from the shard's measured drain rate (ADMISSION_MAX_WAIT_MS);
   * 0 or unset: the limit only. Only the admitting side (the ingress) needs it.
   */
  maxWaitMs?: number;
}

export class Admission {
  readonly limit: number;
  private readonly orphanMs: number;
  private readonly maxWaitMs: number;
  private readonly command: AdmissionCommand;

  constructor(
    private readonly redis: RedisClient,
    private readonly names: ShardNames,
    opts: AdmissionOptions,
  ) {
    this.limit = opts.limit;
    this.orphanMs = opts.orphanMs ?? 60_000;
    this.maxWaitMs = opts.maxWaitMs ?? 0;
    const r = redis as unknown as Record<string, AdmissionCommand | undefined>;
    if (typeof r[COMMAND] !== 'function') redis.defineCommand(COMMAND, { numberOfKeys: 3, lua: LUA });
    this.command = (r[COMMAND] as AdmissionCommand).bind(redis);
  }

  ledgerKey(shard: number): string {
    return admissionLedgerKey(this.names, shard);
  }

  private run(shard: number, op: string, ...args: (string | number)[]): Promise<unknown> {
    return this.command(
      this.names.items(shard),
      this.ledgerKey(shard),
      drainMeterKey(this.names, shard),
      op,
      DRAIN_WINDOW_MS,
      ...args,
    );
  }

  /**
   * Admits up to `items` requests, to be carried by job `jobId`: how many of them, the first ones, fit in
   * the shard (by the limit and, with a max wait, by what the shard drains within it). The job must carry
   * exactly those; the rest are refused.
   */
  async request(shard: number, jobId: string, items: number): Promise<Admitted> {
    if (!Number.isInteger(items) || items < 1)
      throw new RangeError(`admit: items must be a positive integer, got ${items}`);
    const floor = Math.min(this.limit, ADMISSION_FLOOR);
    const [admitted, retryAfterMs] = (await this.run(
      shard,
      'admit',
      jobId,
      items,
      this.limit,
      this.maxWaitMs,
      floor,
    )) as [number, number];
    if (admitted === -2) throw new Error(`admit: job ${jobId} was already admitted on shard ${shard}`);
    return { admitted: Math.max(0, admitted), retryAfterMs };
  }

  /** How many of `items` fit (request without the retry hint). */
  async admit(shard: number, jobId: string, items: number): Promise<number> {
    return (await this.request(shard, jobId, items)).admitted;
  }

  /** Gives back the items of a job that completed, finally failed, or was never added. Returns the count left, or -1 if the job held nothing. */
  async release(shard: number, jobId: string): Promise<number> {
    return Number(await this.run(shard, 'release', jobId));
  }

  /** The shard's measured drain rate (items per second; undefined until measured) and its item count. */
  async drainRate(shard: number): Promise<{ perSecond: number | undefined; items: number }> {
    const [rate, items] = (await this.run(shard, 'rate')) as [number, number];
    return { perSecond: rate < 0 ? undefined : rate / 1000, items };
  }

  /** Rebuilds the count of a shard from its ledger; called by the shard's owner on acquiring it and periodically. */
  async reconcile(shard: number): Promise<number> {
    const total = await this.run(
      shard,
      'reconcile',
      jobKeyPrefix(this.names, shard),
      this.orphanMs,
      JOB_CREATED_FIELD,
      JOB_FINISHED_FIELD,
    );
    return Number(total);
  }

  /** Items waiting or running in a shard. */
  async depth(shard: number): Promise<number> {
    return Number((await this.redis.get(this.names.items(shard))) ?? 0);
  }
}
