// Worker processes divide the shards among themselves. Each process is a member (a sorted set in Redis
// scored by expiry, refreshed every tick); rendezvous hashing over the live members says who should own
// each shard, and a lease key per shard (owner id, PX ttl, SET NX) makes sure at most one does.
// A shard that should move is handed over only after its local BullMQ Worker has closed; a member that
// dies stops renewing, and its leases expire so the others take its shards within about the TTL.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { RedisClient } from '../shared/redis.js';
import type { Logger } from '../shared/logger.js';
import type { ShardNames } from '../shared/shard.js';

const LUA = readFileSync(new URL('./shard-leases.lua', import.meta.url), 'utf8');
const COMMAND = 'keyfarmShardLeases';
type LeaseCommand = (key: string, ...args: (string | number)[]) => Promise<unknown>;

/** The weight of a member for a shard: the member with the highest weight should own it. */
export function rendezvousScore(member: string, shard: number): number {
  return createHash('sha256').update(`${member}\n${shard}`).digest().readUIntBE(0, 6);
}

export function rendezvousOwner(members: readonly string[], shard: number): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const m of members) {
    const s = rendezvousScore(m, shard);
    if (s > bestScore || (s === bestScore && best !== undefined && m < best)) {
      best = m;
      bestScore = s;
    }
  }
  return best;
}

export type ReleaseReason = 'rebalance' | 'lost' | 'stop';

export interface ShardLeasesOptions {
  redis: RedisClient;
  names: ShardNames;
  shardCount: number;
  memberId: string;
  /** LEASE_TTL_MS: how long a lease and a membership last without renewal. */
  ttlMs: number;
  logger: Logger;
  /** Starts the local work of a shard whose lease was just acquired; a throw gives the lease back. */
  onAcquire: (shard: number) => Promise<void>;
  /** Stops the local work of a shard; awaited before its lease is released. */
  onRelease: (shard: number, reason: ReleaseReason) => Promise<void>;
  /** Heartbeat and lease renewal period; default ttlMs / 3. */
  tickMs?: number;
}

interface ShardLeasesEvents {
  acquired: [shard: number];
  released: [shard: number, reason: ReleaseReason];
}

export class ShardLeases extends EventEmitter<ShardLeasesEvents> {
  private readonly opts: ShardLeasesOptions;
  private readonly command: LeaseCommand;
  /** Shards whose lease we hold: running, or closing before the hand-over. */
  private readonly held = new Map<number, 'owned' | 'releasing'>();
  private readonly handovers = new Set<Promise<void>>();
  private liveMembers: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;

  constructor(opts: ShardLeasesOptions) {
    super();
    this.opts = opts;
    const r = opts.redis as unknown as Record<string, LeaseCommand | undefined>;
    if (typeof r[COMMAND] !== 'function') opts.redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: LUA });
    this.command = (r[COMMAND] as LeaseCommand).bind(opts.redis);
  }

  get memberId(): string {
    return this.opts.memberId;
  }

  /** Shards this member owns and runs (not those being handed over). */
  owned(): number[] {
    return [...this.held].filter(([, s]) => s === 'owned').map(([shard]) => shard).sort((a, b) => a - b);
  }

  /** The live members seen at the last heartbeat. */
  members(): string[] {
    return [...this.liveMembers];
  }

  /** Joins and runs the first round (heartbeat, acquisitions) before resolving. */
  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.opts.tickMs ?? Math.max(50, Math.floor(this.opts.ttlMs / 3)));
  }

  /** One round: heartbeat, then renew, acquire or hand over each shard. Rounds never overlap. */
  tick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (!this.ticking) this.ticking = this.round().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  /**
   * Leaves the farm. With `release` (the default) each shard's work is stopped and its lease deleted so
   * the others take over at once; without it the member just goes silent, as if killed.
   */
  async stop({ release = true }: { release?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    await this.ticking;
    await Promise.allSettled([...this.handovers]);
    if (!release) return;
    await Promise.allSettled(
      [...this.held.keys()].map(async (shard) => {
        await this.opts.onRelease(shard, 'stop').catch((err: Error) => this.opts.logger.error({ shard, err: err.message }, 'stopping a shard failed'));
        await this.command(this.opts.names.lease(shard), 'release', this.opts.memberId).catch(() => 0);
        this.held.delete(shard);
        this.emit('released', shard, 'stop');
      }),
    );
    await this.opts.redis.zrem(this.opts.names.members(), this.opts.memberId).catch(() => 0);
  }

  private async round(): Promise<void> {
    const { names, memberId, ttlMs, shardCount, logger } = this.opts;
    let live: string[];
    try {
      live = (await this.command(names.members(), 'heartbeat', memberId, ttlMs)) as string[];
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'shard membership heartbeat failed');
      return;
    }
    if (!live.includes(memberId)) live.push(memberId);
    this.liveMembers = live;
    const shards = Array.from({ length: shardCount }, (_, i) => i);
    await Promise.all(shards.map((shard) => this.settle(shard, rendezvousOwner(live, shard) === memberId)));
  }

  private async settle(shard: number, mine: boolean): Promise<void> {
    if (this.stopped) return;
    const { names, memberId, ttlMs, logger } = this.opts;
    const lease = names.lease(shard);
    try {
      const state = this.held.get(shard);
      if (state) {
        const renewed = Number(await this.command(lease, 'renew', memberId, ttlMs)) === 1;
        if (!renewed) {
          logger.warn({ shard }, 'shard lease lost');
          if (state === 'owned') this.handOver(shard, 'lost');
        } else if (!mine && state === 'owned') {
          this.handOver(shard, 'rebalance');
        }
        return;
      }
      if (!mine) return;
      if ((await this.opts.redis.set(lease, memberId, 'PX', ttlMs, 'NX')) !== 'OK') return;
      if (this.stopped) {
        await this.command(lease, 'release', memberId);
        return;
      }
      this.held.set(shard, 'owned');
      try {
        await this.opts.onAcquire(shard);
      } catch (err) {
        logger.error({ shard, err: (err as Error).message }, 'starting a shard failed; lease given back');
        this.held.delete(shard);
        await this.command(lease, 'release', memberId);
        return;
      }
      logger.info({ shard, member: memberId }, 'shard acquired');
      this.emit('acquired', shard);
    } catch (err) {
      logger.warn({ shard, err: (err as Error).message }, 'shard lease round failed');
    }
  }

  /** Closes the shard's local work in the background (renewals go on meanwhile), then gives the lease up. */
  private handOver(shard: number, reason: 'rebalance' | 'lost'): void {
    this.held.set(shard, 'releasing');
    const done = (async () => {
      try {
        await this.opts.onRelease(shard, reason);
      } catch (err) {
        this.opts.logger.error({ shard, err: (err as Error).message }, 'stopping a shard failed');
      }
      await this.command(this.opts.names.lease(shard), 'release', this.opts.memberId).catch(() => 0);
      this.held.delete(shard);
      this.opts.logger.info({ shard, reason, member: this.opts.memberId }, 'shard released');
      this.emit('released', shard, reason);
    })();
    this.handovers.add(done);
    void done.finally(() => this.handovers.delete(done));
  }
}
