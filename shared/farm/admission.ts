// Backpressure per shard, counting items (requests), not jobs. An admission is recorded against the id of
// the job that will carry the items, in one Lua step with the count, so:
// - admit(n) admits as many of the n as fit, the first ones, and refuses the rest at once: a request is
//   refused only when the shard holds the limit, and the count never passes it;
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

type AdmissionCommand = (countKey: string, ledgerKey: string, ...args: (string | number)[]) => Promise<number>;

/** The admission ledger of a shard: job id -> "<items>:<admitted at ms>" for every job holding items. */
export function admissionLedgerKey(names: ShardNames, shard: number): string {
  return `${names.items(shard)}:ledger`;
}

export interface AdmissionOptions {
  /** Items a shard may hold waiting or running (QUEUE_LIMIT). */
  limit: number;
  /** A ledger entry whose job never appeared is dropped by reconcile after this long. */
  orphanMs?: number;
}

export class Admission {
  readonly limit: number;
  private readonly orphanMs: number;
  private readonly command: AdmissionCommand;

  constructor(
    private readonly redis: RedisClient,
    private readonly names: ShardNames,
    opts: AdmissionOptions,
  ) {
    this.limit = opts.limit;
    this.orphanMs = opts.orphanMs ?? 60_000;
    const r = redis as unknown as Record<string, AdmissionCommand | undefined>;
    if (typeof r[COMMAND] !== 'function') redis.defineCommand(COMMAND, { numberOfKeys: 2, lua: LUA });
    this.command = (r[COMMAND] as AdmissionCommand).bind(redis);
  }

  ledgerKey(shard: number): string {
    return admissionLedgerKey(this.names, shard);
  }

  /**
   * Admits up to `items` requests, to be carried by job `jobId`: returns how many of them, the first ones,
   * fit in the shard (0 when it is full). The job must carry exactly those; the rest are refused.
   */
  async admit(shard: number, jobId: string, items: number): Promise<number> {
    if (!Number.isInteger(items) || items < 1)
      throw new RangeError(`admit: items must be a positive integer, got ${items}`);
    const r = await this.command(this.names.items(shard), this.ledgerKey(shard), 'admit', jobId, items, this.limit);
    if (r === -2) throw new Error(`admit: job ${jobId} was already admitted on shard ${shard}`);
    return Math.max(0, r);
  }

  /** Gives back the items of a job that completed, finally failed, or was never added. Returns the count left, or -1 if the job held nothing. */
  release(shard: number, jobId: string): Promise<number> {
    return this.command(this.names.items(shard), this.ledgerKey(shard), 'release', jobId);
  }

  /** Rebuilds the count of a shard from its ledger; called by the shard's owner on acquiring it and periodically. */
  reconcile(shard: number): Promise<number> {
    return this.command(
      this.names.items(shard),
      this.ledgerKey(shard),
      'reconcile',
      jobKeyPrefix(this.names, shard),
      this.orphanMs,
      JOB_CREATED_FIELD,
      JOB_FINISHED_FIELD,
    );
  }

  /** Items waiting or running in a shard. */
  async depth(shard: number): Promise<number> {
    return Number((await this.redis.get(this.names.items(shard))) ?? 0);
  }
}
