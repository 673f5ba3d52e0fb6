// The HTTP door's side of the shard pipeline (shard-ingress.ts does the queueing): each call's item goes
// sealed into its job and its result comes back sealed (rpc-sealing.ts). The policy of this door:
// - a request the farm does not take (shard full or unable to drain it in time, Redis unreachable,
//   shutting down) is answered 503 at once, outcome `not_queued` (safe to retry): the command connection
//   has no offline queue, so nothing waits for Redis to come back;
// - a job not answered by RPC_TIMEOUT_MS, with no stored result either, answers 504 of unknown outcome, as
//   do calls in flight when the command link drops (at once): an HTTP caller wants a prompt answer, and
//   must not be told a request that may have been signed is safe to retry.
import type { Logger } from '../logger.js';
import { metrics } from '../metrics.js';
import { closeRedis, connectFailFast, createRedis, type RedisClient, type RedisTarget } from '../redis.js';
import type { ShardNames } from '../shard.js';
import type { ItemResult, ReplyMessage, RpcItem, SealedReplyMessage } from './jobs.js';
import type { PayloadSealer } from './payload-seal.js';
import { openReply, sealRpcJob } from './rpc-sealing.js';
import { ShardIngress, type DoorPolicy } from './shard-ingress.js';

export interface RpcClientOptions {
  redisUrl: RedisTarget;
  names: ShardNames;
  shardCount: number;
  /** Items a shard may hold (QUEUE_LIMIT). */
  queueLimit: number;
  /** The longest an admitted call should wait in its shard (ADMISSION_MAX_WAIT_MS). */
  admissionMaxWaitMs?: number;
  /** How long a call waits for its answer before 504 (RPC_TIMEOUT_MS). */
  timeoutMs: number;
  /** Unique per process: replies for this process are published on its reply channels (replies.ts). */
  instanceId: string;
  logger: Logger;
  /** Seals calls into jobs and opens their results: the farm payload key (loadPayloadSealer). */
  sealer: PayloadSealer;
}

interface WaitingCall {
  item: RpcItem;
  resolve(r: ItemResult): void;
}

const fail = (id: string, status: number, error: string): ItemResult => ({ id, ok: false, status, error });

function httpPolicy(sealer: PayloadSealer, instanceId: string): DoorPolicy<WaitingCall> {
  return {
    door: 'http',
    jobData: (jobId, calls) =>
      sealRpcJob(
        sealer,
        jobId,
        instanceId,
        'http',
        calls.map((c) => c.item),
      ),
    results: (_jobId, reply) => openReply(sealer, reply as Partial<SealedReplyMessage & ReplyMessage>),
    answer(call, result) {
      if (!result.ok && result.status === 504) metrics.rpcTimeouts.inc();
      call.resolve(result);
    },
    refuse(calls, why, retryAfterMs) {
      for (const c of calls)
        c.resolve({ id: c.item.id, ok: false, status: 503, error: why, outcome: 'not_queued', retryAfterMs });
    },
    lateJob: { kind: 'fail' },
    holdAfterRefusal: true,
  };
}

export class RpcClient {
  private readonly opts: RpcClientOptions;
  private ingress: ShardIngress<WaitingCall> | undefined;
  /** This client's own connections: commands, replies. */
  private connections: RedisClient[] = [];
  private closed = false;

  constructor(opts: RpcClientOptions) {
    this.opts = opts;
  }

  /** Connects and subscribes to this instance's reply channel; resolves once replies can arrive. */
  async start(): Promise<void> {
    if (this.ingress) throw new Error('RpcClient.start: already started');
    const { logger } = this.opts;
    const redis = await connectFailFast(this.opts.redisUrl, (err) =>
      logger.warn({ err: err.message }, 'rpc client redis error'),
    );
    const subscriber = createRedis(this.opts.redisUrl, { enableAutoPipelining: false });
    subscriber.on('error', (err) => logger.warn({ err: err.message }, 'rpc client subscriber error'));
    this.ingress = new ShardIngress({
      redis,
      subscriber,
      names: this.opts.names,
      shardCount: this.opts.shardCount,
      queueLimit: this.opts.queueLimit,
      admissionMaxWaitMs: this.opts.admissionMaxWaitMs,
      instanceId: this.opts.instanceId,
      replyTimeoutMs: this.opts.timeoutMs,
      logger,
      policy: httpPolicy(this.opts.sealer, this.opts.instanceId),
    });
    this.connections = [redis, subscriber];
    await this.ingress.start();
  }

  /** Runs one request on its shard and resolves with its result; never rejects for farm conditions (503/504 are results). */
  call(shard: number, item: RpcItem): Promise<ItemResult> {
    const ingress = this.ingress;
    if (!ingress || this.closed)
      return Promise.resolve({ ...fail(item.id, 503, 'shutting down'), outcome: 'not_queued' as const });
    return new Promise((resolve) => ingress.submit(shard, { item, resolve }));
  }

  /** Whether any shard may be held after a refusal; false lets a caller skip finding the shard. */
  holdsAny(): boolean {
    return this.ingress?.holdsAny() ?? false;
  }

  /** Retry-After (ms) while the shard's calls are refused without a round trip after a refusal for room; else 0. */
  refusingFor(shard: number): number {
    return this.ingress?.refusingFor(shard) ?? 0;
  }

  /** Both Redis links (commands and replies) are up. */
  get connected(): boolean {
    return this.ingress?.connected ?? false;
  }

  /** Calls waiting for an answer (queued or in flight). */
  get waiting(): number {
    return this.ingress?.waiting ?? 0;
  }

  /** Answers every waiting call with 503 and disconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.ingress?.close();
    await Promise.all(this.connections.map((c) => closeRedis(c)));
  }
}
