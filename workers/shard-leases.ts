// Worker processes divide the shards among themselves. Each process is a member (a sorted set in Redis
// scored by expiry, refreshed every tick); rendezvous hashing with bounded loads over the live members says
// who should own each shard (an even split), and a lease key per shard (owner id, PX ttl, SET NX) makes sure at most one does.
// A shard that should move is handed over only after its local queue consumer has closed; a member that
// dies stops renewing, and its leases expire so the others take its shards within about the TTL.
// Shards move back to a member that (re)joins one at a time, each taken up within tens of milliseconds
// of its release (the taker retries its wanted shards quickly between rounds), so a rejoin never leaves
// many shards at once without a worker or with a cold key cache.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { luaCommand, type RedisClient } from '../shared/redis.js';
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

/**
 * Who should own each shard: rendezvous hashing with bounded loads. Every (member, shard) pair is taken in
 * order of its rendezvous score, and a shard goes to the first member that still has room, room being
 * floor(shards / members) each plus one more for the first (shards mod members) members to fill up. So the
 * shards divide evenly (two workers and 8 shards: 4 each; plain rendezvous gave splits like 6 and 2), every
 * member computes the same answer from the same member list, and a join or a leave moves few shards besides
 * the joiner's or the leaver's.
 */
export function shardOwners(members: readonly string[], shardCount: number): (string | undefined)[] {
  const owners: (string | undefined)[] = new Array(shardCount).fill(undefined);
  const unique = [...new Set(members)].sort();
  if (unique.length === 0) return owners;
  const pairs: { member: string; shard: number; score: number }[] = [];
  for (const member of unique)
    for (let shard = 0; shard < shardCount; shard++)
      pairs.push({ member, shard, score: rendezvousScore(member, shard) });
  pairs.sort((a, b) => b.score - a.score || (a.member < b.member ? -1 : a.member > b.member ? 1 : a.shard - b.shard));
  const base = Math.floor(shardCount / unique.length);
  let extra = shardCount % unique.length;
  const load = new Map<string, number>();
  let left = shardCount;
  for (const { member, shard } of pairs) {
    if (left === 0) break;
    if (owners[shard] !== undefined) continue;
    const n = load.get(member) ?? 0;
    if (n >= base) {
      if (n > base || extra === 0) continue;
      extra--;
    }
    load.set(member, n + 1);
    owners[shard] = member;
    left--;
  }
  return owners;
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
  /** How often a shard this member should own, but another still holds, is tried between rounds; default 50 ms. */
  pickUpMs?: number;
  /** Shards this member hands over to others for a rebalance at once; default 1. */
  maxMoves?: number;
}

interface ShardLeasesEvents {
  acquired: [shard: number];
  /** This member starts closing the shard's work before giving its lease up. */
  handingOver: [shard: number, reason: 'rebalance' | 'lost'];
  released: [shard: number, reason: ReleaseReason];
}

export class ShardLeases extends EventEmitter<ShardLeasesEvents> {
  private readonly opts: ShardLeasesOptions;
  private readonly command: LeaseCommand;
  /** Shards whose lease we hold: running, or closing before the hand-over. */
  private readonly held = new Map<number, 'owned' | 'releasing'>();
  private readonly handovers = new Set<Promise<void>>();
  private liveMembers: string[] = [];
  /** shardOwners of the last member list (recomputed only when the members change). */
  private owners: { members: string; owners: (string | undefined)[] } | undefined;
  /** Rebalance hand-overs in progress. */
  private moving = 0;
  /** Shards this member should own that another member still held at the last try. */
  private readonly wanted = new Set<number>();
  private pickUpTimer: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;

  constructor(opts: ShardLeasesOptions) {
    super();
    this.opts = opts;
    this.command = luaCommand<LeaseCommand>(opts.redis, COMMAND, 1, LUA);
  }

  get memberId(): string {
    return this.opts.memberId;
  }

  /** Shards this member owns and runs (not those being handed over). */
  owned(): number[] {
    return [...this.held]
      .filter(([, s]) => s === 'owned')
      .map(([shard]) => shard)
      .sort((a, b) => a - b);
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
    clearTimeout(this.pickUpTimer);
    await this.ticking;
    await Promise.allSettled([...this.handovers]);
    if (!release) return;
    await Promise.allSettled(
      [...this.held.keys()].map(async (shard) => {
        await this.opts
          .onRelease(shard, 'stop')
          .catch((err: Error) => this.opts.logger.error({ shard, err: err.message }, 'stopping a shard failed'));
        await this.command(this.opts.names.lease(shard), 'release', this.opts.memberId).catch(() => 0);
        this.held.delete(shard);
        this.emit('released', shard, 'stop');
      }),
    );
    await this.opts.redis.zrem(this.opts.names.members(), this.opts.memberId).catch(() => 0);
  }

  private async round(): Promise<void> {
    const { names, memberId, ttlMs, logger } = this.opts;
    let live: string[];
    try {
      live = (await this.command(names.members(), 'heartbeat', memberId, ttlMs)) as string[];
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'shard membership heartbeat failed');
      return;
    }
    if (!live.includes(memberId)) live.push(memberId);
    this.liveMembers = live;
    const owners = this.ownersOf(live);
    await Promise.all(owners.map((owner, shard) => this.settle(shard, owner === memberId)));
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
        } else if (!mine && state === 'owned' && this.moving < (this.opts.maxMoves ?? 1)) {
          this.handOver(shard, 'rebalance');
        }
        return;
      }
      if (!mine) {
        this.wanted.delete(shard);
        return;
      }
      await this.acquire(shard);
    } catch (err) {
      logger.warn({ shard, err: (err as Error).message }, 'shard lease round failed');
    }
  }

  /** Takes the shard's lease if it is free and starts its work; while another holds it, tries again soon. */
  private async acquire(shard: number): Promise<void> {
    const { names, memberId, ttlMs, logger } = this.opts;
    const lease = names.lease(shard);
    if (this.held.has(shard)) return;
    if ((await this.opts.redis.set(lease, memberId, 'PX', ttlMs, 'NX')) !== 'OK') {
      this.wanted.add(shard);
      this.schedulePickUp();
      return;
    }
    this.wanted.delete(shard);
    if (this.stopped || this.held.has(shard)) {
      if (this.stopped) await this.command(lease, 'release', memberId);
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
  }

  private ownersOf(live: readonly string[]): (string | undefined)[] {
    const members = [...live].sort().join('\n');
    if (this.owners?.members !== members) this.owners = { members, owners: shardOwners(live, this.opts.shardCount) };
    return this.owners.owners;
  }

  /** Between rounds, tries the wanted shards again: one released by its owner is taken up at once. */
  private schedulePickUp(): void {
    if (this.pickUpTimer || this.stopped) return;
    this.pickUpTimer = setTimeout(() => {
      this.pickUpTimer = undefined;
      const owners = this.ownersOf(this.liveMembers);
      for (const shard of this.wanted) {
        if (owners[shard] !== this.opts.memberId) this.wanted.delete(shard);
        else
          void this.acquire(shard).catch((err: Error) =>
            this.opts.logger.warn({ shard, err: err.message }, 'shard pick-up failed'),
          );
      }
    }, this.opts.pickUpMs ?? 50);
  }

  /** Closes the shard's local work in the background (renewals go on meanwhile), then gives the lease up. */
  private handOver(shard: number, reason: 'rebalance' | 'lost'): void {
    this.held.set(shard, 'releasing');
    if (reason === 'rebalance') this.moving++;
    this.emit('handingOver', shard, reason);
    const done = (async () => {
      try {
        await this.opts.onRelease(shard, reason);
      } catch (err) {
        this.opts.logger.error({ shard, err: (err as Error).message }, 'stopping a shard failed');
      }
      await this.command(this.opts.names.lease(shard), 'release', this.opts.memberId).catch(() => 0);
      this.held.delete(shard);
      if (reason === 'rebalance') this.moving--;
      this.opts.logger.info({ shard, reason, member: this.opts.memberId }, 'shard released');
      this.emit('released', shard, reason);
    })();
    this.handovers.add(done);
    void done.finally(() => this.handovers.delete(done));
  }
}
